//! Value detectors: sensitive entities found by shape and confirmed by validators inside any
//! text — result values, free text, JSON documents, database error messages, statement
//! literals. This is the second masking layer: it catches what column classification cannot
//! know about (an email in a `notes` column, a card number in a JSON blob).
//!
//! It runs over every string value of every result, so it is built for text where nothing
//! is found. The scan reads 64-byte chunks, turns each into bit masks by byte class without
//! branching, and keeps only the positions where an entity can open: a word that starts with
//! a digit, with two capitals or with one of the lowercase pairs of the key prefixes, and a
//! few punctuation bytes. Only there does a validator look around:
//!
//! | opens at                     | entity                                | validator                          |
//! |------------------------------|---------------------------------------|------------------------------------|
//! | digit                        | card, SSN, phone (NANP, national)     | Luhn + IIN, SSN ranges, area code  |
//! | digit                        | IPv4                                  | four octets, no longer dotted run  |
//! | `:`                          | IPv6 (from the hex word before it)    | `std::net::Ipv6Addr`               |
//! | `+`, `(`                     | phone (E.164, grouped)                | digit count, shape                 |
//! | two capitals                 | IBAN, AWS and Google keys             | country length + mod 97, prefix    |
//! | `ey gh gi gl rk sk xo`       | JWT, GitHub, GitLab, Stripe, Slack, `sk-` keys | JOSE header, prefix + length |
//! | `@`                          | email (local part read backwards)     | dot-atoms, domain, alphabetic TLD  |
//! | `-----BEGIN`                 | PEM private key                       | label, matching END line           |
//!
//! No regular expressions and no allocation unless something is found. Entities never start
//! or end inside a word, and numbers glued into larger identifiers (`ORD-2024-000123`,
//! `1.2.3.4.5`) are left alone: masking order numbers would make results useless, and the
//! quality test (`tests/detector_quality.rs`) holds the false-positive rate on business
//! identifiers under 1 %.

mod bytes;
mod email;
mod iban;
mod net;
mod numeric;
mod secret;

use std::ops::ControlFlow;

use self::bytes::{byte, is_digit};
use crate::masking::Classification;

/// One sensitive entity: `text[start..end]` (byte offsets on `char` boundaries).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finding {
    pub start: usize,
    pub end: usize,
    pub class: Classification,
}

/// Every entity in `text`, sorted by start and non-overlapping; where two candidates
/// overlap the longer one is kept, and on equal length the more specific class.
pub fn scan(text: &str) -> Vec<Finding> {
    let mut found: Vec<Finding> = Vec::new();
    let _ = walk(text.as_bytes(), |finding| {
        // Only an email reaches back before the previous finding's end (its local part is
        // read backwards from the `@`), so resolving against the tail keeps the list sorted.
        while let Some(last) = found.last() {
            if last.end <= finding.start {
                break;
            }
            if !outranks(&finding, last) {
                return ControlFlow::Continue(false);
            }
            found.pop();
        }
        found.push(finding);
        ControlFlow::Continue(true)
    });
    found
}

/// Whether `text` holds any entity [`scan`] would report; stops at the first one. Used to
/// decide whether a string (a statement literal, an error message) needs masking at all.
pub fn contains_sensitive(text: &str) -> bool {
    walk(text.as_bytes(), |_| ControlFlow::Break(())).is_break()
}

/// Which of two overlapping findings to keep: the longer, then the more specific class.
fn outranks(a: &Finding, b: &Finding) -> bool {
    let (la, lb) = (a.end - a.start, b.end - b.start);
    la > lb || (la == lb && specificity(a.class) > specificity(b.class))
}

/// Validated secrets and checksummed numbers before shape-only entities.
fn specificity(class: Classification) -> u8 {
    match class {
        Classification::PrivateKey => 9,
        Classification::Token => 8,
        Classification::ApiKey => 7,
        Classification::Card => 6,
        Classification::Account => 5,
        Classification::NationalId => 4,
        Classification::Email => 3,
        Classification::Phone => 2,
        Classification::IpAddress => 1,
        _ => 0,
    }
}

/// The scan loop. `sink` is told every candidate in text order and answers
/// `Continue(kept)` or `Break` to stop; a kept candidate's bytes are not looked at again.
///
/// The text is read in chunks of 64 bytes. For each chunk, one branch-free pass turns bytes
/// into bit masks by class; word starts and the few byte pairs that can open an entity are
/// then combined with bit operations, and only the surviving positions (a handful per
/// kilobyte of prose) are visited. Branching per word instead costs a mispredicted branch
/// at nearly every word end, which halves throughput.
fn walk(text: &[u8], mut sink: impl FnMut(Finding) -> ControlFlow<(), bool>) -> ControlFlow<()> {
    let n = text.len();
    // Candidates before `resume` lie inside a finding already kept.
    let mut resume = 0;
    let mut previous_is_word = 0u64;
    let mut base = 0;
    while base < n {
        let end = (base + 64).min(n);
        // The last, partial chunk is padded with NULs, which belong to no class.
        let p = match text[base..end].first_chunk::<64>() {
            Some(chunk) => bytes::planes(chunk),
            None => {
                let mut padded = [0u8; 64];
                padded[..end - base].copy_from_slice(&text[base..end]);
                bytes::planes(&padded)
            }
        };
        // Bit 63 of a "next byte" mask comes from the first byte of the following chunk.
        let next_class = if end - base == 64 {
            bytes::CLASS[byte(text, end) as usize]
        } else {
            0
        };
        let carry = |class: u8| u64::from(next_class & class != 0) << 63;
        let next_upper = (p.upper >> 1) | carry(bytes::UPPER);
        let next_second = (p.lower_second >> 1) | carry(bytes::LOWER_SECOND);
        let word_starts = p.word & !((p.word << 1) | previous_is_word);
        // A word can open an entity only with a digit, two capitals (IBAN, AKIA, AIza) or
        // one of the lowercase pairs of the key prefixes (ey, gh, gi, gl, rk, sk, xo).
        let openers = p.digit | (p.upper & next_upper) | (p.lower_open & next_second);
        let mut candidates = (word_starts & openers) | p.punct;
        previous_is_word = p.word >> 63;
        if resume > base {
            candidates &= if resume - base >= 64 {
                0
            } else {
                !0u64 << (resume - base)
            };
        }
        while candidates != 0 {
            let i = base + candidates.trailing_zeros() as usize;
            candidates &= candidates - 1;
            if i < resume {
                continue;
            }
            if let Some(finding) = candidate(text, i)
                && sink(finding)?
            {
                resume = finding.end.max(i + 1);
            }
        }
        base = end;
    }
    ControlFlow::Continue(())
}

/// Cheap test before the number detectors run: every number-shaped entity has nine or more
/// digits in a row, or a separator followed by another digit (or by the `(` of
/// `1 (555) …`) right after its first digit run. Prose numbers ("2 pcs", "size 42") have
/// neither.
#[inline(always)]
fn may_open_number(text: &[u8], i: usize) -> bool {
    let run_end = bytes::skip_digits(text, i);
    run_end - i >= 9
        || (matches!(byte(text, run_end), b' ' | b'-' | b'.')
            && matches!(byte(text, run_end + 1), b'0'..=b'9' | b'('))
}

/// The entity opened at `i`, a candidate position of [`walk`]. An email or IPv6 address
/// may start before `i` (found from its `@` or `:`).
fn candidate(text: &[u8], i: usize) -> Option<Finding> {
    let at = |(end, class): (usize, Classification)| Finding {
        start: i,
        end,
        class,
    };
    let b = text[i];
    if b.is_ascii_digit() {
        if !may_open_number(text, i) {
            return None;
        }
        numeric::at_digit(text, i)
            .or_else(|| net::ipv4(text, i).map(|end| (end, Classification::IpAddress)))
            .map(at)
    } else if b.is_ascii_alphabetic() {
        // Keys and tokens start cleanly too ("token=ghp_…", not "x-ghp_…"). Besides, a word
        // start after "word-" sits inside a base64url run, and reading that run again from
        // every such start would make "eyJ-eyJ-eyJ-…" cost quadratic time.
        if !bytes::starts_cleanly(text, i) {
            return None;
        }
        secret::at_word(text, i)
            .or_else(|| iban::at(text, i).map(|end| (end, Classification::Account)))
            .map(at)
    } else {
        match b {
            b'@' => email::around(text, i).map(|(start, end)| Finding {
                start,
                end,
                class: Classification::Email,
            }),
            b'+' if is_digit(byte(text, i + 1)) => numeric::at_plus(text, i).map(at),
            b'(' if is_digit(byte(text, i + 1)) => numeric::at_paren(text, i).map(at),
            b'-' if byte(text, i + 1) == b'-' => secret::pem_private_key(text, i).map(at),
            b':' => net::at_colon(text, i).map(|(start, end)| Finding {
                start,
                end,
                class: Classification::IpAddress,
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Classification as C;

    /// Every finding as (matched text, class).
    fn found(text: &str) -> Vec<(&str, Classification)> {
        scan(text)
            .iter()
            .map(|f| (&text[f.start..f.end], f.class))
            .collect()
    }

    /// `text` holds exactly `entity`, once, found with exact offsets.
    fn exactly(text: &str, entity: &str, class: Classification) {
        let start = text.find(entity).expect("entity is in the text");
        let want = Finding {
            start,
            end: start + entity.len(),
            class,
        };
        assert_eq!(scan(text), vec![want], "in {text:?}");
        assert!(contains_sensitive(text));
    }

    fn nothing(text: &str) {
        assert_eq!(found(text), vec![], "in {text:?}");
        assert!(!contains_sensitive(text), "in {text:?}");
    }

    #[test]
    fn emails() {
        exactly(
            "Write to john.doe@example.com.",
            "john.doe@example.com",
            C::Email,
        );
        exactly(
            "<ops+alerts@mail.example.co.uk>",
            "ops+alerts@mail.example.co.uk",
            C::Email,
        );
        exactly(
            "\"email\":\"A_B-9%x@sub-1.example.io\"",
            "A_B-9%x@sub-1.example.io",
            C::Email,
        );
        exactly(
            "Grüße an jürgen.müller@beispiel.de — danke",
            "jürgen.müller@beispiel.de",
            C::Email,
        );
        exactly(
            "联系我们：support@example.cn。",
            "support@example.cn",
            C::Email,
        );
        nothing("user@localhost, a@b.c, @handle, john.@x.com, me@1.2.3.4");
    }

    #[test]
    fn phones() {
        for phone in [
            "(555) 123-4567",
            "(555)123-4567",
            "555-123-4567",
            "555.123.4567",
            "555 123 4567",
            "+1 555 123 4567",
            "+1 (555) 123-4567",
            "1-555-123-4567",
            "+14155552671",
            "+44 20 7946 0958",
            "+44 (0)20 7946 0958",
            "+49-30-1234567",
            "+33 1 23 45 67 89",
            "+86 138 0013 8000",
            "020 7946 0958",
            "06 12 34 56 78",
            "06.12.34.56.78",
            "(020) 7946 0958",
        ] {
            exactly(&format!("Call {phone} today"), phone, C::Phone);
        }
        nothing(
            "order 5551234567 at 1700000000, ts 20240315103000, +1234.56, +5 %, \
             155-123-4567, 595-123-4567, 555-123.4567, SKU-555-123-4567-B, 2024-03-15 10:30:00, \
             P/N 0260-5514-97, order 072-5139604, 03.2024, 0.25 0.5",
        );
    }

    #[test]
    fn ssns() {
        exactly("SSN 123-45-6789.", "123-45-6789", C::NationalId);
        exactly("ssn: 123 45 6789", "123 45 6789", C::NationalId);
        exactly(
            "Social Security number 078051120 on file",
            "078051120",
            C::NationalId,
        );
        nothing("ids 000-12-3456 666-12-3456 900-12-3456 123-00-4567 123-45-0000 123-45 6789");
        nothing("order 123456789 shipped");
        nothing("SSN 666123456");
    }

    #[test]
    fn cards() {
        for card in [
            "4111111111111111",
            "4111 1111 1111 1111",
            "4111-1111-1111-1111",
            "5500 0000 0000 0004",
            "2221 0000 0000 0009",
            "3782 822463 10005",
            "6011 1111 1111 1117",
            "3530 1113 3330 0000",
            "3056 930902 5904",
            "6200 0000 0000 0005",
            "4222222222222",
        ] {
            exactly(&format!("card {card} exp 12/27"), card, C::Card);
        }
        nothing(
            "4111111111111112 4111 1111 1111 11112 1234567812345670 4111-1111 1111-1111 \
             ref-4111111111111111 4111111111111111-02 41111 11111 11111 1 \
             9400 4862 7715 5127 5295 48",
        );
    }

    #[test]
    fn ibans() {
        exactly(
            "IBAN DE89 3704 0044 0532 0130 00 EUR",
            "DE89 3704 0044 0532 0130 00",
            C::Account,
        );
        exactly(
            "pay to GB82WEST12345698765432.",
            "GB82WEST12345698765432",
            C::Account,
        );
        exactly(
            "Überweisung an FR14 2004 1010 0505 0001 3M02 606 bitte",
            "FR14 2004 1010 0505 0001 3M02 606",
            C::Account,
        );
        nothing(
            "DE89370400440532013001 DE8937040044053201300 XX89370400440532013000 de89370400440532013000",
        );
    }

    #[test]
    fn ip_addresses() {
        exactly("from 192.168.0.1:8080 ok", "192.168.0.1", C::IpAddress);
        exactly("host=10.0.0.255.", "10.0.0.255", C::IpAddress);
        exactly("server 10.0.0.7 is down", "10.0.0.7", C::IpAddress);
        exactly(
            "peer [2001:db8::8a2e:370:7334]:443",
            "2001:db8::8a2e:370:7334",
            C::IpAddress,
        );
        exactly("lo ::1 up", "::1", C::IpAddress);
        exactly(
            "full 2001:0db8:85a3:0000:0000:8a2e:0370:7334 end",
            "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
            C::IpAddress,
        );
        exactly(
            "mapped ::ffff:192.0.2.128 end",
            "::ffff:192.0.2.128",
            C::IpAddress,
        );
        nothing(
            "v1.2.3.4 1.2.3.4.5 256.1.1.1 1.2.3 version 4.2.1.0 at 10:30:00 std::io de::ad MAC 00:1A:2B:3C:4D:5E",
        );
    }

    #[test]
    fn credentials() {
        let jwt = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";
        exactly(&format!("Authorization: Bearer {jwt}"), jwt, C::Token);
        let keys = [
            "AKIAIOSFODNN7EXAMPLE",
            "ASIAY34FZKBOKMUTVV7A",
            "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",
            "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGH",
            "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
            "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
            "rk_live_51H8abcdefghijklmnop",
            "sk_test_4eC39HqLyjWDarjtT1zdp7dc",
            "AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe",
            "sk-proj-abc123DEF456ghi789JKL012mno345PQR678",
            "sk-0123456789abcdefABCDEF0123456789abcdefABCDEF01",
            "glpat-xxxxXXXX1234yyyyZZZZ",
        ];
        for key in keys {
            exactly(&format!("token={key};"), key, C::ApiKey);
        }
        nothing(
            "AKIAIOSFODNN7EXAMPL AKIAIOSFODNN7EXAMPLEX ghp_short sk-this-is-a-long-hyphenated-phrase-with-words \
             xoxb- sk_live_ eyJhbGciOi eyJub3QiOiJhIGhlYWRlciJ9.eyJzdWIiOiIxIn0.sig",
        );
    }

    #[test]
    fn private_keys() {
        let block =
            "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7\n-----END RSA PRIVATE KEY-----";
        exactly(&format!("key:\n{block}\nthanks"), block, C::PrivateKey);
        let escaped = r"-----BEGIN PRIVATE KEY-----\nMIGHAgEA\n-----END PRIVATE KEY-----";
        exactly(
            &format!("{{\"pem\":\"{escaped}\"}}"),
            escaped,
            C::PrivateKey,
        );
        let truncated = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA";
        exactly(&format!("log: {truncated}"), truncated, C::PrivateKey);
        nothing("-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY----- and ----- rules -----");
    }

    #[test]
    fn adjacent_entities_keep_their_own_spans() {
        let text =
            "a@b.io,555-123-4567;4111111111111111 10.0.0.1\t123-45-6789|DE89370400440532013000";
        assert_eq!(
            found(text),
            vec![
                ("a@b.io", C::Email),
                ("555-123-4567", C::Phone),
                ("4111111111111111", C::Card),
                ("10.0.0.1", C::IpAddress),
                ("123-45-6789", C::NationalId),
                ("DE89370400440532013000", C::Account),
            ]
        );
        let findings = scan(text);
        assert!(findings.windows(2).all(|w| w[0].end <= w[1].start));
        // A bare number may follow another; a grouped one is not cut out of a longer chain.
        exactly(
            "Qty 2 4111111111111111 shipped",
            "4111111111111111",
            C::Card,
        );
        exactly("Qty 2 555-123-4567", "555-123-4567", C::Phone);
        exactly("4111 1111 1111 1111 12 27", "4111 1111 1111 1111", C::Card);
    }

    #[test]
    fn overlapping_candidates_keep_the_longer() {
        // The key is taken first, then the address that contains it wins.
        let text = "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@example.com";
        assert_eq!(found(text), vec![(text, C::Email)]);
        let key = Finding {
            start: 0,
            end: 10,
            class: C::ApiKey,
        };
        let phone = Finding {
            start: 0,
            end: 10,
            class: C::Phone,
        };
        assert!(outranks(&key, &phone) && !outranks(&phone, &key));
    }

    #[test]
    fn chunk_boundaries_neither_hide_nor_invent_entities() {
        let entities = [
            ("DE89370400440532013000", C::Account),
            ("eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0.", C::Token),
            ("sk_live_4eC39HqLyjWDarjtT1zdp7dc", C::ApiKey),
            ("4111111111111111", C::Card),
            ("fe80::1", C::IpAddress),
            ("x@example.com", C::Email),
            ("+44 20 7946 0958", C::Phone),
        ];
        // Every alignment of the entity's first bytes against the 64-byte chunks.
        for pad in 50..140 {
            for (entity, class) in entities {
                let text = format!("{}{entity} ", " ".repeat(pad));
                exactly(&text, entity, class);
                // Glued to a word that ends in the previous chunk: not an entity start.
                let glued = format!("{}{entity}", "a".repeat(pad));
                if class != C::Email && class != C::IpAddress {
                    nothing(&glued);
                }
            }
        }
    }

    #[test]
    fn business_identifiers_and_prose_are_left_alone() {
        nothing(
            "Order ORD-2024-000123 (SKU AB-1234-XL, qty 2) shipped 2024-03-15T10:30:00Z; total \
             1,234.56 EUR, invoice INV/2024/0815, id 550e8400-e29b-41d4-a716-446655440000, \
             commit 3f786850e387550fdab836ed7e6dc881de23001b, release v2.14.1-beta.2. \
             She sells sea shells — e.g. the (big) one: 19,99 € — größer als 42 cm.",
        );
        nothing("");
    }
}

#[cfg(test)]
mod adversarial {
    use super::*;

    /// Values are written by anyone; no input may make a scan slower than linear. Each of
    /// these 256 KiB inputs repeats a fragment that opens a candidate, so a detector that
    /// re-reads a long run from every candidate would take minutes instead of milliseconds.
    #[test]
    fn repeated_openers_scan_in_linear_time() {
        let fragments = [
            "eyJ-",
            "eyJ.",
            "sk-",
            "sk-a",
            "xoxb-",
            "glpat-",
            "github_pat_",
            "ghp_",
            "AKIA",
            "a@",
            "@a",
            "a.",
            "1 ",
            "1-",
            "1.",
            "+1 ",
            "(1",
            ":",
            "f:",
            "::",
            "DE89 ",
            "-----BEGIN ",
            "eyJhbGciOiJub25lIn0.e",
        ];
        let started = std::time::Instant::now();
        for fragment in fragments {
            let text = fragment.repeat((256 * 1024) / fragment.len());
            let one = std::time::Instant::now();
            let found = scan(&text).len();
            let took = one.elapsed();
            assert!(
                took.as_secs() < 5,
                "{fragment:?}: {took:?} for {found} findings"
            );
        }
        assert!(started.elapsed().as_secs() < 20);
    }
}
