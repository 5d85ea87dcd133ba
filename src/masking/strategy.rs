//! How a sensitive value is replaced, and the key behind `hmac` tokens.
//!
//! Every output of this module is recognisable by [`is_mask_artifact`], so the gateway can
//! refuse a statement that would write a masked value back into the database (an agent
//! copying `j***@example.com` from one result into an `UPDATE` would otherwise destroy the
//! real address):
//! - redaction: `[redacted:pii.email]`, naming the class (`[redacted:unresolved]` for a
//!   column whose lineage could not be resolved);
//! - tokens: `tok_` and 32 lower-case hex digits, the first 128 bits of
//!   HMAC-SHA256(key, class `\0` value). Equal values of one class give equal tokens, so
//!   joins, `GROUP BY` and `COUNT(DISTINCT …)` over tokens still mean something; the class
//!   is in the input so that a phone number and an account number with the same digits do
//!   not give the same token;
//! - partial forms, which always hold a run of three `*` (or `**-**` for a birth date):
//!   `j***@example.com`, `**** **** **** 4242`, `***-**-6789`, `A*** L***`,
//!   `192.168.***.***`, `1985-**-**`. A partial form is produced only for a value of the
//!   expected shape: anything else (a phone column holding a sentence, a card number too
//!   short to hide twelve digits) is redacted instead, so a partial mask never shows text
//!   it was not built for.
//!
//! Values keep a sensible type: text stays text; other types (numbers, dates, JSON, bytes,
//! UUIDs) under `redact` or `partial` become NULL, and an array is masked element by
//! element; an `hmac` token is text whatever the value was.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::Path;

use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

use crate::datasource::Value;
use crate::masking::Classification;

/// What replaces a sensitive value. Chosen per classification (`[masking.strategies]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// A fixed placeholder naming the class.
    Redact,
    /// Enough to recognise the value, not to use it: a card's last four digits, an email's
    /// first letter and domain.
    Partial,
    /// A deterministic keyed token: equal values give equal tokens, so an agent can still
    /// join, group or count distinct values without seeing one.
    Hmac,
    /// SQL NULL.
    Null,
}

impl Strategy {
    /// Higher keeps less of the value. When a column holds several classes, the strategy
    /// that keeps least wins (`null` keeps nothing, not even that a value was
    /// there; `redact` keeps that; `hmac` keeps equality; `partial` keeps a fragment).
    pub(crate) fn strictness(self) -> u8 {
        match self {
            Strategy::Null => 3,
            Strategy::Redact => 2,
            Strategy::Hmac => 1,
            Strategy::Partial => 0,
        }
    }
}

/// Random bytes in a generated key: SHA-256's output size.
const GENERATED_KEY_BYTES: usize = 32;
/// Bytes of the HMAC output a token keeps: 128 bits, far from any collision in practice.
const TOKEN_BYTES: usize = 16;
const TOKEN_PREFIX: &str = "tok_";
const REDACTED_PREFIX: &str = "[redacted:";
/// What a column whose lineage could not be resolved is redacted as.
pub(crate) const UNRESOLVED: &str = "unresolved";

/// The key of `hmac` tokens, held as the keyed HMAC state (each token clones it instead of
/// hashing the key again). Never printed, not even by `Debug`.
#[derive(Clone)]
pub struct HmacKey(Hmac<Sha256>);

impl HmacKey {
    /// A fresh random key held only in memory: tokens change on every start. For tests
    /// and for deployments that want tokens joinable within one process lifetime only.
    pub fn generate() -> io::Result<HmacKey> {
        Ok(generated()?.0)
    }

    fn from_bytes(bytes: &[u8]) -> io::Result<HmacKey> {
        // HMAC takes a key of any length; only an empty one is refused, by the callers.
        <Hmac<Sha256> as Mac>::new_from_slice(bytes)
            .map(HmacKey)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))
    }
}

/// A random key and its text form (64 hex characters).
fn generated() -> io::Result<(HmacKey, String)> {
    let mut random = [0u8; GENERATED_KEY_BYTES];
    getrandom::fill(&mut random).map_err(io::Error::other)?;
    let text = hex::encode(random);
    Ok((HmacKey::from_bytes(text.as_bytes())?, text))
}

impl fmt::Debug for HmacKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HmacKey(<redacted>)")
    }
}

/// The key in `path`: read when the file exists, otherwise 32 random bytes written there as
/// 64 hex characters in a new file of mode 0600 (the directory is created when missing).
/// The key is the bytes of the file's text, surrounding whitespace removed, the same rule
/// as the HS256 secret, so an operator may also supply their own key file.
pub fn load_or_create_key(path: &Path) -> io::Result<HmacKey> {
    match read_key(path) {
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        other => return other,
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir)?;
    }
    let (key, text) = generated()?;
    let mut options = fs::OpenOptions::new();
    // `create_new`: two replicas starting on one data directory must not overwrite each
    // other's key (their tokens would disagree); the loser reads the winner's file.
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(mut file) => {
            file.write_all(format!("{text}\n").as_bytes())
                .and_then(|()| file.sync_all())?;
            tracing::info!(path = %path.display(), "created the masking token key");
            Ok(key)
        }
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => read_key(path),
        Err(error) => Err(error),
    }
}

fn read_key(path: &Path) -> io::Result<HmacKey> {
    let raw = fs::read(path)?;
    let trimmed = raw.trim_ascii();
    if trimmed.is_empty() {
        // Not replaced silently: tokens already handed out were made with the old key.
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "the masking token key file {} is empty; delete it to generate a new key (tokens change) or restore it",
                path.display()
            ),
        ));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(
                path = %path.display(),
                "the masking token key file is readable by other users; `chmod 600` it"
            );
        }
    }
    HmacKey::from_bytes(trimmed)
}

/// A `[masking.strategies]` key that names neither a class nor a family.
#[derive(Debug, thiserror::Error)]
#[error(
    "[masking.strategies] has an unknown key `{0}`: use a classification ({classes}) or a family (pii, secret)",
    classes = Classification::ALL.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(", ")
)]
pub struct UnknownStrategyKey(pub String);

/// Applies strategies: one per class, chosen from configuration at start-up.
#[derive(Clone)]
pub struct Masker {
    strategies: BTreeMap<Classification, Strategy>,
    key: HmacKey,
}

impl fmt::Debug for Masker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Masker")
            .field("strategies", &self.strategies)
            .finish_non_exhaustive()
    }
}

impl Masker {
    /// `configured` is `[masking.strategies]`: a class name beats a family (`pii`,
    /// `secret`), which beats the built-in choice ([`default_strategy`]).
    pub fn new(
        configured: &BTreeMap<String, Strategy>,
        key: HmacKey,
    ) -> Result<Masker, UnknownStrategyKey> {
        for name in configured.keys() {
            if name != "pii" && name != "secret" && Classification::parse(name).is_none() {
                return Err(UnknownStrategyKey(name.clone()));
            }
        }
        let strategies = Classification::ALL
            .into_iter()
            .map(|class| {
                let family = if class.is_secret() { "secret" } else { "pii" };
                let strategy = configured
                    .get(class.as_str())
                    .or_else(|| configured.get(family))
                    .copied()
                    .unwrap_or_else(|| default_strategy(class));
                (class, strategy)
            })
            .collect();
        Ok(Masker { strategies, key })
    }

    /// The strategy `class` is masked with.
    pub fn strategy(&self, class: Classification) -> Strategy {
        self.strategies
            .get(&class)
            .copied()
            .unwrap_or(Strategy::Redact)
    }

    /// `value` masked as `class` with `strategy`. NULL stays NULL.
    pub(crate) fn mask_value(
        &self,
        class: Classification,
        strategy: Strategy,
        value: &Value,
    ) -> Value {
        match (strategy, value) {
            (_, Value::Null) | (Strategy::Null, _) => Value::Null,
            (Strategy::Hmac, value) => {
                Value::Text(self.token(class, canonical_text(value).as_bytes()))
            }
            (Strategy::Redact | Strategy::Partial, Value::Text(text)) => {
                Value::Text(self.mask_text(class, strategy, text))
            }
            (Strategy::Redact | Strategy::Partial, Value::Array(items)) => Value::Array(
                items
                    .iter()
                    .map(|item| self.mask_value(class, strategy, item))
                    .collect(),
            ),
            (Strategy::Redact | Strategy::Partial, _) => Value::Null,
        }
    }

    /// `text` masked as `class` with `strategy`, as text: `null` (which has no text form)
    /// becomes redaction. Used for whole text values and for spans inside free text.
    pub(crate) fn mask_text(
        &self,
        class: Classification,
        strategy: Strategy,
        text: &str,
    ) -> String {
        match strategy {
            Strategy::Hmac => self.token(class, text.as_bytes()),
            Strategy::Partial => partial(class, text).unwrap_or_else(|| redacted(class.as_str())),
            Strategy::Redact | Strategy::Null => redacted(class.as_str()),
        }
    }

    /// `tok_` and the first 128 bits of HMAC-SHA256(key, class `\0` value), hex.
    fn token(&self, class: Classification, value: &[u8]) -> String {
        let mut mac = self.key.0.clone();
        mac.update(class.as_str().as_bytes());
        mac.update(&[0]);
        mac.update(value);
        let digest = mac.finalize().into_bytes();
        let mut token = String::with_capacity(TOKEN_PREFIX.len() + 2 * TOKEN_BYTES);
        token.push_str(TOKEN_PREFIX);
        token.push_str(&hex::encode(&digest[..TOKEN_BYTES]));
        token
    }
}

/// The built-in strategy of a class: partial where a fragment is useful and safe to show
/// (the last four of a card, national id or account number, an email's first letter and
/// domain, a phone's last two digits); NULL for a birth date, which has no useful fragment
/// that keeps its date type; redaction for everything else and for every secret.
pub fn default_strategy(class: Classification) -> Strategy {
    use Classification as C;
    match class {
        C::Card | C::Email | C::Phone | C::NationalId | C::Account => Strategy::Partial,
        C::BirthDate => Strategy::Null,
        C::Address | C::PersonName | C::IpAddress => Strategy::Redact,
        C::Password | C::Token | C::ApiKey | C::PrivateKey => Strategy::Redact,
    }
}

/// `[redacted:<what>]`.
pub(crate) fn redacted(what: &str) -> String {
    format!("{REDACTED_PREFIX}{what}]")
}

/// The text a value is tokenised as: the same text for the same value whatever the column
/// type, so an integer phone number and the same digits in a text column give one token.
fn canonical_text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::UInt(u) => u.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Decimal(s) | Value::Text(s) | Value::Interval(s) => s.clone(),
        Value::Bytes(b) => hex::encode(b),
        Value::Date(_) | Value::Time(_) | Value::Timestamp(_) | Value::TimestampTz(_) => {
            value.temporal_text().unwrap_or_default()
        }
        Value::Uuid(u) => u.hyphenated().to_string(),
        Value::Json(j) => j.to_string(),
        Value::Array(_) => serde_json::to_string(value).unwrap_or_default(),
    }
}

/// The partial form of `text` as `class`, or `None` when the text does not have the shape
/// the partial form is built for (the caller redacts it then). Every form returned passes
/// [`is_mask_artifact`].
fn partial(class: Classification, text: &str) -> Option<String> {
    use Classification as C;
    let text = text.trim();
    let masked = match class {
        C::Email => partial_email(text),
        C::Phone => keep_last(
            text,
            2,
            7,
            15,
            |c| " +-().".contains(c),
            |c: char| c.is_ascii_digit(),
        ),
        C::Card => keep_last(
            text,
            4,
            12,
            19,
            |c| " -".contains(c),
            |c: char| c.is_ascii_digit(),
        ),
        C::NationalId => keep_last(text, 4, 8, 20, |c| " -".contains(c), char::is_alphanumeric),
        C::Account => keep_last(text, 4, 8, 34, |c| " -".contains(c), char::is_alphanumeric),
        C::BirthDate => partial_date(text),
        C::PersonName => partial_name(text),
        C::IpAddress => partial_ip(text),
        C::Address | C::Password | C::Token | C::ApiKey | C::PrivateKey => None,
    }?;
    is_mask_artifact(&masked).then_some(masked)
}

/// `j***@example.com`: one address, nothing else.
fn partial_email(text: &str) -> Option<String> {
    let (local, domain) = text.split_once('@')?;
    let first = local.chars().next()?;
    let plain =
        |s: &str| !s.is_empty() && !s.contains(|c: char| c.is_whitespace() || c == '@' || c == '*');
    (plain(local) && plain(domain) && domain.contains('.')).then(|| format!("{first}***@{domain}"))
}

/// Every significant character but the last `keep` replaced by `*`; separators kept. `None`
/// unless the text is only significant characters and separators, with between `min` and
/// `max` significant ones.
fn keep_last(
    text: &str,
    keep: usize,
    min: usize,
    max: usize,
    separator: impl Fn(char) -> bool,
    significant: impl Fn(char) -> bool,
) -> Option<String> {
    let count = text.chars().filter(|&c| significant(c)).count();
    if !(min..=max).contains(&count) || !text.chars().all(|c| significant(c) || separator(c)) {
        return None;
    }
    let mut seen = 0;
    Some(
        text.chars()
            .map(|c| {
                if significant(c) {
                    seen += 1;
                    if seen <= count - keep { '*' } else { c }
                } else {
                    c
                }
            })
            .collect(),
    )
}

/// `1985-**-**`: the year of an ISO date (a time part is dropped).
fn partial_date(text: &str) -> Option<String> {
    let date = text.get(..10)?;
    let rest = &text[10..];
    let bytes = date.as_bytes();
    let shaped = bytes.iter().enumerate().all(|(i, b)| match i {
        4 | 7 => *b == b'-' || *b == b'/',
        _ => b.is_ascii_digit(),
    });
    (shaped && (rest.is_empty() || rest.starts_with(['T', ' '])))
        .then(|| format!("{}-**-**", &date[..4]))
}

/// `A*** L***`: each word's first letter.
fn partial_name(text: &str) -> Option<String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let name_like = !words.is_empty()
        && words.len() <= 6
        && words
            .iter()
            .all(|w| w.chars().all(|c| c.is_alphabetic() || "'-.".contains(c)));
    if !name_like {
        return None;
    }
    let parts: Vec<String> = words
        .iter()
        .filter_map(|w| w.chars().next().map(|first| format!("{first}***")))
        .collect();
    Some(parts.join(" "))
}

/// `192.168.***.***`, `2001:db8:***`: the network part only.
fn partial_ip(text: &str) -> Option<String> {
    match text.parse::<std::net::IpAddr>().ok()? {
        std::net::IpAddr::V4(v4) => {
            let [a, b, _, _] = v4.octets();
            Some(format!("{a}.{b}.***.***"))
        }
        std::net::IpAddr::V6(v6) => {
            let segments = v6.segments();
            Some(format!("{:x}:{:x}:***", segments[0], segments[1]))
        }
    }
}

/// Whether `text` holds anything masking outputs: a redaction placeholder, a token, or a
/// partial form (a run of three `*`, or a birth date's `**-**`). The gateway refuses writes
/// of such text, so that a masked value is never stored over the real one. Ordinary text
/// rarely holds these; a false positive refuses one write, which is the safe side.
pub fn is_mask_artifact(text: &str) -> bool {
    if text.contains("***") || text.contains("**-**") {
        return true;
    }
    let lower = text.to_ascii_lowercase();
    if lower.contains(REDACTED_PREFIX) || lower.contains("[redacted]") {
        return true;
    }
    lower.match_indices(TOKEN_PREFIX).any(|(at, _)| {
        let digits = &lower.as_bytes()[at + TOKEN_PREFIX.len()..];
        digits.len() >= 2 * TOKEN_BYTES
            && digits[..2 * TOKEN_BYTES].iter().all(u8::is_ascii_hexdigit)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use Classification as C;
    use chrono::NaiveDate;
    use serde_json::json;

    fn masker(configured: &[(&str, Strategy)]) -> Masker {
        let configured = configured
            .iter()
            .map(|(k, v)| ((*k).to_owned(), *v))
            .collect();
        Masker::new(&configured, HmacKey::generate().unwrap()).unwrap()
    }

    fn text(s: &str) -> Value {
        Value::Text(s.to_owned())
    }

    #[test]
    fn built_in_partial_forms_keep_a_recognisable_fragment() {
        let m = masker(&[]);
        let partial = |class, s: &str| m.mask_value(class, m.strategy(class), &text(s));
        assert_eq!(
            partial(C::Email, "jane.doe@example.com"),
            text("j***@example.com")
        );
        assert_eq!(
            partial(C::Card, "4111 1111 1111 4242"),
            text("**** **** **** 4242")
        );
        assert_eq!(
            partial(C::Card, "4111111111114242"),
            text("************4242")
        );
        assert_eq!(
            partial(C::Phone, "+1 (555) 010-4477"),
            text("+* (***) ***-**77")
        );
        assert_eq!(partial(C::NationalId, "123-45-6789"), text("***-**-6789"));
        assert_eq!(
            partial(C::Account, "DE89 3704 0044 0532 0130 00"),
            text("**** **** **** **** **30 00")
        );
        // Not the expected shape: redacted, never half-shown.
        assert_eq!(
            partial(C::Email, "call me maybe"),
            text("[redacted:pii.email]")
        );
        assert_eq!(partial(C::Card, "4242"), text("[redacted:pii.card]"));
        assert_eq!(
            partial(C::Phone, "555-0104, or ann@example.com"),
            text("[redacted:pii.phone]")
        );
        // Birth dates are NULL by default; everything else without a partial is redacted.
        assert_eq!(partial(C::BirthDate, "1985-03-14"), Value::Null);
        assert_eq!(
            partial(C::Address, "1 Main St"),
            text("[redacted:pii.address]")
        );
        assert_eq!(partial(C::Token, "abc"), text("[redacted:secret.token]"));
    }

    #[test]
    fn configured_partial_forms_for_other_classes() {
        let m = masker(&[("pii", Strategy::Partial), ("secret", Strategy::Partial)]);
        let partial = |class, s: &str| m.mask_value(class, Strategy::Partial, &text(s));
        assert_eq!(partial(C::PersonName, "Ada  Lovelace"), text("A*** L***"));
        assert_eq!(
            partial(C::IpAddress, "192.168.10.20"),
            text("192.168.***.***")
        );
        assert_eq!(partial(C::IpAddress, "2001:db8::1"), text("2001:db8:***"));
        assert_eq!(partial(C::BirthDate, "1985-03-14"), text("1985-**-**"));
        assert_eq!(
            partial(C::BirthDate, "1985-03-14T00:00:00Z"),
            text("1985-**-**")
        );
        assert_eq!(
            partial(C::BirthDate, "14 March 1985"),
            text("[redacted:pii.birth_date]")
        );
        // Secrets have no partial form.
        assert_eq!(
            partial(C::ApiKey, "AKIAIOSFODNN7EXAMPLE"),
            text("[redacted:secret.api_key]")
        );
    }

    #[test]
    fn each_strategy_keeps_a_sensible_type() {
        let m = masker(&[]);
        let date = Value::Date(NaiveDate::from_ymd_opt(1985, 3, 14).unwrap());
        let values = [
            Value::Int(5_550_104_477),
            date.clone(),
            Value::Json(json!({"email": "a@b.co"})),
            Value::Bytes(b"secret".to_vec()),
            Value::Uuid(uuid::Uuid::nil()),
            Value::Bool(true),
        ];
        for value in &values {
            for strategy in [Strategy::Redact, Strategy::Partial, Strategy::Null] {
                assert_eq!(
                    m.mask_value(C::Phone, strategy, value),
                    Value::Null,
                    "{value:?}"
                );
            }
            let Value::Text(token) = m.mask_value(C::Phone, Strategy::Hmac, value) else {
                panic!("hmac gives text");
            };
            assert!(token.starts_with("tok_") && token.len() == 36, "{token}");
        }
        for strategy in [
            Strategy::Redact,
            Strategy::Partial,
            Strategy::Hmac,
            Strategy::Null,
        ] {
            assert_eq!(m.mask_value(C::Email, strategy, &Value::Null), Value::Null);
        }
        assert_eq!(
            m.mask_value(C::Email, Strategy::Redact, &text("x")),
            text("[redacted:pii.email]")
        );
        assert_eq!(
            m.mask_value(C::Email, Strategy::Null, &text("x")),
            Value::Null
        );
        // Arrays are masked element by element and stay arrays.
        let array = Value::Array(vec![text("ann@example.com"), Value::Null, Value::Int(3)]);
        assert_eq!(
            m.mask_value(C::Email, Strategy::Partial, &array),
            Value::Array(vec![text("a***@example.com"), Value::Null, Value::Null])
        );
    }

    #[test]
    fn tokens_are_deterministic_per_key_and_class() {
        let key = HmacKey::generate().unwrap();
        let a = Masker::new(&BTreeMap::new(), key.clone()).unwrap();
        let b = Masker::new(&BTreeMap::new(), key).unwrap();
        let other = masker(&[]);
        let token = |m: &Masker, class, v: &Value| m.mask_value(class, Strategy::Hmac, v);
        let ann = text("ann@example.com");
        assert_eq!(token(&a, C::Email, &ann), token(&b, C::Email, &ann));
        assert_eq!(token(&a, C::Email, &ann), token(&a, C::Email, &ann));
        assert_ne!(
            token(&a, C::Email, &ann),
            token(&a, C::Email, &text("bob@example.com"))
        );
        assert_ne!(token(&a, C::Email, &ann), token(&other, C::Email, &ann));
        assert_ne!(token(&a, C::Email, &ann), token(&a, C::Token, &ann));
        // The same value in another type gives the same token, so columns still join.
        assert_eq!(
            token(&a, C::Phone, &Value::Int(5_550_104_477)),
            token(&a, C::Phone, &text("5550104477"))
        );
        // Span tokens and value tokens agree.
        assert_eq!(
            Value::Text(a.mask_text(C::Email, Strategy::Hmac, "ann@example.com")),
            token(&a, C::Email, &ann)
        );
    }

    #[test]
    fn strategy_keys_pick_class_then_family_then_default() {
        let m = masker(&[
            ("pii", Strategy::Hmac),
            ("pii.email", Strategy::Redact),
            ("secret", Strategy::Null),
        ]);
        assert_eq!(m.strategy(C::Email), Strategy::Redact);
        assert_eq!(m.strategy(C::Card), Strategy::Hmac);
        assert_eq!(m.strategy(C::Token), Strategy::Null);
        let defaults = masker(&[]);
        for class in Classification::ALL {
            assert_eq!(defaults.strategy(class), default_strategy(class));
            if class.is_secret() {
                assert_eq!(default_strategy(class), Strategy::Redact);
            }
        }
        let unknown: BTreeMap<String, Strategy> = [("pii.emial".to_owned(), Strategy::Null)].into();
        let err = Masker::new(&unknown, HmacKey::generate().unwrap())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`pii.emial`") && err.contains("pii.email"),
            "{err}"
        );
    }

    #[test]
    fn every_output_is_a_mask_artifact_and_business_text_is_not() {
        let m = masker(&[("pii.birth_date", Strategy::Partial)]);
        let samples = [
            (C::Email, "jane@example.com"),
            (C::Card, "4111111111111111"),
            (C::Phone, "5550104477"),
            (C::Phone, "5-5-5-0-1-0-4-4-7-7"),
            (C::NationalId, "123-45-6789"),
            (C::Account, "GB82WEST12345698765432"),
            (C::BirthDate, "1985-03-14"),
            (C::PersonName, "Ada Lovelace"),
            (C::IpAddress, "10.0.0.1"),
            (C::Token, "eyJhbGciOi"),
        ];
        for (class, value) in samples {
            for strategy in [Strategy::Redact, Strategy::Partial, Strategy::Hmac] {
                let out = m.mask_text(class, strategy, value);
                assert!(is_mask_artifact(&out), "{class} {strategy:?}: {out}");
                assert!(
                    is_mask_artifact(&format!("note: {out}, thanks")),
                    "{class} {strategy:?}: {out}"
                );
            }
        }
        assert!(is_mask_artifact(&redacted(UNRESOLVED)));
        assert!(is_mask_artifact("[REDACTED:PII.EMAIL]"));
        for business in [
            "Order ORD-2024-000123 shipped to the Berlin warehouse",
            "Switched from the annual plan to monthly billing.",
            "a * b = c; 2**8 = 256",
            "token_count=12 tok_budget",
            "tok_0123456789abcdef",
            "",
        ] {
            assert!(!is_mask_artifact(business), "{business}");
        }
    }

    #[test]
    fn key_file_is_private_reused_and_never_silently_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data").join("masking.key");
        let first = load_or_create_key(&path).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text.trim().len(), 2 * GENERATED_KEY_BYTES);
        assert!(text.trim().bytes().all(|b| b.is_ascii_hexdigit()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "mode {mode:o}");
        }
        let second = load_or_create_key(&path).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), text);
        let token = |key: HmacKey| {
            Masker::new(&BTreeMap::new(), key).unwrap().mask_text(
                C::Email,
                Strategy::Hmac,
                "ann@example.com",
            )
        };
        assert_eq!(token(first), token(second));
        assert!(!format!("{:?}", HmacKey::generate().unwrap()).contains(text.trim()));

        fs::write(&path, "  \n").unwrap();
        let err = load_or_create_key(&path).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("masking.key"), "{err}");
    }
}
