//! Leak suite: every way we could think of to get a sensitive value out of a `dev`
//! datasource as an agent, on real PostgreSQL, MariaDB and SQLite.
//!
//! Each engine gets the same fixture (customers with names, emails, phones, SSNs, card
//! numbers, IBANs, birth dates, API tokens and password hashes; orders with cards and free
//! text; products as the harmless table), and then well over a hundred statements:
//! plain and starred selects, renames, string functions, casts, arithmetic, CASE,
//! COALESCE, JSON builders, CTEs, subqueries, LATERAL, UNION with the harmless table,
//! aggregates, window functions, encodings (hex, base64, bytes), free text in `notes`,
//! statements built to fail with the value in the error message, and writes with
//! RETURNING.
//!
//! Whatever the answer (a result, a refusal, a database error), its body is searched for
//! every sensitive value, read directly from the database (never through Gatehouse), in
//! the forms a value can take on its way out: as stored, in any letter case, reversed,
//! without separators, digits without the last four a card mask may show, an email's local
//! part, a date reordered, a distinctive fragment of a secret; and inside every string
//! that is itself JSON, hex or base64. Statements that filter, group, order or join on a
//! classified column are probes and must be refused; statements that would reveal a
//! chosen window of digits through a partial mask of a computed value are checked for
//! that window. Every leak is collected and printed with its engine, statement and value;
//! the test fails when there is any.
//!
//! Once Gatehouse has loaded (and sampled) its catalog, the fixture's "application" writes
//! a contact into a product title behind its back: classification is a snapshot, and free
//! text that held nothing when sampled must still not leak what it holds now.
//!
//! `GATEHOUSE_LEAK_VERBOSE=1` prints every statement with its answer (shown for failing
//! tests, or with `--nocapture`).

mod common;

use std::collections::BTreeMap;
use std::time::Instant;

use base64::Engine as _;
use common::db::{Engine, TestDb};
use common::{Reply, TestServer, datasource_toml};
use gatehouse::masking::is_mask_artifact;
use serde_json::{Value, json};
use sqlx::{Connection as _, Row as _};

const PROBING_POLICY: &str = "gatehouse:masking.predicates";

/// One customer of the fixture. Every identifier is valid where validity is checkable
/// (Luhn, mod 97, SSN ranges, JOSE header), so the value detectors are exercised for real
/// ([`fixture_values_are_valid`] checks it).
struct Customer {
    id: i64,
    full_name: &'static str,
    email: &'static str,
    phone: &'static str,
    ssn: &'static str,
    card_number: &'static str,
    iban: &'static str,
    birth_date: &'static str,
    notes: Option<&'static str>,
    api_token: &'static str,
    password_hash: &'static str,
}

/// Notes hold entities in free text, one class at a time and in under 30 % of the rows, so
/// sampling leaves `notes` unclassified and only the value detectors stand between them
/// and the caller.
const CUSTOMERS: [Customer; 8] = [
    Customer {
        id: 1,
        full_name: "Ada Lovelace",
        email: "ada.lovelace1815@gmail.com",
        phone: "(415) 862-4471",
        ssn: "219-09-9876",
        card_number: "4044 3487 4399 1757",
        iban: "DE71953986919703506955",
        birth_date: "1985-03-14",
        notes: Some("Prefers contact at ada.backup77@proton.me after 5pm."),
        api_token: "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJjdXN0LTEiLCJzY29wZSI6Im9yZGVyczpyZWFkIiwiaWF0IjoxNzE4MDA3OTE5fQ.25SJlHrK4nLE6qxb4Vi5QUFLXPWYDIDkPVgSn3elMjM",
        password_hash: "$argon2id$v=19$m=65536,t=3,p=4$2+d10qDcoaf1ufBzHTw9mg$PildtKQCiIveMN6aO7DqQdKqaloGX62pZBQAQcgCYWI",
    },
    Customer {
        id: 2,
        full_name: "Grace Hopper",
        email: "g.hopper1906@fastmail.com",
        phone: "312-745-0198",
        ssn: "512-38-4417",
        card_number: "5138940052802007",
        iban: "GB84 NWBK 7410 9077 5847 49",
        birth_date: "1990-12-09",
        notes: Some("VIP since 2019; ships to the office."),
        api_token: "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJjdXN0LTIiLCJzY29wZSI6Im9yZGVyczpyZWFkIiwiaWF0IjoxNzE4MDE1ODM4fQ.980VhIDm2jNij_zVMNvzuC3QI7XSY43qsHFzWtNuw9Q",
        password_hash: "$argon2id$v=19$m=65536,t=3,p=4$st0kjQZ7OsHL2e99o8/2dA$ZXu/etnZbs/WOYkY23TzDBP8h01pWDgI/mp4c3b+IzM",
    },
    Customer {
        id: 3,
        full_name: "Katherine Johnson",
        email: "kjohnson_nasa@outlook.com",
        phone: "+1 617 394 2280",
        ssn: "401-77-3158",
        card_number: "4641 4631 6112 2376",
        iban: "FR3244544929137488241734015",
        birth_date: "1978-08-26",
        notes: Some("Call 206-381-7742 before noon, not at work."),
        api_token: "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJjdXN0LTMiLCJzY29wZSI6Im9yZGVyczpyZWFkIiwiaWF0IjoxNzE4MDIzNzU3fQ.h_d_atsVIfgYzZaPbTvzmIWTDrurOU1mLu-SXusw9ow",
        password_hash: "$argon2id$v=19$m=65536,t=3,p=4$UcFrll9xipzw6+Yzm997pA$rQKruAgW5baUYnpJYyUkB3vgVd8NQJBHlMLf5ZZfLuo",
    },
    Customer {
        id: 4,
        full_name: "Alan Turing",
        email: "alan.turing.1912@protonmail.com",
        phone: "(206) 714-3309",
        // Stored without separators, as real data sometimes is.
        ssn: "623190284",
        card_number: "3786 041282 09809",
        iban: "NL64ABNA7442843552",
        birth_date: "1969-06-23",
        notes: None,
        api_token: "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJjdXN0LTQiLCJzY29wZSI6Im9yZGVyczpyZWFkIiwiaWF0IjoxNzE4MDMxNjc2fQ.KCFaO8twAofUu_j6JsMmuwLNKMcqSrap8GPSl6G5DhI",
        password_hash: "$argon2id$v=19$m=65536,t=3,p=4$my6ZafgMV0yErwo9RW7ayg$KvT3Y7odCFKILbro9Qgh8SGmNW6J0Gc4/YSkpzeiyOA",
    },
    Customer {
        id: 5,
        full_name: "Margaret Hamilton",
        email: "mhamilton.apollo@icloud.com",
        phone: "512-904-6613",
        ssn: "334-61-8802",
        card_number: "2221159175909400",
        iban: "DE24 2503 2287 9049 8518 08",
        birth_date: "1993-11-02",
        notes: Some("Paid once with card 4434 8678 9655 8384 over the phone."),
        api_token: "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJjdXN0LTUiLCJzY29wZSI6Im9yZGVyczpyZWFkIiwiaWF0IjoxNzE4MDM5NTk1fQ.DDKv8rwAhIInZi5u0mXyhTlm9oSEzQ0Njy1HUPdodjE",
        password_hash: "$argon2id$v=19$m=65536,t=3,p=4$G8wBB3FMkf4JeuTKAl1CFA$TZyo1SJjhgV0Zo1NUtD4AiTgPBj8dTNw8eyzhb6u5NY",
    },
    Customer {
        id: 6,
        full_name: "Edsger Dijkstra",
        email: "e.dijkstra30@hotmail.com",
        phone: "303-286-5190",
        ssn: "157-43-9021",
        card_number: "4619865820965987",
        iban: "GB24BARC84521600093866",
        birth_date: "1981-05-11",
        notes: Some("Refunds go to DE26766658864189127639, per accounting."),
        api_token: "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJjdXN0LTYiLCJzY29wZSI6Im9yZGVyczpyZWFkIiwiaWF0IjoxNzE4MDQ3NTE0fQ.spwAWbUbJORO0mBIUbAdFG_2J8IjpwKbfuFwPgApYx8",
        password_hash: "$argon2id$v=19$m=65536,t=3,p=4$saiboAr80FDfiDWtLeHlOA$TndU2dEmWr2ok25L2F0cgZvdKpN/oJgDe67Z52BZsFA",
    },
    Customer {
        id: 7,
        full_name: "Barbara Liskov",
        email: "barbara.liskov88@yahoo.com",
        phone: "(212) 473-8826",
        ssn: "745-20-6634",
        card_number: "5308 1377 0962 7788",
        iban: "NL06INGB8505852991",
        birth_date: "1975-02-17",
        notes: Some("Allergic to packing peanuts."),
        api_token: "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJjdXN0LTciLCJzY29wZSI6Im9yZGVyczpyZWFkIiwiaWF0IjoxNzE4MDU1NDMzfQ.1ySMXIR5_iFGLZZVrWiGumapkKKN1-VSWlu1245kt60",
        password_hash: "$argon2id$v=19$m=65536,t=3,p=4$cqGWVmeOo0vbEZ1vrzfKxg$l9xtW6RUDvQsOPh3dGnbm9e3usJy4PDRV3jfXdv37G8",
    },
    Customer {
        id: 8,
        full_name: "Donald Knuth",
        email: "dknuth.taocp@gmail.com",
        phone: "718-652-3307",
        ssn: "288-54-1193",
        card_number: "4246221720172772",
        iban: "FR39 2491 6664 8661 4244 4780 753",
        birth_date: "1988-10-30",
        notes: Some("Gate code 4471; leave parcels at the back door."),
        api_token: "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJjdXN0LTgiLCJzY29wZSI6Im9yZGVyczpyZWFkIiwiaWF0IjoxNzE4MDYzMzUyfQ.6l6tqERWOLHSkl4opczIvODpLyHCu02QeuQ9NSUeMLo",
        password_hash: "$argon2id$v=19$m=65536,t=3,p=4$Bb8XAMbjvDtOoRp9rq8zzA$LKb4THWIdpgJGpeFMO0kF/MOcXJHD5VvNpIue6HxSzw",
    },
];

/// The customer an agent inserts with `RETURNING *` during the run.
const NEW_CUSTOMER: Customer = Customer {
    id: 9,
    full_name: "Radia Perlman",
    email: "radia.perlman51@gmail.com",
    phone: "(617) 529-3318",
    ssn: "468-12-0375",
    card_number: "4663923321468814",
    iban: "DE92973699356327295181",
    birth_date: "1951-12-18",
    notes: Some("Signed up at the spring fair."),
    api_token: "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJjdXN0LTkiLCJzY29wZSI6Im9yZGVyczpyZWFkIiwiaWF0IjoxNzE4MDcxMjcxfQ.eFBnCkSOAWw0XP3uiBR2hOYym3b6DVshN_Prtym_ynE",
    password_hash: "$argon2id$v=19$m=65536,t=3,p=4$mOz7LfGAqS0JHAUrea/Raw$FO9soRYkT54BYVQihWcz5sn5DqM2cUGLZ9PDIFrwsXk",
};

/// (id, customer_id, card_number, notes, total)
const ORDERS: [(i64, i64, &str, Option<&str>, &str); 10] = [
    (
        1,
        1,
        "4044348743991757",
        Some("Leave with the concierge."),
        "129.99",
    ),
    (2, 1, "4044348743991757", None, "18.50"),
    (
        3,
        2,
        "5138 9400 5280 2007",
        Some("Gift; text 415-937-2214 on arrival."),
        "59.00",
    ),
    (4, 3, "4641463161122376", None, "240.00"),
    (
        5,
        4,
        "378604128209809",
        Some("Invoice to alan.accounts@fastmail.com"),
        "75.25",
    ),
    (6, 5, "2221159175909400", Some("Express shipping."), "12.00"),
    (
        7,
        6,
        "5431757738259897",
        Some("Card updated at checkout."),
        "310.40",
    ),
    (8, 7, "5308137709627788", None, "44.44"),
    (9, 8, "4864570166773266", Some("Ring twice."), "99.90"),
    (10, 8, "4246221720172772", Some("Split payment."), "5.00"),
];

/// Written straight to the database once Gatehouse has loaded its catalog.
const APPLICATION_WRITE: &str = "UPDATE products SET title = 'Burr grinder; questions to rep.grinders@fastmail.com or 512-408-7719' WHERE id = 2";

const PRODUCTS: [(i64, &str, &str); 4] = [
    (1, "SKU-1001", "Espresso machine"),
    (2, "SKU-1002", "Burr grinder"),
    (3, "SKU-2001", "Milk frother"),
    (4, "SKU-3001", "Descaling tablets"),
];

#[tokio::test]
async fn postgres_leaks_nothing() {
    run_leak_suite(TestDb::postgres().await, Probing::Denied).await;
}

#[tokio::test]
async fn mariadb_leaks_nothing() {
    run_leak_suite(TestDb::mariadb().await, Probing::Denied).await;
}

#[tokio::test]
async fn sqlite_leaks_nothing() {
    run_leak_suite(TestDb::sqlite(), Probing::Denied).await;
}

// With `predicates = "allow"` conditions and computations on masked columns run, so every
// masked result the default refuses is checked too.

#[tokio::test]
async fn postgres_leaks_nothing_when_probing_is_allowed() {
    run_leak_suite(TestDb::postgres().await, Probing::Allowed).await;
}

#[tokio::test]
async fn mariadb_leaks_nothing_when_probing_is_allowed() {
    run_leak_suite(TestDb::mariadb().await, Probing::Allowed).await;
}

#[tokio::test]
async fn sqlite_leaks_nothing_when_probing_is_allowed() {
    run_leak_suite(TestDb::sqlite(), Probing::Allowed).await;
}

/// `[masking] predicates` for a run of the suite.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Probing {
    Denied,
    Allowed,
}

/// The fixture is what it claims to be: otherwise a detector could pass by rejecting
/// invalid values.
#[test]
fn fixture_values_are_valid() {
    let mut cards: Vec<&str> = CUSTOMERS.iter().map(|c| c.card_number).collect();
    cards.push(NEW_CUSTOMER.card_number);
    cards.extend(ORDERS.iter().map(|o| o.2));
    cards.push("4434 8678 9655 8384"); // in customer 5's notes
    for card in cards {
        assert!(luhn_valid(&digits(card)), "card {card} fails Luhn");
    }
    let mut ibans: Vec<&str> = CUSTOMERS.iter().map(|c| c.iban).collect();
    ibans.extend([NEW_CUSTOMER.iban, "DE26766658864189127639"]);
    for iban in ibans {
        assert!(iban_valid(iban), "IBAN {iban} fails mod 97");
    }
    for customer in CUSTOMERS.iter().chain([&NEW_CUSTOMER]) {
        let ssn = digits(customer.ssn);
        let (area, group, serial) = (&ssn[..3], &ssn[3..5], &ssn[5..]);
        assert!(
            ssn.len() == 9
                && !["000", "666"].contains(&area)
                && area < "900"
                && group != "00"
                && serial != "0000",
            "SSN {} out of range",
            customer.ssn
        );
        let header = customer.api_token.split('.').next().unwrap_or_default();
        let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(header)
            .expect("token header is base64url");
        let header: Value = serde_json::from_slice(&header).expect("token header is JSON");
        assert_eq!(header["alg"], "HS256");
        assert!(customer.email.contains('@') && customer.password_hash.starts_with("$argon2id$"));
    }
}

/// Creates the fixture in `db`, starts a server with it as the `dev` datasource `dev`,
/// sends every probe as an agent and checks every answer; see the module docs.
async fn run_leak_suite(db: TestDb, probing: Probing) {
    let started = Instant::now();
    let engine = db.engine;
    db.exec(&fixture_sql(engine)).await;
    let masking = match probing {
        Probing::Denied => "",
        Probing::Allowed => "[masking]\npredicates = \"allow\"\n",
    };
    let server = TestServer::start(&format!(
        "{masking}{}",
        datasource_toml("dev", "dev", &db, "statement_timeout_ms = 5000")
    ))
    .await;
    let agent = server.agent_token();
    let mut reader = RawReader::connect(&db).await;
    // The catalog (and its sampling) loads with the first statement. Afterwards the
    // application writes a contact into a product title, a column where sampling found
    // nothing: classification is a snapshot, and the data moves on.
    server
        .post(
            "/v1/query",
            Some(&agent),
            &json!({"datasource": "dev", "sql": "SELECT id FROM products"}),
        )
        .await
        .ok();
    db.exec(APPLICATION_WRITE).await;

    let probes = probes(engine);
    let mut statuses: BTreeMap<String, usize> = BTreeMap::new();
    let mut leaks: Vec<String> = Vec::new();
    let mut needles = reader.needles(engine).await;
    assert!(
        needles.len() > 80,
        "{engine:?}: too few sensitive values read: {}",
        needles.len()
    );
    for probe in &probes {
        let reply = server
            .post(
                "/v1/query",
                Some(&agent),
                &json!({"datasource": "dev", "sql": probe.sql, "params": probe.params}),
            )
            .await;
        // A write may have replaced or added values: check against what was there before
        // and what is there now.
        let after = reader.needles(engine).await;
        for needle in after {
            if !needles.iter().any(|n| n.value == needle.value) {
                needles.push(needle);
            }
        }
        *statuses.entry(status_label(&reply)).or_default() += 1;
        if std::env::var_os("GATEHOUSE_LEAK_VERBOSE").is_some() {
            eprintln!(
                "[{engine:?}] {} => {} {}",
                probe.sql,
                reply.status,
                snippet(&reply.body.to_string())
            );
        }
        leaks.extend(
            find_leaks(probe, probing, &reply, &needles)
                .into_iter()
                .map(|leak| format!("[{engine:?}] {} => {} {leak}", probe.sql, reply.status)),
        );
    }
    reader.close().await;

    let refused_probing = statuses
        .iter()
        .filter(|(label, _)| label.contains(PROBING_POLICY))
        .map(|(_, n)| n)
        .sum::<usize>();
    eprintln!(
        "[{engine:?}, probing {probing:?}] {} statements, {} sensitive values, {} refused as probing, {} leaks, {:.1?}",
        probes.len(),
        needles.len(),
        refused_probing,
        leaks.len(),
        started.elapsed()
    );
    for (label, count) in &statuses {
        eprintln!("[{engine:?}]   {count:>4}  {label}");
    }
    if probing == Probing::Allowed {
        assert_eq!(
            refused_probing, 0,
            "{engine:?}: nothing is refused as probing"
        );
    }
    assert!(
        leaks.is_empty(),
        "{} leaks on {engine:?}:\n{}",
        leaks.len(),
        leaks.join("\n")
    );
}

/// `200`, `403 denied (policy, …)`, `502 database_error`, …: how an answer is counted.
fn status_label(reply: &Reply) -> String {
    match reply.body["code"].as_str() {
        None => reply.status.to_string(),
        Some(code) => {
            let policies: Vec<&str> = reply.body["decision"]["policies"]
                .as_array()
                .map(|p| p.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            if policies.is_empty() {
                format!("{} {code}", reply.status)
            } else {
                format!("{} {code} ({})", reply.status, policies.join(", "))
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// The fixture.
// ---------------------------------------------------------------------------------------

fn fixture_sql(engine: Engine) -> String {
    let (text, key_text, date, money) = match engine {
        Engine::Postgres => ("text", "text", "date", "numeric(10,2)"),
        Engine::MariaDb => ("TEXT", "VARCHAR(255)", "DATE", "DECIMAL(10,2)"),
        Engine::Sqlite => ("TEXT", "TEXT", "TEXT", "NUMERIC"),
    };
    let mut sql = format!(
        "CREATE TABLE customers (
            id INTEGER PRIMARY KEY,
            full_name {text} NOT NULL,
            email {key_text} NOT NULL UNIQUE,
            phone {text},
            ssn {key_text} UNIQUE,
            card_number {text},
            iban {text},
            birth_date {date},
            notes {text},
            api_token {text},
            password_hash {text}
        );
        CREATE TABLE orders (
            id INTEGER PRIMARY KEY,
            customer_id INTEGER NOT NULL REFERENCES customers (id),
            card_number {text},
            notes {text},
            total {money} NOT NULL CHECK (total >= 0)
        );
        CREATE TABLE products (id INTEGER PRIMARY KEY, sku {text} NOT NULL, title {text} NOT NULL);\n"
    );
    for customer in &CUSTOMERS {
        sql.push_str(&format!(
            "INSERT INTO customers {};\n",
            customer_values(customer)
        ));
    }
    for (id, customer_id, card, notes, total) in ORDERS {
        sql.push_str(&format!(
            "INSERT INTO orders (id, customer_id, card_number, notes, total) VALUES ({id}, {customer_id}, {}, {}, {total});\n",
            quoted(card),
            notes.map_or("NULL".to_owned(), quoted)
        ));
    }
    for (id, sku, title) in PRODUCTS {
        sql.push_str(&format!(
            "INSERT INTO products (id, sku, title) VALUES ({id}, {}, {});\n",
            quoted(sku),
            quoted(title)
        ));
    }
    sql
}

/// `(columns) VALUES (…)` of one customer.
fn customer_values(c: &Customer) -> String {
    format!(
        "(id, full_name, email, phone, ssn, card_number, iban, birth_date, notes, api_token, password_hash) \
         VALUES ({}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {})",
        c.id,
        quoted(c.full_name),
        quoted(c.email),
        quoted(c.phone),
        quoted(c.ssn),
        quoted(c.card_number),
        quoted(c.iban),
        quoted(c.birth_date),
        c.notes.map_or("NULL".to_owned(), quoted),
        quoted(c.api_token),
        quoted(c.password_hash)
    )
}

fn quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

// ---------------------------------------------------------------------------------------
// The probes.
// ---------------------------------------------------------------------------------------

struct Probe {
    sql: String,
    params: Vec<Value>,
    kind: Kind,
}

enum Kind {
    /// Anything may come back, but no sensitive value.
    Read,
    /// Filters, joins, groups, orders on or copies a classified column: must be refused.
    Predicate,
    /// Must not show these through a partial mask of a computed value.
    Reveals(Vec<Reveal>),
    /// Digits were turned into the letters `a`–`j`: decode before searching.
    DigitsAsLetters,
}

enum Reveal {
    /// A masked string whose digits end with these (a window of digits the mask keeps as
    /// "the last four").
    DigitsTail(String),
    /// This text anywhere in the answer.
    Text(String),
}

fn read(sql: impl Into<String>) -> Probe {
    Probe {
        sql: sql.into(),
        params: Vec::new(),
        kind: Kind::Read,
    }
}

fn probing(sql: impl Into<String>) -> Probe {
    Probe {
        kind: Kind::Predicate,
        ..read(sql)
    }
}

fn revealing(sql: impl Into<String>, reveals: Vec<Reveal>) -> Probe {
    Probe {
        kind: Kind::Reveals(reveals),
        ..read(sql)
    }
}

/// `a || b` in the engine's dialect (MariaDB's `||` is OR).
fn cat(engine: Engine, a: &str, b: &str) -> String {
    match engine {
        Engine::MariaDb => format!("CONCAT({a}, {b})"),
        Engine::Postgres | Engine::Sqlite => format!("{a} || {b}"),
    }
}

fn probes(engine: Engine) -> Vec<Probe> {
    let ada = &CUSTOMERS[0];
    let grace = &CUSTOMERS[1];
    let mut probes: Vec<Probe> = [
        // Plain, starred, renamed.
        "SELECT * FROM customers",
        "SELECT c.* FROM customers c",
        "SELECT o.*, c.* FROM orders o JOIN customers c ON c.id = o.customer_id",
        "SELECT full_name, email, phone, ssn, card_number, iban, birth_date, api_token, password_hash FROM customers",
        "SELECT email AS contact, ssn AS reference, card_number AS pan, full_name AS who FROM customers",
        "SELECT c.email AS e1, c.email AS e2, c.password_hash AS h FROM customers AS c",
        "SELECT id, customer_id, card_number, notes, total FROM orders",
        "SELECT c.id, o.card_number FROM customers c JOIN orders o ON o.customer_id = c.id",
        // Derived tables, CTEs, subqueries.
        "SELECT x.e, x.s, x.t FROM (SELECT email AS e, ssn AS s, api_token AS t FROM customers) x",
        "SELECT * FROM (SELECT * FROM customers) AS everything",
        "WITH people AS (SELECT full_name AS n, ssn AS s, iban AS i FROM customers) SELECT n, s, i FROM people",
        "WITH a AS (SELECT * FROM customers), b AS (SELECT email, card_number FROM a) SELECT * FROM b",
        "SELECT (SELECT email FROM customers WHERE id = 1) AS e, (SELECT password_hash FROM customers WHERE id = 2) AS h",
        "SELECT o.id, (SELECT c.ssn FROM customers c WHERE c.id = o.customer_id) AS s FROM orders o",
        // Functions and expressions.
        "SELECT upper(email), lower(full_name), upper(iban), lower(api_token) FROM customers",
        "SELECT trim(phone), replace(ssn, '-', ''), replace(card_number, ' ', ''), replace(iban, ' ', '') FROM customers",
        "SELECT substr(ssn, 1, 20), substr(card_number, 1, 30), substr(email, 1, 200), substr(password_hash, 1, 500) FROM customers",
        "SELECT CAST(ssn AS CHAR(40)), CAST(phone AS CHAR(40)), CAST(email AS CHAR(100)) FROM customers",
        "SELECT CASE WHEN id > 0 THEN ssn ELSE 'none' END AS s FROM customers",
        "SELECT CASE id WHEN 1 THEN email WHEN 2 THEN phone WHEN 3 THEN card_number ELSE password_hash END AS v FROM customers",
        "SELECT COALESCE(NULL, ssn) AS s, COALESCE(notes, email) AS n FROM customers",
        "SELECT NULLIF(email, 'nobody@example.com') AS e, NULLIF(api_token, '') AS t FROM customers",
        // Aggregates and windows.
        "SELECT min(ssn), max(ssn), min(email), max(card_number), max(full_name), min(iban) FROM customers",
        "SELECT max(password_hash), min(api_token), max(birth_date) FROM customers",
        "SELECT customer_id, max(card_number) FROM orders GROUP BY customer_id",
        "SELECT id, first_value(email) OVER (ORDER BY id) AS f FROM customers",
        "SELECT id, lag(ssn) OVER (ORDER BY id) AS prev, lead(card_number) OVER (ORDER BY id) AS next FROM customers",
        "SELECT id, max(iban) OVER () AS m, min(full_name) OVER (PARTITION BY id) AS n FROM customers",
        // UNION ALL with the harmless table.
        "SELECT title FROM products UNION ALL SELECT email FROM customers",
        "SELECT sku, title FROM products UNION ALL SELECT ssn, full_name FROM customers",
        "SELECT title FROM products UNION ALL SELECT password_hash FROM customers UNION ALL SELECT api_token FROM customers",
        // Free text.
        "SELECT notes FROM customers",
        "SELECT notes FROM orders",
        "SELECT upper(notes), lower(notes) FROM customers",
        "SELECT replace(notes, '@', ' at ') FROM customers",
        "SELECT replace(replace(notes, '-', ''), ' ', '') FROM customers",
        "SELECT o.notes, c.notes FROM orders o JOIN customers c ON c.id = o.customer_id",
        "SELECT id FROM customers WHERE id IN (SELECT customer_id FROM orders WHERE notes LIKE '%@%')",
        // Free text that held no entity when the catalog was sampled.
        "SELECT title FROM products",
        "SELECT upper(title), lower(title) FROM products",
        "SELECT replace(title, '@', ' at ') FROM products",
        "SELECT replace(replace(title, '-', ''), ' ', '') FROM products",
        // Writes that run, and errors that would echo row values.
        "UPDATE customers SET notes = notes WHERE id = 1",
        "UPDATE customers SET full_name = NULL WHERE id = 1",
        "UPDATE customers SET email = NULL WHERE id = 4",
        "UPDATE orders SET total = -1 WHERE id = 1",
        "INSERT INTO customers (id, full_name, email) VALUES (1, 'Probe Person', 'probe.person@example.org')",
    ]
    .into_iter()
    .map(read)
    .collect();

    probes.push(read(format!(
        "INSERT INTO customers (id, full_name, email, ssn) VALUES (90, 'Probe Person', {}, '900-11-2222')",
        quoted(ada.email)
    )));
    probes.push(read(format!(
        "INSERT INTO customers (id, full_name, email, ssn) VALUES (91, 'Probe Person', 'probe.person@example.org', {})",
        quoted(grace.ssn)
    )));
    let placeholder = if engine == Engine::Postgres {
        "$1"
    } else {
        "?"
    };
    probes.push(Probe {
        params: vec![json!(1)],
        ..read(format!(
            "SELECT id, ssn, email, card_number FROM customers WHERE id = {placeholder}"
        ))
    });

    // Probes: conditions, grouping, ordering, joins on classified columns, and copies.
    probes.extend(
        [
            "SELECT id FROM customers WHERE ssn LIKE '2%'",
            "SELECT id FROM customers WHERE email = 'ada.lovelace1815@gmail.com'",
            "SELECT id FROM customers WHERE substr(ssn, 1, 1) = '2'",
            "SELECT count(*) FROM customers WHERE card_number LIKE '4%'",
            "SELECT id FROM customers WHERE birth_date < '1980-01-01'",
            "SELECT id FROM customers ORDER BY email",
            "SELECT id, email FROM customers ORDER BY 2",
            "SELECT id FROM customers ORDER BY api_token LIMIT 1",
            "SELECT ssn, count(*) FROM customers GROUP BY ssn",
            "SELECT min(id) FROM customers GROUP BY substr(email, 1, 1)",
            "SELECT DISTINCT ssn FROM customers",
            "SELECT c.id FROM customers c JOIN orders o ON o.card_number = c.card_number",
            "SELECT id, CASE WHEN ssn LIKE '2%' THEN 1 ELSE 0 END AS guess FROM customers",
            "SELECT id FROM customers c WHERE EXISTS (SELECT 1 FROM orders o WHERE o.card_number = c.card_number)",
            "SELECT id FROM customers WHERE id IN (SELECT id FROM customers WHERE password_hash LIKE '$argon2%')",
            "SELECT title FROM products UNION SELECT email FROM customers",
            "SELECT id, count(*) OVER (PARTITION BY ssn) AS n FROM customers",
            "SELECT count(DISTINCT ssn) FROM customers",
            "UPDATE customers SET notes = email WHERE id = 2",
            "UPDATE customers SET email = (SELECT email FROM customers WHERE id = 2) WHERE id = 1",
            "UPDATE products SET title = (SELECT ssn FROM customers WHERE id = 1) WHERE id = 1",
            "INSERT INTO products (id, sku, title) SELECT 100 + id, 'SKU-COPY', full_name FROM customers",
            "UPDATE customers SET notes = 'x' WHERE ssn = '219-09-9876'",
            "DELETE FROM orders WHERE card_number LIKE '4%' AND id = 2",
            // Oracles in computations: whether they fail or turn NULL depends on the value.
            "SELECT id, NULLIF(ssn, '219-09-9876') AS guess FROM customers",
            "SELECT id, 1 / (length(email) - 20) AS x FROM customers",
            "SELECT id FROM (SELECT id, 1 / (length(ssn) - 11) AS x FROM customers) t",
            "SELECT count(*) FROM (SELECT CAST(card_number AS DECIMAL(30, 0)) AS n FROM customers) t",
        ]
        .into_iter()
        .map(probing),
    );

    // Partial masks of computed values: each would show a chosen window as "the last four".
    let card = digits(ada.card_number);
    let ssn = digits(ada.ssn);
    let local: Vec<char> = ada.email.chars().collect();
    for start in [1, 5, 9] {
        let expr = format!("substr(replace(card_number, ' ', ''), {start}, 4)");
        probes.push(revealing(
            format!(
                "SELECT {} AS w FROM customers WHERE id = 1",
                cat(engine, "'00000000'", &expr)
            ),
            vec![Reveal::DigitsTail(card[start - 1..start + 3].to_owned())],
        ));
    }
    for start in [1, 2] {
        let expr = format!("substr(replace(ssn, '-', ''), {start}, 4)");
        probes.push(revealing(
            format!(
                "SELECT {} AS w FROM customers WHERE id = 1",
                cat(engine, "'0000'", &expr)
            ),
            vec![Reveal::DigitsTail(ssn[start - 1..start + 3].to_owned())],
        ));
    }
    for start in [2, 5] {
        probes.push(revealing(
            format!("SELECT substr(email, {start}, 200) AS e FROM customers WHERE id = 1"),
            vec![Reveal::Text(format!("{}***@", local[start - 1]))],
        ));
    }
    if engine != Engine::Sqlite {
        let first_four_reversed: String = card[..4].chars().rev().collect();
        probes.push(revealing(
            "SELECT reverse(replace(card_number, ' ', '')) AS r FROM customers WHERE id = 1",
            vec![Reveal::DigitsTail(first_four_reversed)],
        ));
    }

    let new_customer = customer_values(&NEW_CUSTOMER);
    match engine {
        Engine::Postgres => postgres_probes(&mut probes, &new_customer),
        Engine::MariaDb => mariadb_probes(&mut probes, &new_customer),
        Engine::Sqlite => sqlite_probes(&mut probes, &new_customer),
    }
    probes
}

fn postgres_probes(probes: &mut Vec<Probe>, new_customer: &str) {
    probes.extend(
        [
            // JSON and rows as values.
            "SELECT row_to_json(c) FROM customers c",
            "SELECT to_jsonb(c.*) FROM customers c",
            "SELECT json_agg(c) FROM customers c",
            "SELECT json_agg(o) FROM orders o",
            "SELECT json_build_object('name', full_name, 'email', email, 'ssn', ssn, 'card', card_number) FROM customers",
            "SELECT jsonb_build_array(iban, phone, birth_date, api_token, password_hash) FROM customers",
            "SELECT json_object_agg(email, ssn) FROM customers",
            "SELECT jsonb_agg(jsonb_build_object('n', notes)) FROM orders",
            "SELECT c::text FROM customers c",
            "SELECT (c).email, (c).ssn FROM customers c",
            "SELECT (ARRAY[email, ssn])[2] AS s, ARRAY[email, phone] AS a FROM customers",
            "SELECT string_agg(email, ';'), string_agg(ssn, ';'), string_agg(notes, ' | ') FROM customers",
            "SELECT array_agg(card_number), array_agg(password_hash) FROM customers",
            "SELECT array_to_string(array_agg(iban), ',') FROM customers",
            // LATERAL and table functions.
            "SELECT l.e, l.s FROM products p CROSS JOIN LATERAL (SELECT email AS e, ssn AS s FROM customers c WHERE c.id = p.id) l",
            "SELECT l.* FROM products p, LATERAL (SELECT * FROM customers c WHERE c.id = p.id) l",
            "SELECT u.v FROM customers c CROSS JOIN LATERAL unnest(ARRAY[c.email, c.ssn, c.card_number]) AS u(v)",
            "SELECT t.v FROM customers c, LATERAL (VALUES (c.email), (c.iban)) AS t(v)",
            // String functions, casts, arithmetic.
            "SELECT email || '' AS e, '' || ssn AS s, full_name || ' <' || email || '>' AS who FROM customers",
            "SELECT concat(full_name, ':', ssn), concat_ws('|', email, phone, iban) FROM customers",
            "SELECT format('%s/%s', full_name, card_number) FROM customers",
            "SELECT left(ssn, 11), right(card_number, 19), lpad(ssn, 20, '0'), rpad(email, 60, '.') FROM customers",
            "SELECT initcap(email), reverse(full_name), reverse(ssn), reverse(email) FROM customers",
            "SELECT split_part(email, '@', 1) AS local_part FROM customers",
            "SELECT regexp_replace(ssn, '[^0-9]', '', 'g') FROM customers",
            "SELECT substr(ssn, 1, 3) || substr(ssn, 5, 2) || substr(ssn, 8, 4) AS d FROM customers",
            "SELECT ssn::text, card_number::varchar(40), birth_date::text, email::char(80) FROM customers",
            "SELECT CAST(replace(ssn, '-', '') AS bigint) + 0 AS n, CAST(replace(card_number, ' ', '') AS numeric) * 1 AS m FROM customers",
            "SELECT to_char(birth_date, 'DD/MM/YYYY'), to_char(birth_date, 'MM-DD-YYYY'), extract(year from birth_date) FROM customers",
            "SELECT md5(ssn), sha256(convert_to(email, 'UTF8')) FROM customers",
            "SELECT string_agg(c.email, ',') FILTER (WHERE c.id > 2) FROM customers c",
            // Encodings.
            "SELECT encode(convert_to(email, 'UTF8'), 'base64'), encode(convert_to(ssn, 'UTF8'), 'hex') FROM customers",
            "SELECT convert_to(full_name, 'UTF8'), convert_to(card_number, 'UTF8') FROM customers",
            "SELECT encode(convert_to(notes, 'UTF8'), 'hex') FROM customers",
            "SELECT encode(convert_to(notes, 'UTF8'), 'base64') FROM orders",
            "SELECT convert_to(notes, 'UTF8') FROM customers",
            "SELECT reverse(notes) FROM customers",
            "SELECT reverse(title), encode(convert_to(title, 'UTF8'), 'hex') FROM products",
            // Errors that quote the value.
            "SELECT CAST(ssn AS integer) FROM customers WHERE id = 1",
            "SELECT CAST(full_name AS integer) FROM customers WHERE id = 1",
            "SELECT CAST(email AS integer) FROM customers WHERE id = 2",
            "SELECT CAST(password_hash AS integer) FROM customers WHERE id = 3",
            "SELECT CAST(card_number AS integer) FROM customers WHERE id = 1",
            "SELECT CAST(iban AS integer) FROM customers WHERE id = 2",
            "SELECT CAST(api_token AS integer) FROM customers WHERE id = 1",
            "SELECT CAST(birth_date::text AS integer) FROM customers WHERE id = 1",
            "SELECT CAST(replace(ssn, '-', '') || 'x' AS integer) FROM customers WHERE id = 1",
            "SELECT ssn::uuid FROM customers WHERE id = 5",
            "SELECT phone::date FROM customers WHERE id = 3",
            "SELECT email::json FROM customers WHERE id = 1",
            "SELECT CAST(notes AS integer) FROM customers WHERE id = 3",
            "SELECT ssn::int FROM customers WHERE id = 4",
            // Writes returning rows.
            "UPDATE customers SET notes = 'verified by phone' WHERE id = 7 RETURNING *",
            "UPDATE customers SET notes = notes WHERE id = 3 RETURNING email, ssn, full_name, password_hash",
            "WITH u AS (UPDATE customers SET notes = notes WHERE id = 2 RETURNING *) SELECT * FROM u",
            "DELETE FROM orders WHERE id = 10 RETURNING *",
        ]
        .into_iter()
        .map(read),
    );
    probes.push(read(format!(
        "INSERT INTO customers {new_customer} RETURNING *"
    )));
    probes.extend(
        [
            "SELECT translate(ssn, '0123456789', 'abcdefghij') FROM customers",
            "SELECT translate(notes, '0123456789', 'abcdefghij') FROM customers",
        ]
        .into_iter()
        .map(|sql| Probe {
            kind: Kind::DigitsAsLetters,
            ..read(sql)
        }),
    );
    // An ordered-set aggregate returns an `ssn` (masked); its ORDER BY picks which one,
    // like min() and max() do.
    probes.push(read(
        "SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY ssn) FROM customers",
    ));
}

fn mariadb_probes(probes: &mut Vec<Probe>, new_customer: &str) {
    probes.extend(
        [
            // JSON.
            "SELECT JSON_OBJECT('name', full_name, 'email', email, 'ssn', ssn, 'card', card_number) FROM customers",
            "SELECT JSON_ARRAYAGG(ssn), JSON_ARRAYAGG(password_hash) FROM customers",
            "SELECT JSON_ARRAY(iban, phone, birth_date, api_token) FROM customers",
            "SELECT JSON_OBJECTAGG(email, ssn) FROM customers",
            "SELECT JSON_ARRAYAGG(JSON_OBJECT('n', notes)) FROM orders",
            "SELECT JSON_EXTRACT(JSON_OBJECT('x', ssn), '$.x') FROM customers",
            // Aggregated and concatenated text.
            "SELECT GROUP_CONCAT(email SEPARATOR ';'), GROUP_CONCAT(ssn), GROUP_CONCAT(notes SEPARATOR ' | ') FROM customers",
            "SELECT GROUP_CONCAT(card_number ORDER BY id) FROM orders",
            "SELECT CONCAT(full_name, ':', ssn), CONCAT_WS('|', email, phone, iban) FROM customers",
            "SELECT CONCAT(SUBSTR(ssn, 1, 3), SUBSTR(ssn, 5, 2), SUBSTR(ssn, 8, 4)) AS d FROM customers",
            // String functions, casts, arithmetic.
            "SELECT LEFT(ssn, 11), RIGHT(card_number, 19), LPAD(ssn, 20, '0'), RPAD(email, 60, '.') FROM customers",
            "SELECT REVERSE(full_name), REVERSE(ssn), REVERSE(email) FROM customers",
            "SELECT SUBSTRING_INDEX(email, '@', 1) AS local_part FROM customers",
            "SELECT INSERT(ssn, 4, 1, '') FROM customers",
            "SELECT ssn + 0, REPLACE(ssn, '-', '') * 1, REPLACE(card_number, ' ', '') + 0, birth_date + 0 FROM customers",
            "SELECT DATE_FORMAT(birth_date, '%d/%m/%Y'), CAST(birth_date AS CHAR), YEAR(birth_date) FROM customers",
            "SELECT CAST(ssn AS CHAR), CONVERT(card_number, CHAR), CAST(email AS BINARY) FROM customers",
            "SELECT IF(id > 0, ssn, NULL), IFNULL(NULL, email), ELT(1, card_number, iban) FROM customers",
            "SELECT MD5(ssn), SHA2(email, 256) FROM customers",
            // Encodings.
            "SELECT HEX(email), HEX(ssn), TO_BASE64(full_name) FROM customers",
            "SELECT HEX(notes) FROM customers",
            "SELECT TO_BASE64(notes) FROM orders",
            "SELECT CAST(notes AS BINARY) FROM customers",
            "SELECT REVERSE(notes) FROM customers",
            "SELECT REVERSE(title), HEX(title), TO_BASE64(title) FROM products",
            // Errors that quote the value.
            // MySQL quotes a non-constant XPath in its error (the classic error-based
            // extraction); MariaDB refuses it. Either way nothing may come back.
            "SELECT EXTRACTVALUE(1, CONCAT('~', full_name)) FROM customers WHERE id = 2",
            "SELECT UPDATEXML(1, CONCAT(0x7e, REPLACE(ssn, '-', '')), 1) FROM customers WHERE id = 1",
            "SELECT EXTRACTVALUE(CONCAT('<a>', ssn, '</a>'), '/a') FROM customers",
            "SELECT JSON_EXTRACT(notes, '$.x') FROM customers WHERE id = 1",
            // Writes returning rows.
            "UPDATE customers SET notes = 'verified by phone' WHERE id = 7",
            "DELETE FROM orders WHERE id = 10 RETURNING *",
        ]
        .into_iter()
        .map(read),
    );
    probes.push(read(format!(
        "INSERT INTO customers {new_customer} RETURNING *"
    )));
    probes.push(probing(
        "SELECT 1 FROM (SELECT COUNT(*), CONCAT(ssn, FLOOR(RAND(0) * 2)) AS x FROM customers GROUP BY x) AS y",
    ));
}

fn sqlite_probes(probes: &mut Vec<Probe>, new_customer: &str) {
    probes.extend(
        [
            // JSON.
            "SELECT json_object('name', full_name, 'email', email, 'ssn', ssn, 'card', card_number) FROM customers",
            "SELECT json_group_array(ssn), json_group_array(password_hash) FROM customers",
            "SELECT json_array(iban, phone, birth_date, api_token) FROM customers",
            "SELECT json_group_object(email, ssn) FROM customers",
            "SELECT json_group_array(json_object('n', notes)) FROM orders",
            "SELECT json_extract(json_object('x', ssn), '$.x') FROM customers",
            // Aggregated and concatenated text.
            "SELECT group_concat(email, ';'), group_concat(ssn), group_concat(notes, ' | ') FROM customers",
            "SELECT email || '' AS e, '' || ssn AS s, full_name || ' <' || email || '>' AS who FROM customers",
            "SELECT substr(ssn, 1, 3) || substr(ssn, 5, 2) || substr(ssn, 8, 4) AS d FROM customers",
            "SELECT printf('%s/%s', full_name, card_number), printf('%s', iban) FROM customers",
            // String functions, casts, arithmetic.
            "SELECT ltrim(ssn, '0'), rtrim(email), instr(email, '@') FROM customers",
            "SELECT substr(email, 1, instr(email, '@') - 1) AS local_part FROM customers",
            "SELECT CAST(replace(ssn, '-', '') AS INTEGER) + 0, CAST(replace(card_number, ' ', '') AS INTEGER) * 1 FROM customers",
            "SELECT quote(ssn), quote(email), typeof(ssn) FROM customers",
            "SELECT date(birth_date), strftime('%d/%m/%Y', birth_date) FROM customers",
            "SELECT iif(id > 0, ssn, NULL), ifnull(NULL, email), coalesce(NULL, card_number) FROM customers",
            "SELECT replace(notes, '@', '(at)') FROM orders",
            // Encodings.
            "SELECT hex(email), hex(ssn), hex(full_name) FROM customers",
            "SELECT CAST(email AS BLOB), CAST(ssn AS BLOB) FROM customers",
            "SELECT hex(notes) FROM customers",
            "SELECT CAST(notes AS BLOB) FROM orders",
            "SELECT unhex(hex(notes)) FROM customers",
            "SELECT hex(title), CAST(title AS BLOB) FROM products",
            // Errors.
            "SELECT json(ssn) FROM customers WHERE id = 1",
            "SELECT json_extract(notes, '$') FROM customers WHERE id = 3",
            // Writes returning rows.
            "UPDATE customers SET notes = 'verified by phone' WHERE id = 7 RETURNING *",
            "UPDATE customers SET notes = notes WHERE id = 3 RETURNING email, ssn, full_name, password_hash",
            "DELETE FROM orders WHERE id = 10 RETURNING *",
        ]
        .into_iter()
        .map(read),
    );
    probes.push(read(format!(
        "INSERT INTO customers {new_customer} RETURNING *"
    )));
}

// ---------------------------------------------------------------------------------------
// Sensitive values, read from the database directly.
// ---------------------------------------------------------------------------------------

/// A sensitive value and the forms it is searched for.
struct Needle {
    /// Where it was read: `customers.ssn #1`.
    source: String,
    value: String,
    /// Searched in each text's lower case: (what, form).
    plain: Vec<(&'static str, String)>,
    /// Searched in each text's lower-case letters and digits only: (what, form).
    compact: Vec<(&'static str, String)>,
}

impl Needle {
    fn new(source: String, value: &str) -> Needle {
        let lower = value.to_lowercase();
        let mut plain = vec![("as stored", lower.clone()), ("reversed", reverse(&lower))];
        let mut compact = Vec::new();
        let squeezed = alnum(value);
        if squeezed.len() >= 7 {
            compact.push(("without separators", squeezed.clone()));
            compact.push(("reversed, without separators", reverse(&squeezed)));
        }
        let numbers = digits(value);
        if numbers.len() >= 12 {
            compact.push((
                "digits before the last four",
                numbers[..numbers.len() - 4].to_owned(),
            ));
        }
        if numbers.len() == 11 && numbers.starts_with('1') && squeezed == numbers {
            compact.push(("national number", numbers[1..].to_owned()));
        }
        if let Some((local, _)) = value.split_once('@') {
            let local = local.to_lowercase();
            if alnum(&local).len() >= 6 {
                plain.push(("local part", local.clone()));
                plain.push(("local part reversed", reverse(&local)));
                compact.push(("local part without separators", alnum(&local)));
            }
        }
        if let [y, m, d] = value.split('-').collect::<Vec<_>>()[..]
            && y.len() == 4
            && value.len() == 10
            && squeezed == numbers
        {
            compact.push(("date as DDMMYYYY", format!("{d}{m}{y}")));
            compact.push(("date as MMDDYYYY", format!("{m}{d}{y}")));
        }
        // Secrets are long: a distinctive piece of one is a leak too (an error message
        // may cut the value short).
        if value.starts_with("$argon2") || value.starts_with("eyJ") {
            for segment in value.split(['$', '.']) {
                if segment.len() >= 16 && !segment.starts_with("eyJhbGci") {
                    plain.push(("fragment", segment.to_lowercase()));
                }
            }
        }
        Needle {
            source,
            value: value.to_owned(),
            plain,
            compact,
        }
    }
}

/// The sensitive entities in free text, found with simple rules of our own (not the
/// detectors under test): emails, runs of digits and separators holding at least nine
/// digits, and IBAN-shaped words.
fn entities_in(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for word in text.split_whitespace() {
        let word = word.trim_matches(|c: char| !c.is_alphanumeric());
        let iban_like = word.len() >= 15
            && word.chars().take(2).all(|c| c.is_ascii_uppercase())
            && word.chars().skip(2).take(2).all(|c| c.is_ascii_digit())
            && word
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
        if word.contains('@') || iban_like {
            found.push(word.to_owned());
        }
    }
    // Runs glued to a letter belong to a word (the digits of an IBAN), found above.
    let mut run = String::new();
    let mut glued = false;
    let mut previous = ' ';
    for c in text.chars().chain(['\n']) {
        if c.is_ascii_digit() || " ()+-".contains(c) {
            if c.is_ascii_digit() && !run.contains(|r: char| r.is_ascii_digit()) {
                glued = previous.is_alphabetic();
            }
            run.push(c);
        } else {
            let trimmed = run.trim_matches(|c: char| !c.is_ascii_digit() && c != '(' && c != '+');
            if !glued && digits(trimmed).len() >= 9 {
                found.push(trimmed.trim().to_owned());
            }
            run.clear();
        }
        previous = c;
    }
    found
}

/// A direct connection to the fixture database, outside Gatehouse.
enum RawReader {
    Postgres(sqlx::PgConnection),
    MariaDb(sqlx::MySqlConnection),
    Sqlite(sqlx::SqliteConnection),
}

impl RawReader {
    async fn connect(db: &TestDb) -> RawReader {
        match db.engine {
            Engine::Postgres => {
                RawReader::Postgres(sqlx::PgConnection::connect(&db.url).await.expect("connect"))
            }
            Engine::MariaDb => RawReader::MariaDb(
                sqlx::MySqlConnection::connect(&db.url)
                    .await
                    .expect("connect"),
            ),
            Engine::Sqlite => RawReader::Sqlite(
                sqlx::SqliteConnection::connect(&db.url)
                    .await
                    .expect("connect"),
            ),
        }
    }

    async fn close(self) {
        let _ = match self {
            RawReader::Postgres(conn) => conn.close().await,
            RawReader::MariaDb(conn) => conn.close().await,
            RawReader::Sqlite(conn) => conn.close().await,
        };
    }

    /// Every row of `sql`, each value as text (NULL as `None`).
    async fn rows(&mut self, sql: &'static str) -> Vec<Vec<Option<String>>> {
        macro_rules! fetch {
            ($conn:expr) => {{
                let rows = sqlx::query(sql).fetch_all($conn).await.expect(sql);
                rows.iter()
                    .map(|row| {
                        (0..row.len())
                            .map(|i| row.try_get::<Option<String>, _>(i).expect("text column"))
                            .collect()
                    })
                    .collect()
            }};
        }
        match self {
            RawReader::Postgres(conn) => fetch!(conn),
            RawReader::MariaDb(conn) => fetch!(conn),
            RawReader::Sqlite(conn) => fetch!(conn),
        }
    }

    /// Every sensitive value now in the database: each classified-looking column of
    /// `customers` and `orders`, and the entities in their notes.
    async fn needles(&mut self, engine: Engine) -> Vec<Needle> {
        const COLUMNS: [&str; 10] = [
            "full_name",
            "email",
            "phone",
            "ssn",
            "card_number",
            "iban",
            "birth_date",
            "notes",
            "api_token",
            "password_hash",
        ];
        let (customers, orders, products) = match engine {
            Engine::Postgres => (
                "SELECT id::text, full_name, email, phone, ssn, card_number, iban, birth_date::text, notes, api_token, password_hash FROM customers",
                "SELECT id::text, card_number, notes FROM orders",
                "SELECT id::text, title FROM products",
            ),
            Engine::MariaDb => (
                "SELECT CAST(id AS CHAR), full_name, email, phone, ssn, card_number, iban, CAST(birth_date AS CHAR), notes, api_token, password_hash FROM customers",
                "SELECT CAST(id AS CHAR), card_number, notes FROM orders",
                "SELECT CAST(id AS CHAR), title FROM products",
            ),
            Engine::Sqlite => (
                "SELECT CAST(id AS TEXT), full_name, email, phone, ssn, card_number, iban, birth_date, notes, api_token, password_hash FROM customers",
                "SELECT CAST(id AS TEXT), card_number, notes FROM orders",
                "SELECT CAST(id AS TEXT), title FROM products",
            ),
        };
        let mut needles = Vec::new();
        let mut add = |table: &str, column: &str, id: &str, value: &str| {
            let values = if column == "notes" || column == "title" {
                entities_in(value)
            } else {
                vec![value.to_owned()]
            };
            for value in values {
                needles.push(Needle::new(format!("{table}.{column} #{id}"), &value));
            }
        };
        for row in self.rows(customers).await {
            let id = row[0].clone().unwrap_or_default();
            for (column, value) in COLUMNS.iter().zip(&row[1..]) {
                if let Some(value) = value {
                    add("customers", column, &id, value);
                }
            }
        }
        for row in self.rows(orders).await {
            let id = row[0].clone().unwrap_or_default();
            for (column, value) in ["card_number", "notes"].iter().zip(&row[1..]) {
                if let Some(value) = value {
                    add("orders", column, &id, value);
                }
            }
        }
        for row in self.rows(products).await {
            if let [Some(id), Some(title)] = &row[..] {
                add("products", "title", id, title);
            }
        }
        needles
    }
}

// ---------------------------------------------------------------------------------------
// Searching an answer.
// ---------------------------------------------------------------------------------------

/// One piece of an answer to search: a string, a number, a row, or the whole body.
struct Text {
    original: String,
    lower: String,
    /// Lower-case letters and digits only; empty for the whole body, where joining
    /// unrelated values would find things that are not there.
    compact: String,
}

impl Text {
    fn new(original: String, compact: bool) -> Text {
        Text {
            lower: original.to_lowercase(),
            compact: if compact {
                alnum(&original)
            } else {
                String::new()
            },
            original,
        }
    }
}

fn find_leaks(probe: &Probe, probing: Probing, reply: &Reply, needles: &[Needle]) -> Vec<String> {
    let mut leaks = Vec::new();
    if matches!(probe.kind, Kind::Predicate) && probing == Probing::Denied && reply.status == 200 {
        leaks.push("probing statement was answered instead of refused".to_owned());
    }
    let mut texts = vec![Text::new(reply.body.to_string(), false)];
    collect_texts(&reply.body, &mut texts);
    if let Some(rows) = reply.body["rows"].as_array() {
        for row in rows.iter().filter_map(Value::as_array) {
            let joined: String = row
                .iter()
                .filter_map(|cell| match cell {
                    Value::String(s) if is_mask_artifact(s) => None,
                    Value::String(s) => Some(s.clone()),
                    Value::Null => None,
                    other => Some(other.to_string()),
                })
                .collect();
            texts.push(Text::new(joined, true));
        }
    }
    if matches!(probe.kind, Kind::DigitsAsLetters) {
        let decoded: Vec<Text> = texts
            .iter()
            .map(|t| {
                let original = t
                    .original
                    .chars()
                    .map(|c| match c {
                        'a'..='j' => char::from(b'0' + (c as u8 - b'a')),
                        other => other,
                    })
                    .collect();
                Text::new(original, true)
            })
            .collect();
        texts.extend(decoded);
    }

    for needle in needles {
        let hit = texts.iter().find_map(|text| {
            let plain = needle.plain.iter().find_map(|(what, form)| {
                let at = text.lower.find(form.as_str())?;
                Some((*what, around(&text.lower, at, form.len())))
            });
            plain.or_else(|| {
                needle
                    .compact
                    .iter()
                    .find(|(_, form)| {
                        !text.compact.is_empty() && text.compact.contains(form.as_str())
                    })
                    .map(|(what, _)| (*what, snippet(&text.original)))
            })
        });
        if let Some((what, context)) = hit {
            leaks.push(format!(
                "{} {:?} leaked ({what}) in {context:?}",
                needle.source, needle.value
            ));
        }
    }

    if let Kind::Reveals(reveals) = &probe.kind {
        let strings: Vec<&Text> = texts.iter().skip(1).collect();
        for reveal in reveals {
            let shown = match reveal {
                Reveal::DigitsTail(tail) => strings.iter().find(|t| {
                    t.original.contains('*') && digits(&t.original).ends_with(tail.as_str())
                }),
                Reveal::Text(fragment) => strings
                    .iter()
                    .find(|t| t.original.contains(fragment.as_str())),
            };
            if let Some(text) = shown {
                let what = match reveal {
                    Reveal::DigitsTail(tail) => format!("digits {tail:?}"),
                    Reveal::Text(fragment) => format!("{fragment:?}"),
                };
                leaks.push(format!(
                    "a partial mask of a computed value revealed {what} in {:?}",
                    snippet(&text.original)
                ));
            }
        }
    }
    leaks
}

/// Every string (keys too) and number in `value`, with JSON, hex and base64 inside strings
/// decoded as well.
fn collect_texts(value: &Value, out: &mut Vec<Text>) {
    match value {
        Value::String(s) => collect_string(s, out),
        Value::Number(n) => out.push(Text::new(n.to_string(), true)),
        Value::Array(items) => items.iter().for_each(|item| collect_texts(item, out)),
        Value::Object(map) => {
            for (key, item) in map {
                collect_string(key, out);
                collect_texts(item, out);
            }
        }
        Value::Null | Value::Bool(_) => {}
    }
}

fn collect_string(s: &str, out: &mut Vec<Text>) {
    out.push(Text::new(s.to_owned(), true));
    let trimmed = s.trim();
    if (trimmed.starts_with('{') || trimmed.starts_with('['))
        && let Ok(inner) = serde_json::from_str::<Value>(trimmed)
    {
        collect_texts(&inner, out);
    }
    if trimmed.len() >= 16 {
        if trimmed.len().is_multiple_of(2)
            && trimmed.bytes().all(|b| b.is_ascii_hexdigit())
            && let Ok(bytes) = hex::decode(trimmed)
        {
            out.push(Text::new(
                String::from_utf8_lossy(&bytes).into_owned(),
                true,
            ));
        }
        use base64::engine::general_purpose::{
            STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD,
        };
        let compact: String = trimmed.chars().filter(|c| !c.is_whitespace()).collect();
        for engine in [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD] {
            if let Ok(bytes) = engine.decode(&compact) {
                out.push(Text::new(
                    String::from_utf8_lossy(&bytes).into_owned(),
                    true,
                ));
                break;
            }
        }
    }
}

/// `text` around the `len` bytes at `at`, for a readable leak report.
fn around(text: &str, at: usize, len: usize) -> String {
    let mut start = at.saturating_sub(80);
    while !text.is_char_boundary(start) {
        start -= 1;
    }
    let mut end = (at + len + 80).min(text.len());
    while !text.is_char_boundary(end) {
        end += 1;
    }
    format!(
        "{}{}{}",
        if start > 0 { "…" } else { "" },
        &text[start..end],
        if end < text.len() { "…" } else { "" }
    )
}

fn snippet(text: &str) -> String {
    if text.chars().count() <= 240 {
        text.to_owned()
    } else {
        let head: String = text.chars().take(240).collect();
        format!("{head}…")
    }
}

fn alnum(text: &str) -> String {
    text.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

fn digits(text: &str) -> String {
    text.chars().filter(char::is_ascii_digit).collect()
}

fn reverse(text: &str) -> String {
    text.chars().rev().collect()
}

fn luhn_valid(number: &str) -> bool {
    let sum: u32 = number
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 1 {
                let doubled = d * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                d
            }
        })
        .sum();
    number.len() >= 13 && sum.is_multiple_of(10)
}

fn iban_valid(iban: &str) -> bool {
    let compact: String = iban.chars().filter(|c| !c.is_whitespace()).collect();
    let rearranged = format!("{}{}", &compact[4..], &compact[..4]);
    let remainder = rearranged.chars().fold(0_u32, |acc, c| {
        let value = c.to_digit(36).unwrap_or(0);
        if value >= 10 {
            (acc * 100 + value) % 97
        } else {
            (acc * 10 + value) % 97
        }
    });
    remainder == 1
}
