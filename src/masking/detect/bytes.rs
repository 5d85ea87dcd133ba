//! Byte classes and boundary rules shared by every detector.
//!
//! All detectors work on bytes: every entity they know is ASCII, so its first and last bytes
//! are ASCII and its offsets always fall on `char` boundaries of the surrounding UTF-8 text.
//! Non-ASCII bytes belong to no class and therefore count as separators.

/// `[A-Za-z0-9_]`: the bytes a word is made of. An entity never starts or ends inside a word.
pub(super) const WORD: u8 = 1;
pub(super) const DIGIT: u8 = 1 << 1;
pub(super) const UPPER: u8 = 1 << 2;
pub(super) const HEX: u8 = 1 << 3;
/// Lowercase letters that may open a key or token at the start of a word: `e` (`eyJ`),
/// `g` (`ghp_`, `github_pat_`, `glpat-`), `r` (`rk_live_`), `s` (`sk_live_`, `sk-`) and
/// `x` (`xoxb-`).
pub(super) const LOWER_OPEN: u8 = 1 << 4;
/// Punctuation that may open an entity or sits inside one a word start cannot see:
/// `@` (email), `+` (international phone), `(` (phone area code), `-` (PEM armour),
/// `:` (IPv6).
pub(super) const PUNCT: u8 = 1 << 5;
/// Letters of base64url (`[A-Za-z0-9_-]`): JWT segments and most API keys.
pub(super) const B64URL: u8 = 1 << 6;
/// Second letters of those prefixes (`y`, `h`, `i`, `l`, `k`, `o`): a lowercase word must
/// start with one of the pairs before any detector looks at it.
pub(super) const LOWER_SECOND: u8 = 1 << 7;

pub(super) static CLASS: [u8; 256] = build_classes();

const fn build_classes() -> [u8; 256] {
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        let mut class = 0;
        if b.is_ascii_alphanumeric() || b == b'_' {
            class |= WORD | B64URL;
        }
        if b.is_ascii_digit() {
            class |= DIGIT;
        }
        if b.is_ascii_uppercase() {
            class |= UPPER;
        }
        if b.is_ascii_hexdigit() {
            class |= HEX;
        }
        if matches!(b, b'e' | b'g' | b'r' | b's' | b'x') {
            class |= LOWER_OPEN;
        }
        if matches!(b, b'y' | b'h' | b'i' | b'l' | b'k' | b'o') {
            class |= LOWER_SECOND;
        }
        if matches!(b, b'@' | b'+' | b'(' | b'-' | b':') {
            class |= PUNCT;
        }
        if b == b'-' {
            class |= B64URL;
        }
        table[i] = class;
        i += 1;
    }
    table
}

/// The byte at `i`, or 0 (which belongs to no class) past the end: lets detectors look ahead
/// without bounds checks of their own and without any way to panic on short input.
#[inline(always)]
pub(super) fn byte(text: &[u8], i: usize) -> u8 {
    text.get(i).copied().unwrap_or(0)
}

#[inline(always)]
pub(super) fn has(b: u8, class: u8) -> bool {
    CLASS[b as usize] & class != 0
}

#[inline(always)]
pub(super) fn is_word(b: u8) -> bool {
    has(b, WORD)
}

#[inline(always)]
pub(super) fn is_digit(b: u8) -> bool {
    b.is_ascii_digit()
}

/// One bit per byte of `chunk` (at most 64 bytes) for each of the classes the scan loop
/// filters on. Eight bytes at a time: their classes are packed into one word and each class
/// bit is gathered into a byte of the mask with one multiplication (a portable movemask),
/// which keeps the pass free of branches and variable shifts.
#[inline(always)]
pub(super) fn planes(chunk: &[u8; 64]) -> Planes {
    let mut p = Planes::default();
    for (k, eight) in chunk.chunks_exact(8).enumerate() {
        // Shifted into place rather than stored to a byte array and reloaded: eight byte
        // stores followed by one wide load defeat store forwarding and stall the loop.
        let packed = eight.iter().enumerate().fold(0u64, |acc, (j, &b)| {
            acc | u64::from(CLASS[b as usize]) << (8 * j)
        });
        let shift = 8 * k;
        p.word |= gather(packed, 0) << shift;
        p.digit |= gather(packed, 1) << shift;
        p.upper |= gather(packed, 2) << shift;
        p.lower_open |= gather(packed, 4) << shift;
        p.punct |= gather(packed, 5) << shift;
        p.lower_second |= gather(packed, 7) << shift;
    }
    p
}

/// Bit `bit` of each of the eight bytes of `packed`, as the low eight bits of the result
/// (byte `j` → bit `j`).
#[inline(always)]
fn gather(packed: u64, bit: u32) -> u64 {
    (((packed >> bit) & 0x0101_0101_0101_0101).wrapping_mul(0x0102_0408_1020_4080)) >> 56
}

/// Per-class bit masks of one chunk: bit `j` describes byte `j`.
#[derive(Default)]
pub(super) struct Planes {
    pub word: u64,
    pub digit: u64,
    pub upper: u64,
    pub lower_open: u64,
    pub punct: u64,
    pub lower_second: u64,
}

/// Index just past the run of ASCII digits that starts at `i`.
#[inline(always)]
pub(super) fn skip_digits(text: &[u8], mut i: usize) -> usize {
    while i < text.len() && text[i].is_ascii_digit() {
        i += 1;
    }
    i
}

/// Value of the decimal digits `text[from..to]` (at most a few digits; callers bound it).
pub(super) fn number(text: &[u8], from: usize, to: usize) -> u32 {
    text[from..to]
        .iter()
        .fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0'))
}

/// Joiners that glue identifiers together: `ORD-2024-000123`, `v1.2`, `2024/0815`,
/// `id@host`. A number glued to a word by one of these is part of a larger identifier.
#[inline(always)]
fn is_joiner(b: u8) -> bool {
    matches!(b, b'-' | b'.' | b'/' | b'@')
}

/// Whether an entity may start at `start`: not inside a word, and not the tail of a compound
/// identifier such as `ORD-2024-000123` or `INV/2024/0815`.
pub(super) fn starts_cleanly(text: &[u8], start: usize) -> bool {
    if start == 0 {
        return true;
    }
    let before = text[start - 1];
    if is_word(before) {
        return false;
    }
    !(is_joiner(before) && start >= 2 && is_word(text[start - 2]))
}

/// Whether an entity may end at `end`: not inside a word, and not the head of a compound
/// identifier (`555-123-4567-B`, `1.2.3.4.5`). A sentence-ending period is fine.
pub(super) fn ends_cleanly(text: &[u8], end: usize) -> bool {
    let after = byte(text, end);
    if is_word(after) {
        return false;
    }
    !(is_joiner(after) && is_word(byte(text, end + 1)))
}

/// Whether one of `keywords` (lowercase ASCII) starts a word, in any case, within the
/// `window` bytes before `at`. Context words are how a bare number earns a meaning
/// ("SSN 123456789") or loses one ("version 4.2.1.0"); "server 10.0.0.1" names no version.
pub(super) fn keyword_before(text: &[u8], at: usize, window: usize, keywords: &[&[u8]]) -> bool {
    let from = at.saturating_sub(window);
    let hay = &text[from..at];
    keywords.iter().any(|keyword| {
        hay.windows(keyword.len()).enumerate().any(|(offset, w)| {
            let p = from + offset;
            w.eq_ignore_ascii_case(keyword) && (p == 0 || !text[p - 1].is_ascii_alphabetic())
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_cover_the_trigger_bytes() {
        assert!(has(b'a', WORD) && has(b'_', WORD) && has(b'7', WORD | DIGIT));
        assert!(!has(b'-', WORD) && has(b'-', PUNCT | B64URL));
        assert!(has(b'e', LOWER_OPEN) && !has(b'a', LOWER_OPEN) && has(b'k', LOWER_SECOND));
        assert!(!has(0xC3, WORD | PUNCT | LOWER_OPEN | UPPER));
        assert_eq!(byte(b"ab", 5), 0);
        for packed in [
            0u64,
            0x0101_0101_0101_0101,
            0x0001_0100_0001_0001,
            0x8000_0000_0000_0180,
        ] {
            let naive = (0..8).fold(0u64, |m, j| m | (((packed >> (8 * j + 7)) & 1) << j));
            assert_eq!(gather(packed, 7), naive, "{packed:#x}");
        }
        let mut chunk = [0u8; 64];
        chunk[..6].copy_from_slice(b"a1B-eh");
        let p = planes(&chunk);
        assert_eq!(
            (p.word, p.digit, p.upper, p.punct),
            (0b110111, 0b10, 0b100, 0b1000)
        );
        assert_eq!((p.lower_open, p.lower_second), (0b10000, 0b100000));
    }

    #[test]
    fn compound_identifiers_do_not_start_or_end_cleanly() {
        let text = b"ORD-2024 x 55 a.b 7-";
        assert!(!starts_cleanly(text, 4));
        assert!(starts_cleanly(text, 11));
        assert!(!ends_cleanly(text, 15));
        assert!(ends_cleanly(text, 19));
        assert!(ends_cleanly(text, 13));
    }

    #[test]
    fn keywords_match_case_insensitively_within_the_window() {
        let text = b"Customer SSN: 123";
        assert!(keyword_before(text, 14, 10, &[b"ssn"]));
        assert!(!keyword_before(text, 14, 3, &[b"ssn"]));
        assert!(!keyword_before(b"server 1", 7, 9, &[b"ver "]));
        assert!(!keyword_before(b"ab", 2, 9, &[b"version"]));
    }
}
