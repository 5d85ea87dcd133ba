//! The demo datasources of the embedded default: two SQLite databases (`shop` in `dev`,
//! `shop_prod` in `prod`) with the same realistic fake customers and orders.
//!
//! The data come from a fixed-seed SplitMix64 generator written here, not from `rand`, so
//! they are identical on every machine and across crate upgrades. Every fake identifier is
//! *valid* where validity is checkable (Luhn for cards, mod-97 for IBANs, SSN ranges), so
//! masking detectors that validate are exercised for real.

use std::fmt::Write as _;
use std::path::Path;

use chrono::DateTime;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};
use sqlx::{ConnectOptions as _, Connection as _, Executor as _};

use super::DatasourceError;
use crate::config::{DatabaseUrl, DatasourceConfig, DatasourceName, EnvironmentName};

const SEED: u64 = 0x6761_7465_686f_7573; // "gatehous"
const CUSTOMERS: i64 = 250;
const ORDERS: i64 = 1_200;
/// 2024-01-01T00:00:00Z and 2026-01-01T00:00:00Z.
const FROM_EPOCH_S: i64 = 1_704_067_200;
const UNTIL_EPOCH_S: i64 = 1_767_225_600;

const SCHEMA: &str = r"
CREATE TABLE customers (
    id INTEGER PRIMARY KEY,
    full_name TEXT NOT NULL,
    email TEXT NOT NULL,
    phone TEXT,
    ssn TEXT,
    card_number TEXT,
    iban TEXT,
    notes TEXT,
    created_at TEXT NOT NULL
);
CREATE TABLE orders (
    id INTEGER PRIMARY KEY,
    customer_id INTEGER NOT NULL REFERENCES customers(id),
    amount_cents INTEGER NOT NULL,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX orders_customer_id ON orders(customer_id);
";

/// Creates (if missing) `DATA_DIR/shop.db` and `DATA_DIR/shop_prod.db`, seeded, and returns
/// their configurations (`shop` → `dev`, `shop_prod` → `prod`). An existing file is kept
/// untouched, so a restart keeps whatever was written to it.
pub async fn ensure_demo_datasources(
    data_dir: &Path,
) -> Result<Vec<DatasourceConfig>, DatasourceError> {
    let demo_error =
        |context: &str, e: &dyn std::fmt::Display| DatasourceError::Demo(format!("{context}: {e}"));
    std::fs::create_dir_all(data_dir)
        .map_err(|e| demo_error(&format!("cannot create {}", data_dir.display()), &e))?;
    let data_dir = std::fs::canonicalize(data_dir)
        .map_err(|e| demo_error(&format!("cannot resolve {}", data_dir.display()), &e))?;
    let mut configs = Vec::new();
    for (name, environment) in [("shop", "dev"), ("shop_prod", "prod")] {
        let path = data_dir.join(format!("{name}.db"));
        if !path.exists() {
            create_seeded(&path).await?;
        }
        let path_text = path.to_str().ok_or_else(|| {
            DatasourceError::Demo(format!("{} is not valid UTF-8", path.display()))
        })?;
        configs.push(DatasourceConfig {
            name: DatasourceName::parse(name).map_err(DatasourceError::Demo)?,
            environment: EnvironmentName::parse(environment).map_err(DatasourceError::Demo)?,
            url: DatabaseUrl::new(format!("sqlite://{}", url_escape(path_text))),
            read_url: None,
            max_connections: 4,
            statement_timeout_ms: 5_000,
            max_rows: 1_000,
        });
    }
    Ok(configs)
}

/// sqlx percent-decodes the path of a `sqlite://` URL and stops it at `?`.
fn url_escape(path: &str) -> String {
    let mut escaped = String::with_capacity(path.len());
    for c in path.chars() {
        match c {
            '%' => escaped.push_str("%25"),
            '?' => escaped.push_str("%3F"),
            '#' => escaped.push_str("%23"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// Seeds a temporary file next to `path` and moves it into place only when complete, so a
/// crash never leaves a half-seeded database that a restart would then keep.
async fn create_seeded(path: &Path) -> Result<(), DatasourceError> {
    let file_name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("demo.db");
    let temp = path.with_file_name(format!(
        ".{file_name}.{}.seeding",
        uuid::Uuid::new_v4().simple()
    ));
    let result = seed_file(&temp).await;
    let result = result.and_then(|()| publish(&temp, path));
    let _ = std::fs::remove_file(&temp);
    result
}

async fn seed_file(temp: &Path) -> Result<(), DatasourceError> {
    let error =
        |e: sqlx::Error| DatasourceError::Demo(format!("cannot seed {}: {e}", temp.display()));
    // Rollback journal while seeding, so the file is complete on its own when closed.
    let options = SqliteConnectOptions::new()
        .filename(temp)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Delete)
        .disable_statement_logging();
    let mut conn = sqlx::SqliteConnection::connect_with(&options)
        .await
        .map_err(error)?;
    let (customers, orders) = generate(SEED);
    let mut tx = conn.begin().await.map_err(error)?;
    tx.execute(sqlx::raw_sql(SCHEMA)).await.map_err(error)?;
    for c in &customers {
        sqlx::query(
            "INSERT INTO customers (id, full_name, email, phone, ssn, card_number, iban, notes, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )
        .bind(c.id)
        .bind(&c.full_name)
        .bind(&c.email)
        .bind(&c.phone)
        .bind(&c.ssn)
        .bind(&c.card_number)
        .bind(&c.iban)
        .bind(&c.notes)
        .bind(&c.created_at)
        .execute(&mut *tx)
        .await
        .map_err(error)?;
    }
    for o in &orders {
        sqlx::query(
            "INSERT INTO orders (id, customer_id, amount_cents, status, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .bind(o.id)
        .bind(o.customer_id)
        .bind(o.amount_cents)
        .bind(o.status)
        .bind(&o.created_at)
        .execute(&mut *tx)
        .await
        .map_err(error)?;
    }
    tx.commit().await.map_err(error)?;
    // WAL lets the write pool write while the read pool reads. The mode is stored in the
    // file; closing the only connection checkpoints and removes the -wal/-shm files, so
    // the single file moved into place is the whole database.
    conn.execute("PRAGMA journal_mode = WAL")
        .await
        .map_err(error)?;
    conn.close().await.map_err(error)?;
    Ok(())
}

/// Moves the seeded file into place without replacing one another process may have put
/// there meanwhile (a hard link fails if the target exists; rename is the fallback for
/// file systems without links).
fn publish(temp: &Path, path: &Path) -> Result<(), DatasourceError> {
    let error =
        |e: std::io::Error| DatasourceError::Demo(format!("cannot create {}: {e}", path.display()));
    match std::fs::hard_link(temp, path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(_) if path.exists() => {}
        Err(_) => std::fs::rename(temp, path).map_err(error)?,
    }
    if let Some(dir) = path.parent()
        && let Ok(dir) = std::fs::File::open(dir)
    {
        // Make the new directory entry durable; not every platform can sync a directory.
        let _ = dir.sync_all();
    }
    Ok(())
}

/// SplitMix64 (Steele, Lea, Flood 2014): tiny, fast, and fixed forever.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (multiply-shift; the bias is below 2^-50 for our small `n`).
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `low..=high`.
    fn range(&mut self, low: i64, high: i64) -> i64 {
        let span = high.abs_diff(low) + 1;
        low + i64::try_from(self.below(span)).unwrap_or(0)
    }

    fn percent(&mut self, p: u64) -> bool {
        self.below(100) < p
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        let i = usize::try_from(self.below(items.len() as u64)).unwrap_or(0);
        &items[i]
    }

    fn digits(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b'0' + self.below(10) as u8))
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Customer {
    pub id: i64,
    pub full_name: String,
    pub email: String,
    pub phone: Option<String>,
    pub ssn: Option<String>,
    pub card_number: Option<String>,
    pub iban: Option<String>,
    pub notes: Option<String>,
    pub created_at: String,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Order {
    pub id: i64,
    pub customer_id: i64,
    pub amount_cents: i64,
    pub status: &'static str,
    pub created_at: String,
}

const FIRST_NAMES: &[&str] = &[
    "James",
    "Mary",
    "Robert",
    "Patricia",
    "John",
    "Jennifer",
    "Michael",
    "Linda",
    "David",
    "Elizabeth",
    "William",
    "Barbara",
    "Richard",
    "Susan",
    "Joseph",
    "Jessica",
    "Thomas",
    "Sarah",
    "Carlos",
    "Karen",
    "Daniel",
    "Lisa",
    "Matthew",
    "Nancy",
    "Anthony",
    "Sandra",
    "Mark",
    "Ashley",
    "Priya",
    "Wei",
    "Fatima",
    "Hiroshi",
    "Olga",
    "Mateo",
    "Aisha",
    "Liam",
    "Sofia",
    "Noah",
    "Chloé",
    "Zoë",
    "José",
    "Björn",
];

const LAST_NAMES: &[&str] = &[
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Perez",
    "Thompson",
    "White",
    "Harris",
    "Sanchez",
    "Clark",
    "Ramirez",
    "Lewis",
    "Robinson",
    "Patel",
    "Nguyen",
    "Kim",
    "O'Brien",
    "Müller",
    "Novak",
    "Rossi",
    "Dubois",
    "Tanaka",
    "Kowalski",
];

const EMAIL_DOMAINS: &[&str] = &[
    "example.com",
    "example.org",
    "example.net",
    "mail.example.com",
];

/// US area codes in real use (none is N11 or 555).
const AREA_CODES: &[u16] = &[
    201, 206, 212, 213, 214, 305, 312, 313, 404, 415, 503, 512, 602, 617, 702, 713, 720, 773, 805,
    818, 917, 919,
];

const STATUSES: &[(&str, u64)] = &[
    ("paid", 40),
    ("shipped", 35),
    ("pending", 10),
    ("refunded", 8),
    ("cancelled", 7),
];

const PLAIN_NOTES: &[&str] = &[
    "Long-time customer, very patient with delays.",
    "Asked about bulk discounts for the office.",
    "Requested a paper invoice for every order.",
    "Package was left with a neighbour last time; prefers signature on delivery.",
    "VIP: expedite shipping when possible.",
    "Disputed one charge in 2024, resolved with a partial refund.",
    "Only orders during sales.",
    "Gift orders around the holidays.",
    "Allergic to latex packaging materials.",
    "Switched from the annual plan to monthly billing.",
];

/// The demo rows for `seed`: the same seed gives the same rows, always.
pub(crate) fn generate(seed: u64) -> (Vec<Customer>, Vec<Order>) {
    let mut rng = SplitMix64(seed);
    let mut customers = Vec::new();
    let mut created = Vec::new();
    for id in 1..=CUSTOMERS {
        let first = *rng.pick(FIRST_NAMES);
        let last = *rng.pick(LAST_NAMES);
        let email = email(&mut rng, first, last);
        let phone = rng.percent(75).then(|| phone(&mut rng));
        let ssn = rng.percent(80).then(|| ssn(&mut rng));
        let card_number = rng.percent(70).then(|| card_number(&mut rng));
        let iban = rng.percent(50).then(|| iban(&mut rng));
        let notes = if rng.percent(20) {
            Some(contact_note(&mut rng, first, last))
        } else if rng.percent(60) {
            Some((*rng.pick(PLAIN_NOTES)).to_owned())
        } else {
            None
        };
        let created_at = rng.range(FROM_EPOCH_S, UNTIL_EPOCH_S - 1);
        created.push(created_at);
        customers.push(Customer {
            id,
            full_name: format!("{first} {last}"),
            email,
            phone,
            ssn,
            card_number,
            iban,
            notes,
            created_at: rfc3339(created_at),
        });
    }
    let total_weight: u64 = STATUSES.iter().map(|(_, w)| w).sum();
    let mut orders = Vec::new();
    for id in 1..=ORDERS {
        let customer_id = rng.range(1, CUSTOMERS);
        let since = created[usize::try_from(customer_id - 1).unwrap_or(0)];
        // Mostly small baskets, a few large ones.
        let amount_cents = if rng.percent(85) {
            rng.range(499, 14_999)
        } else {
            rng.range(15_000, 249_999)
        };
        let mut roll = rng.below(total_weight);
        let mut status = STATUSES[0].0;
        for (name, weight) in STATUSES {
            if roll < *weight {
                status = name;
                break;
            }
            roll -= weight;
        }
        orders.push(Order {
            id,
            customer_id,
            amount_cents,
            status,
            created_at: rfc3339(rng.range(since, UNTIL_EPOCH_S - 1)),
        });
    }
    (customers, orders)
}

fn rfc3339(epoch_s: i64) -> String {
    DateTime::from_timestamp(epoch_s, 0)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

/// Lower-case ASCII for an e-mail local part: accents dropped, apostrophes removed.
fn ascii_lower(name: &str) -> String {
    name.chars()
        .filter_map(|c| match c {
            'é' | 'è' => Some('e'),
            'ë' => Some('e'),
            'ö' => Some('o'),
            'ü' => Some('u'),
            c if c.is_ascii_alphabetic() => Some(c.to_ascii_lowercase()),
            _ => None,
        })
        .collect()
}

fn email(rng: &mut SplitMix64, first: &str, last: &str) -> String {
    let (f, l) = (ascii_lower(first), ascii_lower(last));
    let local = match rng.below(4) {
        0 => format!("{f}.{l}"),
        1 => format!("{f}{l}{}", rng.range(1, 99)),
        2 => format!("{}.{l}", &f[..1]),
        _ => format!("{f}_{l}"),
    };
    format!("{local}@{}", rng.pick(EMAIL_DOMAINS))
}

fn phone(rng: &mut SplitMix64) -> String {
    let area = *rng.pick(AREA_CODES);
    let exchange = loop {
        let candidate = rng.range(201, 989);
        if candidate % 100 != 11 && candidate != 555 {
            break candidate;
        }
    };
    let line = rng.range(0, 9999);
    match rng.below(3) {
        0 => format!("({area}) {exchange}-{line:04}"),
        1 => format!("{area}-{exchange}-{line:04}"),
        _ => format!("+1 {area} {exchange} {line:04}"),
    }
}

/// Area 001–899 except 666, group 01–99, serial 0001–9999.
fn ssn(rng: &mut SplitMix64) -> String {
    let area = loop {
        let candidate = rng.range(1, 899);
        if candidate != 666 {
            break candidate;
        }
    };
    format!(
        "{area:03}-{:02}-{:04}",
        rng.range(1, 99),
        rng.range(1, 9999)
    )
}

/// The digit that makes `payload` + digit pass the Luhn check.
fn luhn_check_digit(payload: &str) -> char {
    let sum: u32 = payload
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            // The check digit will sit to the right, so the rightmost payload digit doubles.
            if i % 2 == 0 {
                let doubled = d * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                d
            }
        })
        .sum();
    char::from(b'0' + ((10 - sum % 10) % 10) as u8)
}

fn card_number(rng: &mut SplitMix64) -> String {
    let (prefix, len) = match rng.below(10) {
        0..=4 => ("4".to_owned(), 16),                    // Visa
        5..=7 => (rng.range(51, 55).to_string(), 16),     // Mastercard
        8 => (rng.range(2221, 2720).to_string(), 16),     // Mastercard 2-series
        _ => ((*rng.pick(&["34", "37"])).to_owned(), 15), // American Express
    };
    let mut number = prefix;
    number.push_str(&rng.digits(len - 1 - number.len()));
    number.push(luhn_check_digit(&number));
    if !rng.percent(50) {
        return number;
    }
    // Printed form: 4-4-4-4, or 4-6-5 for Amex.
    let groups: &[usize] = if len == 15 { &[4, 6, 5] } else { &[4, 4, 4, 4] };
    let mut printed = String::new();
    let mut at = 0;
    for g in groups {
        if at > 0 {
            printed.push(' ');
        }
        printed.push_str(&number[at..at + g]);
        at += g;
    }
    printed
}

/// ISO 13616 mod-97 over the rearranged IBAN (letters as 10–35).
fn mod97(text: &str) -> u32 {
    text.chars().fold(0_u32, |acc, c| {
        let value = c.to_digit(36).unwrap_or(0);
        if value >= 10 {
            (acc * 100 + value) % 97
        } else {
            (acc * 10 + value) % 97
        }
    })
}

fn iban_from_bban(country: &str, bban: &str) -> String {
    let check = 98 - mod97(&format!("{bban}{country}00"));
    format!("{country}{check:02}{bban}")
}

fn iban(rng: &mut SplitMix64) -> String {
    let bban = match rng.below(4) {
        // Germany: 8-digit bank code, 10-digit account.
        0 => ("DE", format!("{}{}", rng.digits(8), rng.digits(10))),
        // United Kingdom: 4-letter bank, 6-digit sort code, 8-digit account.
        1 => (
            "GB",
            format!(
                "{}{}{}",
                rng.pick(&["NWBK", "BARC", "LOYD", "HBUK", "MIDL"]),
                rng.digits(6),
                rng.digits(8)
            ),
        ),
        // France: bank, branch, 11-digit account, and the RIB key over them.
        2 => {
            let (bank, branch, account) = (rng.digits(5), rng.digits(5), rng.digits(11));
            let n = |s: &str| s.parse::<u64>().unwrap_or(0);
            let key = 97 - (89 * n(&bank) + 15 * n(&branch) + 3 * n(&account)) % 97;
            ("FR", format!("{bank}{branch}{account}{key:02}"))
        }
        // Netherlands: 4-letter bank, 10-digit account.
        _ => (
            "NL",
            format!(
                "{}{}",
                rng.pick(&["ABNA", "INGB", "RABO", "TRIO", "SNSB"]),
                rng.digits(10)
            ),
        ),
    };
    let iban = iban_from_bban(bban.0, &bban.1);
    if rng.percent(50) {
        return iban;
    }
    // Printed form, in groups of four.
    let mut printed = String::new();
    for (i, c) in iban.chars().enumerate() {
        if i > 0 && i % 4 == 0 {
            printed.push(' ');
        }
        printed.push(c);
    }
    printed
}

fn contact_note(rng: &mut SplitMix64, first: &str, last: &str) -> String {
    let mut note = String::new();
    let alternate = email(rng, first, last);
    let number = phone(rng);
    let _ = match rng.below(5) {
        0 => write!(note, "Prefers contact at {alternate} after 5pm."),
        1 => write!(note, "Call {number} before noon, not at work."),
        2 => write!(note, "Alternate email for invoices: {alternate}"),
        3 => write!(note, "Assistant handles orders; reach them on {number}."),
        _ => write!(
            note,
            "Changed address in March. New mobile {number}, email {alternate}."
        ),
    };
    note
}

#[cfg(test)]
mod tests {
    use super::*;

    fn luhn_valid(number: &str) -> bool {
        let digits: String = number.chars().filter(char::is_ascii_digit).collect();
        let (payload, check) = digits.split_at(digits.len() - 1);
        luhn_check_digit(payload).to_string() == check
    }

    #[test]
    fn luhn_reference_numbers() {
        assert!(luhn_valid("4111 1111 1111 1111"));
        assert!(luhn_valid("378282246310005"));
        assert!(luhn_valid("5555555555554444"));
        assert!(!luhn_valid("4111111111111112"));
    }

    #[test]
    fn iban_reference_numbers() {
        assert!(iban_valid("GB82 WEST 1234 5698 7654 32"));
        assert_eq!(
            iban_from_bban("DE", "370400440532013000"),
            "DE89370400440532013000"
        );
        assert_eq!(
            iban_from_bban("GB", "WEST12345698765432"),
            "GB82WEST12345698765432"
        );
    }

    fn iban_valid(iban: &str) -> bool {
        let compact: String = iban.chars().filter(|c| !c.is_whitespace()).collect();
        let (head, tail) = compact.split_at(4);
        mod97(&format!("{tail}{head}")) == 1
    }

    #[test]
    fn seed_is_deterministic_and_complete() {
        let (customers, orders) = generate(SEED);
        assert_eq!(customers.len(), 250);
        assert_eq!(orders.len(), 1_200);
        assert_eq!(generate(SEED), (customers.clone(), orders.clone()));
        assert_ne!(generate(SEED + 1).0, customers);
        // Pinned: a change here changes every demo database, which should be deliberate.
        assert_eq!(
            customers[0],
            Customer {
                id: 1,
                full_name: "Anthony Novak".into(),
                email: "a.novak@mail.example.com".into(),
                phone: None,
                ssn: Some("732-20-3002".into()),
                card_number: Some("2232 5078 6001 4687".into()),
                iban: Some("NL27 INGB 0567 3889 09".into()),
                notes: Some("Call (773) 908-0083 before noon, not at work.".into()),
                created_at: "2025-10-03T00:33:07Z".into(),
            }
        );
        assert_eq!(
            orders[0],
            Order {
                id: 1,
                customer_id: 48,
                amount_cents: 14_903,
                status: "paid",
                created_at: "2025-10-30T15:54:20Z".into(),
            }
        );
        assert!(orders.iter().all(|o| (1..=250).contains(&o.customer_id)));
        let statuses: std::collections::BTreeSet<&str> = orders.iter().map(|o| o.status).collect();
        assert_eq!(statuses.len(), 5);
    }

    #[test]
    fn every_card_passes_luhn() {
        let (customers, _) = generate(SEED);
        let cards: Vec<&String> = customers
            .iter()
            .filter_map(|c| c.card_number.as_ref())
            .collect();
        assert!(cards.len() > 100);
        for card in cards {
            let digits: String = card.chars().filter(char::is_ascii_digit).collect();
            assert!(luhn_valid(card), "{card}");
            match digits.len() {
                16 => assert!(
                    digits.starts_with('4') || digits.starts_with('5') || digits.starts_with('2'),
                    "{card}"
                ),
                15 => assert!(
                    digits.starts_with("34") || digits.starts_with("37"),
                    "{card}"
                ),
                n => panic!("{card}: {n} digits"),
            }
        }
    }

    #[test]
    fn every_iban_passes_mod_97() {
        let (customers, _) = generate(SEED);
        let ibans: Vec<&String> = customers.iter().filter_map(|c| c.iban.as_ref()).collect();
        assert!(ibans.len() > 80);
        for iban in ibans {
            assert!(iban_valid(iban), "{iban}");
            let compact: String = iban.chars().filter(|c| !c.is_whitespace()).collect();
            let expected_len = match &compact[..2] {
                "DE" | "GB" => 22,
                "FR" => 27,
                "NL" => 18,
                other => panic!("{other}"),
            };
            assert_eq!(compact.len(), expected_len, "{iban}");
        }
    }

    #[test]
    fn every_ssn_is_in_range() {
        let (customers, _) = generate(SEED);
        for ssn in customers.iter().filter_map(|c| c.ssn.as_ref()) {
            let parts: Vec<u32> = ssn.split('-').map(|p| p.parse().unwrap()).collect();
            assert_eq!(ssn.len(), 11, "{ssn}");
            assert!((1..=899).contains(&parts[0]) && parts[0] != 666, "{ssn}");
            assert!((1..=99).contains(&parts[1]), "{ssn}");
            assert!((1..=9999).contains(&parts[2]), "{ssn}");
        }
    }

    #[test]
    fn notes_mention_contacts_about_one_in_five() {
        let (customers, _) = generate(SEED);
        let mentions = customers
            .iter()
            .filter_map(|c| c.notes.as_ref())
            .filter(|n| n.contains('@') || n.chars().filter(char::is_ascii_digit).count() >= 10)
            .count();
        assert!((30..=70).contains(&mentions), "{mentions}");
    }

    #[test]
    fn timestamps_are_rfc3339_utc_in_range() {
        let (customers, orders) = generate(SEED);
        for at in customers
            .iter()
            .map(|c| &c.created_at)
            .chain(orders.iter().map(|o| &o.created_at))
        {
            let parsed = DateTime::parse_from_rfc3339(at).unwrap();
            assert!(at.ends_with('Z'));
            assert!(
                (2024..=2025).contains(&chrono::Datelike::year(&parsed)),
                "{at}"
            );
        }
    }

    #[test]
    fn url_escaping() {
        assert_eq!(url_escape("/a b/100%?#.db"), "/a b/100%25%3F%23.db");
    }
}
