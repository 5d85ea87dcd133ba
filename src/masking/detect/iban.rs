//! IBANs: country code, two check digits and the BBAN, contiguous or printed in groups of
//! four, with the length the country registers and a valid ISO 7064 mod-97 checksum.

use super::bytes::{UPPER, byte, ends_cleanly, has, is_digit, starts_cleanly};

/// IBAN length per country (SWIFT IBAN registry). Codes not listed are not taken: an
/// unknown "country" followed by digits is far more often a product or order code.
fn registered_length(country: [u8; 2]) -> Option<usize> {
    let len = match &country {
        b"NO" => 15,
        b"BE" => 16,
        b"DK" | b"FI" | b"FO" | b"GL" | b"NL" | b"SD" | b"FK" => 18,
        b"MK" | b"SI" => 19,
        b"AT" | b"BA" | b"EE" | b"KZ" | b"LT" | b"LU" | b"XK" | b"MN" => 20,
        b"CH" | b"HR" | b"LI" | b"LV" => 21,
        b"BG" | b"BH" | b"CR" | b"DE" | b"GB" | b"GE" | b"IE" | b"ME" | b"RS" | b"VA" => 22,
        b"AE" | b"GI" | b"IL" | b"IQ" | b"TL" | b"SO" | b"OM" => 23,
        b"AD" | b"CZ" | b"ES" | b"MD" | b"PK" | b"RO" | b"SA" | b"SE" | b"SK" | b"TN" | b"VG" => 24,
        b"PT" | b"ST" | b"LY" => 25,
        b"IS" | b"TR" => 26,
        b"FR" | b"GR" | b"IT" | b"MC" | b"MR" | b"SM" | b"BI" | b"DJ" => 27,
        b"AL" | b"AZ" | b"BY" | b"CY" | b"DO" | b"GT" | b"HU" | b"LB" | b"PL" | b"SV" | b"NI"
        | b"HN" => 28,
        b"BR" | b"EG" | b"PS" | b"QA" | b"UA" => 29,
        b"JO" | b"KW" | b"MU" | b"YE" => 30,
        b"MT" | b"SC" => 31,
        b"LC" => 32,
        b"RU" => 33,
        _ => return None,
    };
    Some(len)
}

/// The IBAN starting at `start` (an uppercase letter), returning its end.
pub(super) fn at(text: &[u8], start: usize) -> Option<usize> {
    let head = [byte(text, start), byte(text, start + 1)];
    if !has(head[0], UPPER)
        || !has(head[1], UPPER)
        || !is_digit(byte(text, start + 2))
        || !is_digit(byte(text, start + 3))
    {
        return None;
    }
    let len = registered_length(head)?;
    if !starts_cleanly(text, start) {
        return None;
    }
    let grouped = byte(text, start + 4) == b' ';
    let mut chars = [0u8; 34];
    let mut i = start;
    for (n, slot) in chars.iter_mut().take(len).enumerate() {
        if grouped && n > 0 && n % 4 == 0 {
            if byte(text, i) != b' ' {
                return None;
            }
            i += 1;
        }
        let c = byte(text, i);
        if !(c.is_ascii_digit() || c.is_ascii_uppercase()) {
            return None;
        }
        *slot = c;
        i += 1;
    }
    (ends_cleanly(text, i) && mod97_valid(&chars[..len])).then_some(i)
}

/// ISO 7064 mod 97-10 over the IBAN with its first four characters moved to the end and
/// letters expanded to 10–35.
fn mod97_valid(iban: &[u8]) -> bool {
    let (head, bban) = iban.split_at(4);
    let remainder = bban.iter().chain(head).fold(0u32, |r, &c| {
        if c.is_ascii_digit() {
            (r * 10 + u32::from(c - b'0')) % 97
        } else {
            (r * 100 + u32::from(c - b'A') + 10) % 97
        }
    });
    remainder == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find(s: &str) -> Option<usize> {
        at(s.as_bytes(), 0)
    }

    #[test]
    fn registry_examples() {
        assert_eq!(find("DE89370400440532013000"), Some(22));
        assert_eq!(find("DE89 3704 0044 0532 0130 00 EUR"), Some(27));
        assert_eq!(find("GB82 WEST 1234 5698 7654 32"), Some(27));
        assert_eq!(find("NL91ABNA0417164300"), Some(18));
        assert_eq!(find("FR1420041010050500013M02606"), Some(27));
        assert_eq!(find("NO9386011117947"), Some(15));
    }

    #[test]
    fn near_misses() {
        assert_eq!(find("DE89370400440532013001"), None, "checksum");
        assert_eq!(find("DE8937040044053201300"), None, "short");
        assert_eq!(find("DE893704004405320130001"), None, "long");
        assert_eq!(find("DE89 3704 0044 0532 013000"), None, "broken grouping");
        assert_eq!(find("ZZ89370400440532013000"), None, "no such country");
        assert_eq!(find("de89370400440532013000"), None, "lowercase");
    }
}
