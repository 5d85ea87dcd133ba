//! Column classification from configuration, names and types, confirmed by sampling.
//!
//! A column's classes come from three places, in this order:
//! 1. `[[masking.columns]]` entries for the datasource. They are final for what they say:
//!    a configured class is never removed, and `none` declares a column not sensitive
//!    whatever its name suggests (nothing is inferred or sampled for it; the value
//!    detectors still run on its values in every result).
//! 2. The column's name and type ([`classify_name`]).
//! 3. Sampling (`masking.sample_rows`): a few rows per table are read at load and the value
//!    detectors run over each text column; a column where at least 30 % of the non-empty
//!    sampled values hold an entity of one class gets that class. Sampling only adds.
//!
//! # Names
//!
//! A name is split into words on `_`, `-`, spaces and camelCase boundaries (`emailAddress`,
//! `IPAddress`, `userID`), trailing digits dropped (`address1`, `ipv4`), and a few glued
//! compounds split (`firstname`, `dateofbirth`). The class comes from the *head*, the last
//! word, the way English compounds work: `billing_address` is an address but
//! `address_id`, `address_type`, `email_verified`, `phone_count`, `token_expires_at` and
//! `tokens_used` are not, so ids, counts, flags and timestamps need no special list. A few
//! qualifiers may follow the head (`phone_number`, `password_hash`, `address_line_1`,
//! `phone_e164`). Multi-word phrases beat single words (`ip_address` is an IP address,
//! `email_address` an email, `mac_address` nothing). Names that start with a counting or
//! flag word (`is_`, `has_`, `num_`, `total_`, …) are never classified.
//!
//! A bare `name` (or `display_name`) is a person's name only on a table whose own name says
//! it holds people (`customers`, `users`, `employees`, `people`, `contacts`, …): a product's
//! `name` is not personal data. Explicit person phrases (`first_name`, `customer_name`,
//! `cardholder_name`) count on any table.
//!
//! The type must fit the class: booleans are never classified; numbers only for classes
//! people do store as numbers (phone, national id, card, account, postcode, IPv4, birth
//! date); dates and times only for a birth date; UUIDs only for tokens and keys. A
//! PostgreSQL `inet` column is an IP address by type alone.
//!
//! # Names of tables and columns
//!
//! [`MaskCatalog::classes`] takes an [`intent::TableName`](crate::intent::TableName), which
//! is normalised the way the engine compares names, and resolves the default schema
//! (`public.x` on PostgreSQL, `main.x` on SQLite, `<current database>.x` on MariaDB).
//! PostgreSQL compares table and column names as the catalog stores them (case-sensitive);
//! MariaDB and SQLite compare them case-insensitively. PostgreSQL's catalog writes a table
//! outside `public` as `schema.table`, which cannot be told apart from a `public` table
//! whose own name holds a dot; such a name is registered (and sampled) under both readings
//! (the real `schema.table` first), so a lookup may over-mask but never misses.

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

use crate::config::{DatasourceName, MaskingConfig};
use crate::datasource::{Access, Datasource, Driver, ExecError, QueryResult, TableSchema, Value};
use crate::intent::TableName;
use crate::masking::{Classification, detect};

/// Share of non-empty sampled values that must hold an entity of one class for sampling to
/// give the column that class, in tenths: 3 is 30 %. Low enough that a column of mostly
/// emails with some blanks or junk still counts; high enough that a `notes` column where
/// one customer in five left a phone number does not get wholly redacted (the value
/// detectors mask those spans in every result anyway).
const SAMPLE_SHARE_TENTHS: usize = 3;

/// What the name and type of a column say about its content, or `None`. `table` is the
/// table's name as the catalog gives it (it decides whether a bare `name` is a person's);
/// `type_name` uses the vocabulary of [`crate::datasource::Column::type_name`].
pub fn classify_name(table: &str, column: &str, type_name: &str) -> Option<Classification> {
    let words = words(column);
    if is_flag_like(&words) {
        return None;
    }
    let kind = TypeKind::of(type_name);
    let class = match head_phrase(&words) {
        Some(Meaning::Class(class)) => class,
        Some(Meaning::NameOfTable) if holds_people(table) => Classification::PersonName,
        Some(Meaning::NameOfTable | Meaning::NotSensitive) => return None,
        None if kind == TypeKind::Network => Classification::IpAddress,
        None => return None,
    };
    kind.fits(class).then_some(class)
}

/// The broad family of a column type, enough to tell whether a class can live in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TypeKind {
    Bool,
    Numeric,
    Temporal,
    Uuid,
    Bytes,
    /// PostgreSQL `inet` and `cidr`.
    Network,
    /// Text, JSON, enums, unknown and untyped (a SQLite column declared without a type):
    /// anything may be in there.
    Text,
}

impl TypeKind {
    fn of(type_name: &str) -> TypeKind {
        let lower = type_name.trim().to_ascii_lowercase();
        // The element type decides for arrays; sizes and `unsigned` do not matter.
        let base = lower.trim_end_matches("[]");
        let base = base.split('(').next().unwrap_or(base);
        let base = base.trim_end_matches(" unsigned").trim();
        match base {
            "bool" | "boolean" | "bit" | "tinyint" => TypeKind::Bool,
            "int2" | "int4" | "int8" | "smallint" | "mediumint" | "int" | "integer" | "bigint"
            | "float4" | "float8" | "real" | "double" | "double precision" | "float"
            | "numeric" | "decimal" | "money" | "oid" | "year" => TypeKind::Numeric,
            "date" | "time" | "timetz" | "timestamp" | "timestamptz" | "datetime" | "interval" => {
                TypeKind::Temporal
            }
            "uuid" => TypeKind::Uuid,
            // Spatial types are binary too: MariaDB's `CAST(… AS CHAR)` of one is not text.
            "bytea" | "blob" | "tinyblob" | "mediumblob" | "longblob" | "binary" | "varbinary"
            | "geometry" | "point" | "linestring" | "polygon" | "multipoint"
            | "multilinestring" | "multipolygon" | "geometrycollection" => TypeKind::Bytes,
            "inet" | "cidr" => TypeKind::Network,
            // SQLite's affinity rule: a declared type containing INT is an integer column.
            other if other.contains("int") && !other.contains("point") => TypeKind::Numeric,
            _ => TypeKind::Text,
        }
    }

    /// Whether a value of `class` can be stored in a column of this kind.
    fn fits(self, class: Classification) -> bool {
        use Classification as C;
        match self {
            TypeKind::Bool => false,
            TypeKind::Text | TypeKind::Bytes => true,
            TypeKind::Numeric => matches!(
                class,
                C::Phone
                    | C::NationalId
                    | C::Card
                    | C::Account
                    | C::Address
                    | C::IpAddress
                    | C::BirthDate
            ),
            TypeKind::Temporal => class == C::BirthDate,
            TypeKind::Uuid => matches!(class, C::Token | C::ApiKey),
            TypeKind::Network => class == C::IpAddress,
        }
    }

    /// Columns whose values the value detectors can read as text.
    fn is_sampled(self) -> bool {
        self == TypeKind::Text
    }
}

/// Whether a result column of type `type_name` carries text or bytes (or an unknown type):
/// values a transformation of free text can hide an entity in.
pub fn is_stringish(type_name: &str) -> bool {
    type_name.trim().is_empty()
        || type_name.eq_ignore_ascii_case("null")
        || matches!(TypeKind::of(type_name), TypeKind::Text | TypeKind::Bytes)
}

/// What a phrase at the head of a name means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Meaning {
    Class(Classification),
    /// A phrase that looks like a class but is not one (`mac_address`).
    NotSensitive,
    /// A person's name only on a table of people (`name`, `display_name`).
    NameOfTable,
}

/// Phrases that end at the head of a name. The longest phrase that matches wins.
const PHRASES: &[(&[&str], Meaning)] = {
    use Classification as C;
    use Meaning::{Class, NameOfTable, NotSensitive};
    &[
        (&["email"], Class(C::Email)),
        (&["mail"], Class(C::Email)),
        (&["e", "mail"], Class(C::Email)),
        (&["email", "address"], Class(C::Email)),
        (&["email", "addr"], Class(C::Email)),
        (&["mail", "address"], Class(C::Email)),
        (&["phone"], Class(C::Phone)),
        (&["mobile"], Class(C::Phone)),
        (&["tel"], Class(C::Phone)),
        (&["fax"], Class(C::Phone)),
        (&["msisdn"], Class(C::Phone)),
        (&["ssn"], Class(C::NationalId)),
        (&["social", "security"], Class(C::NationalId)),
        (&["national", "id"], Class(C::NationalId)),
        (&["national", "identifier"], Class(C::NationalId)),
        (&["national", "insurance"], Class(C::NationalId)),
        (&["nin"], Class(C::NationalId)),
        (&["nino"], Class(C::NationalId)),
        (&["tax", "id"], Class(C::NationalId)),
        (&["taxpayer", "id"], Class(C::NationalId)),
        (&["passport"], Class(C::NationalId)),
        (&["driver", "license"], Class(C::NationalId)),
        (&["drivers", "license"], Class(C::NationalId)),
        (&["driver", "licence"], Class(C::NationalId)),
        (&["driving", "licence"], Class(C::NationalId)),
        (&["card"], Class(C::Card)),
        (&["card", "number"], Class(C::Card)),
        (&["pan"], Class(C::Card)),
        (&["cc", "number"], Class(C::Card)),
        (&["cc", "num"], Class(C::Card)),
        (&["cc", "no"], Class(C::Card)),
        (&["ccnum"], Class(C::Card)),
        (&["iban"], Class(C::Account)),
        (&["account", "number"], Class(C::Account)),
        (&["account", "num"], Class(C::Account)),
        (&["account", "no"], Class(C::Account)),
        (&["acct", "number"], Class(C::Account)),
        (&["acct", "num"], Class(C::Account)),
        (&["acct", "no"], Class(C::Account)),
        (&["bank", "account"], Class(C::Account)),
        (&["routing"], Class(C::Account)),
        (&["sort", "code"], Class(C::Account)),
        (&["birth", "date"], Class(C::BirthDate)),
        (&["date", "of", "birth"], Class(C::BirthDate)),
        (&["dob"], Class(C::BirthDate)),
        (&["birthday"], Class(C::BirthDate)),
        (&["birth", "day"], Class(C::BirthDate)),
        (&["address"], Class(C::Address)),
        (&["addr"], Class(C::Address)),
        (&["street"], Class(C::Address)),
        (&["zip"], Class(C::Address)),
        (&["zip", "code"], Class(C::Address)),
        (&["post", "code"], Class(C::Address)),
        (&["postal", "code"], Class(C::Address)),
        (&["mac", "address"], NotSensitive),
        (&["mac", "addr"], NotSensitive),
        (&["wallet", "address"], NotSensitive),
        (&["contract", "address"], NotSensitive),
        (&["server", "address"], NotSensitive),
        (&["host", "address"], NotSensitive),
        (&["web", "address"], NotSensitive),
        (&["memory", "address"], NotSensitive),
        (&["hardware", "address"], NotSensitive),
        (&["network", "address"], NotSensitive),
        (&["bind", "address"], NotSensitive),
        (&["listen", "address"], NotSensitive),
        (&["broadcast", "address"], NotSensitive),
        (&["multicast", "address"], NotSensitive),
        (&["gateway", "address"], NotSensitive),
        (&["proxy", "address"], NotSensitive),
        (&["ip"], Class(C::IpAddress)),
        (&["ip", "address"], Class(C::IpAddress)),
        (&["ip", "addr"], Class(C::IpAddress)),
        (&["remote", "addr"], Class(C::IpAddress)),
        (&["remote", "address"], Class(C::IpAddress)),
        (&["name"], NameOfTable),
        (&["display", "name"], NameOfTable),
        (&["first", "name"], Class(C::PersonName)),
        (&["last", "name"], Class(C::PersonName)),
        (&["full", "name"], Class(C::PersonName)),
        (&["given", "name"], Class(C::PersonName)),
        (&["family", "name"], Class(C::PersonName)),
        (&["middle", "name"], Class(C::PersonName)),
        (&["maiden", "name"], Class(C::PersonName)),
        (&["surname"], Class(C::PersonName)),
        (&["forename"], Class(C::PersonName)),
        (&["person", "name"], Class(C::PersonName)),
        (&["customer", "name"], Class(C::PersonName)),
        (&["contact", "name"], Class(C::PersonName)),
        (&["employee", "name"], Class(C::PersonName)),
        (&["patient", "name"], Class(C::PersonName)),
        (&["holder", "name"], Class(C::PersonName)),
        (&["cardholder", "name"], Class(C::PersonName)),
        (&["cardholder"], Class(C::PersonName)),
        (&["recipient", "name"], Class(C::PersonName)),
        (&["sender", "name"], Class(C::PersonName)),
        (&["beneficiary", "name"], Class(C::PersonName)),
        (&["billing", "name"], Class(C::PersonName)),
        (&["shipping", "name"], Class(C::PersonName)),
        (&["password"], Class(C::Password)),
        (&["passwd"], Class(C::Password)),
        (&["pwd"], Class(C::Password)),
        (&["passphrase"], Class(C::Password)),
        (&["pass", "phrase"], Class(C::Password)),
        (&["token"], Class(C::Token)),
        (&["session"], Class(C::Token)),
        (&["session", "id"], Class(C::Token)),
        (&["session", "key"], Class(C::Token)),
        (&["secret"], Class(C::Token)),
        (&["jwt"], Class(C::Token)),
        (&["bearer"], Class(C::Token)),
        (&["api", "key"], Class(C::ApiKey)),
        (&["access", "key"], Class(C::ApiKey)),
        (&["secret", "key"], Class(C::ApiKey)),
        (&["secret", "access", "key"], Class(C::ApiKey)),
        (&["private", "key"], Class(C::PrivateKey)),
        (&["ssh", "key"], Class(C::PrivateKey)),
        (&["ssh", "private", "key"], Class(C::PrivateKey)),
        (&["signing", "key"], Class(C::PrivateKey)),
        (&["tls", "key"], Class(C::PrivateKey)),
        (&["ssl", "key"], Class(C::PrivateKey)),
    ]
};

/// Words that may follow the head without changing what the column holds.
const QUALIFIERS: &[&str] = &[
    "number",
    "no",
    "num",
    "nr",
    "line",
    "hash",
    "hashed",
    "digest",
    "enc",
    "encrypted",
    "cipher",
    "ciphertext",
    "plain",
    "plaintext",
    "raw",
    "text",
    "value",
    "val",
    "str",
    "string",
    "full",
    "primary",
    "secondary",
    "alt",
    "alternate",
    "home",
    "work",
    "personal",
    "e",
    "normalized",
    "normalised",
];

/// First words that make a column a flag or a count about something rather than the thing
/// (`is_email_verified`, `has_phone`, `num_emails`, `total_tokens`).
const FLAG_WORDS: &[&str] = &[
    "is", "has", "have", "num", "n", "nb", "count", "total", "max", "min", "avg", "sum", "can",
    "allow", "allows", "use", "uses", "needs", "requires", "enable", "enabled",
];

/// Glued compounds, split into the words the phrases use.
const COMPOUNDS: &[(&str, &[&str])] = &[
    ("emailaddress", &["email", "address"]),
    ("firstname", &["first", "name"]),
    ("lastname", &["last", "name"]),
    ("fullname", &["full", "name"]),
    ("givenname", &["given", "name"]),
    ("familyname", &["family", "name"]),
    ("middlename", &["middle", "name"]),
    ("displayname", &["display", "name"]),
    ("phonenumber", &["phone", "number"]),
    ("mobilenumber", &["mobile", "number"]),
    ("telephone", &["phone"]),
    ("cellphone", &["phone"]),
    ("creditcard", &["card"]),
    ("debitcard", &["card"]),
    ("cardnumber", &["card", "number"]),
    ("birthdate", &["birth", "date"]),
    ("dateofbirth", &["date", "of", "birth"]),
    ("ipaddress", &["ip", "address"]),
    ("ipaddr", &["ip", "addr"]),
    ("ipv", &["ip"]),
    ("apikey", &["api", "key"]),
    ("accesskey", &["access", "key"]),
    ("secretkey", &["secret", "key"]),
    ("privatekey", &["private", "key"]),
    ("privkey", &["private", "key"]),
    ("accesstoken", &["token"]),
    ("refreshtoken", &["token"]),
    ("authtoken", &["token"]),
    ("sessionid", &["session", "id"]),
    ("zipcode", &["zip", "code"]),
    ("postcode", &["post", "code"]),
    ("postalcode", &["postal", "code"]),
    ("accountnumber", &["account", "number"]),
    ("bankaccount", &["bank", "account"]),
    ("taxid", &["tax", "id"]),
    ("nationalid", &["national", "id"]),
    ("passwordhash", &["password", "hash"]),
];

/// Last words of table names that say the table holds people.
const PEOPLE_TABLES: &[&str] = &[
    "customer",
    "user",
    "employee",
    "person",
    "people",
    "contact",
    "member",
    "patient",
    "student",
    "client",
    "staff",
    "author",
    "applicant",
    "subscriber",
    "guest",
    "passenger",
    "driver",
    "owner",
    "recipient",
    "beneficiary",
    "candidate",
    "lead",
    "profile",
    "teacher",
    "participant",
    "attendee",
    "resident",
    "borrower",
    "cardholder",
    "holder",
    "account_holder",
    "volunteer",
    "buyer",
    "seller",
    "shopper",
    "traveler",
    "traveller",
    "visitor",
];

/// The words of an identifier, lower case: split on non-alphanumerics and camelCase
/// boundaries, trailing digits dropped, glued compounds split.
fn words(name: &str) -> Vec<String> {
    let chars: Vec<char> = name.chars().collect();
    let mut raw: Vec<String> = Vec::new();
    let mut current = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if !c.is_alphanumeric() {
            raw.push(std::mem::take(&mut current));
            continue;
        }
        if c.is_uppercase() && !current.is_empty() {
            let prev = chars[i - 1];
            let next_is_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            if prev.is_lowercase() || prev.is_numeric() || (prev.is_uppercase() && next_is_lower) {
                raw.push(std::mem::take(&mut current));
            }
        }
        current.extend(c.to_lowercase());
    }
    raw.push(current);
    let mut words = Vec::with_capacity(raw.len());
    for word in raw {
        let word = word.trim_end_matches(|c: char| c.is_numeric());
        if word.is_empty() {
            continue;
        }
        match COMPOUNDS.iter().find(|(glued, _)| *glued == word) {
            Some((_, parts)) => words.extend(parts.iter().map(|p| (*p).to_owned())),
            None => words.push(word.to_owned()),
        }
    }
    words
}

fn is_flag_like(words: &[String]) -> bool {
    words
        .first()
        .is_some_and(|first| words.len() > 1 && FLAG_WORDS.contains(&first.as_str()))
}

/// The meaning of the longest phrase ending at the head of `words`, the head being the last
/// word that is not a qualifier.
fn head_phrase(words: &[String]) -> Option<Meaning> {
    for end in (1..=words.len()).rev() {
        if let Some(meaning) = phrase_ending_at(&words[..end]) {
            return Some(meaning);
        }
        if !QUALIFIERS.contains(&words[end - 1].as_str()) {
            return None;
        }
    }
    None
}

fn phrase_ending_at(words: &[String]) -> Option<Meaning> {
    let (head, before) = words.split_last()?;
    let heads = singulars(head);
    PHRASES
        .iter()
        .filter(|(phrase, _)| {
            let Some((last, rest)) = phrase.split_last() else {
                return false;
            };
            rest.len() <= before.len()
                && heads.iter().any(|h| h == last)
                && before[before.len() - rest.len()..]
                    .iter()
                    .zip(rest.iter())
                    .all(|(w, p)| w == p)
        })
        .max_by_key(|(phrase, _)| phrase.len())
        .map(|(_, meaning)| *meaning)
}

/// A word and its likely singulars (`emails`, `addresses`, `ips`).
fn singulars(word: &str) -> Vec<&str> {
    let mut forms = vec![word];
    if let Some(stem) = word.strip_suffix("es") {
        forms.push(stem);
    }
    if let Some(stem) = word.strip_suffix('s') {
        forms.push(stem);
    }
    forms
}

/// Whether a table's name says it holds people: its last word, singular or not, or the
/// whole name (`account_holder`), is in [`PEOPLE_TABLES`].
fn holds_people(table: &str) -> bool {
    let unqualified = table.rsplit('.').next().unwrap_or(table);
    let unqualified = unqualified.trim_matches('"');
    let lower = unqualified.to_lowercase();
    if PEOPLE_TABLES.contains(&lower.as_str()) {
        return true;
    }
    let words = words(unqualified);
    words.last().is_some_and(|last| {
        singulars(last)
            .iter()
            .any(|form| PEOPLE_TABLES.contains(form))
    })
}

/// A `[[masking.columns]]` entry that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error(
        "[[masking.columns]] entry datasource `{datasource}`, table `{table}`, column `{column}`: unknown classification `{name}`; use `none` or one of: {}",
        known_classes()
    )]
    UnknownClassification {
        datasource: String,
        table: String,
        column: String,
        name: String,
    },
    #[error(
        "[[masking.columns]] entries for datasource `{datasource}`, table `{table}`, column `{column}` say both `none` and `{classes}`; keep one"
    )]
    Contradiction {
        datasource: String,
        table: String,
        column: String,
        classes: String,
    },
    /// Reading the catalog failed. Sampling failures are not errors (they are logged).
    #[error("cannot read the catalog of datasource `{datasource}`: {source}")]
    Catalog {
        datasource: String,
        #[source]
        source: ExecError,
    },
}

fn known_classes() -> String {
    Classification::ALL
        .iter()
        .map(|c| c.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Checks every `[[masking.columns]]` entry of every datasource, without contacting any
/// database: start-up calls it so that a typo fails fast even when a database is down.
pub fn check_columns(config: &MaskingConfig) -> Result<(), CatalogError> {
    let mut seen: HashMap<(&str, &str, &str), Declared> = HashMap::new();
    for entry in &config.columns {
        let declared = Declared::parse(
            entry.datasource.as_str(),
            &entry.table,
            &entry.column,
            &entry.classification,
        )?;
        let key = (
            entry.datasource.as_str(),
            entry.table.as_str(),
            entry.column.as_str(),
        );
        let merged = match seen.remove(&key) {
            Some(before) => before.merge(declared, key)?,
            None => declared,
        };
        seen.insert(key, merged);
    }
    Ok(())
}

/// What configuration says about one column.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Declared {
    NotSensitive,
    Classes(BTreeSet<Classification>),
}

impl Declared {
    fn parse(
        datasource: &str,
        table: &str,
        column: &str,
        name: &str,
    ) -> Result<Declared, CatalogError> {
        if name == "none" {
            return Ok(Declared::NotSensitive);
        }
        Classification::parse(name)
            .map(|class| Declared::Classes(BTreeSet::from([class])))
            .ok_or_else(|| CatalogError::UnknownClassification {
                datasource: datasource.to_owned(),
                table: table.to_owned(),
                column: column.to_owned(),
                name: name.to_owned(),
            })
    }

    fn merge(
        self,
        other: Declared,
        (datasource, table, column): (&str, &str, &str),
    ) -> Result<Declared, CatalogError> {
        match (self, other) {
            (Declared::NotSensitive, Declared::NotSensitive) => Ok(Declared::NotSensitive),
            (Declared::Classes(mut a), Declared::Classes(b)) => {
                a.extend(b);
                Ok(Declared::Classes(a))
            }
            (Declared::Classes(classes), Declared::NotSensitive)
            | (Declared::NotSensitive, Declared::Classes(classes)) => {
                Err(CatalogError::Contradiction {
                    datasource: datasource.to_owned(),
                    table: table.to_owned(),
                    column: column.to_owned(),
                    classes: classes
                        .iter()
                        .map(|c| c.as_str())
                        .collect::<Vec<_>>()
                        .join("`, `"),
                })
            }
        }
    }
}

/// One column of a [`MaskCatalog`] table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogColumn {
    name: String,
    type_name: String,
    nullable: bool,
    classes: Vec<Classification>,
    /// Classes the value detectors found in some sampled values, too few to classify the
    /// column (free text that sometimes holds an email). Spans in stored values are masked
    /// by the detectors; a *computed* value over such a column (`reverse(notes)`,
    /// `hex(notes)`) hides them from the detectors, so it is redacted instead.
    embedded: Vec<Classification>,
    /// Set by `[[masking.columns]] classification = "none"`: nothing is added to it.
    declared_none: bool,
}

impl CatalogColumn {
    /// As the catalog gives it.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn type_name(&self) -> &str {
        &self.type_name
    }

    pub fn nullable(&self) -> bool {
        self.nullable
    }

    /// Sorted, no duplicates; empty when nothing marks the column sensitive.
    pub fn classes(&self) -> &[Classification] {
        &self.classes
    }

    fn add(&mut self, class: Classification) {
        if let Err(at) = self.classes.binary_search(&class) {
            self.classes.insert(at, class);
        }
    }
}

/// One table or view of a [`MaskCatalog`], columns in catalog order.
#[derive(Debug, Clone)]
pub struct CatalogTable {
    name: String,
    columns: Vec<CatalogColumn>,
    /// Column key (see [`MaskCatalog::column_key`]) → index in `columns`.
    by_column: HashMap<String, usize>,
}

impl CatalogTable {
    /// As the catalog gives it: `schema.table` on PostgreSQL outside `public`, else `table`.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn columns(&self) -> &[CatalogColumn] {
        &self.columns
    }
}

/// The classified columns of one datasource: what the gateway, column lineage and the
/// schema endpoint ask about tables and columns. Built once per datasource by
/// [`MaskCatalog::load`]; immutable afterwards.
#[derive(Debug, Clone)]
pub struct MaskCatalog {
    driver: Driver,
    /// MariaDB's current database, folded like a table name, so `shop.orders` finds `orders`.
    database: Option<String>,
    tables: Vec<CatalogTable>,
    /// Table key → index in `tables`.
    by_table: HashMap<String, usize>,
    /// Configured columns of tables or columns the catalog does not list (yet): their
    /// classes still apply to lookups, so a table created after load is not unmasked by
    /// omission. (Table key, column key) → classes.
    configured_elsewhere: HashMap<(String, String), Vec<Classification>>,
}

impl MaskCatalog {
    /// Reads the datasource's catalog, classifies every column (configuration, then name
    /// and type), then samples `config.sample_rows` rows per table when that is not 0.
    /// A table whose sample cannot be read keeps its name-based classes and is logged.
    #[tracing::instrument(level = "debug", skip_all, fields(datasource = %datasource.name()))]
    pub async fn load(
        datasource: &Datasource,
        config: &MaskingConfig,
    ) -> Result<MaskCatalog, CatalogError> {
        let catalog_error = |source| CatalogError::Catalog {
            datasource: datasource.name().to_string(),
            source,
        };
        check_columns(config)?;
        let tables = datasource.schema().await.map_err(catalog_error)?;
        let database = match datasource.driver() {
            Driver::MySql => current_database(datasource).await.map_err(catalog_error)?,
            Driver::Postgres | Driver::Sqlite => None,
        };
        let mut catalog = MaskCatalog::from_schema(
            datasource.driver(),
            datasource.name(),
            database.as_deref(),
            tables,
            config,
        )?;
        if config.sample_rows > 0 {
            catalog.sample(datasource, config.sample_rows).await;
        }
        Ok(catalog)
    }

    /// Classifies `tables` by configuration, names and types, without sampling.
    /// `database` is MariaDB's current database (for `<db>.table` lookups).
    pub fn from_schema(
        driver: Driver,
        datasource: &DatasourceName,
        database: Option<&str>,
        tables: Vec<TableSchema>,
        config: &MaskingConfig,
    ) -> Result<MaskCatalog, CatalogError> {
        let mut catalog = MaskCatalog {
            driver,
            database: database.map(|db| fold_table(driver, db)),
            tables: Vec::with_capacity(tables.len()),
            by_table: HashMap::new(),
            configured_elsewhere: HashMap::new(),
        };
        for table in tables {
            let columns: Vec<CatalogColumn> = table
                .columns
                .into_iter()
                .map(|column| CatalogColumn {
                    classes: classify_name(&table.name, &column.name, &column.type_name)
                        .into_iter()
                        .collect(),
                    name: column.name,
                    type_name: column.type_name,
                    nullable: column.nullable,
                    embedded: Vec::new(),
                    declared_none: false,
                })
                .collect();
            let by_column = columns
                .iter()
                .enumerate()
                .map(|(i, c)| (catalog.column_key(&c.name), i))
                .collect();
            let index = catalog.tables.len();
            let keys = catalog.table_keys(&table.name);
            catalog.tables.push(CatalogTable {
                name: table.name,
                columns,
                by_column,
            });
            for key in keys {
                catalog.by_table.entry(key).or_insert(index);
            }
        }
        catalog.apply_config(datasource, config)?;
        Ok(catalog)
    }

    /// The database engine, which decides how names compare.
    pub fn driver(&self) -> Driver {
        self.driver
    }

    /// The classes of `table.column`; empty when the column is not sensitive or unknown.
    /// `column` is compared the way the engine compares column names.
    pub fn classes(&self, table: &TableName, column: &str) -> &[Classification] {
        if let Some(found) = self.column(table, column) {
            return found.classes();
        }
        let table_key = self.resolved_key(table.as_str());
        self.configured_elsewhere
            .get(&(table_key, self.column_key(column)))
            .map_or(&[], Vec::as_slice)
    }

    /// The catalog's entry for `table.column`, when it lists one.
    fn column(&self, table: &TableName, column: &str) -> Option<&CatalogColumn> {
        let column_key = self.column_key(column);
        self.find_table(table.as_str())
            .and_then(|t| t.by_column.get(&column_key).map(|&i| &t.columns[i]))
    }

    /// Whether `table.column` holds text that nothing classified: free text, in which the
    /// value detectors are the only protection. A configured `none` is a promise that it
    /// holds nothing sensitive, so it is not free text in this sense. Unknown columns are.
    pub fn is_free_text(&self, table: &TableName, column: &str) -> bool {
        self.column(table, column).is_none_or(|c| {
            !c.declared_none
                && c.classes.is_empty()
                && matches!(TypeKind::of(&c.type_name), TypeKind::Text | TypeKind::Bytes)
        })
    }

    /// Classes found inside some sampled values of `table.column` without classifying it
    /// (see `CatalogColumn::embedded`).
    pub fn embedded(&self, table: &TableName, column: &str) -> &[Classification] {
        self.column(table, column)
            .map_or(&[], |c| c.embedded.as_slice())
    }

    /// The columns of `table` in catalog order (what `*` expands to), or `None` when the
    /// catalog does not know the table.
    pub fn columns(&self, table: &TableName) -> Option<Vec<String>> {
        self.find_table(table.as_str())
            .map(|t| t.columns.iter().map(|c| c.name.clone()).collect())
    }

    /// Every table and view, in catalog order, with its classified columns.
    pub fn tables(&self) -> impl Iterator<Item = &CatalogTable> {
        self.tables.iter()
    }

    fn find_table(&self, name: &str) -> Option<&CatalogTable> {
        let key = self.resolved_key(name);
        self.by_table.get(&key).map(|&i| &self.tables[i])
    }

    /// `name` (a normalised table name) without the default schema, when it has it and the
    /// unqualified name is not itself a catalog key.
    fn resolved_key(&self, name: &str) -> String {
        let name = fold_table(self.driver, name);
        if self.by_table.contains_key(&name) {
            return name;
        }
        let default = match self.driver {
            Driver::Postgres => Some("public"),
            Driver::Sqlite => Some("main"),
            Driver::MySql => self.database.as_deref(),
        };
        default
            .and_then(|schema| name.strip_prefix(schema))
            .and_then(|rest| rest.strip_prefix('.'))
            .map_or(name.clone(), str::to_owned)
    }

    /// The keys a catalog table name is found under: the name as [`TableName`] would
    /// normalise it (parts holding `.` or `"` quoted), under both readings of a
    /// PostgreSQL name with a dot (see the module docs).
    fn table_keys(&self, catalog_name: &str) -> Vec<String> {
        match self.driver {
            Driver::Postgres => match catalog_name.split_once('.') {
                Some((schema, table)) => vec![
                    format!("{}.{}", render_part(schema), render_part(table)),
                    render_part(catalog_name),
                ],
                None => vec![render_part(catalog_name)],
            },
            Driver::MySql | Driver::Sqlite => {
                vec![fold_table(self.driver, &render_part(catalog_name))]
            }
        }
    }

    /// PostgreSQL compares column names exactly; MariaDB and SQLite ignore case.
    fn column_key(&self, column: &str) -> String {
        match self.driver {
            Driver::Postgres => column.to_owned(),
            Driver::MySql | Driver::Sqlite => column.to_lowercase(),
        }
    }

    /// Applies the datasource's `[[masking.columns]]` entries: what they declare replaces
    /// what the name said (several entries for one column add up).
    fn apply_config(
        &mut self,
        datasource: &DatasourceName,
        config: &MaskingConfig,
    ) -> Result<(), CatalogError> {
        // Grouped by resolved table and column key, so `customers` and `public.customers`
        // are one column; the table is kept as written for lookups and messages.
        let mut declared: Vec<((String, String), String, Declared)> = Vec::new();
        for entry in config
            .columns
            .iter()
            .filter(|e| e.datasource.as_str() == datasource.as_str())
        {
            let this = Declared::parse(
                datasource.as_str(),
                &entry.table,
                &entry.column,
                &entry.classification,
            )?;
            let table_key = self
                .table_keys(&entry.table)
                .first()
                .map(|k| self.resolved_key(k))
                .unwrap_or_default();
            let key = (table_key, self.column_key(&entry.column));
            match declared.iter_mut().find(|(k, _, _)| *k == key) {
                Some((_, _, before)) => {
                    let merged = std::mem::replace(before, Declared::NotSensitive)
                        .merge(this, (datasource.as_str(), &entry.table, &entry.column))?;
                    *before = merged;
                }
                None => declared.push((key, entry.table.clone(), this)),
            }
        }
        for ((table_key, column_key), table, declared) in declared {
            let keys = self.table_keys(&table);
            let found = keys.iter().find_map(|key| {
                let &t = self.by_table.get(&self.resolved_key(key))?;
                let &c = self.tables[t].by_column.get(&column_key)?;
                Some((t, c))
            });
            let classes: Vec<Classification> = match &declared {
                Declared::NotSensitive => Vec::new(),
                Declared::Classes(classes) => classes.iter().copied().collect(),
            };
            match found {
                Some((t, c)) => {
                    let column = &mut self.tables[t].columns[c];
                    column.classes = classes;
                    column.declared_none = declared == Declared::NotSensitive;
                }
                None => {
                    tracing::warn!(
                        datasource = %datasource,
                        table = %table,
                        column = %column_key,
                        "[[masking.columns]] names a column the catalog does not list; it applies if the column appears"
                    );
                    if !classes.is_empty() {
                        self.configured_elsewhere
                            .insert((table_key, column_key), classes);
                    }
                }
            }
        }
        Ok(())
    }

    /// Reads up to `rows` rows of every table's text columns and adds the classes the value
    /// detectors find often enough (see [`SAMPLE_SHARE_TENTHS`]).
    async fn sample(&mut self, datasource: &Datasource, rows: u32) {
        let started = Instant::now();
        let mut added = 0usize;
        let mut failed = 0usize;
        for t in 0..self.tables.len() {
            let Some((statements, sampled)) = self.sample_statement(t, rows) else {
                continue;
            };
            let mut outcome = None;
            for sql in &statements {
                outcome = Some(datasource.execute(Access::Read, sql, &[], rows).await);
                if matches!(outcome, Some(Ok(_))) {
                    break;
                }
            }
            match outcome {
                None => {}
                Some(Ok(result)) => added += self.apply_sample(t, &sampled, &result),
                Some(Err(error)) => {
                    failed += 1;
                    tracing::warn!(
                        datasource = %datasource.name(),
                        table = %self.tables[t].name,
                        %error,
                        "cannot sample the table; its columns stay classified by name only"
                    );
                }
            }
        }
        tracing::info!(
            datasource = %datasource.name(),
            tables = self.tables.len(),
            failed,
            classes_added = added,
            elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "sampled the catalog for masking"
        );
    }

    /// The sampling statement of table `t` (two, for the two readings of a PostgreSQL
    /// name with a dot, tried in order) and the indexes of the columns it reads, or `None`
    /// when no column is worth sampling.
    fn sample_statement(&self, t: usize, rows: u32) -> Option<(Vec<String>, Vec<usize>)> {
        let table = &self.tables[t];
        let sampled: Vec<usize> = table
            .columns
            .iter()
            .enumerate()
            .filter(|(_, c)| !c.declared_none && TypeKind::of(&c.type_name).is_sampled())
            .map(|(i, _)| i)
            .collect();
        if sampled.is_empty() {
            return None;
        }
        let list: Vec<String> = sampled
            .iter()
            .map(|&i| {
                let column = quote_ident(self.driver, &table.columns[i].name);
                match self.driver {
                    // Casts make every text-like type (citext, enums, json, arrays, xml)
                    // arrive as text, so no column type can fail the whole sample.
                    Driver::Postgres => format!("CAST({column} AS text)"),
                    Driver::MySql => format!("CAST({column} AS CHAR)"),
                    Driver::Sqlite => column,
                }
            })
            .collect();
        let list = list.join(", ");
        let statements = quoted_tables(self.driver, &table.name)
            .into_iter()
            .map(|from| format!("SELECT {list} FROM {from} LIMIT {rows}"))
            .collect();
        Some((statements, sampled))
    }

    /// Adds what the sample of table `t` shows; returns how many classes were added.
    fn apply_sample(&mut self, t: usize, sampled: &[usize], result: &QueryResult) -> usize {
        let mut added = 0;
        for (position, &c) in sampled.iter().enumerate() {
            let values = result
                .rows
                .iter()
                .filter_map(|row| match row.get(position) {
                    Some(Value::Text(text)) => Some(text.as_str()),
                    _ => None,
                });
            let column = &mut self.tables[t].columns[c];
            let (classes, seen) = sampled_classes(values);
            for class in classes {
                if !column.classes.contains(&class) {
                    column.add(class);
                    added += 1;
                }
            }
            column.embedded = seen
                .into_iter()
                .filter(|class| !column.classes.contains(class))
                .collect();
        }
        added
    }
}

/// The classes held by at least [`SAMPLE_SHARE_TENTHS`] tenths of the non-empty `values`,
/// and every class found at all.
fn sampled_classes<'a>(
    values: impl IntoIterator<Item = &'a str>,
) -> (BTreeSet<Classification>, BTreeSet<Classification>) {
    let mut non_empty = 0usize;
    let mut counts: HashMap<Classification, usize> = HashMap::new();
    for value in values {
        if value.trim().is_empty() {
            continue;
        }
        non_empty += 1;
        let classes: BTreeSet<Classification> =
            detect::scan(value).into_iter().map(|f| f.class).collect();
        for class in classes {
            *counts.entry(class).or_default() += 1;
        }
    }
    let seen = counts.keys().copied().collect();
    let classes = counts
        .into_iter()
        .filter(|&(_, count)| count * 10 >= non_empty * SAMPLE_SHARE_TENTHS && count > 0)
        .map(|(class, _)| class)
        .collect();
    (classes, seen)
}

/// MariaDB's current database (`SELECT DATABASE()`), `None` when none is selected.
async fn current_database(datasource: &Datasource) -> Result<Option<String>, ExecError> {
    let result = datasource
        .execute(Access::Read, "SELECT DATABASE()", &[], 1)
        .await?;
    Ok(match result.rows.first().and_then(|row| row.first()) {
        Some(Value::Text(name)) => Some(name.clone()),
        Some(Value::Bytes(name)) => Some(String::from_utf8_lossy(name).into_owned()),
        _ => None,
    })
}

/// A table name folded the way [`TableName`] folds it for the engine.
fn fold_table(driver: Driver, name: &str) -> String {
    match driver {
        Driver::Postgres => name.to_owned(),
        Driver::Sqlite => name.to_ascii_lowercase(),
        Driver::MySql => name.to_lowercase(),
    }
}

/// One part of a table name as [`TableName`] writes it: quoted when it holds `.` or `"`.
fn render_part(part: &str) -> String {
    if part.contains(['.', '"']) {
        format!("\"{}\"", part.replace('"', "\"\""))
    } else {
        part.to_owned()
    }
}

fn quote_ident(driver: Driver, ident: &str) -> String {
    match driver {
        Driver::MySql => format!("`{}`", ident.replace('`', "``")),
        Driver::Postgres | Driver::Sqlite => format!("\"{}\"", ident.replace('"', "\"\"")),
    }
}

/// A catalog table name quoted for SQL: PostgreSQL's `schema.table` is first read as a
/// schema and a table, then as one name holding a dot (see the module docs).
fn quoted_tables(driver: Driver, catalog_name: &str) -> Vec<String> {
    match (driver, catalog_name.split_once('.')) {
        (Driver::Postgres, Some((schema, table))) => vec![
            format!(
                "{}.{}",
                quote_ident(driver, schema),
                quote_ident(driver, table)
            ),
            quote_ident(driver, catalog_name),
        ],
        _ => vec![quote_ident(driver, catalog_name)],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DatabaseUrl, DatasourceConfig, EnvironmentName, MaskedColumnConfig};
    use crate::datasource::ColumnSchema;
    use Classification as C;

    fn class(table: &str, column: &str, type_name: &str) -> Option<Classification> {
        classify_name(table, column, type_name)
    }

    #[test]
    fn names_that_say_what_they_hold() {
        let cases = [
            ("customers", "email", "text", C::Email),
            ("customers", "e_mail", "varchar", C::Email),
            ("customers", "mail", "text", C::Email),
            ("customers", "emailAddress", "text", C::Email),
            ("customers", "billing_email", "text", C::Email),
            ("customers", "emails", "text[]", C::Email),
            ("customers", "phone", "text", C::Phone),
            ("customers", "mobile_number", "varchar", C::Phone),
            ("customers", "home_tel", "text", C::Phone),
            ("customers", "fax", "text", C::Phone),
            ("customers", "msisdn", "int8", C::Phone),
            ("customers", "phone_e164", "text", C::Phone),
            ("customers", "PhoneNumber", "text", C::Phone),
            ("customers", "ssn", "text", C::NationalId),
            ("customers", "social_security_number", "text", C::NationalId),
            ("customers", "national_id", "text", C::NationalId),
            ("customers", "tax_id", "varchar(20)", C::NationalId),
            ("customers", "passport_no", "text", C::NationalId),
            ("customers", "nin", "text", C::NationalId),
            ("payments", "card_number", "text", C::Card),
            ("payments", "pan", "text", C::Card),
            ("payments", "cc_number", "bigint", C::Card),
            ("payments", "credit_card", "text", C::Card),
            ("payments", "creditCardNumber", "text", C::Card),
            ("payments", "iban", "text", C::Account),
            ("payments", "account_number", "text", C::Account),
            ("payments", "bank_account", "text", C::Account),
            ("payments", "routing_number", "text", C::Account),
            ("customers", "birth_date", "date", C::BirthDate),
            ("customers", "dob", "date", C::BirthDate),
            ("customers", "date_of_birth", "text", C::BirthDate),
            ("customers", "birthday", "datetime", C::BirthDate),
            ("customers", "address", "text", C::Address),
            ("customers", "street", "text", C::Address),
            ("customers", "billing_addr", "text", C::Address),
            ("customers", "address_line_1", "text", C::Address),
            ("customers", "postcode", "text", C::Address),
            ("customers", "zip", "integer", C::Address),
            ("customers", "zip_code", "text", C::Address),
            ("customers", "first_name", "text", C::PersonName),
            ("customers", "lastName", "text", C::PersonName),
            ("orders", "full_name", "text", C::PersonName),
            ("orders", "customer_name", "text", C::PersonName),
            ("customers", "name", "text", C::PersonName),
            ("users", "name", "text", C::PersonName),
            ("hr.employees", "name", "text", C::PersonName),
            ("people", "name", "text", C::PersonName),
            (
                "crm.customer_contacts",
                "display_name",
                "text",
                C::PersonName,
            ),
            ("logins", "ip", "text", C::IpAddress),
            ("logins", "ip_address", "text", C::IpAddress),
            ("logins", "IPAddress", "text", C::IpAddress),
            ("logins", "client_ip", "text", C::IpAddress),
            ("logins", "remote_addr", "text", C::IpAddress),
            ("logins", "last_ipv4", "int4", C::IpAddress),
            ("logins", "peer", "inet", C::IpAddress),
            ("users", "password", "text", C::Password),
            ("users", "passwd", "text", C::Password),
            ("users", "pwd", "text", C::Password),
            ("users", "password_hash", "bytea", C::Password),
            ("users", "token", "text", C::Token),
            ("users", "access_token", "text", C::Token),
            ("users", "refreshToken", "text", C::Token),
            ("users", "session", "text", C::Token),
            ("users", "session_id", "uuid", C::Token),
            ("users", "secret", "text", C::Token),
            ("users", "api_secret", "text", C::Token),
            ("users", "client_secret", "text", C::Token),
            ("users", "api_key", "text", C::ApiKey),
            ("users", "apikey", "uuid", C::ApiKey),
            ("users", "access_key", "text", C::ApiKey),
            ("users", "secret_key", "text", C::ApiKey),
            ("users", "aws_secret_access_key", "text", C::ApiKey),
            ("users", "private_key", "text", C::PrivateKey),
            ("users", "ssh_key", "text", C::PrivateKey),
        ];
        for (table, column, type_name, expected) in cases {
            assert_eq!(
                class(table, column, type_name),
                Some(expected),
                "{table}.{column} {type_name}"
            );
        }
    }

    #[test]
    fn flags_ids_counts_timestamps_and_lookalikes_are_not_classified() {
        let cases = [
            ("users", "email_verified", "bool"),
            ("users", "email_verified", "text"),
            ("users", "phone_verified", "boolean"),
            ("users", "is_email", "text"),
            ("users", "has_phone", "int4"),
            ("users", "num_emails", "int4"),
            ("users", "email_count", "int8"),
            ("users", "address_id", "int8"),
            ("users", "address_id", "text"),
            ("users", "address_type", "text"),
            ("users", "card_type", "text"),
            ("users", "card_brand", "text"),
            ("users", "card_last4", "text"),
            ("users", "tokens_used", "int4"),
            ("users", "token_count", "int4"),
            ("users", "token_expires_at", "timestamptz"),
            ("users", "password_changed_at", "timestamp"),
            ("users", "session_id", "int8"),
            ("users", "session_count", "int4"),
            ("users", "sessions", "int4"),
            ("users", "email", "int8"),
            ("users", "email", "timestamptz"),
            ("users", "email", "tinyint"),
            ("users", "token", "int4"),
            ("users", "secret_question", "text"),
            ("users", "public_key", "text"),
            ("users", "access_key_id", "text"),
            ("users", "userID", "text"),
            ("users", "username", "text"),
            ("users", "created_at", "timestamptz"),
            ("devices", "mac_address", "text"),
            ("devices", "mac_addr", "macaddr"),
            ("wallets", "wallet_address", "text"),
            ("products", "name", "text"),
            ("products", "display_name", "text"),
            ("products", "product_name", "text"),
            ("files", "file_name", "text"),
            ("archives", "zip_file", "bytea"),
            ("customers", "notes", "text"),
            ("customers", "id", "int8"),
            ("customers", "status", "text"),
        ];
        for (table, column, type_name) in cases {
            assert_eq!(
                class(table, column, type_name),
                None,
                "{table}.{column} {type_name}"
            );
        }
    }

    #[test]
    fn words_split_on_separators_case_and_digits() {
        assert_eq!(
            words("billingEmailAddress"),
            ["billing", "email", "address"]
        );
        assert_eq!(words("IPAddress"), ["ip", "address"]);
        assert_eq!(words("address_line_1"), ["address", "line"]);
        assert_eq!(words("user-ID"), ["user", "id"]);
        assert_eq!(words("DateOfBirth"), ["date", "of", "birth"]);
        assert_eq!(words("dateofbirth"), ["date", "of", "birth"]);
        assert_eq!(words("__"), Vec::<String>::new());
    }

    fn schema(tables: &[(&str, &[(&str, &str)])]) -> Vec<TableSchema> {
        tables
            .iter()
            .map(|(name, columns)| TableSchema {
                name: (*name).to_owned(),
                columns: columns
                    .iter()
                    .map(|(column, type_name)| ColumnSchema {
                        name: (*column).to_owned(),
                        type_name: (*type_name).to_owned(),
                        nullable: true,
                    })
                    .collect(),
            })
            .collect()
    }

    fn entry(
        datasource: &str,
        table: &str,
        column: &str,
        classification: &str,
    ) -> MaskedColumnConfig {
        MaskedColumnConfig {
            datasource: DatasourceName::parse(datasource).unwrap(),
            table: table.to_owned(),
            column: column.to_owned(),
            classification: classification.to_owned(),
        }
    }

    fn config(columns: Vec<MaskedColumnConfig>) -> MaskingConfig {
        MaskingConfig {
            columns,
            ..MaskingConfig::default()
        }
    }

    fn name(s: &str) -> DatasourceName {
        DatasourceName::parse(s).unwrap()
    }

    fn t(s: &str) -> TableName {
        TableName::new(s)
    }

    #[test]
    fn configuration_overrides_names_and_none_clears_them() {
        let tables = schema(&[(
            "customers",
            &[
                ("id", "int8"),
                ("email", "text"),
                ("support_email", "text"),
                ("nickname", "text"),
                ("ref", "text"),
            ],
        )]);
        let config = config(vec![
            entry("shop", "customers", "support_email", "none"),
            entry("shop", "customers", "nickname", "pii.person_name"),
            entry("shop", "customers", "email", "pii.person_name"),
            entry("shop", "customers", "email", "pii.email"),
            // Another datasource's entry does not apply here.
            entry("other", "customers", "ref", "secret.token"),
            // A table the catalog does not list (yet) still answers lookups.
            entry("shop", "later", "secret_sauce", "secret.api_key"),
        ]);
        let catalog =
            MaskCatalog::from_schema(Driver::Postgres, &name("shop"), None, tables, &config)
                .unwrap();
        let customers = t("customers");
        assert_eq!(
            catalog.classes(&customers, "support_email"),
            &[] as &[Classification]
        );
        assert_eq!(catalog.classes(&customers, "nickname"), &[C::PersonName]);
        assert_eq!(
            catalog.classes(&customers, "email"),
            &[C::Email, C::PersonName]
        );
        assert_eq!(catalog.classes(&customers, "ref"), &[] as &[Classification]);
        assert_eq!(catalog.classes(&customers, "id"), &[] as &[Classification]);
        assert_eq!(catalog.classes(&t("later"), "secret_sauce"), &[C::ApiKey]);
        assert_eq!(
            catalog.classes(&t("public.later"), "secret_sauce"),
            &[C::ApiKey]
        );
        assert_eq!(catalog.columns(&t("later")), None);
    }

    #[test]
    fn unknown_or_contradictory_configuration_is_an_error_naming_the_entry() {
        let bad = config(vec![entry("shop", "customers", "email", "pii.emial")]);
        let err = check_columns(&bad).unwrap_err().to_string();
        assert!(
            err.contains("datasource `shop`")
                && err.contains("table `customers`")
                && err.contains("column `email`")
                && err.contains("`pii.emial`")
                && err.contains("pii.email"),
            "{err}"
        );
        let err = MaskCatalog::from_schema(Driver::Sqlite, &name("shop"), None, Vec::new(), &bad)
            .unwrap_err()
            .to_string();
        assert!(err.contains("`pii.emial`"), "{err}");

        let both = config(vec![
            entry("shop", "customers", "email", "pii.email"),
            entry("shop", "customers", "email", "none"),
        ]);
        let err = check_columns(&both).unwrap_err().to_string();
        assert!(err.contains("both `none` and `pii.email`"), "{err}");
        assert!(
            MaskCatalog::from_schema(Driver::Sqlite, &name("shop"), None, Vec::new(), &both)
                .is_err()
        );
        check_columns(&config(vec![
            entry("shop", "customers", "email", "pii.email"),
            entry("shop", "customers", "email", "secret.token"),
        ]))
        .unwrap();
    }

    #[test]
    fn lookups_follow_each_engines_name_rules() {
        let tables = || {
            schema(&[
                ("Customers", &[("Email", "text"), ("phone", "text")]),
                ("customers", &[("email", "text"), ("id", "int8")]),
                ("crm.contacts", &[("name", "text"), ("mail", "text")]),
                ("a.b", &[("ssn", "text")]),
            ])
        };
        let none = config(Vec::new());

        // PostgreSQL: case-sensitive, `public.` is the default schema.
        let pg =
            MaskCatalog::from_schema(Driver::Postgres, &name("db"), None, tables(), &none).unwrap();
        assert_eq!(pg.classes(&t("Customers"), "Email"), &[C::Email]);
        assert_eq!(
            pg.classes(&t("Customers"), "email"),
            &[] as &[Classification]
        );
        assert_eq!(pg.classes(&t("Customers"), "phone"), &[C::Phone]);
        assert_eq!(
            pg.classes(&t("customers"), "phone"),
            &[] as &[Classification]
        );
        assert_eq!(pg.classes(&t("public.customers"), "email"), &[C::Email]);
        assert_eq!(pg.classes(&t("crm.contacts"), "name"), &[C::PersonName]);
        assert_eq!(pg.classes(&t("contacts"), "name"), &[] as &[Classification]);
        assert_eq!(
            pg.columns(&t("public.customers")),
            Some(vec!["email".to_owned(), "id".to_owned()])
        );
        assert_eq!(pg.columns(&t("other.customers")), None);
        // `a.b` is schema `a`, table `b`, and also a `public` table named "a.b".
        assert_eq!(pg.classes(&t("a.b"), "ssn"), &[C::NationalId]);
        assert_eq!(pg.classes(&t("\"a.b\""), "ssn"), &[C::NationalId]);
        assert_eq!(pg.classes(&t("public.\"a.b\""), "ssn"), &[C::NationalId]);

        // SQLite: case-insensitive, `main.` is the default schema. Two spellings of one
        // table cannot both exist there; the first one listed wins.
        let sqlite =
            MaskCatalog::from_schema(Driver::Sqlite, &name("db"), None, tables(), &none).unwrap();
        assert_eq!(sqlite.classes(&t("customers"), "EMAIL"), &[C::Email]);
        assert_eq!(sqlite.classes(&t("main.customers"), "Phone"), &[C::Phone]);

        // MariaDB: case-insensitive, the current database is the default.
        let maria = MaskCatalog::from_schema(
            Driver::MySql,
            &name("db"),
            Some("Shop"),
            schema(&[("orders", &[("card_number", "varchar")])]),
            &none,
        )
        .unwrap();
        assert_eq!(maria.classes(&t("shop.orders"), "CARD_NUMBER"), &[C::Card]);
        assert_eq!(maria.classes(&t("orders"), "card_number"), &[C::Card]);
        assert_eq!(
            maria.classes(&t("other.orders"), "card_number"),
            &[] as &[Classification]
        );

        type Listing<'a> = Vec<(&'a str, Vec<(&'a str, &'a [Classification])>)>;
        let listed: Listing<'_> = maria
            .tables()
            .map(|table| {
                (
                    table.name(),
                    table
                        .columns()
                        .iter()
                        .map(|c| (c.name(), c.classes()))
                        .collect(),
                )
            })
            .collect();
        assert_eq!(
            listed,
            vec![("orders", vec![("card_number", &[C::Card][..])])]
        );
    }

    #[test]
    fn sampling_needs_thirty_percent_of_non_empty_values() {
        let mut values = vec!["ann@example.com", "bob@example.org", "", "  ", "n/a"];
        values.extend(["nothing here"; 4]);
        // 2 of 7 non-empty: 28 %; the class is still seen (embedded in free text).
        let (classes, seen) = sampled_classes(values.iter().copied());
        assert!(classes.is_empty());
        assert_eq!(seen, BTreeSet::from([C::Email]));
        values.push("carl@example.net");
        // 3 of 8: 37 %.
        assert_eq!(
            sampled_classes(values.iter().copied()).0,
            BTreeSet::from([C::Email])
        );
        // A value counts once per class, however many entities it holds.
        let notes = ["mail ann@example.com or bob@example.com", "x", "y", "z"];
        assert!(sampled_classes(notes).0.is_empty());
        assert!(sampled_classes(std::iter::empty()).1.is_empty());
    }

    async fn sqlite_datasource(dir: &std::path::Path, setup: &str) -> Datasource {
        use sqlx::{Connection as _, Executor as _};
        let path = dir.join("sample.db");
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true);
        let mut conn = sqlx::SqliteConnection::connect_with(&options)
            .await
            .unwrap();
        conn.execute(sqlx::raw_sql(sqlx::AssertSqlSafe(setup.to_owned())))
            .await
            .unwrap();
        conn.close().await.unwrap();
        Datasource::connect(&DatasourceConfig {
            name: name("sampled"),
            environment: EnvironmentName::parse("dev").unwrap(),
            url: DatabaseUrl::new(format!("sqlite://{}", path.display())),
            read_url: None,
            max_connections: 2,
            statement_timeout_ms: 5_000,
            max_rows: 1_000,
        })
        .unwrap()
    }

    #[tokio::test]
    async fn load_samples_a_real_sqlite_database() {
        let dir = tempfile::tempdir().unwrap();
        let mut setup = String::from(
            "CREATE TABLE \"Leads\" (id INTEGER PRIMARY KEY, contact TEXT, remark TEXT, \
             owner_email TEXT, flag BOOLEAN, ssn TEXT, payload);",
        );
        for i in 0..20 {
            let contact = if i % 2 == 0 {
                format!("'lead{i}@example.com'")
            } else {
                "'ask at the desk'".to_owned()
            };
            // One remark in ten holds a card number: below the share, left to the value
            // detectors at query time.
            let remark = if i == 3 {
                "'paid with 4111 1111 1111 1111'".to_owned()
            } else {
                "'called back'".to_owned()
            };
            setup.push_str(&format!(
                "INSERT INTO \"Leads\" (contact, remark, owner_email, flag, ssn, payload) \
                 VALUES ({contact}, {remark}, 'sales{i}@example.com', 1, NULL, 'x');"
            ));
        }
        setup.push_str("CREATE TABLE empty_one (id INTEGER, info TEXT);");
        let datasource = sqlite_datasource(dir.path(), &setup).await;

        let mut config = config(vec![
            // Declared not sensitive: sampling must not add Email to it.
            entry("sampled", "leads", "owner_email", "none"),
            // Configured classes stay; sampling adds to them.
            entry("sampled", "Leads", "contact", "pii.person_name"),
        ]);
        config.sample_rows = 50;
        let catalog = MaskCatalog::load(&datasource, &config).await.unwrap();
        let leads = t("leads");
        assert_eq!(
            catalog.classes(&leads, "contact"),
            &[C::Email, C::PersonName]
        );
        assert_eq!(catalog.classes(&leads, "remark"), &[] as &[Classification]);
        assert_eq!(
            catalog.classes(&leads, "owner_email"),
            &[] as &[Classification]
        );
        assert_eq!(catalog.classes(&leads, "SSN"), &[C::NationalId]);
        assert_eq!(
            catalog.classes(&t("main.LEADS"), "flag"),
            &[] as &[Classification]
        );
        assert_eq!(
            catalog.columns(&leads).unwrap(),
            [
                "id",
                "contact",
                "remark",
                "owner_email",
                "flag",
                "ssn",
                "payload"
            ]
        );
        assert_eq!(catalog.columns(&t("empty_one")).unwrap(), ["id", "info"]);

        // Without sampling, the same database gives name-based classes only.
        config.sample_rows = 0;
        let unsampled = MaskCatalog::load(&datasource, &config).await.unwrap();
        assert_eq!(unsampled.classes(&leads, "contact"), &[C::PersonName]);
    }

    #[test]
    fn sample_statements_quote_per_driver() {
        let tables = || {
            schema(&[
                ("we\"ird", &[("e`mail", "text"), ("n", "int4")]),
                ("crm.people", &[("notes", "jsonb")]),
            ])
        };
        let none = config(Vec::new());
        let pg =
            MaskCatalog::from_schema(Driver::Postgres, &name("d"), None, tables(), &none).unwrap();
        assert_eq!(
            pg.sample_statement(0, 7).unwrap(),
            (
                vec!["SELECT CAST(\"e`mail\" AS text) FROM \"we\"\"ird\" LIMIT 7".to_owned()],
                vec![0]
            )
        );
        assert_eq!(
            pg.sample_statement(1, 7).unwrap().0,
            [
                "SELECT CAST(\"notes\" AS text) FROM \"crm\".\"people\" LIMIT 7",
                "SELECT CAST(\"notes\" AS text) FROM \"crm.people\" LIMIT 7"
            ]
        );
        let maria = MaskCatalog::from_schema(Driver::MySql, &name("d"), Some("d"), tables(), &none)
            .unwrap();
        assert_eq!(
            maria.sample_statement(0, 7).unwrap().0,
            ["SELECT CAST(`e``mail` AS CHAR) FROM `we\"ird` LIMIT 7"]
        );
        let numbers_only = MaskCatalog::from_schema(
            Driver::Sqlite,
            &name("d"),
            None,
            schema(&[("t", &[("n", "integer"), ("b", "boolean")])]),
            &none,
        )
        .unwrap();
        assert_eq!(numbers_only.sample_statement(0, 7), None);
    }
}
