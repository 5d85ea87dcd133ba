//! IP addresses. IPv4 needs four dotted octets that are not part of a longer dotted run
//! (`1.2.3.4.5` is a version, not an address); IPv6 is validated by `std::net::Ipv6Addr`.

use std::net::Ipv6Addr;

use super::bytes::{
    HEX, WORD, byte, ends_cleanly, has, is_digit, keyword_before, number, skip_digits,
    starts_cleanly,
};

/// Dotted-quad IPv4 starting at the digit `start`; octets 0–255 without leading zeros.
pub(super) fn ipv4(text: &[u8], start: usize) -> Option<usize> {
    if !starts_cleanly(text, start) {
        return None;
    }
    let mut i = start;
    for octet in 0..4 {
        let end = skip_digits(text, i);
        let len = end - i;
        if len == 0 || len > 3 || (len > 1 && text[i] == b'0') {
            return None;
        }
        if number(text, i, end) > 255 {
            return None;
        }
        i = end;
        if octet < 3 {
            if byte(text, i) != b'.' {
                return None;
            }
            i += 1;
        }
    }
    // "1.2.3.4.5" and "1.2.3.4-beta" are versions; "version 4.2.1.0" names itself one.
    let longer = byte(text, i) == b'.' && is_digit(byte(text, i + 1));
    let named_version = keyword_before(
        text,
        start,
        9,
        &[
            b"version",
            b"ver ",
            b"ver.",
            b"build",
            b"release",
            b"firmware",
        ],
    );
    (!longer && !named_version && ends_cleanly_or_cidr(text, i, 32)).then_some(i)
}

/// Like `ends_cleanly`, but also after a CIDR prefix length (`10.1.2.3/24`): the address is
/// still an address, and the mask is left visible.
fn ends_cleanly_or_cidr(text: &[u8], end: usize, max_prefix: u32) -> bool {
    if byte(text, end) == b'/' && is_digit(byte(text, end + 1)) {
        let prefix_end = skip_digits(text, end + 1);
        return prefix_end - end <= 4
            && number(text, end + 1, prefix_end) <= max_prefix
            && ends_cleanly(text, prefix_end);
    }
    ends_cleanly(text, end)
}

/// IPv6 candidate starting at `start` (a hex digit or the first `:` of `::`): the longest run
/// of hex digits, colons and dots, validated by the standard parser. `a::b` shapes without a
/// single decimal digit (`de::ad` in code) are taken only in the full eight-group form.
pub(super) fn ipv6(text: &[u8], start: usize) -> Option<usize> {
    if start > 0 && (has(text[start - 1], WORD) || matches!(text[start - 1], b':' | b'.')) {
        return None;
    }
    let mut end = start;
    while end < text.len()
        && end - start < 45
        && (has(text[end], HEX) || matches!(text[end], b':' | b'.'))
    {
        end += 1;
    }
    // A trailing dot ends the sentence, not the address.
    while end > start && text[end - 1] == b'.' {
        end -= 1;
    }
    if has(byte(text, end), WORD) || byte(text, end) == b':' {
        return None;
    }
    let candidate = std::str::from_utf8(&text[start..end]).ok()?;
    candidate.parse::<Ipv6Addr>().ok()?;
    let colons = candidate.bytes().filter(|&b| b == b':').count();
    let has_decimal = candidate.bytes().any(|b| b.is_ascii_digit());
    let plausible = (has_decimal || colons == 7) && candidate != "::";
    (plausible && ends_cleanly_or_cidr(text, end, 128)).then_some(end)
}

/// IPv6 address around the colon at `colon`, as `(start, end)`: either `::` opens it
/// (`::1`), or it starts with the hex word of up to four digits just before the colon
/// (`fe80::1`, `2001:db8::8a2e:370:7334`).
pub(super) fn at_colon(text: &[u8], colon: usize) -> Option<(usize, usize)> {
    let mut start = colon;
    while start > 0 && colon - start < 4 && has(text[start - 1], HEX) {
        start -= 1;
    }
    if start == colon && byte(text, colon + 1) != b':' {
        return None;
    }
    ipv6(text, start).map(|end| (start, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_octets_and_runs() {
        let v4 = |s: &str| ipv4(s.as_bytes(), 0);
        assert_eq!(v4("192.168.0.1"), Some(11));
        assert_eq!(v4("255.255.255.255:8080"), Some(15));
        assert_eq!(v4("256.1.1.1"), None);
        assert_eq!(v4("1.2.3.4.5"), None);
        assert_eq!(v4("01.2.3.4"), None);
        assert_eq!(v4("1.2.3"), None);
        assert_eq!(v4("1.2.3.4-rc1"), None);
        assert_eq!(v4("10.1.2.3/24 "), Some(8));
        assert_eq!(v4("10.1.2.3/33"), None);
        assert_eq!(v4("10.1.2.3/2024"), None);
    }

    #[test]
    fn ipv6_forms() {
        let v6 = |s: &str| ipv6(s.as_bytes(), 0);
        assert_eq!(v6("2001:db8::1"), Some(11));
        assert_eq!(v6("::1"), Some(3));
        assert_eq!(v6("2001:0db8:85a3:0000:0000:8a2e:0370:7334."), Some(39));
        assert_eq!(v6("::ffff:192.0.2.128"), Some(18));
        assert_eq!(v6("dead::beef"), None);
        assert_eq!(v6("10:30:00"), None);
        assert_eq!(v6("::"), None);
        assert_eq!(v6("fe80::1%eth0"), Some(7));
        assert_eq!(v6("2001:db8::/32"), Some(10));
    }
}
