//! Throughput of the value detectors, which scan every string value of every result.
//!
//! Two inputs of about 1 MiB: product-description prose with nothing to find (the common
//! case, target ≥ 200 MB/s per core) and text dense with PII and secrets (every sentence
//! holds an entity, so every validator runs).
//!
//! `cargo bench --bench detect`; criterion reports MB/s from `Throughput::Bytes`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use gatehouse::masking::detect::{contains_sensitive, scan};

const TARGET_LEN: usize = 1 << 20;

/// xorshift64*: enough to vary the text; the seed fixes it.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.next() as usize % items.len()]
    }
}

const WORDS: &[&str] = &[
    "the",
    "soft",
    "cotton",
    "shirt",
    "is",
    "made",
    "from",
    "organic",
    "fibres",
    "and",
    "comes",
    "in",
    "several",
    "colours",
    "with",
    "a",
    "relaxed",
    "fit",
    "every",
    "seam",
    "gets",
    "stitched",
    "twice",
    "so",
    "it",
    "lasts",
    "for",
    "years",
    "of",
    "regular",
    "wear",
    "our",
    "design",
    "team",
    "tested",
    "each",
    "size",
    "against",
    "real",
    "customers",
    "washing",
    "machine",
    "safe",
    "at",
    "low",
    "temperature",
    "great",
    "gift",
    "summer",
    "evenings",
    "lightweight",
    "breathable",
    "sustainably",
    "sourced",
    "Germany",
    "Portugal",
    "Europe",
    "Premium",
    "Classic",
    "recycled",
    "packaging",
    "shipping",
    "returns",
    "within",
    "days",
    "größer",
    "Qualität",
    "über",
    "café",
    "naïve",
    "e.g.",
    "x-large",
    "well-made",
    "long-lasting",
    "extra",
    "gentle",
    "strong",
    "zipper",
    "sleeves",
    "collar",
    "pocket",
    "button",
    "stretch",
];

const EXTRAS: &[&str] = &[
    "2 pcs",
    "size 42",
    "19.99 EUR",
    "100% cotton",
    "(see below)",
    "—",
    "30°C",
    "4.8/5",
    "v2",
    "Model: ABC",
    "ready:",
    "+ free",
    "12 months",
    "-",
    "3-pack",
    "10:30",
];

/// Ordinary prose with numbers and punctuation but no entity.
fn prose(rng: &mut Rng) -> String {
    let mut text = String::with_capacity(TARGET_LEN + 256);
    while text.len() < TARGET_LEN {
        let words = 6 + rng.next() % 14;
        for i in 0..words {
            if i > 0 {
                text.push(' ');
            }
            if rng.next().is_multiple_of(9) {
                text.push_str(rng.pick(EXTRAS));
            } else {
                text.push_str(rng.pick(WORDS));
            }
        }
        text.push_str(". ");
    }
    text
}

const ENTITIES: &[&str] = &[
    "john.doe@example.com",
    "(555) 123-4567",
    "+44 20 7946 0958",
    "123-45-6789",
    "4111 1111 1111 1111",
    "378282246310005",
    "DE89 3704 0044 0532 0130 00",
    "GB82WEST12345698765432",
    "192.168.10.42",
    "2001:db8::8a2e:370:7334",
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "AKIAIOSFODNN7EXAMPLE",
    "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",
    "sk-proj-abc123DEF456ghi789JKL012mno345PQR678",
];

/// Short sentences, each holding one entity.
fn dense(rng: &mut Rng) -> String {
    let mut text = String::with_capacity(TARGET_LEN + 256);
    while text.len() < TARGET_LEN {
        text.push_str(rng.pick(&["Contact ", "Customer ", "Paid with ", "Ref "]));
        text.push_str(rng.pick(ENTITIES));
        text.push_str(rng.pick(&[" today. ", ", thanks. ", "; noted.\n"]));
    }
    text
}

fn detectors(c: &mut Criterion) {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let prose = prose(&mut rng);
    let dense = dense(&mut rng);
    assert!(
        scan(&prose).is_empty(),
        "the prose input must hold nothing to find"
    );
    assert!(scan(&dense).len() > 10_000);

    let mut group = c.benchmark_group("detect");
    group.throughput(Throughput::Bytes(prose.len() as u64));
    group.bench_function("scan/prose-1MiB", |b| b.iter(|| scan(black_box(&prose))));
    group.bench_function("contains_sensitive/prose-1MiB", |b| {
        b.iter(|| contains_sensitive(black_box(&prose)))
    });
    group.throughput(Throughput::Bytes(dense.len() as u64));
    group.bench_function("scan/dense-pii-1MiB", |b| {
        b.iter(|| scan(black_box(&dense)))
    });
    group.finish();
}

criterion_group!(benches, detectors);
criterion_main!(benches);
