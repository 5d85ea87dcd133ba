//! Quality of the value detectors on labelled data generated here, deterministically.
//!
//! Positives: valid card numbers of several brands and groupings, IBANs of several countries,
//! SSNs in the issued ranges, emails of varied shapes, and the other entity kinds, each
//! embedded in a short sentence (some with non-ASCII text around it). Recall counts a
//! positive as found only when `scan` reports exactly its span and class.
//!
//! Negatives: business identifiers that look numeric or structured but are not personal
//! data (order and invoice numbers, UUIDs, timestamps, amounts, SKUs, barcodes, versions,
//! hashes). The false-positive rate is the share of negative sentences with any finding.
//!
//! `cargo test --test detector_quality -- --nocapture` prints the figures.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatehouse::masking::Classification;
use gatehouse::masking::detect::{Finding, contains_sensitive, scan};

/// SplitMix64: a small, well-mixed generator; the seed fixes the whole data set.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.next() as usize % items.len()]
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn digits(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b'0' + (self.next() % 10) as u8))
            .collect()
    }

    fn chars_of(&mut self, alphabet: &[u8], n: usize) -> String {
        (0..n).map(|_| char::from(*self.pick(alphabet))).collect()
    }
}

const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const UPPER_DIGITS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const LOWER: &[u8] = b"abcdefghijklmnopqrstuvwxyz";
const HEX: &[u8] = b"0123456789abcdef";

// ---------------------------------------------------------------------------------------
// Positives

/// Appends the Luhn check digit to `body`.
fn with_luhn(body: &str) -> String {
    let sum: u32 = body
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 0 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    format!("{body}{}", (10 - sum % 10) % 10)
}

/// A Luhn-valid number of a random brand, laid out as people write it.
fn card(rng: &mut Rng) -> String {
    let (prefix, len): (String, usize) = match rng.range(0, 10) {
        0 => ("4".into(), 16),
        1 => ("4".into(), *rng.pick(&[16, 19])),
        2 => (rng.range(51, 55).to_string(), 16),
        3 => (rng.range(2221, 2720).to_string(), 16),
        4 => (rng.pick(&["34", "37"]).to_string(), 15),
        5 => ("6011".into(), 16),
        6 => (rng.pick(&["65", "644", "645", "649"]).to_string(), 16),
        7 => (rng.range(3528, 3589).to_string(), 16),
        8 => (rng.pick(&["36", "38", "300", "305"]).to_string(), 14),
        9 => ("62".into(), *rng.pick(&[16, 19])),
        _ => ("4".into(), 16),
    };
    let body = format!("{prefix}{}", rng.digits(len - 1 - prefix.len()));
    let number = with_luhn(&body);
    let layout: &[usize] = match (len, rng.range(0, 3)) {
        (_, 0) => &[],
        (15, _) => &[4, 6, 5],
        (14, _) => &[4, 6, 4],
        (19, _) => &[4, 4, 4, 4, 3],
        _ => &[4, 4, 4, 4],
    };
    let sep = if rng.chance(50) { " " } else { "-" };
    group(&number, layout, sep)
}

/// `number` split into groups of the given sizes (none: as is).
fn group(number: &str, sizes: &[usize], sep: &str) -> String {
    if sizes.is_empty() {
        return number.to_owned();
    }
    let mut out = Vec::new();
    let mut at = 0;
    for &size in sizes {
        out.push(&number[at..at + size]);
        at += size;
    }
    out.join(sep)
}

/// Country, BBAN layout (`n` digits, `a` uppercase letters, `c` either).
const IBAN_COUNTRIES: &[(&str, &[(char, usize)])] = &[
    ("DE", &[('n', 18)]),
    ("GB", &[('a', 4), ('n', 14)]),
    ("FR", &[('n', 10), ('c', 11), ('n', 2)]),
    ("NL", &[('a', 4), ('n', 10)]),
    ("ES", &[('n', 20)]),
    ("IT", &[('a', 1), ('n', 10), ('c', 12)]),
    ("BE", &[('n', 12)]),
    ("CH", &[('n', 5), ('c', 12)]),
    ("AT", &[('n', 16)]),
    ("PL", &[('n', 24)]),
    ("SE", &[('n', 20)]),
    ("NO", &[('n', 11)]),
    ("DK", &[('n', 14)]),
    ("IE", &[('a', 4), ('n', 14)]),
    ("PT", &[('n', 21)]),
    ("LU", &[('n', 3), ('c', 13)]),
];

/// ISO 7064 mod 97 of an alphanumeric string (letters count as 10–35).
fn mod97(s: &str) -> u32 {
    s.bytes().fold(0, |r, c| {
        if c.is_ascii_digit() {
            (r * 10 + u32::from(c - b'0')) % 97
        } else {
            (r * 100 + u32::from(c - b'A') + 10) % 97
        }
    })
}

fn iban(rng: &mut Rng) -> String {
    let (country, layout) = *rng.pick(IBAN_COUNTRIES);
    let bban: String = layout
        .iter()
        .map(|&(kind, n)| match kind {
            'n' => rng.digits(n),
            'a' => rng.chars_of(UPPER, n),
            _ => rng.chars_of(UPPER_DIGITS, n),
        })
        .collect();
    let check = 98 - mod97(&format!("{bban}{country}00"));
    let iban = format!("{country}{check:02}{bban}");
    if rng.chance(50) {
        let chunks: Vec<String> = iban
            .as_bytes()
            .chunks(4)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect();
        chunks.join(" ")
    } else {
        iban
    }
}

fn ssn(rng: &mut Rng) -> String {
    let area = loop {
        let a = rng.range(1, 899);
        if a != 666 {
            break a;
        }
    };
    let sep = if rng.chance(60) { "-" } else { " " };
    format!(
        "{area:03}{sep}{:02}{sep}{:04}",
        rng.range(1, 99),
        rng.range(1, 9999)
    )
}

fn email(rng: &mut Rng) -> String {
    let first = *rng.pick(&[
        "john",
        "maria",
        "li",
        "o",
        "Anne-Marie",
        "kai",
        "SVEN",
        "jürgen",
        "zoë",
        "d",
    ]);
    let last = *rng.pick(&[
        "doe", "garcia", "wei", "brien", "o-neill", "smith", "müller", "x",
    ]);
    let local = match rng.range(0, 8) {
        0 => format!("{first}.{last}"),
        1 => format!("{first}_{last}{}", rng.range(1, 99)),
        2 => format!("{}{last}", &first[..1]),
        3 => format!("{first}+{}", rng.pick(&["news", "billing", "a1"])),
        4 => format!("{first}.{}.{last}", rng.chars_of(LOWER, 1)),
        5 => rng.digits(8),
        6 => format!("{first}-{last}.{}", rng.range(1970, 2005)),
        7 => format!("{}%{}", rng.chars_of(ALNUM, 5), rng.chars_of(LOWER, 3)),
        _ => rng.chars_of(ALNUM, 12),
    };
    let domain = *rng.pick(&[
        "example.com",
        "mail.example.co.uk",
        "sub-domain.example.io",
        "x.org",
        "company.museum",
        "very-long-subdomain.example.technology",
        "uni-mannheim.de",
        "müller-bau.de",
        "a1.b2.c3.example.net",
    ]);
    format!("{local}@{domain}")
}

fn phone(rng: &mut Rng) -> String {
    let area = format!("{}{}{}", rng.range(2, 9), rng.range(0, 8), rng.range(2, 9));
    let exchange = rng.digits(3);
    let line = rng.digits(4);
    match rng.range(0, 9) {
        0 => format!("({area}) {exchange}-{line}"),
        1 => format!("{area}-{exchange}-{line}"),
        2 => format!("{area}.{exchange}.{line}"),
        3 => format!("+1 {area} {exchange} {line}"),
        4 => format!("+1{area}{exchange}{line}"),
        5 => format!("+44 20 {} {}", rng.digits(4), rng.digits(4)),
        6 => format!("+49 30 {}", rng.digits(7)),
        7 => format!(
            "+33 6 {} {} {} {}",
            rng.digits(2),
            rng.digits(2),
            rng.digits(2),
            rng.digits(2)
        ),
        8 => format!("0{} {} {}", rng.range(20, 99), rng.digits(4), rng.digits(4)),
        _ => format!("+86 1{} {} {}", rng.digits(2), rng.digits(4), rng.digits(4)),
    }
}

fn ipv4(rng: &mut Rng) -> String {
    let octets: Vec<String> = (0..4).map(|_| rng.range(0, 255).to_string()).collect();
    octets.join(".")
}

fn ipv6(rng: &mut Rng) -> String {
    let mut groups: Vec<String> = (0..8)
        .map(|_| format!("{:x}", rng.range(0, 0xffff)))
        .collect();
    groups[0] = "2001".into();
    if rng.chance(50) {
        groups.join(":")
    } else {
        format!("{}::{}", groups[..3].join(":"), groups[6..].join(":"))
    }
}

fn api_key(rng: &mut Rng) -> String {
    match rng.range(0, 7) {
        0 => format!(
            "{}{}",
            rng.pick(&["AKIA", "ASIA"]),
            rng.chars_of(UPPER_DIGITS, 16)
        ),
        1 => format!(
            "{}{}",
            rng.pick(&["ghp_", "gho_", "ghs_"]),
            rng.chars_of(ALNUM, 36)
        ),
        2 => format!(
            "xoxb-{}-{}-{}",
            rng.digits(12),
            rng.digits(13),
            rng.chars_of(ALNUM, 24)
        ),
        3 => format!(
            "{}{}",
            rng.pick(&["sk_live_", "rk_live_", "sk_test_"]),
            rng.chars_of(ALNUM, 24)
        ),
        4 => format!("AIza{}", rng.chars_of(ALNUM, 35)),
        5 => format!("sk-proj-{}", rng.chars_of(ALNUM, 48)),
        6 => format!("glpat-{}", rng.chars_of(ALNUM, 20)),
        _ => format!(
            "github_pat_{}_{}",
            rng.chars_of(ALNUM, 22),
            rng.chars_of(ALNUM, 59)
        ),
    }
}

fn jwt(rng: &mut Rng) -> String {
    let alg = rng.pick(&["HS256", "RS256", "ES256", "EdDSA"]);
    let header = format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#);
    let payload = format!(
        r#"{{"sub":"user-{}","exp":{}}}"#,
        rng.digits(6),
        rng.digits(10)
    );
    let signature: Vec<u8> = (0..32).map(|_| rng.next() as u8).collect();
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload),
        URL_SAFE_NO_PAD.encode(signature)
    )
}

fn private_key(rng: &mut Rng) -> String {
    let label = rng.pick(&[
        "RSA PRIVATE KEY",
        "EC PRIVATE KEY",
        "PRIVATE KEY",
        "OPENSSH PRIVATE KEY",
    ]);
    let body: Vec<String> = (0..4).map(|_| rng.chars_of(ALNUM, 64)).collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----",
        body.join("\n")
    )
}

/// Sentences a value is embedded in; `{}` is the value.
const POSITIVE_CONTEXTS: &[&str] = &[
    "{}",
    "Customer record: {}.",
    "please use {} for this",
    "Bitte prüfen Sie {} — danke!",
    "参考：{}。",
    "{\"value\":\"{}\",\"ok\":true}",
    "note=({}) end",
    "Ещё раз: {}, спасибо",
];

fn embed(rng: &mut Rng, value: &str) -> (String, usize) {
    let context = rng.pick(POSITIVE_CONTEXTS);
    let at = context.find("{}").expect("context has a slot");
    (context.replacen("{}", value, 1), at)
}

// ---------------------------------------------------------------------------------------
// Negatives

fn negative(rng: &mut Rng) -> (&'static str, String) {
    let year = rng.range(2015, 2026);
    let month = rng.range(1, 12);
    let day = rng.range(1, 28);
    let (h, m, s) = (rng.range(0, 23), rng.range(0, 59), rng.range(0, 59));
    match rng.range(0, 9) {
        0 => (
            "order number",
            match rng.range(0, 5) {
                0 => format!("ORD-{year}-{}", rng.digits(6)),
                1 => format!("PO-{}", rng.digits(5)),
                2 => format!("#{}", rng.digits(6)),
                3 => format!("Order {}", rng.range(100_000_000, 999_999_999)),
                4 => format!("SO{}", rng.digits(8)),
                _ => format!("order {}-{}", rng.digits(3), rng.digits(7)),
            },
        ),
        1 => ("uuid", {
            let u = format!(
                "{}-{}-4{}-{}{}-{}",
                rng.chars_of(HEX, 8),
                rng.chars_of(HEX, 4),
                rng.chars_of(HEX, 3),
                rng.pick(&["8", "9", "a", "b"]),
                rng.chars_of(HEX, 3),
                rng.chars_of(HEX, 12)
            );
            if rng.chance(30) { u.to_uppercase() } else { u }
        }),
        2 => (
            "timestamp",
            match rng.range(0, 6) {
                0 => format!("{year}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}Z"),
                1 => format!(
                    "{year}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{}+02:00",
                    rng.digits(3)
                ),
                2 => format!("{year}-{month:02}-{day:02} {h:02}:{m:02}:{s:02}"),
                3 => format!("{year}-{month:02}-{day:02}"),
                4 => format!("{year}{month:02}{day:02}T{h:02}{m:02}{s:02}Z"),
                5 => format!("{}", rng.range(1_500_000_000, 1_800_000_000)),
                _ => format!("{}", rng.range(1_500_000_000_000, 1_800_000_000_000)),
            },
        ),
        3 => ("amount", {
            let whole = rng.range(0, 9_999_999);
            let cents = rng.range(0, 99);
            let thousands = |n: u64, sep: &str| {
                let s = n.to_string();
                let mut out = String::new();
                for (i, c) in s.chars().enumerate() {
                    if i > 0 && (s.len() - i).is_multiple_of(3) {
                        out.push_str(sep);
                    }
                    out.push(c);
                }
                out
            };
            match rng.range(0, 5) {
                0 => format!("{}.{cents:02}", thousands(whole, ",")),
                1 => format!("${}.{cents:02}", thousands(whole, ",")),
                2 => format!("€ {},{cents:02}", thousands(whole, ".")),
                3 => format!("{} {cents:02} EUR", thousands(whole, " ")),
                4 => format!("+{}.{}%", rng.range(0, 99), rng.range(0, 9)),
                _ => format!("-{whole}.{cents:02}"),
            }
        }),
        4 => (
            "sku",
            match rng.range(0, 4) {
                0 => format!("SKU-{}-{}", rng.digits(5), rng.pick(&["BLK", "WHT", "RED"])),
                1 => format!(
                    "{}-{}-{}",
                    rng.chars_of(UPPER, 2),
                    rng.digits(4),
                    rng.pick(&["XS", "M", "XL"])
                ),
                2 => format!("WID-{}", rng.digits(5)),
                3 => format!("P/N {}-{}-{}", rng.digits(4), rng.digits(4), rng.digits(2)),
                _ => ean13(rng),
            },
        ),
        5 => (
            "invoice number",
            match rng.range(0, 4) {
                0 => format!("INV-{year}-{}", rng.digits(5)),
                1 => format!("INV/{year}/{}", rng.digits(4)),
                2 => format!("{year}-{}", rng.digits(6)),
                3 => format!("RE-{year}-{month:02}-{}", rng.digits(4)),
                _ => format!("Invoice No. {year}{}", rng.digits(4)),
            },
        ),
        6 => ("version", {
            let (a, b, c) = (rng.range(0, 20), rng.range(0, 40), rng.range(0, 300));
            match rng.range(0, 5) {
                0 => format!("v{a}.{b}.{c}"),
                1 => format!("{a}.{b}.{c}"),
                2 => format!("{a}.{b}.{c}-beta.{}", rng.range(1, 9)),
                3 => format!("{a}.{b}.{c}.{}.{}", rng.range(0, 9), rng.range(0, 9)),
                4 => format!("version {a}.{b}.{c}.{}", rng.range(0, 9999)),
                _ => format!("build {a}.{b}.{c}.{}", rng.range(0, 255)),
            }
        }),
        7 => (
            "hash",
            match rng.range(0, 4) {
                0 => rng.chars_of(HEX, 64),
                1 => rng.chars_of(HEX, 40),
                2 => rng.chars_of(HEX, 32),
                3 => rng.chars_of(HEX, 7),
                _ => format!("0x{}", rng.chars_of(HEX, 12)),
            },
        ),
        8 => (
            "date and time",
            match rng.range(0, 3) {
                0 => format!("{day:02}.{month:02}.{year}"),
                1 => format!("{month:02}/{day:02}/{year}"),
                2 => format!("{h:02}:{m:02}"),
                _ => format!("{day:02}.{month:02}.{year} {h:02}:{m:02}:{s:02}"),
            },
        ),
        _ => (
            "other reference",
            match rng.range(0, 6) {
                0 => format!("1Z{}{}", rng.chars_of(UPPER_DIGITS, 6), rng.digits(10)),
                1 => format!("zip {}", rng.digits(5)),
                2 => format!("ext. {}", rng.digits(4)),
                3 => format!("tracking {}", rng.digits(12)),
                4 => group(&format!("9400{}", rng.digits(18)), &[4, 4, 4, 4, 4, 2], " "),
                // Long bare numbers: the one place a card detector cannot tell. About one
                // in forty 13–19 digit numbers has a brand prefix and passes Luhn.
                5 => {
                    let len = rng.range(10, 19) as usize;
                    format!("account {}{}", rng.range(1, 9), rng.digits(len - 1))
                }
                _ => format!("qty {} × {}", rng.range(1, 500), rng.digits(6)),
            },
        ),
    }
}

/// An EAN-13 barcode with a German (40–44) prefix and its check digit.
fn ean13(rng: &mut Rng) -> String {
    let body = format!("{}{}", rng.range(400, 440), rng.digits(9));
    let sum: u32 = body
        .bytes()
        .enumerate()
        .map(|(i, b)| u32::from(b - b'0') * if i % 2 == 1 { 3 } else { 1 })
        .sum();
    format!("{body}{}", (10 - sum % 10) % 10)
}

const NEGATIVE_CONTEXTS: &[&str] = &[
    "{}",
    "Reference {} was processed on Monday.",
    "Status für {}: versandt — danke!",
    "订单 {} 已发货。",
    "{\"ref\":\"{}\",\"qty\":3}",
    "see ({}) below",
];

// ---------------------------------------------------------------------------------------

#[derive(Default)]
struct Tally {
    total: usize,
    found: usize,
    misses: Vec<String>,
}

#[test]
fn recall_and_false_positive_rate() {
    let mut rng = Rng(0x6A7E_4053_D37E_C701);
    type Gen = fn(&mut Rng) -> String;
    let kinds: &[(&str, Classification, Gen, usize, bool)] = &[
        ("card", Classification::Card, card, 3000, true),
        ("iban", Classification::Account, iban, 3000, true),
        ("ssn", Classification::NationalId, ssn, 2500, true),
        ("email", Classification::Email, email, 2500, true),
        ("phone", Classification::Phone, phone, 1500, false),
        ("ipv4", Classification::IpAddress, ipv4, 500, false),
        ("ipv6", Classification::IpAddress, ipv6, 500, false),
        ("api key", Classification::ApiKey, api_key, 800, false),
        ("jwt", Classification::Token, jwt, 300, false),
        (
            "private key",
            Classification::PrivateKey,
            private_key,
            100,
            false,
        ),
    ];

    let mut tallies: BTreeMap<&str, Tally> = BTreeMap::new();
    for &(name, class, generate, count, _) in kinds {
        let tally = tallies.entry(name).or_default();
        for _ in 0..count {
            let value = generate(&mut rng);
            let (sentence, at) = embed(&mut rng, &value);
            let want = Finding {
                start: at,
                end: at + value.len(),
                class,
            };
            let findings = scan(&sentence);
            tally.total += 1;
            if findings.contains(&want) {
                tally.found += 1;
            } else if tally.misses.len() < 5 {
                tally.misses.push(format!("{sentence:?} → {findings:?}"));
            }
            assert_eq!(contains_sensitive(&sentence), !findings.is_empty());
        }
    }

    let mut negatives: BTreeMap<&str, Tally> = BTreeMap::new();
    for _ in 0..12_000 {
        let (kind, value) = negative(&mut rng);
        let context = rng.pick(NEGATIVE_CONTEXTS);
        let sentence = context.replacen("{}", &value, 1);
        let findings = scan(&sentence);
        let tally = negatives.entry(kind).or_default();
        tally.total += 1;
        if !findings.is_empty() {
            tally.found += 1;
            if tally.misses.len() < 5 {
                let shown: Vec<&str> = findings.iter().map(|f| &sentence[f.start..f.end]).collect();
                tally.misses.push(format!("{sentence:?} → {shown:?}"));
            }
        }
        assert_eq!(contains_sensitive(&sentence), !findings.is_empty());
    }

    eprintln!("recall (exact span and class):");
    let mut failures = Vec::new();
    for &(name, _, _, _, checksummed) in kinds {
        let t = &tallies[name];
        let recall = t.found as f64 / t.total as f64;
        let tag = if checksummed { " (validated type)" } else { "" };
        eprintln!(
            "  {name:<12} {:>5}/{:<5} = {recall:.4}{tag}",
            t.found, t.total
        );
        for miss in &t.misses {
            eprintln!("      missed {miss}");
        }
        if recall < 0.99 {
            failures.push(format!("recall of {name} is {recall:.4}"));
        }
    }
    let (fp, total) = negatives
        .values()
        .fold((0, 0), |(f, n), t| (f + t.found, n + t.total));
    let rate = fp as f64 / total as f64;
    eprintln!("false positives on business identifiers: {fp}/{total} = {rate:.4}");
    for (kind, t) in &negatives {
        eprintln!("  {kind:<16} {:>4}/{:<5}", t.found, t.total);
        for miss in &t.misses {
            eprintln!("      flagged {miss}");
        }
    }
    assert!(total >= 10_000);
    if rate >= 0.01 {
        failures.push(format!("false-positive rate is {rate:.4}"));
    }
    assert!(failures.is_empty(), "{failures:?}");
}

/// Fragments that open or nearly open entities; random strings built from them exercise
/// every detector's edges (truncation, adjacency, non-ASCII neighbours).
const FRAGMENTS: &[&str] = &[
    "4111",
    "1111",
    " ",
    "-",
    ".",
    ":",
    "::",
    "@",
    "+",
    "(",
    ")",
    "0",
    "9",
    "12",
    "555",
    "123",
    "ex.com",
    "a",
    "Z",
    "DE89",
    "GB82",
    "eyJ",
    "eyJhbGciOiJub25lIn0",
    "AKIA",
    "ghp_",
    "sk-",
    "xoxb-",
    "-----BEGIN ",
    "PRIVATE KEY-----",
    "-----END ",
    "é",
    "—",
    "你",
    "\n",
    "\u{1F600}",
    "_",
    "/",
    ",",
    "SSN ",
    "version ",
    "fe80",
    "ffff",
];

#[test]
fn any_input_gives_well_formed_findings() {
    let mut rng = Rng(0x0DDB_A11C_0FFE_E000);
    for _ in 0..20_000 {
        let n = rng.range(1, 40) as usize;
        let text: String = (0..n).map(|_| *rng.pick(FRAGMENTS)).collect();
        let findings = scan(&text);
        for f in &findings {
            assert!(f.start < f.end && f.end <= text.len(), "{text:?}: {f:?}");
            assert!(
                text.is_char_boundary(f.start) && text.is_char_boundary(f.end),
                "{text:?}: {f:?}"
            );
        }
        assert!(
            findings.windows(2).all(|w| w[0].end <= w[1].start),
            "{text:?}: {findings:?}"
        );
        assert_eq!(contains_sensitive(&text), !findings.is_empty(), "{text:?}");
    }
}
