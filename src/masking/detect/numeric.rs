//! Number-shaped entities: payment cards, US SSNs and phone numbers.
//!
//! Numbers are where false positives live: order numbers, invoice numbers, timestamps and
//! amounts are digits too. Every detector here therefore insists on either a checksum (Luhn
//! plus a real IIN prefix for cards), a shape people write only for this entity (`AAA-GG-SSSS`,
//! `(555) 123-4567`, `+44 20 7946 0958`), or a context word; and on clean edges, so a number
//! glued into a larger identifier (`ORD-2024-000123`, `SKU-555-123-4567-B`) is left alone.
//! Grouped numbers are read as chains of digit groups; a detector takes the longest prefix
//! of the chain that is a valid entity, so a card followed by an expiry date is still found.

use super::bytes::{
    byte, ends_cleanly, is_digit, keyword_before, number, skip_digits, starts_cleanly,
};
use crate::masking::Classification;

/// A match: end offset and class (the start is the caller's).
pub(super) type Hit = (usize, Classification);

/// Longest number-shaped entity starting at the digit `start`, if any.
pub(super) fn at_digit(text: &[u8], start: usize) -> Option<Hit> {
    if !starts_cleanly(text, start) {
        return None;
    }
    let candidates = [
        card(text, start).map(|end| (end, Classification::Card)),
        ssn(text, start).map(|end| (end, Classification::NationalId)),
        nanp_with_country(text, start).map(|end| (end, Classification::Phone)),
        trunk_phone(text, start).map(|end| (end, Classification::Phone)),
    ];
    // "9400 0333 9732 0449 3646 40": an entity does not start in the middle of a chain of
    // groups that continues backwards with its own separator; only a bare number may follow
    // another number directly ("Qty 2 4111111111111111").
    let first_group_end = skip_digits(text, start);
    let mid_chain = start >= 2 && text[start - 1] == b' ' && is_digit(text[start - 2]);
    let joins_back =
        |end: usize| mid_chain && end > first_group_end && text[first_group_end] == b' ';
    // Earlier entries win ties: they are the more specific (checksummed) ones.
    candidates
        .into_iter()
        .flatten()
        .filter(|&(end, _)| !joins_back(end))
        .fold(None, |best: Option<Hit>, hit| match best {
            Some(b) if b.0 >= hit.0 => Some(b),
            _ => Some(hit),
        })
}

/// Most groups a chain keeps; more than any card or phone layout uses.
const MAX_GROUPS: usize = 8;

/// A chain of digit groups joined by one repeated separator (`4111 1111 1111 1111`), read
/// up to 19 digits. Detectors try its prefixes, longest first: the groups after an entity
/// may be another number ("4111111111111111 12/27").
struct Chain {
    digits: [u8; 19],
    /// Per group: its end offset and the digits read up to it.
    ends: [usize; MAX_GROUPS],
    totals: [usize; MAX_GROUPS],
    groups: usize,
}

impl Chain {
    /// Reads groups separated by the first of `separators` met after the first group.
    fn read(text: &[u8], start: usize, separators: &[u8]) -> Chain {
        let mut out = Chain {
            digits: [0; 19],
            ends: [0; MAX_GROUPS],
            totals: [0; MAX_GROUPS],
            groups: 0,
        };
        let mut separator = None;
        let mut total = 0;
        let mut i = start;
        while out.groups < MAX_GROUPS {
            let group_end = skip_digits(text, i);
            if group_end == i || total + (group_end - i) > out.digits.len() {
                break;
            }
            for (slot, d) in out.digits[total..].iter_mut().zip(&text[i..group_end]) {
                *slot = d - b'0';
            }
            total += group_end - i;
            out.ends[out.groups] = group_end;
            out.totals[out.groups] = total;
            out.groups += 1;
            let next = byte(text, group_end);
            let continues = match separator {
                Some(sep) => next == sep,
                None => separators.contains(&next),
            };
            if !continues || !is_digit(byte(text, group_end + 1)) {
                break;
            }
            separator = Some(next);
            i = group_end + 1;
        }
        out
    }

    /// Size of group `k` (0-based) of a chain that starts at `start`.
    fn size(&self, start: usize, k: usize) -> usize {
        let from = if k == 0 { start } else { self.ends[k - 1] + 1 };
        self.ends[k] - from
    }

    /// The longest prefix of `1..=groups` groups that `accept` takes, as its end offset.
    fn longest(&self, mut accept: impl FnMut(usize) -> bool) -> Option<usize> {
        (1..=self.groups)
            .rev()
            .find(|&k| accept(k))
            .map(|k| self.ends[k - 1])
    }
}

/// Payment card: 13–19 digits, bare or grouped by spaces or dashes (groups of 3–8 digits),
/// Luhn-valid, with the prefix and length of a real brand.
fn card(text: &[u8], start: usize) -> Option<usize> {
    let chain = Chain::read(text, start, b" -");
    chain.longest(|k| {
        let len = chain.totals[k - 1];
        let digits = &chain.digits[..len];
        let grouped_well = k == 1 || (0..k).all(|g| (3..=8).contains(&chain.size(start, g)));
        (13..=19).contains(&len)
            && grouped_well
            && !(k == 1 && len == 13 && ean13_valid(digits))
            && brand_accepts(digits)
            && luhn_valid(digits)
            && ends_cleanly(text, chain.ends[k - 1])
    })
}

/// IIN ranges and lengths of Visa, Mastercard, Amex, Discover, JCB, Diners and UnionPay.
/// The prefix check removes most Luhn-valid accidents (one number in ten passes Luhn).
fn brand_accepts(d: &[u8]) -> bool {
    let prefix = |k: usize| d[..k].iter().fold(0u32, |acc, &x| acc * 10 + u32::from(x));
    let len = d.len();
    let (p2, p3, p4) = (prefix(2), prefix(3), prefix(4));
    let visa = d[0] == 4;
    let mastercard = (51..=55).contains(&p2) || (2221..=2720).contains(&p4);
    let amex = p2 == 34 || p2 == 37;
    let discover = p4 == 6011 || p2 == 65 || (644..=649).contains(&p3);
    let jcb = (3528..=3589).contains(&p4);
    let unionpay = p2 == 62;
    let diners = p2 == 36 || p2 == 38 || (300..=305).contains(&p3);
    (visa && matches!(len, 13 | 16 | 19))
        || (mastercard && len == 16)
        || (amex && len == 15)
        || ((discover || jcb || unionpay) && (16..=19).contains(&len))
        || (diners && (14..=19).contains(&len))
}

/// EAN-13 barcodes (GTINs on every product row) are 13 digits; those starting with 40–44
/// (Germany) pass Visa's prefix and one in ten passes Luhn. A bare 13-digit number with a
/// valid EAN check digit is taken as a barcode: 13-digit Visa numbers are long retired.
fn ean13_valid(digits: &[u8]) -> bool {
    let sum: u32 = digits[..12]
        .iter()
        .enumerate()
        .map(|(i, &d)| u32::from(d) * if i % 2 == 1 { 3 } else { 1 })
        .sum();
    (10 - sum % 10) % 10 == u32::from(digits[12])
}

pub(super) fn luhn_valid(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == 1 {
                let doubled = d * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// US SSN: `AAA-GG-SSSS` or `AAA GG SSSS` in the issued ranges; nine bare digits only after
/// a context word. Almost every nine-digit number (order and customer numbers among them)
/// falls in the issued ranges, so bare digits alone would mask them all.
fn ssn(text: &[u8], start: usize) -> Option<usize> {
    let area_end = skip_digits(text, start);
    if area_end - start == 9 {
        let ok = ssn_ranges_ok(text, start, start + 3, start + 5)
            && ends_cleanly(text, area_end)
            && keyword_before(text, start, 24, &[b"ssn", b"social security", b"ss#"]);
        return ok.then_some(area_end);
    }
    if area_end - start != 3 {
        return None;
    }
    let sep = byte(text, area_end);
    if sep != b'-' && sep != b' ' {
        return None;
    }
    let group_end = skip_digits(text, area_end + 1);
    if group_end - area_end != 3 || byte(text, group_end) != sep {
        return None;
    }
    let serial_end = skip_digits(text, group_end + 1);
    let ok = serial_end - group_end == 5
        && ssn_ranges_ok(text, start, area_end + 1, group_end + 1)
        && ends_cleanly(text, serial_end)
        && !(byte(text, serial_end) == sep && is_digit(byte(text, serial_end + 1)));
    ok.then_some(serial_end)
}

/// Area not 000, 666 or 900–999; group not 00; serial not 0000.
fn ssn_ranges_ok(text: &[u8], area: usize, group: usize, serial: usize) -> bool {
    let a = number(text, area, area + 3);
    let g = number(text, group, group + 2);
    let s = number(text, serial, serial + 4);
    a != 0 && a != 666 && a < 900 && g != 0 && s != 0
}

/// NANP number after an optional `1` country code: `1 555 123 4567`, `1-555-123-4567`.
fn nanp_with_country(text: &[u8], start: usize) -> Option<usize> {
    if byte(text, start) == b'1'
        && matches!(byte(text, start + 1), b' ' | b'-' | b'.')
        && let Some(end) = nanp(text, start + 2)
    {
        return Some(end);
    }
    nanp(text, start)
}

/// NANP body from the area code: `(555) 123-4567`, `(555)123-4567`, `555-123-4567`,
/// `555.123.4567`, `555 123 4567`. The area code follows the numbering-plan rules (first
/// digit 2–9, second not 9, not N11); the exchange is not checked because fictional `555`
/// numbers and real data alike use exchanges such as `123`.
pub(super) fn nanp(text: &[u8], start: usize) -> Option<usize> {
    let (area, exchange, sep) = if byte(text, start) == b'(' {
        let area_end = skip_digits(text, start + 1);
        if area_end - start != 4 || byte(text, area_end) != b')' {
            return None;
        }
        let mut exchange = area_end + 1;
        if byte(text, exchange) == b' ' {
            exchange += 1;
        }
        (start + 1, exchange, None)
    } else {
        let area_end = skip_digits(text, start);
        let sep = byte(text, area_end);
        if area_end - start != 3 || !matches!(sep, b' ' | b'-' | b'.') {
            return None;
        }
        (start, area_end + 1, Some(sep))
    };
    let (a0, a1, a2) = (text[area], text[area + 1], text[area + 2]);
    if a0 < b'2' || a1 == b'9' || (a1 == b'1' && a2 == b'1') {
        return None;
    }
    let exchange_end = skip_digits(text, exchange);
    let sep2 = byte(text, exchange_end);
    let sep_ok = match sep {
        Some(s) => sep2 == s,
        None => matches!(sep2, b' ' | b'-' | b'.'),
    };
    if exchange_end - exchange != 3 || !sep_ok {
        return None;
    }
    let line_end = skip_digits(text, exchange_end + 1);
    // A complete 3-3-4 shape stands on its own even when more digits follow a space
    // ("555 123 4567 24/7"); glued continuations are caught by `ends_cleanly`.
    (line_end - exchange_end == 5 && ends_cleanly(text, line_end)).then_some(line_end)
}

/// National numbers written with a trunk `0`: `020 7946 0958`, `06 12 34 56 78`,
/// `06.12.34.56.78`, `(020) 7946 0958`; ten or eleven digits. Dashes are left to part and
/// order numbers (`0260-5514-97`, `order 072-5139604`), which share this shape far more often
/// than phones do; dots only in the French pairs, since dotted digits are otherwise versions
/// and amounts.
fn trunk_phone(text: &[u8], start: usize) -> Option<usize> {
    if byte(text, start) != b'0' || !matches!(byte(text, start + 1), b'1'..=b'9') {
        return None;
    }
    trunk_groups(text, start, start)
}

/// The grouped rest of a trunk number whose first digit is at `digits_from`; `start` is
/// where the entity begins (an opening parenthesis, or the first digit).
fn trunk_groups(text: &[u8], start: usize, digits_from: usize) -> Option<usize> {
    let first_end = skip_digits(text, digits_from);
    let first = first_end - digits_from;
    if !(2..=5).contains(&first) {
        return None;
    }
    let (rest_from, separators): (usize, &[u8]) = if start < digits_from {
        if byte(text, first_end) != b')' || byte(text, first_end + 1) != b' ' {
            return None;
        }
        (first_end + 2, b" -")
    } else {
        match byte(text, first_end) {
            b' ' => (first_end + 1, b" "),
            b'.' if first == 2 => (first_end + 1, b"."),
            _ => return None,
        }
    };
    if !is_digit(byte(text, rest_from)) {
        return None;
    }
    let pairs_only = separators == b".";
    let rest = Chain::read(text, rest_from, separators);
    rest.longest(|k| {
        (10..=11).contains(&(first + rest.totals[k - 1]))
            && (0..k).all(|g| {
                let size = rest.size(rest_from, g);
                if pairs_only {
                    size == 2
                } else {
                    (2..=8).contains(&size)
                }
            })
            && ends_cleanly(text, rest.ends[k - 1])
    })
}

/// Numbers opened by `(`: `(555) 123-4567` or `(020) 7946 0958`.
pub(super) fn at_paren(text: &[u8], start: usize) -> Option<Hit> {
    if !starts_cleanly(text, start) {
        return None;
    }
    let found = if byte(text, start + 1) == b'0' {
        trunk_groups(text, start, start + 1)
    } else {
        nanp(text, start)
    };
    found.map(|end| (end, Classification::Phone))
}

/// International numbers opened by `+`: `+1 (555) 123-4567`, `+14155552671`,
/// `+44 20 7946 0958`, `+44 (0)20 7946 0958`, `+49-30-1234567`. E.164 allows 8–15 digits.
pub(super) fn at_plus(text: &[u8], start: usize) -> Option<Hit> {
    if !starts_cleanly(text, start) || !matches!(byte(text, start + 1), b'1'..=b'9') {
        return None;
    }
    if byte(text, start + 1) == b'1' {
        let body = match byte(text, start + 2) {
            b' ' | b'-' | b'.' => start + 3,
            _ => start + 2,
        };
        if let Some(end) = nanp(text, body) {
            return Some((end, Classification::Phone));
        }
    }
    let mut i = start + 1;
    let mut digits = 0;
    let mut separators = 0;
    let mut dots = 0;
    loop {
        let group_end = skip_digits(text, i);
        digits += group_end - i;
        if digits > 15 {
            return None;
        }
        i = group_end;
        // One separator, or a parenthesised group such as "(0)" or "(555)", then digits.
        let mut j = i;
        let mut saw = false;
        if matches!(byte(text, j), b' ' | b'-' | b'.') {
            if text[j] == b'.' {
                dots += 1;
            }
            j += 1;
            saw = true;
        }
        let mut inner = 0;
        if byte(text, j) == b'(' {
            let inner_end = skip_digits(text, j + 1);
            if inner_end == j + 1 || inner_end - j > 5 || byte(text, inner_end) != b')' {
                break;
            }
            inner = inner_end - j - 1;
            j = inner_end + 1;
            if byte(text, j) == b' ' {
                j += 1;
            }
            saw = true;
        }
        if !saw || !is_digit(byte(text, j)) {
            break;
        }
        digits += inner;
        separators += 1;
        i = j;
    }
    // "+1234.56" is a signed amount, not a phone.
    let decimal = separators == 1 && dots == 1;
    let ok = (8..=15).contains(&digits) && !decimal && ends_cleanly(text, i);
    ok.then_some((i, Classification::Phone))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digit(s: &str) -> Option<(usize, Classification)> {
        at_digit(s.as_bytes(), 0)
    }

    #[test]
    fn luhn_accepts_known_numbers_only() {
        let d = |s: &str| s.bytes().map(|b| b - b'0').collect::<Vec<_>>();
        assert!(luhn_valid(&d("4111111111111111")));
        assert!(luhn_valid(&d("378282246310005")));
        assert!(!luhn_valid(&d("4111111111111112")));
    }

    #[test]
    fn ean13_barcodes_are_not_cards() {
        // An EAN-13 from a German prefix whose check digits also satisfy Luhn.
        let d = |s: &str| s.bytes().map(|b| b - b'0').collect::<Vec<_>>();
        assert!(ean13_valid(&d("4006381333924")));
        assert!(luhn_valid(&d("4006381333924")));
        assert_eq!(digit("4006381333924"), None);
        assert_eq!(digit("4222222222222"), Some((13, Classification::Card)));
    }

    #[test]
    fn brands_need_their_prefix_and_length() {
        let d = |s: &str| s.bytes().map(|b| b - b'0').collect::<Vec<_>>();
        assert!(brand_accepts(&d("4111111111111111")));
        assert!(brand_accepts(&d("4222222222222")));
        assert!(brand_accepts(&d("2221000000000009")));
        assert!(brand_accepts(&d("30569309025904")));
        assert!(!brand_accepts(&d("378282246310005000")));
        assert!(!brand_accepts(&d("1234567812345670")));
        assert!(!brand_accepts(&d("7000000000000000")));
    }

    #[test]
    fn ssn_ranges() {
        assert_eq!(digit("123-45-6789"), Some((11, Classification::NationalId)));
        assert_eq!(digit("123 45 6789"), Some((11, Classification::NationalId)));
        for bad in [
            "000-12-3456",
            "666-12-3456",
            "912-34-5678",
            "123-00-4567",
            "123-45-0000",
        ] {
            assert_eq!(digit(bad), None, "{bad}");
        }
        assert_eq!(digit("123-45 6789"), None);
        assert_eq!(digit("123456789"), None);
    }

    #[test]
    fn nanp_area_code_rules() {
        assert!(digit("555-123-4567").is_some());
        assert!(digit("155-123-4567").is_none());
        assert!(digit("595-123-4567").is_none());
        assert!(digit("211-123-4567").is_none());
        assert!(digit("555-123.4567").is_none());
    }

    #[test]
    fn plus_forms() {
        let plus = |s: &str| at_plus(s.as_bytes(), 0).map(|h| h.0);
        assert_eq!(plus("+14155552671"), Some(12));
        assert_eq!(plus("+44 (0)20 7946 0958"), Some(19));
        assert_eq!(plus("+1234.5678"), None);
        assert_eq!(plus("+1234567"), None);
        assert_eq!(plus("+1 234 567 890 123 456"), None);
    }
}
