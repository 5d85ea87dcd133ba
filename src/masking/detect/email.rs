//! Email addresses, found from their `@`: the local part is read backwards, the domain
//! forwards. The grammar is the practical subset of RFC 5322 that real addresses use
//! (dot-atoms of `[A-Za-z0-9._%+-]`, no quoted local parts) with an alphabetic TLD of at
//! least two letters, so `user@localhost` and `a@b.c` stay unmasked. Letters of the
//! alphabets written with spaces between words (Latin, Greek, Cyrillic, Armenian) may appear
//! in the local part and the domain (`jürgen.müller@beispiel.de`, RFC 6531): stopping at
//! `ü` would leave half an address unmasked. Scripts written without spaces (Han, Kana,
//! Thai…) end the address, or `请联系john@x.com` would be taken whole.

use super::bytes::byte;

const MAX_LOCAL: usize = 64;
const MAX_DOMAIN: usize = 253;
const MAX_LABEL: usize = 63;

fn is_local(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'%' | b'+' | b'-')
}

fn is_label(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-'
}

fn is_spaced_letter(c: char) -> bool {
    c.is_alphabetic() && u32::from(c) < 0x0590
}

/// Length of the letter of a spaced alphabet that ends just before `end`, if any.
fn letter_before(text: &[u8], end: usize) -> Option<usize> {
    let from = (end.saturating_sub(4)..end)
        .rev()
        .find(|&i| text[i] & 0xC0 != 0x80)?;
    let c = std::str::from_utf8(&text[from..end]).ok()?.chars().next()?;
    is_spaced_letter(c).then_some(end - from)
}

/// Length of the letter of a spaced alphabet that starts at `start`, if any.
fn letter_at(text: &[u8], start: usize) -> Option<usize> {
    let len = match byte(text, start) {
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF7 => 4,
        _ => return None,
    };
    let c = std::str::from_utf8(text.get(start..start + len)?)
        .ok()?
        .chars()
        .next()?;
    is_spaced_letter(c).then_some(len)
}

/// The address around the `@` at `at`, as `(start, end)`.
pub(super) fn around(text: &[u8], at: usize) -> Option<(usize, usize)> {
    let mut start = at;
    while start > 0 {
        if is_local(text[start - 1]) {
            start -= 1;
        } else if text[start - 1] >= 0x80
            && let Some(len) = letter_before(text, start)
        {
            start -= len;
        } else {
            break;
        }
        if at - start > MAX_LOCAL {
            return None;
        }
    }
    // "see:.john@x.io" or a sentence ending in "…." before the address.
    while start < at && text[start] == b'.' {
        start += 1;
    }
    if start == at || text[at - 1] == b'.' || text[start..at].windows(2).any(|w| w == b"..") {
        return None;
    }

    let mut i = at + 1;
    let mut labels = 0;
    let mut last_label;
    loop {
        let label_start = i;
        while i < text.len() && i - label_start <= MAX_LABEL {
            if is_label(text[i]) {
                i += 1;
            } else if let Some(len) = letter_at(text, i) {
                i += len;
            } else {
                break;
            }
        }
        let label = &text[label_start..i];
        if label.is_empty()
            || label.len() > MAX_LABEL
            || label[0] == b'-'
            || label[label.len() - 1] == b'-'
        {
            return None;
        }
        labels += 1;
        last_label = label_start;
        if i - (at + 1) > MAX_DOMAIN {
            return None;
        }
        if byte(text, i) == b'.'
            && (is_label(byte(text, i + 1)) || letter_at(text, i + 1).is_some())
        {
            i += 1;
        } else {
            break;
        }
    }
    let tld = &text[last_label..i];
    let ok = labels >= 2 && tld.len() >= 2 && tld.iter().all(u8::is_ascii_alphabetic);
    ok.then_some((start, i))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find(s: &str) -> Option<&str> {
        let at = s.find('@')?;
        around(s.as_bytes(), at).map(|(a, b)| &s[a..b])
    }

    #[test]
    fn shapes() {
        assert_eq!(
            find("mail john.doe+tag@mail.example.co.uk."),
            Some("john.doe+tag@mail.example.co.uk")
        );
        assert_eq!(find("<a_b-c%d@x-y.io>"), Some("a_b-c%d@x-y.io"));
        assert_eq!(find("…..j@ex.de"), Some("j@ex.de"));
        assert_eq!(find("user@localhost"), None);
        assert_eq!(find("a@b.c"), None);
        assert_eq!(find("john.@x.com"), None);
        assert_eq!(find("jo..hn@x.com"), None);
        assert_eq!(find("@x.com"), None);
        assert_eq!(find("john@-x.com"), None);
        assert_eq!(find("john@x.com2"), None);
        assert_eq!(find("pkg@1.2.3"), None);
        assert_eq!(
            find("Mail an jürgen.müller@straße.de!"),
            Some("jürgen.müller@straße.de")
        );
        assert_eq!(find("请联系john@x.com"), Some("john@x.com"));
        assert_eq!(find("x@例子.com"), None);
    }
}
