//! Credentials: JWTs, API and cloud access keys, PEM private-key blocks. Each is recognised
//! by a fixed prefix at the start of a word, so the scan loop pays one or two byte compares
//! per candidate word and nothing else.
//!
//! Every run these detectors read is capped: scanned values are data anyone may have
//! written, and an uncapped read per candidate would make `sk-sk-sk-…` cost quadratic time.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use memchr::memmem;
use serde::Deserialize;
use serde::de::IgnoredAny;

use super::bytes::{B64URL, UPPER, WORD, byte, has};
use crate::masking::Classification;

/// Key or token starting at the word start `start`, as `(end, class)`.
pub(super) fn at_word(text: &[u8], start: usize) -> Option<(usize, Classification)> {
    let rest = &text[start..];
    let api_key = |end: Option<usize>| end.map(|end| (end, Classification::ApiKey));
    match rest[0] {
        b'e' => jwt(text, start).map(|end| (end, Classification::Token)),
        b'A' if rest.starts_with(b"AKIA") || rest.starts_with(b"ASIA") => api_key(exactly(
            text,
            start + 4,
            16,
            |b| has(b, UPPER) || b.is_ascii_digit(),
            WORD,
        )),
        b'A' if rest.starts_with(b"AIza") => {
            api_key(exactly(text, start + 4, 35, |b| has(b, B64URL), B64URL))
        }
        b'g' if rest.starts_with(b"gh")
            && matches!(byte(text, start + 2), b'p' | b'o' | b'u' | b's' | b'r')
            && byte(text, start + 3) == b'_' =>
        {
            api_key(exactly(
                text,
                start + 4,
                36,
                |b| b.is_ascii_alphanumeric(),
                WORD,
            ))
        }
        b'g' if rest.starts_with(b"github_pat_") => api_key(at_least(text, start + 11, 30, WORD)),
        b'g' if rest.starts_with(b"glpat-") => api_key(at_least(text, start + 6, 20, B64URL)),
        b'x' if rest.starts_with(b"xox")
            && matches!(byte(text, start + 3), b'b' | b'a' | b'p' | b'r' | b's')
            && byte(text, start + 4) == b'-' =>
        {
            api_key(at_least(text, start + 5, 10, B64URL))
        }
        b's' | b'r'
            if rest.starts_with(b"sk_live_")
                || rest.starts_with(b"rk_live_")
                || rest.starts_with(b"sk_test_")
                || rest.starts_with(b"rk_test_") =>
        {
            api_key(at_least(text, start + 8, 16, WORD))
        }
        b's' if rest.starts_with(b"sk-") => api_key(openai_style(text, start + 3)),
        _ => None,
    }
}

/// Exactly `n` bytes accepted by `body` from `from`, not followed by another byte of `tail`.
fn exactly(
    text: &[u8],
    from: usize,
    n: usize,
    body: impl Fn(u8) -> bool,
    tail: u8,
) -> Option<usize> {
    let end = from + n;
    let ok = text.len() >= end
        && text[from..end].iter().all(|&b| body(b))
        && !has(byte(text, end), tail);
    ok.then_some(end)
}

/// Longest key body taken; real keys stay under 200 characters.
const MAX_KEY: usize = 256;

/// At least `n` bytes of `class` from `from`; the key runs to the end of that run.
fn at_least(text: &[u8], from: usize, n: usize, class: u8) -> Option<usize> {
    let end = run(text, from, class, MAX_KEY)?;
    (end - from >= n).then_some(end)
}

/// End of the run of `class` bytes from `from`, or `None` when it is longer than `max`.
fn run(text: &[u8], from: usize, class: u8, max: usize) -> Option<usize> {
    let limit = text.len().min(from.saturating_add(max + 1));
    let len = text
        .get(from..limit)?
        .iter()
        .position(|&b| !has(b, class))
        .unwrap_or(limit - from);
    (len <= max).then_some(from + len)
}

/// `sk-…` keys (`sk-proj-…`, `sk-svcacct-…`, legacy `sk-` + 48): 32 or more key characters
/// with both letters and digits, so a long hyphenated word after "sk-" is not taken.
fn openai_style(text: &[u8], from: usize) -> Option<usize> {
    let end = at_least(text, from, 32, B64URL)?;
    let body = &text[from..end];
    let mixed = body.iter().any(u8::is_ascii_digit) && body.iter().any(u8::is_ascii_alphabetic);
    mixed.then_some(end)
}

/// The fields a JOSE header must carry; nothing is kept.
#[derive(Deserialize)]
struct JoseHeader {
    #[serde(rename = "alg")]
    _alg: IgnoredAny,
}

/// Longest header we decode; real ones are well under 200 bytes.
const MAX_HEADER: usize = 1024;
/// Longest payload or signature segment taken (RS512 signatures are 683 characters).
const MAX_SEGMENT: usize = 16 * 1024;

/// Compact JWS (`header.payload.signature`) or JWE (five segments) opened by `eyJ`, the
/// base64url of `{"`. The header must decode to a JSON object with an `alg`, and is checked
/// before anything after it is read. The signature may be empty (`alg: none`).
fn jwt(text: &[u8], start: usize) -> Option<usize> {
    if !text[start..].starts_with(b"eyJ") {
        return None;
    }
    let header_end = run(text, start, B64URL, MAX_HEADER)?;
    if byte(text, header_end) != b'.' {
        return None;
    }
    let mut decoded = [0u8; MAX_HEADER * 3 / 4];
    let n = URL_SAFE_NO_PAD
        .decode_slice(&text[start..header_end], &mut decoded)
        .ok()?;
    serde_json::from_slice::<JoseHeader>(&decoded[..n]).ok()?;
    // Segment ends: header, then up to four more. A sentence's full stop after a JWS reads
    // as an empty fourth segment and is left out.
    let mut ends = [header_end, 0, 0, 0, 0];
    let mut count = 1;
    while count < ends.len() && byte(text, ends[count - 1]) == b'.' {
        ends[count] = run(text, ends[count - 1] + 1, B64URL, MAX_SEGMENT)?;
        count += 1;
    }
    match count {
        // JWS: the payload is a JSON object, never empty.
        3 | 4 => (ends[1] - ends[0] > 2).then_some(ends[2]),
        // JWE: encrypted key (empty for "dir"), IV, ciphertext, tag. Still a credential.
        _ => (count == 5).then_some(ends[4]),
    }
}

const PEM_BEGIN: &[u8] = b"-----BEGIN ";
const PEM_DASHES: &[u8] = b"-----";

/// PEM private-key block from `-----BEGIN … PRIVATE KEY-----` through the matching END
/// line, or to the end of the text when the block is truncated (a cut-off key is still a
/// key).
pub(super) fn pem_private_key(text: &[u8], start: usize) -> Option<(usize, Classification)> {
    if !text[start..].starts_with(PEM_BEGIN) {
        return None;
    }
    let label_start = start + PEM_BEGIN.len();
    let window = &text[label_start..text.len().min(label_start + 64)];
    let label_len = memmem::find(window, PEM_DASHES)?;
    let label = &window[..label_len];
    if !(label.ends_with(b"PRIVATE KEY") || label.ends_with(b"PRIVATE KEY BLOCK")) {
        return None;
    }
    let body = label_start + label_len + PEM_DASHES.len();
    let end = memmem::find(&text[body..], b"-----END ")
        .and_then(|at| {
            let end_label = body + at + 9;
            let tail = &text[end_label..];
            (tail.starts_with(label) && tail[label.len()..].starts_with(PEM_DASHES))
                .then_some(end_label + label.len() + PEM_DASHES.len())
        })
        .unwrap_or(text.len());
    Some((end, Classification::PrivateKey))
}

#[cfg(test)]
mod tests {
    use super::*;

    const JWT: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";

    #[test]
    fn jwt_needs_a_jose_header() {
        assert_eq!(jwt(JWT.as_bytes(), 0), Some(JWT.len()));
        // {"typ":"JWT"} without alg
        assert_eq!(jwt(b"eyJ0eXAiOiJKV1QifQ.eyJzdWIiOiIxIn0.abc", 0), None);
        // not base64 of JSON
        assert_eq!(jwt(b"eyJhbGci.eyJzdWIi.abc", 0), None);
        assert_eq!(jwt(b"eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0.", 0), Some(36));
        // JWE: {"alg":"dir","enc":"A128GCM"} and four more segments
        let jwe = b"eyJhbGciOiJkaXIiLCJlbmMiOiJBMTI4R0NNIn0..aXY.Y2lwaGVy.dGFn";
        assert_eq!(jwt(jwe, 0), Some(jwe.len()));
        assert_eq!(
            jwt(b"eyJhbGciOiJkaXIiLCJlbmMiOiJBMTI4R0NNIn0..aXY.Y2lwaGVy", 0),
            None
        );
    }

    #[test]
    fn pem_end_must_match_begin() {
        let block = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEE\n-----END EC PRIVATE KEY-----";
        assert_eq!(
            pem_private_key(block.as_bytes(), 0).map(|h| h.0),
            Some(block.len())
        );
        let truncated = "-----BEGIN RSA PRIVATE KEY-----\nMIIEow";
        assert_eq!(
            pem_private_key(truncated.as_bytes(), 0).map(|h| h.0),
            Some(truncated.len())
        );
        assert_eq!(
            pem_private_key(b"-----BEGIN PUBLIC KEY-----\nMFkw", 0),
            None
        );
        assert_eq!(pem_private_key(b"-----BEGIN CERTIFICATE-----", 0), None);
    }
}
