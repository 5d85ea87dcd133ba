//! Typed configuration: a TOML file, then `GATEHOUSE_*` environment overrides.
//!
//! Every section denies unknown keys, so a typo fails at start-up with the key's path
//! (`datasources[0].max_row: unknown field`) instead of silently falling back to a default.
//!
//! Environment overrides address a key by its path in upper case, sections separated by a
//! double underscore: `GATEHOUSE_SERVER__HTTP=0.0.0.0:8080`,
//! `GATEHOUSE_AUTH__HS256_SECRET=...`, `GATEHOUSE_DATASOURCES__0__URL=postgres://...`.
//! A value is read as a TOML value when it parses as one (numbers, booleans, arrays) and as a
//! string otherwise. `GATEHOUSE_CONFIG`, `GATEHOUSE_DATA_DIR`, `GATEHOUSE_LOG` and
//! `GATEHOUSE_LOG_FORMAT` are command-line and logging options, and `GATEHOUSE_TEST_*`
//! variables configure the test suite; none of them are configuration keys.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Prefix of environment variables that override configuration keys.
const ENV_PREFIX: &str = "GATEHOUSE_";
/// Variables with this prefix configure the test suite, not the service.
const ENV_TEST_PREFIX: &str = "GATEHOUSE_TEST_";
/// Variables with the prefix that are command-line options, not configuration keys.
const ENV_CLI_OPTIONS: [&str; 4] = [
    "GATEHOUSE_CONFIG",
    "GATEHOUSE_DATA_DIR",
    "GATEHOUSE_LOG",
    "GATEHOUSE_LOG_FORMAT",
];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("configuration file {path} is not valid TOML: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("environment variable {name}: {message}")]
    Env { name: String, message: String },
    #[error("invalid configuration at `{key}`: {message}")]
    Invalid { key: String, message: String },
}

impl ConfigError {
    fn invalid(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::Invalid {
            key: key.into(),
            message: message.into(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub auth: AuthConfig,
    pub store: StoreConfig,
    pub policy: PolicyConfig,
    pub masking: MaskingConfig,
    pub audit: AuditConfig,
    pub approvals: ApprovalsConfig,
    pub redis: RedisConfig,
    pub datasources: Vec<DatasourceConfig>,
}

/// Dynamic masking of query results.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MaskingConfig {
    /// What happens to a statement that filters, joins, groups or orders on a classified
    /// column the caller may not unmask (`WHERE ssn LIKE '123%'` probes masked values), or
    /// computes on one (whether `1 / (ascii(ssn) - 49)` fails probes it too).
    pub predicates: PredicateRule,
    /// The same question for free text that holds some sensitive values without being
    /// classified (an email in some `notes`): `WHERE notes LIKE '%4434 8%'`, grown one
    /// character at a time, or `instr(notes, '4434 8')`, reads out what the output masks.
    /// `deny` refuses conditions and computations on such columns; the default `allow`
    /// keeps `WHERE notes LIKE '%refund%'` usable.
    pub free_text_predicates: PredicateRule,
    /// Rows sampled per table at catalog load to confirm classifications by value
    /// detection; 0 turns sampling off.
    pub sample_rows: u32,
    /// Seconds a datasource's classified catalog is used before it is read (and sampled)
    /// again, to see tables and data changed outside Gatehouse. DDL through Gatehouse
    /// reloads it at once. 0 reads it for every statement and schema request.
    pub catalog_max_age_s: u64,
    /// File holding the key of `hmac` tokens. Default: `masking.key` in the data
    /// directory, generated on first start (mode 0600). Tokens are stable for as long as
    /// the key is.
    pub hmac_key_file: Option<PathBuf>,
    /// Strategy per classification name (`"pii.card" = "partial"`), or per family
    /// (`pii`, `secret`). Unlisted classes use the built-in choice.
    pub strategies: BTreeMap<String, crate::masking::Strategy>,
    /// Classifications set by hand; they win over names, types and sampling.
    pub columns: Vec<MaskedColumnConfig>,
}

impl Default for MaskingConfig {
    fn default() -> Self {
        MaskingConfig {
            predicates: PredicateRule::Deny,
            free_text_predicates: PredicateRule::Allow,
            sample_rows: 50,
            catalog_max_age_s: 60,
            hmac_key_file: None,
            strategies: BTreeMap::new(),
            columns: Vec::new(),
        }
    }
}

/// `[masking] predicates`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PredicateRule {
    Deny,
    Allow,
}

/// One `[[masking.columns]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaskedColumnConfig {
    pub datasource: DatasourceName,
    /// As the catalog names it: `schema.table` on PostgreSQL outside `public`, else `table`.
    pub table: String,
    pub column: String,
    /// A classification name (`pii.email`, `secret.token`, …), or `none` to declare a
    /// column not sensitive whatever its name suggests.
    pub classification: String,
}

/// The audit writer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Most events committed in one transaction (group commit).
    pub max_batch: usize,
    /// Events waiting for the writer before new requests are refused with 503
    /// `audit_unavailable` instead of queueing without bound.
    pub queue_capacity: usize,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            max_batch: 512,
            queue_capacity: 10_000,
        }
    }
}

/// Approval requests.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApprovalsConfig {
    /// How long a request stays open (pending or approved but not run), in seconds.
    pub expiry_s: u64,
    /// Longest `wait_s` a long-poll may ask for.
    pub max_wait_s: u64,
    pub webhooks: Vec<WebhookConfig>,
}

impl Default for ApprovalsConfig {
    fn default() -> Self {
        ApprovalsConfig {
            expiry_s: 3600,
            max_wait_s: 60,
            webhooks: Vec::new(),
        }
    }
}

/// One `[[approvals.webhooks]]` receiver of approval events.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub url: String,
    /// Key of the `x-gatehouse-signature` HMAC-SHA256 header.
    pub secret: String,
}

impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("url", &self.url)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// Redis, shared by replicas for approval events.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisConfig {
    /// `redis://host:port/db`. Unset: events reach only this process's callers.
    pub url: Option<String>,
}

/// Where the Cedar policies come from.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// Policy files that replace the built-in set (policies/default.cedar). Relative
    /// paths are relative to the working directory. Empty: the built-in set.
    pub files: Vec<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address of the REST API.
    pub http: SocketAddr,
    /// Address of the gRPC API.
    pub grpc: SocketAddr,
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            http: SocketAddr::from(([127, 0, 0, 1], 8080)),
            grpc: SocketAddr::from(([127, 0, 0, 1], 50051)),
            max_body_bytes: 1024 * 1024,
        }
    }
}

/// How caller tokens are verified. At most one key source may be set; with none, the
/// HS256 secret generated in the data directory is used (the embedded default).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    pub hs256_secret: Option<String>,
    pub hs256_secret_file: Option<PathBuf>,
    pub public_key_pem_file: Option<PathBuf>,
    pub jwks_url: Option<String>,
    /// How often the JWKS document is fetched again, in seconds.
    pub jwks_refresh_s: u64,
    /// Required `iss` claim, when set.
    pub issuer: Option<String>,
    /// Required `aud` claim, when set.
    pub audience: Option<String>,
    /// Claim holding the caller's groups (array of strings, or one space-separated string).
    pub groups_claim: String,
    /// Claim holding the caller's kind: `human`, `agent` or `service`.
    pub kind_claim: String,
    /// Clock skew tolerated on `exp` and `nbf`, in seconds.
    pub leeway_s: u64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            hs256_secret: None,
            hs256_secret_file: None,
            public_key_pem_file: None,
            jwks_url: None,
            jwks_refresh_s: 300,
            issuer: None,
            audience: None,
            groups_claim: "groups".to_owned(),
            kind_claim: "kind".to_owned(),
            leeway_s: 30,
        }
    }
}

/// The secret is never printed, not even in debug output.
impl fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthConfig")
            .field(
                "hs256_secret",
                &self.hs256_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("hs256_secret_file", &self.hs256_secret_file)
            .field("public_key_pem_file", &self.public_key_pem_file)
            .field("jwks_url", &self.jwks_url)
            .field("jwks_refresh_s", &self.jwks_refresh_s)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("groups_claim", &self.groups_claim)
            .field("kind_claim", &self.kind_claim)
            .field("leeway_s", &self.leeway_s)
            .finish()
    }
}

/// Where tokens are verified from, once the configuration has been checked.
#[derive(Clone)]
pub enum KeySource {
    Hs256Secret(String),
    Hs256SecretFile(PathBuf),
    PublicKeyPemFile(PathBuf),
    JwksUrl(String),
    /// No key configured: the secret generated in the data directory.
    DataDir,
}

impl AuthConfig {
    /// The single configured key source. Two sources at once are a configuration error:
    /// which one wins would otherwise be a guess.
    pub fn key_source(&self) -> Result<KeySource, ConfigError> {
        let mut sources = Vec::new();
        if let Some(secret) = &self.hs256_secret {
            sources.push(("auth.hs256_secret", KeySource::Hs256Secret(secret.clone())));
        }
        if let Some(path) = &self.hs256_secret_file {
            sources.push((
                "auth.hs256_secret_file",
                KeySource::Hs256SecretFile(path.clone()),
            ));
        }
        if let Some(path) = &self.public_key_pem_file {
            sources.push((
                "auth.public_key_pem_file",
                KeySource::PublicKeyPemFile(path.clone()),
            ));
        }
        if let Some(url) = &self.jwks_url {
            sources.push(("auth.jwks_url", KeySource::JwksUrl(url.clone())));
        }
        match sources.len() {
            0 => Ok(KeySource::DataDir),
            1 => Ok(sources.remove(0).1),
            _ => {
                let names: Vec<&str> = sources.iter().map(|(name, _)| *name).collect();
                Err(ConfigError::invalid(
                    names[1],
                    format!("set only one of {}", names.join(", ")),
                ))
            }
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// Control store URL (`postgres://…` or `sqlite://…`). Default: SQLite file
    /// `control.db` in the data directory.
    pub url: Option<String>,
}

/// Environment of a datasource. `dev` is where writes are routine; every other name gets
/// the guarded production rules.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EnvironmentName(String);

impl EnvironmentName {
    pub fn parse(raw: &str) -> Result<Self, String> {
        if is_identifier(raw) {
            Ok(EnvironmentName(raw.to_owned()))
        } else {
            Err(format!(
                "`{raw}` is not a valid environment name (letters, digits, `_`, `-`; 1 to 63 characters, starting with a letter)"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EnvironmentName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for EnvironmentName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        EnvironmentName::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// Name of a datasource as callers write it in requests.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DatasourceName(String);

impl DatasourceName {
    pub fn parse(raw: &str) -> Result<Self, String> {
        if is_identifier(raw) {
            Ok(DatasourceName(raw.to_owned()))
        } else {
            Err(format!(
                "`{raw}` is not a valid datasource name (letters, digits, `_`, `-`; 1 to 63 characters, starting with a letter)"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DatasourceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for DatasourceName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        DatasourceName::parse(&raw).map_err(serde::de::Error::custom)
    }
}

fn is_identifier(raw: &str) -> bool {
    let mut chars = raw.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
        && raw.len() <= 63
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// A connection URL. Kept out of `Debug` and `Display` output because URLs carry passwords.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    pub fn new(url: impl Into<String>) -> Self {
        DatabaseUrl(url.into())
    }

    /// The full URL, credentials included: for opening connections only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL scheme (`postgres`, `mysql`, `sqlite`, …), which names the driver.
    pub fn scheme(&self) -> &str {
        self.0.split_once(':').map_or("", |(scheme, _)| scheme)
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({}://…)", self.scheme())
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasourceConfig {
    pub name: DatasourceName,
    pub environment: EnvironmentName,
    /// Connection URL of the write pool (and of the read pool when `read_url` is unset).
    pub url: DatabaseUrl,
    /// Optional URL of a SELECT-only account for the read pool.
    #[serde(default)]
    pub read_url: Option<DatabaseUrl>,
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
    #[serde(default = "default_statement_timeout_ms")]
    pub statement_timeout_ms: u64,
    #[serde(default = "default_max_rows")]
    pub max_rows: u32,
}

fn default_max_connections() -> u32 {
    8
}
fn default_statement_timeout_ms() -> u64 {
    5_000
}
fn default_max_rows() -> u32 {
    1_000
}

impl Config {
    /// Loads the file (when given), then applies `GATEHOUSE_*` overrides from `env`.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut tree = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                text.parse::<toml::Table>()
                    .map_err(|e| ConfigError::Syntax {
                        path: path.to_owned(),
                        message: e.to_string(),
                    })?
            }
            None => toml::Table::new(),
        };
        let mut overrides: Vec<(String, String)> = env
            .into_iter()
            .filter(|(name, _)| {
                name.starts_with(ENV_PREFIX)
                    && !name.starts_with(ENV_TEST_PREFIX)
                    && !ENV_CLI_OPTIONS.contains(&name.as_str())
            })
            .collect();
        overrides.sort();
        for (name, value) in overrides {
            apply_env_override(&mut tree, &name, &value)?;
        }
        let config: Config = serde_path_to_error::deserialize(toml::Value::Table(tree))
            .map_err(|e| ConfigError::invalid(e.path().to_string(), e.inner().to_string()))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.auth.key_source()?;
        if self.auth.groups_claim.is_empty() {
            return Err(ConfigError::invalid(
                "auth.groups_claim",
                "must not be empty",
            ));
        }
        if self.auth.kind_claim.is_empty() {
            return Err(ConfigError::invalid("auth.kind_claim", "must not be empty"));
        }
        if let Some(url) = &self.store.url
            && !matches!(
                url.split_once(':').map(|(s, _)| s),
                Some("postgres" | "postgresql" | "sqlite")
            )
        {
            return Err(ConfigError::invalid(
                "store.url",
                "must be a postgres:// or sqlite:// URL",
            ));
        }
        let mut names = BTreeSet::new();
        for (i, ds) in self.datasources.iter().enumerate() {
            let key = |field: &str| format!("datasources[{i}].{field}");
            if !names.insert(ds.name.clone()) {
                return Err(ConfigError::invalid(
                    key("name"),
                    format!("datasource `{}` is defined twice", ds.name),
                ));
            }
            for (field, url) in [("url", Some(&ds.url)), ("read_url", ds.read_url.as_ref())] {
                let Some(url) = url else { continue };
                if !matches!(
                    url.scheme(),
                    "postgres" | "postgresql" | "mysql" | "mariadb" | "sqlite"
                ) {
                    return Err(ConfigError::invalid(
                        key(field),
                        format!(
                            "unsupported scheme `{}`: use postgres://, mysql:// (MariaDB) or sqlite://",
                            url.scheme()
                        ),
                    ));
                }
            }
            if let Some(read_url) = &ds.read_url
                && driver_family(read_url.scheme()) != driver_family(ds.url.scheme())
            {
                return Err(ConfigError::invalid(
                    key("read_url"),
                    "must use the same database driver as `url`",
                ));
            }
            if ds.max_connections == 0 {
                return Err(ConfigError::invalid(
                    key("max_connections"),
                    "must be at least 1",
                ));
            }
            if ds.statement_timeout_ms == 0 {
                return Err(ConfigError::invalid(
                    key("statement_timeout_ms"),
                    "must be at least 1",
                ));
            }
            if ds.max_rows == 0 {
                return Err(ConfigError::invalid(key("max_rows"), "must be at least 1"));
            }
        }
        Ok(())
    }
}

fn driver_family(scheme: &str) -> &str {
    match scheme {
        "postgresql" => "postgres",
        "mariadb" => "mysql",
        other => other,
    }
}

/// Writes one `GATEHOUSE_A__B__0__C=value` override into the TOML tree, creating tables
/// (and array elements, in order) on the way.
fn apply_env_override(tree: &mut toml::Table, name: &str, raw: &str) -> Result<(), ConfigError> {
    let env_error = |message: String| ConfigError::Env {
        name: name.to_owned(),
        message,
    };
    let path: Vec<String> = name[ENV_PREFIX.len()..]
        .split("__")
        .map(str::to_ascii_lowercase)
        .collect();
    if path.iter().any(String::is_empty) {
        return Err(env_error(
            "expected GATEHOUSE_SECTION__KEY, with sections separated by `__`".to_owned(),
        ));
    }
    let value = parse_env_value(raw);
    let mut node = tree;
    let mut i = 0;
    while i < path.len() - 1 {
        let segment = &path[i];
        let next_is_index = path[i + 1].parse::<usize>().is_ok();
        if next_is_index {
            let index: usize = path[i + 1].parse().unwrap_or_default();
            let entry = node
                .entry(segment.clone())
                .or_insert_with(|| toml::Value::Array(Vec::new()));
            let toml::Value::Array(items) = entry else {
                return Err(env_error(format!("`{segment}` is not a list")));
            };
            if index > items.len() {
                return Err(env_error(format!(
                    "index {index} of `{segment}` skips elements: the list has {} so far",
                    items.len()
                )));
            }
            if index == items.len() {
                items.push(toml::Value::Table(toml::Table::new()));
            }
            if i + 2 == path.len() {
                items[index] = value;
                return Ok(());
            }
            let toml::Value::Table(table) = &mut items[index] else {
                return Err(env_error(format!("`{segment}[{index}]` is not a table")));
            };
            node = table;
            i += 2;
        } else {
            let entry = node
                .entry(segment.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            let toml::Value::Table(table) = entry else {
                return Err(env_error(format!("`{segment}` is not a section")));
            };
            node = table;
            i += 1;
        }
    }
    node.insert(path[path.len() - 1].clone(), value);
    Ok(())
}

/// `8080` becomes an integer, `true` a boolean, `["a"]` an array; anything that is not a
/// TOML value (a URL, an address) stays a string.
fn parse_env_value(raw: &str) -> toml::Value {
    format!("v = {raw}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gatehouse.toml");
        std::fs::write(&path, text).unwrap();
        Config::load(
            Some(&path),
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )
    }

    #[test]
    fn defaults_without_file() {
        let config = Config::load(None, Vec::new()).unwrap();
        assert_eq!(config.server.http.port(), 8080);
        assert_eq!(config.server.grpc.port(), 50051);
        assert!(config.datasources.is_empty());
        assert!(matches!(
            config.auth.key_source().unwrap(),
            KeySource::DataDir
        ));
        assert_eq!(config.auth.groups_claim, "groups");
    }

    #[test]
    fn unknown_key_is_named() {
        let err = load("[server]\nhtpp = \"127.0.0.1:1\"\n", &[]).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("server"), "{text}");
        assert!(text.contains("htpp"), "{text}");
    }

    #[test]
    fn bad_value_is_named() {
        let text = r#"
[[datasources]]
name = "a"
environment = "dev"
url = "sqlite://a.db"
max_rows = "many"
"#;
        let err = load(text, &[]).unwrap_err().to_string();
        assert!(err.contains("datasources[0].max_rows"), "{err}");
    }

    #[test]
    fn env_overrides_nested_and_list_keys() {
        let text = r#"
[[datasources]]
name = "a"
environment = "dev"
url = "sqlite://a.db"
"#;
        let config = load(
            text,
            &[
                ("GATEHOUSE_SERVER__HTTP", "0.0.0.0:9000"),
                ("GATEHOUSE_DATASOURCES__0__MAX_ROWS", "7"),
                ("GATEHOUSE_AUTH__ISSUER", "https://issuer.example"),
                ("GATEHOUSE_DATA_DIR", "/ignored"),
                ("GATEHOUSE_TEST_POSTGRES_URL", "postgres://ignored"),
            ],
        )
        .unwrap();
        assert_eq!(config.server.http.port(), 9000);
        assert_eq!(config.datasources[0].max_rows, 7);
        assert_eq!(
            config.auth.issuer.as_deref(),
            Some("https://issuer.example")
        );
    }

    #[test]
    fn env_unknown_key_fails() {
        let err = load("", &[("GATEHOUSE_SERVER__NOPE", "1")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("nope"), "{err}");
    }

    #[test]
    fn two_key_sources_fail() {
        let err = load(
            "[auth]\nhs256_secret = \"x\"\njwks_url = \"http://127.0.0.1/jwks\"\n",
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("auth.jwks_url"), "{err}");
    }

    #[test]
    fn duplicate_datasource_and_bad_scheme_fail() {
        let dup = r#"
[[datasources]]
name = "a"
environment = "dev"
url = "sqlite://a.db"
[[datasources]]
name = "a"
environment = "dev"
url = "sqlite://b.db"
"#;
        assert!(
            load(dup, &[])
                .unwrap_err()
                .to_string()
                .contains("defined twice")
        );
        let scheme = "[[datasources]]\nname = \"a\"\nenvironment = \"dev\"\nurl = \"oracle://x\"\n";
        assert!(
            load(scheme, &[])
                .unwrap_err()
                .to_string()
                .contains("unsupported scheme")
        );
    }

    #[test]
    fn urls_do_not_print_credentials() {
        let url = DatabaseUrl::new("postgres://user:hunter2@db/x");
        assert!(!format!("{url:?}").contains("hunter2"));
        let auth = AuthConfig {
            hs256_secret: Some("hunter2".into()),
            ..AuthConfig::default()
        };
        assert!(!format!("{auth:?}").contains("hunter2"));
    }
}
