//! Dynamic masking through the running server: what a result says about its masked
//! columns, how each built-in strategy looks, who sees raw values (pii-readers, never for
//! secrets, never agents), the schema endpoint's per-caller view, probing refusals,
//! write-back refusals, configured classifications, gRPC, and classification after DDL.
//!
//! Most tests use the seeded demo datasources (`shop` in `dev`); those that need columns
//! the demo lacks (secrets, configured classes) use their own SQLite database.

mod common;

use common::db::TestDb;
use common::{Reply, TestServer, authed, datasource_toml};
use gatehouse::identity::PrincipalKind;
use gatehouse::masking::{detect, is_mask_artifact};
use gatehouse::proto;
use serde_json::{Value, json};

const PROBING_POLICY: &str = "gatehouse:masking.predicates";

/// A person allowed to see personal data (policy `pii-readers-unmask-pii`).
fn pii_reader(server: &TestServer) -> String {
    server.token("priya", PrincipalKind::Human, &["pii-readers"])
}

async fn run(
    server: &TestServer,
    token: &str,
    datasource: &str,
    sql: &str,
    params: Value,
) -> Reply {
    server
        .post(
            "/v1/query",
            Some(token),
            &json!({"datasource": datasource, "sql": sql, "params": params}),
        )
        .await
}

/// The result column called `name`: its index and description.
#[track_caller]
fn column<'a>(body: &'a Value, name: &str) -> (usize, &'a Value) {
    body["columns"]
        .as_array()
        .and_then(|columns| columns.iter().enumerate().find(|(_, c)| c["name"] == name))
        .unwrap_or_else(|| panic!("no column {name} in {body}"))
}

/// The values of result column `name`, row by row.
#[track_caller]
fn values<'a>(body: &'a Value, name: &str) -> Vec<&'a Value> {
    let (index, _) = column(body, name);
    body["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|row| &row[index])
        .collect()
}

fn classifications(description: &Value) -> Vec<&str> {
    description["classifications"]
        .as_array()
        .map(|c| c.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// Asserts a 403 `denied` from the probing check, naming `column` in its reason.
#[track_caller]
fn assert_probing_refused(reply: &Reply, column: &str) {
    reply.problem(403, "denied");
    let decision = &reply.body["decision"];
    assert_eq!(decision["effect"], "deny", "{}", reply.body);
    assert!(
        decision["policies"]
            .as_array()
            .is_some_and(|p| p.iter().any(|p| p == PROBING_POLICY)),
        "{}",
        reply.body
    );
    assert!(
        decision["reasons"].to_string().contains(column),
        "the reason should name {column}: {}",
        reply.body
    );
}

/// The description of `table.column` in a schema answer.
#[track_caller]
fn schema_column<'a>(schema: &'a Value, table: &str, column: &str) -> &'a Value {
    schema["tables"]
        .as_array()
        .and_then(|tables| tables.iter().find(|t| t["name"] == table))
        .and_then(|t| t["columns"].as_array())
        .and_then(|columns| columns.iter().find(|c| c["name"] == column))
        .unwrap_or_else(|| panic!("no {table}.{column} in {schema}"))
}

fn digits(text: &str) -> String {
    text.chars().filter(char::is_ascii_digit).collect()
}

const CUSTOMER_COLUMNS: &str = "SELECT id, full_name, email, phone, ssn, card_number, iban, created_at FROM customers WHERE id <= 40";

#[tokio::test]
async fn result_columns_say_what_was_masked_and_count_it() {
    let server = TestServer::demo().await;
    let agent = server.agent_token();
    let reply = run(&server, &agent, "shop", CUSTOMER_COLUMNS, json!([])).await;
    let body = reply.ok();
    assert_eq!(body["row_count"], 40);
    let expected = [
        ("id", None),
        ("full_name", Some("pii.person_name")),
        ("email", Some("pii.email")),
        ("phone", Some("pii.phone")),
        ("ssn", Some("pii.national_id")),
        ("card_number", Some("pii.card")),
        ("iban", Some("pii.account")),
        ("created_at", None),
    ];
    let mut non_null_classified = 0;
    for (name, class) in expected {
        let (_, description) = column(body, name);
        assert_eq!(
            description["masked"],
            class.is_some(),
            "{name}: {description}"
        );
        assert_eq!(
            classifications(description),
            class.into_iter().collect::<Vec<_>>(),
            "{name}"
        );
        if class.is_some() {
            non_null_classified += values(body, name).iter().filter(|v| !v.is_null()).count();
        }
    }
    // One per masked cell: NULL is not masked and not counted.
    assert!(non_null_classified > 150, "{non_null_classified}");
    assert_eq!(body["masked_values"], non_null_classified);

    // A pii-reader gets the same rows with nothing masked, and the unclassified columns
    // are the same for both.
    let reader = pii_reader(&server);
    let raw = run(&server, &reader, "shop", CUSTOMER_COLUMNS, json!([])).await;
    let raw = raw.ok();
    assert_eq!(raw["masked_values"], 0);
    for description in raw["columns"].as_array().expect("columns") {
        assert_eq!(description["masked"], false, "{description}");
        assert_eq!(description["classifications"], json!([]), "{description}");
    }
    for name in ["id", "created_at"] {
        assert_eq!(values(body, name), values(raw, name), "{name}");
    }
}

#[tokio::test]
async fn entities_in_free_text_are_masked_in_place_and_counted() {
    let server = TestServer::demo().await;
    let sql = "SELECT id, notes FROM customers ORDER BY id";
    let masked = run(&server, &server.agent_token(), "shop", sql, json!([])).await;
    let masked = masked.ok();
    let raw = demo_notes(&server).await;

    let mut spans = 0;
    let mut classes = std::collections::BTreeSet::new();
    let mut with_entities = 0;
    let masked_notes = values(masked, "notes");
    assert_eq!(masked_notes.len(), raw.len());
    for (raw_note, masked_note) in raw.iter().zip(masked_notes) {
        let Some(raw_note) = raw_note.as_deref() else {
            assert!(masked_note.is_null());
            continue;
        };
        let masked_note = masked_note.as_str().expect("text stays text");
        let findings = detect::scan(raw_note);
        if findings.is_empty() {
            assert_eq!(
                masked_note, raw_note,
                "a note without entities is unchanged"
            );
            continue;
        }
        with_entities += 1;
        spans += findings.len();
        // The words around each entity stay; the entity itself does not.
        let mut last = 0;
        for finding in &findings {
            classes.insert(finding.class.as_str());
            let entity = &raw_note[finding.start..finding.end];
            assert!(!masked_note.contains(entity), "{entity} in {masked_note}");
            let between = &raw_note[last..finding.start];
            assert!(
                masked_note.contains(between),
                "{between:?} lost from {masked_note}"
            );
            last = finding.end;
        }
        assert!(masked_note.contains(&raw_note[last..]));
    }
    assert!(
        with_entities >= 20,
        "the demo has a note with contacts in about one in five rows, found {with_entities}"
    );
    assert_eq!(masked["masked_values"], spans);
    let (_, description) = column(masked, "notes");
    assert_eq!(description["masked"], true);
    assert_eq!(
        classifications(description),
        classes.into_iter().collect::<Vec<_>>()
    );
}

/// Spans are masked for whoever may not see their class on that column: a pii-reader may
/// see personal data, in free text as in a classified column (see `masking::engine`).
#[tokio::test]
async fn pii_readers_see_personal_data_in_free_text_raw() {
    let server = TestServer::demo().await;
    let sql = "SELECT id, notes FROM customers ORDER BY id";
    let reply = run(&server, &pii_reader(&server), "shop", sql, json!([])).await;
    let body = reply.ok();
    let raw = demo_notes(&server).await;
    let shown = values(body, "notes");
    assert_eq!(shown.len(), raw.len());
    for (id, (shown, raw)) in shown.iter().zip(&raw).enumerate() {
        assert_eq!(shown.as_str(), raw.as_deref(), "customer {}", id + 1);
    }
    assert_eq!(body["masked_values"], 0);
    assert_eq!(column(body, "notes").1["masked"], false);
}

/// `customers.notes` of the demo `shop` database, read from its file, by id.
async fn demo_notes(server: &TestServer) -> Vec<Option<String>> {
    use sqlx::{Connection as _, Row as _};
    let path = server.data_dir.path().join("shop.db");
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .expect("open the demo database");
    let rows = sqlx::query("SELECT notes FROM customers ORDER BY id")
        .fetch_all(&mut conn)
        .await
        .expect("read notes");
    let _ = conn.close().await;
    rows.iter()
        .map(|row| row.get::<Option<String>, _>(0))
        .collect()
}

#[tokio::test]
async fn built_in_strategies_keep_a_recognisable_fragment() {
    let server = TestServer::demo().await;
    let sql =
        "SELECT id, full_name, email, phone, ssn, card_number, iban FROM customers WHERE id <= 60";
    let raw = run(&server, &pii_reader(&server), "shop", sql, json!([])).await;
    let masked = run(&server, &server.agent_token(), "shop", sql, json!([])).await;
    let (raw, masked) = (raw.ok(), masked.ok());
    let pairs = |name: &str| -> Vec<(Option<String>, Option<String>)> {
        values(raw, name)
            .into_iter()
            .zip(values(masked, name))
            .map(|(r, m)| (r.as_str().map(str::to_owned), m.as_str().map(str::to_owned)))
            .collect()
    };
    let mut seen = 0;
    for (raw, masked) in pairs("email") {
        let (raw, masked) = (raw.expect("email is NOT NULL"), masked.expect("text"));
        let (local, domain) = raw.split_once('@').expect("an email");
        assert_eq!(masked, format!("{}***@{domain}", &local[..1]), "{raw}");
    }
    for (raw, masked) in pairs("card_number") {
        let (Some(raw), Some(masked)) = (raw, masked) else {
            continue;
        };
        seen += 1;
        let raw_digits = digits(&raw);
        assert_eq!(
            digits(&masked),
            raw_digits[raw_digits.len() - 4..],
            "{raw} → {masked}"
        );
        assert_eq!(
            masked.len(),
            raw.len(),
            "separators are kept: {raw} → {masked}"
        );
        assert!(masked.contains("****"), "{masked}");
    }
    for (raw, masked) in pairs("ssn") {
        let (Some(raw), Some(masked)) = (raw, masked) else {
            continue;
        };
        seen += 1;
        assert_eq!(masked, format!("***-**-{}", &raw[7..]), "{raw}");
    }
    for (raw, masked) in pairs("phone") {
        let (Some(raw), Some(masked)) = (raw, masked) else {
            continue;
        };
        seen += 1;
        let raw_digits = digits(&raw);
        assert_eq!(
            digits(&masked),
            raw_digits[raw_digits.len() - 2..],
            "{raw} → {masked}"
        );
        assert_eq!(masked.len(), raw.len(), "{raw} → {masked}");
    }
    for (raw, masked) in pairs("iban") {
        let (Some(raw), Some(masked)) = (raw, masked) else {
            continue;
        };
        seen += 1;
        let kept: String = masked.chars().filter(|c| c.is_alphanumeric()).collect();
        let raw_alnum: String = raw.chars().filter(|c| c.is_alphanumeric()).collect();
        assert_eq!(kept, raw_alnum[raw_alnum.len() - 4..], "{raw} → {masked}");
        assert_eq!(masked.len(), raw.len(), "{raw} → {masked}");
    }
    for (raw, masked) in pairs("full_name") {
        assert!(raw.is_some());
        assert_eq!(masked.as_deref(), Some("[redacted:pii.person_name]"));
    }
    assert!(seen > 100, "{seen}");
    // NULL stays NULL.
    for name in ["phone", "ssn", "card_number", "iban"] {
        for (raw, masked) in pairs(name) {
            assert_eq!(raw.is_none(), masked.is_none(), "{name}");
        }
    }
}

const HMAC_EMAIL: &str = "[masking.strategies]\n\"pii.email\" = \"hmac\"\n";

fn is_token(text: &str) -> bool {
    text.len() == 36
        && text.starts_with("tok_")
        && text[4..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[tokio::test]
async fn hmac_tokens_are_stable_and_grouping_on_them_is_refused() {
    let server = TestServer::start(HMAC_EMAIL).await;
    let agent = server.agent_token();
    let sql = "SELECT id, email FROM customers WHERE id <= 120 ORDER BY id";
    let first = run(&server, &agent, "shop", sql, json!([])).await;
    let second = run(&server, &agent, "shop", sql, json!([])).await;
    let (first, second) = (first.ok(), second.ok());
    assert_eq!(
        first["rows"], second["rows"],
        "tokens are stable across statements"
    );
    let (_, description) = column(first, "email");
    assert_eq!(description["masked"], true);
    assert_eq!(description["type"], "text");
    assert_eq!(classifications(description), ["pii.email"]);

    // Equal emails give equal tokens and different ones different tokens.
    let raw = run(&server, &pii_reader(&server), "shop", sql, json!([])).await;
    let raw: Vec<&str> = values(raw.ok(), "email")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    let tokens: Vec<&str> = values(first, "email")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert_eq!(raw.len(), tokens.len());
    for (i, token) in tokens.iter().enumerate() {
        assert!(is_token(token), "{token}");
        for j in 0..raw.len() {
            assert_eq!(raw[i] == raw[j], *token == tokens[j], "rows {i} and {j}");
        }
    }

    // The same value through an alias and a CTE gets the same token.
    let aliased = run(
        &server,
        &agent,
        "shop",
        "WITH e AS (SELECT id, email AS contact FROM customers) SELECT contact FROM e WHERE id = 3",
        json!([]),
    )
    .await;
    assert_eq!(aliased.ok()["rows"], json!([[tokens[2]]]));

    // Grouping on the column is probing, tokens or not.
    let grouped = run(
        &server,
        &agent,
        "shop",
        "SELECT email, count(*) FROM customers GROUP BY email",
        json!([]),
    )
    .await;
    assert_probing_refused(&grouped, "customers.email");

    // A token is a masked value: it cannot be written back.
    let write = run(
        &server,
        &agent,
        "shop",
        &format!("UPDATE customers SET email = '{}' WHERE id = 1", tokens[0]),
        json!([]),
    )
    .await;
    write.problem(422, "masked_value_write");
}

/// A token of a computed value would be an oracle: `substr(email, 1, 1)` tokenised can be
/// compared with tokens of guesses. Computed values of a masked class are redacted whole.
#[tokio::test]
async fn tokens_are_given_only_for_stored_values() {
    // Computing on a masked column is refused by default (see
    // `computing_on_masked_columns_is_refused`); where it is allowed, the result is
    // redacted whole.
    let server =
        TestServer::start(&format!("[masking]\npredicates = \"allow\"\n{HMAC_EMAIL}")).await;
    let agent = server.agent_token();
    let reply = run(
        &server,
        &agent,
        "shop",
        "SELECT email, substr(email, 1, 1) AS first, lower(email) AS lowered FROM customers WHERE id = 1",
        json!([]),
    )
    .await;
    let body = reply.ok();
    let row = body["rows"][0].as_array().expect("one row");
    assert!(is_token(row[0].as_str().expect("text")), "{body}");
    for cell in &row[1..] {
        let text = cell.as_str().unwrap_or_default();
        assert!(
            !is_token(text) && (cell.is_null() || text.starts_with("[redacted:")),
            "a computed email must be redacted whole, got {cell}"
        );
    }
}

#[tokio::test]
async fn pii_readers_see_personal_data_raw_and_agents_never_do() {
    let server = TestServer::demo().await;
    let sql = "SELECT id, email, ssn FROM customers WHERE id <= 25 ORDER BY id";
    let raw = run(&server, &pii_reader(&server), "shop", sql, json!([])).await;
    let raw = raw.ok();
    assert_eq!(raw["masked_values"], 0);
    let emails: Vec<&str> = values(raw, "email")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert_eq!(emails.len(), 25);
    for email in &emails {
        assert!(email.contains('@') && !is_mask_artifact(email), "{email}");
    }

    let others = [
        (
            "agent in pii-readers",
            server.token("agent-9", PrincipalKind::Agent, &["pii-readers"]),
        ),
        (
            "service in pii-readers",
            server.token("svc", PrincipalKind::Service, &["pii-readers"]),
        ),
        (
            "human outside pii-readers",
            server.token("bob", PrincipalKind::Human, &["dba"]),
        ),
        ("plain agent", server.agent_token()),
    ];
    for (who, token) in others {
        let reply = run(&server, &token, "shop", sql, json!([])).await;
        let body = reply.ok();
        for (i, value) in values(body, "email").iter().enumerate() {
            let (local, domain) = emails[i].split_once('@').expect("email");
            assert_eq!(
                value.as_str(),
                Some(format!("{}***@{domain}", &local[..1]).as_str()),
                "{who}"
            );
        }
        for value in values(body, "ssn").iter().filter_map(|v| v.as_str()) {
            assert!(value.starts_with("***-**-"), "{who}: {value}");
        }
        assert_eq!(column(body, "email").1["masked"], true, "{who}");
    }
}

/// A SQLite datasource `vault` with credentials next to personal data.
async fn vault() -> (TestDb, String) {
    let db = TestDb::sqlite();
    db.exec(
        "CREATE TABLE accounts (
            id INTEGER PRIMARY KEY,
            username TEXT NOT NULL,
            email TEXT NOT NULL,
            password_hash TEXT NOT NULL,
            api_token TEXT NOT NULL,
            notes TEXT
        );
        INSERT INTO accounts VALUES
          (1, 'lin', 'lin.zhao@example.org',
           '$argon2id$v=19$m=65536,t=3,p=4$c29tZXNhbHRzb21lc2FsdA$9Hk2lHoZ1cRr0ZPq6w3N1bq7o8y4Jm0GxJzv2m5f7kQ',
           'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJsaW4ifQ.Vq3Zb8gX0nTjP1sKc4YwR7uE2aLmD9hF6iO5pQ8tB1s',
           'Rotated token eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJsaW4tb2xkIn0.Qm8Xk2pLz7wR4tN1cV5bH9jD3fG6sA0eY2uI8oP4rT7 after mail from lin.backup@example.net'),
          (2, 'sam', 'sam.ortiz@example.org',
           '$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW',
           'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJzYW0ifQ.d7Gh2Kp9Lm4Nq1Rs8Tu3Vw6Xy0Za5Bc7De2Fg9Hj4Kk',
           NULL),
          (3, 'kai', 'kai.berg@example.org', '$2b$12$Kq4mV7pZ2sX9tB3nC6wE8uJ1hL5yR0aF4dG7kM2qP9sT6vW3xZ8Ce',
           'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJrYWkifQ.Hn5Jt8Lw2Qx7Zc4Vb1Nm6Pk9Rs3Td0Yf8Ug5Ih2Oj7Ek',
           'Prefers paper statements.'),
          (4, 'ana', 'ana.silva@example.org', '$2b$12$Zr8sT2vW5xY1aB4cD7eF0gH3iJ6kL9mN2oP5qR8sT1uV4wX7yZ0Ae',
           'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbmEifQ.Wq2Er5Ty8Ui1Op4As7Df0Gh3Jk6Lz9Xc2Vb5Nm8Qw1Er4T',
           'Account reviewed in March.'),
          (5, 'tom', 'tom.reed@example.org', '$2b$12$Ab3cD6eF9gH2iJ5kL8mN1oP4qR7sT0uV3wX6yZ9aB2cD5eF8gH1iJ',
           'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ0b20ifQ.Rt6Yu9Io2Pa5Sd8Fg1Hj4Kl7Zx0Cv3Bn6Mq9We2Rt5Yu8I',
           'Two-factor enabled.');",
    )
    .await;
    let config = datasource_toml("vault", "dev", &db, "");
    (db, config)
}

#[tokio::test]
async fn nobody_sees_secrets_raw() {
    let (_db, config) = vault().await;
    let server = TestServer::start(&config).await;
    let callers = [
        ("pii-reader", pii_reader(&server)),
        (
            "pii-reader, dba and admin",
            server.token(
                "root",
                PrincipalKind::Human,
                &["pii-readers", "dba", "admin", "auditor"],
            ),
        ),
        (
            "service",
            server.token("svc", PrincipalKind::Service, &["pii-readers"]),
        ),
        ("agent", server.agent_token()),
    ];
    let sql =
        "SELECT id, username, email, password_hash, api_token, notes FROM accounts ORDER BY id";
    for (who, token) in &callers {
        let reply = run(&server, token, "vault", sql, json!([])).await;
        let body = reply.ok();
        for (name, class) in [
            ("password_hash", "secret.password"),
            ("api_token", "secret.token"),
        ] {
            let (_, description) = column(body, name);
            assert_eq!(description["masked"], true, "{who}: {name}");
            assert_eq!(classifications(description), [class], "{who}: {name}");
            for value in values(body, name) {
                assert_eq!(
                    value.as_str(),
                    Some(format!("[redacted:{class}]").as_str()),
                    "{who}"
                );
            }
        }
        let notes = values(body, "notes")[0].as_str().expect("text");
        assert!(
            notes.starts_with("Rotated token [redacted:secret.token] after mail from "),
            "{who}: {notes}"
        );
        assert!(!notes.contains("eyJ"), "{who}: {notes}");
        // A secret never filters either.
        let probe = run(
            &server,
            token,
            "vault",
            "SELECT id FROM accounts WHERE api_token LIKE 'eyJ%'",
            json!([]),
        )
        .await;
        assert_probing_refused(&probe, "accounts.api_token");
    }

    // The pii-reader sees the personal data next to the secrets raw.
    let reply = run(&server, &callers[0].1, "vault", sql, json!([])).await;
    let body = reply.ok();
    assert_eq!(values(body, "email")[0], "lin.zhao@example.org");
    assert_eq!(column(body, "email").1["masked"], false);
    assert_eq!(
        column(body, "notes").1["classifications"]
            .as_array()
            .map(|c| c.contains(&json!("secret.token"))),
        Some(true)
    );

    // The schema says the same, per caller.
    let schema = server
        .get("/v1/datasources/vault/schema", Some(&callers[0].1))
        .await;
    let schema = schema.ok();
    for (name, class, masked) in [
        ("password_hash", "secret.password", true),
        ("api_token", "secret.token", true),
        ("email", "pii.email", false),
    ] {
        let description = schema_column(schema, "accounts", name);
        assert_eq!(classifications(description), [class], "{name}");
        assert_eq!(description["masked"], masked, "{name}");
    }
}

#[tokio::test]
async fn schema_shows_classifications_and_whether_the_caller_sees_them_masked() {
    let server = TestServer::demo().await;
    let agent = server
        .get("/v1/datasources/shop/schema", Some(&server.agent_token()))
        .await;
    let reader = server
        .get("/v1/datasources/shop/schema", Some(&pii_reader(&server)))
        .await;
    let (agent, reader) = (agent.ok(), reader.ok());
    assert_eq!(agent["datasource"], "shop");
    let expected = [
        ("customers", "id", None),
        ("customers", "full_name", Some("pii.person_name")),
        ("customers", "email", Some("pii.email")),
        ("customers", "phone", Some("pii.phone")),
        ("customers", "ssn", Some("pii.national_id")),
        ("customers", "card_number", Some("pii.card")),
        ("customers", "iban", Some("pii.account")),
        ("customers", "notes", None),
        ("customers", "created_at", None),
        ("orders", "customer_id", None),
        ("orders", "amount_cents", None),
        ("orders", "status", None),
    ];
    for (table, name, class) in expected {
        let as_agent = schema_column(agent, table, name);
        let as_reader = schema_column(reader, table, name);
        let class: Vec<&str> = class.into_iter().collect();
        assert_eq!(classifications(as_agent), class, "{table}.{name}");
        assert_eq!(classifications(as_reader), class, "{table}.{name}");
        assert_eq!(
            as_agent["masked"],
            !class.is_empty(),
            "agent: {table}.{name}"
        );
        assert_eq!(as_reader["masked"], false, "pii-reader: {table}.{name}");
    }
}

const PROBES: [(&str, &str); 5] = [
    (
        "SELECT id FROM customers WHERE ssn LIKE '123%'",
        "customers.ssn",
    ),
    (
        "SELECT id, full_name FROM customers ORDER BY email",
        "customers.email",
    ),
    (
        "SELECT ssn, count(*) FROM customers GROUP BY ssn",
        "customers.ssn",
    ),
    (
        "SELECT a.id, b.id FROM customers a JOIN customers b ON a.email = b.email AND a.id < b.id",
        "customers.email",
    ),
    (
        "SELECT o.id FROM orders o JOIN customers c ON c.id = o.customer_id WHERE c.card_number LIKE '4%'",
        "customers.card_number",
    ),
];

#[tokio::test]
async fn probing_masked_columns_is_refused_unless_the_caller_may_unmask_them() {
    let server = TestServer::demo().await;
    let agent = server.agent_token();
    let outsider = server.token("bob", PrincipalKind::Human, &["dba"]);
    let reader = pii_reader(&server);
    for (sql, column) in PROBES {
        for token in [&agent, &outsider] {
            let reply = run(&server, token, "shop", sql, json!([])).await;
            assert_probing_refused(&reply, column);
        }
        let reply = run(&server, &reader, "shop", sql, json!([])).await;
        assert_eq!(reply.status, 200, "{sql}: {}", reply.body);
    }
    // Conditions on columns that are not classified are fine for everyone.
    let reply = run(
        &server,
        &agent,
        "shop",
        "SELECT id, email FROM customers WHERE id < 10 AND notes LIKE '%invoice%' ORDER BY created_at",
        json!([]),
    )
    .await;
    reply.ok();
}

#[tokio::test]
async fn probing_is_allowed_when_configured_and_results_stay_masked() {
    let server = TestServer::start("[masking]\npredicates = \"allow\"\n").await;
    let agent = server.agent_token();
    for (sql, _) in PROBES {
        let reply = run(&server, &agent, "shop", sql, json!([])).await;
        assert_eq!(reply.status, 200, "{sql}: {}", reply.body);
    }
    let reply = run(
        &server,
        &agent,
        "shop",
        "SELECT ssn, count(*) AS n FROM customers WHERE ssn IS NOT NULL GROUP BY ssn",
        json!([]),
    )
    .await;
    let body = reply.ok();
    let ssns = values(body, "ssn");
    assert!(ssns.len() > 100);
    for ssn in ssns {
        assert!(
            ssn.as_str().is_some_and(|s| s.starts_with("***-**-")),
            "{ssn}"
        );
    }
}

#[tokio::test]
async fn masked_values_cannot_be_written_back() {
    let server = TestServer::demo().await;
    let agent = server.agent_token();
    let reader = pii_reader(&server);
    let read = "SELECT id, full_name, email, ssn FROM customers WHERE id IN (1, 2) ORDER BY id";
    let before = run(&server, &reader, "shop", read, json!([])).await;
    let before = before.ok().clone();
    let masked = run(&server, &agent, "shop", read, json!([])).await;
    let masked = masked.ok();
    let email = values(masked, "email")[0]
        .as_str()
        .expect("text")
        .to_owned();
    let name = values(masked, "full_name")[0]
        .as_str()
        .expect("text")
        .to_owned();
    let ssn = values(masked, "ssn")
        .into_iter()
        .find_map(|v| v.as_str())
        .expect("a masked ssn")
        .to_owned();
    assert!(is_mask_artifact(&email) && is_mask_artifact(&name) && is_mask_artifact(&ssn));

    let attempts = [
        (format!("UPDATE customers SET email = '{email}' WHERE id = 1"), json!([])),
        ("UPDATE customers SET email = ? WHERE id = 1".to_owned(), json!([email])),
        ("UPDATE customers SET full_name = ? WHERE id = 1".to_owned(), json!([name])),
        ("UPDATE customers SET ssn = ?, notes = 'checked' WHERE id = 1".to_owned(), json!([ssn])),
        (
            "INSERT INTO customers (id, full_name, email, created_at) VALUES (9001, ?, ?, '2025-01-01T00:00:00Z')"
                .to_owned(),
            json!([name, email]),
        ),
    ];
    for (sql, params) in attempts {
        let reply = run(&server, &agent, "shop", &sql, params.clone()).await;
        reply.problem(422, "masked_value_write");
        // Whoever sends it: a pii-reader copying from an agent's result is refused too.
        let reply = run(&server, &reader, "shop", &sql, params).await;
        reply.problem(422, "masked_value_write");
    }
    let after = run(&server, &reader, "shop", read, json!([])).await;
    assert_eq!(after.ok()["rows"], before["rows"], "the rows are unchanged");
    let inserted = run(
        &server,
        &reader,
        "shop",
        "SELECT count(*) FROM customers WHERE id = 9001",
        json!([]),
    )
    .await;
    assert_eq!(inserted.ok()["rows"], json!([[0]]));

    // Writing a real value is a plain write.
    let write = run(
        &server,
        &agent,
        "shop",
        "UPDATE customers SET email = ? WHERE id = 2",
        json!(["new.address@example.org"]),
    )
    .await;
    assert_eq!(write.ok()["rows_affected"], 1);
    let after = run(
        &server,
        &reader,
        "shop",
        "SELECT email FROM customers WHERE id = 2",
        json!([]),
    )
    .await;
    assert_eq!(after.ok()["rows"], json!([["new.address@example.org"]]));
}

#[tokio::test]
async fn configured_columns_classify_and_unclassify() {
    let db = TestDb::sqlite();
    db.exec(
        "CREATE TABLE members (id INTEGER PRIMARY KEY, ref_code TEXT, api_key TEXT, contact TEXT);
         INSERT INTO members VALUES
           (1, 'RC-4471-2290', 'billing-reader', 'lin.zhao@example.org'),
           (2, 'RC-5532-8841', 'reports-writer', 'front desk'),
           (3, 'RC-9034-1177', 'ops-admin', NULL);",
    )
    .await;
    let plain = TestServer::start(&datasource_toml("crm", "dev", &db, "")).await;
    let configured = TestServer::start(&format!(
        "{}
[[masking.columns]]
datasource = \"crm\"
table = \"members\"
column = \"ref_code\"
classification = \"pii.national_id\"

[[masking.columns]]
datasource = \"crm\"
table = \"members\"
column = \"api_key\"
classification = \"none\"

[[masking.columns]]
datasource = \"crm\"
table = \"members\"
column = \"contact\"
classification = \"none\"
",
        datasource_toml("crm", "dev", &db, "")
    ))
    .await;
    let sql = "SELECT id, ref_code, api_key, contact FROM members ORDER BY id";

    // By name alone: `api_key` is a secret, `ref_code` and `contact` are nothing.
    let reply = run(&plain, &plain.agent_token(), "crm", sql, json!([])).await;
    let body = reply.ok();
    assert_eq!(
        classifications(column(body, "api_key").1),
        ["secret.api_key"]
    );
    assert_eq!(values(body, "api_key")[0], "[redacted:secret.api_key]");
    assert_eq!(column(body, "ref_code").1["masked"], false);
    assert_eq!(values(body, "ref_code")[0], "RC-4471-2290");

    // Configured: `ref_code` is a national id, `api_key` is not sensitive.
    let reply = run(
        &configured,
        &configured.agent_token(),
        "crm",
        sql,
        json!([]),
    )
    .await;
    let body = reply.ok();
    let (_, ref_code) = column(body, "ref_code");
    assert_eq!(ref_code["masked"], true);
    assert_eq!(classifications(ref_code), ["pii.national_id"]);
    for (value, raw) in
        values(body, "ref_code")
            .iter()
            .zip(["RC-4471-2290", "RC-5532-8841", "RC-9034-1177"])
    {
        let value = value.as_str().expect("text");
        assert!(is_mask_artifact(value) && value != raw, "{value}");
        assert!(!value.contains(&raw[3..7]), "{value}");
    }
    let (_, api_key) = column(body, "api_key");
    assert_eq!(api_key["masked"], false);
    assert_eq!(
        values(body, "api_key"),
        [
            &json!("billing-reader"),
            &json!("reports-writer"),
            &json!("ops-admin")
        ]
    );
    // `none` says what the column is, not what a value may hold: the detectors still
    // mask an email that turns up in it.
    assert_eq!(
        values(body, "contact")[..2],
        [&json!("l***@example.org"), &json!("front desk")]
    );
    assert_eq!(classifications(column(body, "contact").1), ["pii.email"]);

    // Probing follows the configured classes.
    let agent = configured.agent_token();
    let refused = run(
        &configured,
        &agent,
        "crm",
        "SELECT id FROM members WHERE ref_code LIKE 'RC-44%'",
        json!([]),
    )
    .await;
    assert_probing_refused(&refused, "members.ref_code");
    let allowed = run(
        &configured,
        &agent,
        "crm",
        "SELECT id FROM members WHERE api_key = 'billing-reader'",
        json!([]),
    )
    .await;
    assert_eq!(allowed.ok()["rows"], json!([[1]]));

    // And the schema shows them.
    let schema = configured
        .get("/v1/datasources/crm/schema", Some(&agent))
        .await;
    let schema = schema.ok();
    assert_eq!(
        classifications(schema_column(schema, "members", "ref_code")),
        ["pii.national_id"]
    );
    assert_eq!(schema_column(schema, "members", "ref_code")["masked"], true);
    assert_eq!(
        schema_column(schema, "members", "api_key")["classifications"],
        json!([])
    );
    assert_eq!(schema_column(schema, "members", "api_key")["masked"], false);
}

#[tokio::test]
async fn grpc_results_carry_the_same_masking() {
    let server = TestServer::demo().await;
    let agent = server.agent_token();
    let sql = "SELECT id, email, ssn, notes FROM customers WHERE id <= 30 ORDER BY id";
    let rest = run(&server, &agent, "shop", sql, json!([])).await;
    let rest = rest.ok();
    let mut grpc = server.grpc().await;
    let reply = grpc
        .query(authed(
            proto::QueryRequest {
                datasource: "shop".into(),
                sql: sql.into(),
                params: Vec::new(),
                max_rows: None,
                approval_id: String::new(),
            },
            &agent,
        ))
        .await
        .expect("gRPC query")
        .into_inner();
    assert_eq!(Some(reply.masked_values), rest["masked_values"].as_u64());
    assert!(reply.masked_values > 30);
    for (i, column) in reply.columns.iter().enumerate() {
        let expected = &rest["columns"][i];
        assert_eq!(column.name, expected["name"].as_str().unwrap_or_default());
        assert_eq!(column.masked, expected["masked"], "{}", column.name);
        assert_eq!(
            column.classifications,
            classifications(expected),
            "{}",
            column.name
        );
    }
    assert!(reply.columns[1].masked && reply.columns[2].masked && !reply.columns[0].masked);
    for (row, rest_row) in reply
        .rows
        .iter()
        .zip(rest["rows"].as_array().expect("rows"))
    {
        for (i, value) in row.values.iter().enumerate().skip(1) {
            let expected = match rest_row[i].as_str() {
                Some(text) => Some(proto::value::Kind::TextValue(text.to_owned())),
                None => Some(proto::value::Kind::NullValue(0)),
            };
            assert_eq!(value.kind, expected);
        }
    }

    let schema = grpc
        .get_schema(authed(
            proto::GetSchemaRequest {
                datasource: "shop".into(),
            },
            &agent,
        ))
        .await
        .expect("gRPC schema")
        .into_inner();
    let customers = schema
        .tables
        .iter()
        .find(|t| t.name == "customers")
        .expect("customers");
    let email = customers
        .columns
        .iter()
        .find(|c| c.name == "email")
        .expect("email");
    assert!(email.masked);
    assert_eq!(email.classifications, ["pii.email"]);

    let probe = grpc
        .query(authed(
            proto::QueryRequest {
                datasource: "shop".into(),
                sql: "SELECT id FROM customers WHERE ssn LIKE '1%'".into(),
                params: Vec::new(),
                max_rows: None,
                approval_id: String::new(),
            },
            &agent,
        ))
        .await
        .expect_err("probing is refused");
    assert_eq!(probe.code(), tonic::Code::PermissionDenied);
}

#[tokio::test]
async fn ddl_through_the_service_refreshes_classification() {
    let server = TestServer::demo().await;
    let agent = server.agent_token();
    for sql in [
        "CREATE TABLE leads (id INTEGER PRIMARY KEY, email TEXT, source TEXT)",
        "INSERT INTO leads (id, email, source) VALUES (1, 'lead.one@example.org', 'spring fair')",
    ] {
        run(&server, &agent, "shop", sql, json!([])).await.ok();
    }
    // Classified by name, not redacted as unresolved: the catalog knows the new table.
    let reply = run(
        &server,
        &agent,
        "shop",
        "SELECT id, email, source FROM leads",
        json!([]),
    )
    .await;
    let body = reply.ok();
    assert_eq!(
        body["rows"],
        json!([[1, "l***@example.org", "spring fair"]])
    );
    assert_eq!(classifications(column(body, "email").1), ["pii.email"]);
    assert_eq!(column(body, "source").1["masked"], false);

    for sql in [
        "ALTER TABLE leads ADD COLUMN ssn TEXT",
        "UPDATE leads SET ssn = '219-09-9876' WHERE id = 1",
    ] {
        run(&server, &agent, "shop", sql, json!([])).await.ok();
    }
    let reply = run(&server, &agent, "shop", "SELECT * FROM leads", json!([])).await;
    let body = reply.ok();
    assert_eq!(
        body["rows"],
        json!([[1, "l***@example.org", "spring fair", "***-**-9876"]])
    );
    assert_eq!(classifications(column(body, "ssn").1), ["pii.national_id"]);
    let probe = run(
        &server,
        &agent,
        "shop",
        "SELECT id FROM leads WHERE ssn LIKE '2%'",
        json!([]),
    )
    .await;
    assert_probing_refused(&probe, "leads.ssn");
}

#[tokio::test]
async fn catalogs_are_read_again_once_past_their_age() {
    let db = TestDb::sqlite();
    db.exec("CREATE TABLE visits (id INTEGER PRIMARY KEY, page TEXT)")
        .await;
    let datasource = datasource_toml("site", "dev", &db, "");
    let kept = TestServer::start(&format!(
        "[masking]\ncatalog_max_age_s = 3600\n{datasource}"
    ))
    .await;
    let live = TestServer::start(&format!("[masking]\ncatalog_max_age_s = 0\n{datasource}")).await;
    let has_table = |schema: &Value, name: &str| {
        schema["tables"]
            .as_array()
            .expect("tables")
            .iter()
            .any(|table| table["name"] == name)
    };
    for server in [&kept, &live] {
        let schema = server
            .get("/v1/datasources/site/schema", Some(&server.agent_token()))
            .await;
        assert!(has_table(schema.ok(), "visits"));
        assert!(!has_table(schema.ok(), "leads"));
    }

    // A table made outside Gatehouse, say by a migration tool.
    db.exec(
        "CREATE TABLE leads (id INTEGER PRIMARY KEY, email TEXT);
         INSERT INTO leads VALUES (1, 'lead.one@example.org');",
    )
    .await;
    let select = "SELECT id, email FROM leads";

    // Within its age the kept catalog does not know it, so nothing of the table can be
    // traced and every column is masked as unresolved (fail closed).
    let agent = kept.agent_token();
    let schema = kept.get("/v1/datasources/site/schema", Some(&agent)).await;
    assert!(!has_table(schema.ok(), "leads"));
    let reply = run(&kept, &agent, "site", select, json!([])).await;
    let body = reply.ok();
    for name in ["id", "email"] {
        assert_eq!(column(body, name).1["masked"], true, "{name}");
        assert_eq!(
            classifications(column(body, name).1),
            ["unresolved"],
            "{name}"
        );
    }
    assert!(!body.to_string().contains("lead.one"), "{body}");

    // The live one reads it again for each request: classified by name.
    let agent = live.agent_token();
    let schema = live.get("/v1/datasources/site/schema", Some(&agent)).await;
    assert_eq!(
        classifications(schema_column(schema.ok(), "leads", "email")),
        ["pii.email"]
    );
    let reply = run(&live, &agent, "site", select, json!([])).await;
    assert_eq!(
        classifications(column(reply.ok(), "email").1),
        ["pii.email"]
    );

    // DDL through Gatehouse reloads the kept catalog at once, whatever its age.
    let agent = kept.agent_token();
    run(
        &kept,
        &agent,
        "site",
        "CREATE TABLE referrals (id INTEGER PRIMARY KEY)",
        json!([]),
    )
    .await
    .ok();
    let schema = kept.get("/v1/datasources/site/schema", Some(&agent)).await;
    assert!(has_table(schema.ok(), "referrals"));
    assert_eq!(
        classifications(schema_column(schema.ok(), "leads", "email")),
        ["pii.email"]
    );
}

/// Whether computing on a value fails, stalls or turns NULL depends on the value, so a
/// computation over a masked column is an oracle even when its result is redacted:
/// refused, like a condition on it, unless the caller may unmask the column.
#[tokio::test]
async fn computing_on_masked_columns_is_refused() {
    let server = TestServer::demo().await;
    let agent = server.agent_token();
    let oracles = [
        // Fails (division by zero) exactly when the first digit is 1.
        (
            "SELECT id, 1 / (unicode(ssn) - 49) AS x FROM customers WHERE id = 1",
            "customers.ssn",
        ),
        // NULL exactly when the guess is right.
        (
            "SELECT id, nullif(ssn, '123-45-6789') AS guess FROM customers",
            "customers.ssn",
        ),
        (
            "SELECT CAST(card_number AS INTEGER) FROM customers",
            "customers.card_number",
        ),
        // Not returned, but computed all the same.
        (
            "SELECT id FROM (SELECT id, 1 / (length(email) - 20) AS x FROM customers) t",
            "customers.email",
        ),
        ("SELECT max(upper(email)) FROM customers", "customers.email"),
        (
            "SELECT json_array(id, substr(phone, 1, 3)) FROM customers",
            "customers.phone",
        ),
    ];
    for (sql, column) in oracles {
        let reply = run(&server, &agent, "shop", sql, json!([])).await;
        assert_probing_refused(&reply, column);
        assert!(
            reply.body["decision"]["reasons"]
                .to_string()
                .contains("computes on"),
            "{sql}: {}",
            reply.body
        );
    }

    // Gathering stored values as they are is no computation: the values come back masked.
    let reply = run(
        &server,
        &agent,
        "shop",
        "SELECT max(ssn) AS top, group_concat(email) AS emails, json_array(id, email) AS doc, \
         coalesce(phone, 'none') AS phone FROM customers WHERE id <= 3",
        json!([]),
    )
    .await;
    let body = reply.ok();
    for name in ["top", "emails", "doc", "phone"] {
        assert_eq!(column(body, name).1["masked"], true, "{name}: {body}");
    }
    // An aggregate's pick is redacted whole: a partial mask of the largest value would
    // show the ordering that `ORDER BY ssn` (refused) shows.
    assert!(
        values(body, "top")[0]
            .as_str()
            .is_some_and(|top| top.starts_with("[redacted:")),
        "{body}"
    );
    let raw = run(
        &server,
        &pii_reader(&server),
        "shop",
        "SELECT ssn, email, phone FROM customers WHERE id <= 3",
        json!([]),
    )
    .await;
    let text = body.to_string();
    for value in raw.ok()["rows"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r.as_array().unwrap())
    {
        let value = value.as_str().unwrap_or_default();
        assert!(
            value.is_empty() || !text.contains(value),
            "{value} in {text}"
        );
    }

    // Whoever may unmask the column may compute on it.
    let reader = pii_reader(&server);
    let reply = run(
        &server,
        &reader,
        "shop",
        "SELECT nullif(ssn, '000-00-0000') AS ssn FROM customers WHERE id = 1",
        json!([]),
    )
    .await;
    assert_eq!(column(reply.ok(), "ssn").1["masked"], false);
}

/// Bytes are scanned like text: a UTF-8 blob has its entities masked in place, a binary
/// one with an entity among its bytes is withheld, and one with none comes back as stored.
#[tokio::test]
async fn entities_in_stored_bytes_are_masked_too() {
    let db = TestDb::sqlite();
    db.exec(
        "CREATE TABLE attachments (id INTEGER PRIMARY KEY, body BLOB);
         INSERT INTO attachments VALUES
           (1, CAST('Signed by ana.silva@example.org on 3 May' AS BLOB)),
           (2, X'00FF10' || CAST('reply-to:kai.berg@example.org' AS BLOB) || X'FE00'),
           (3, X'00FF10FE00');",
    )
    .await;
    let server = TestServer::start(&datasource_toml("files", "dev", &db, "")).await;
    let sql = "SELECT id, body FROM attachments ORDER BY id";
    let bodies = |body: &Value| -> Vec<Option<Vec<u8>>> {
        values(body, "body")
            .into_iter()
            .map(|value| {
                value.as_str().map(|b64| {
                    base64::Engine::decode(&base64::engine::general_purpose::STANDARD, b64)
                        .expect("bytes come as base64")
                })
            })
            .collect()
    };

    let reply = run(&server, &server.agent_token(), "files", sql, json!([])).await;
    let body = reply.ok();
    let seen = bodies(body);
    assert_eq!(
        seen[0].as_deref(),
        Some("Signed by a***@example.org on 3 May".as_bytes()),
        "{body}"
    );
    assert_eq!(
        seen[1], None,
        "a binary value holding an email is withheld: {body}"
    );
    assert_eq!(
        seen[2].as_deref(),
        Some(&[0x00, 0xFF, 0x10, 0xFE, 0x00][..])
    );
    assert_eq!(body["masked_values"], 2, "{body}");
    assert_eq!(classifications(column(body, "body").1), ["pii.email"]);

    // Someone who may see emails gets the bytes as stored.
    let reply = run(&server, &pii_reader(&server), "files", sql, json!([])).await;
    let seen = bodies(reply.ok());
    assert_eq!(
        seen[0].as_deref(),
        Some("Signed by ana.silva@example.org on 3 May".as_bytes())
    );
    assert!(
        seen[1]
            .as_deref()
            .is_some_and(|b| b.windows(5).any(|w| w == b"kai.b"))
    );
}

/// `free_text_predicates = "deny"`: free text that holds some sensitive values (found by
/// sampling, below the share that classifies the column) cannot be searched or computed on
/// by whoever sees those values masked, since growing a pattern one character at a time
/// reads them out. By default it can.
#[tokio::test]
async fn free_text_holding_sensitive_values_can_be_guarded_too() {
    let db = TestDb::sqlite();
    let mut rows: Vec<String> = (1..=20)
        .map(|id| format!("({id}, 'Customer asked about refund {id}.')"))
        .collect();
    rows[4] = "(5, 'Call back on +1 415 555 0134 after noon.')".to_owned();
    rows[11] = "(12, 'Card 4434 8678 9655 8384 was declined.')".to_owned();
    db.exec(&format!(
        "CREATE TABLE tickets (id INTEGER PRIMARY KEY, body TEXT); INSERT INTO tickets VALUES {};",
        rows.join(", ")
    ))
    .await;
    let datasource = datasource_toml("support", "dev", &db, "");
    let guarded = TestServer::start(&format!(
        "[masking]\nfree_text_predicates = \"deny\"\n{datasource}"
    ))
    .await;
    let open = TestServer::start(&datasource).await;
    let probes = [
        "SELECT id FROM tickets WHERE id = 12 AND body LIKE '%4434 8%'",
        "SELECT id, instr(body, '4434 86') AS at FROM tickets WHERE id = 12",
    ];

    let agent = guarded.agent_token();
    // Not classified: selecting the text is fine, and the entities in it come back masked.
    let schema = guarded
        .get("/v1/datasources/support/schema", Some(&agent))
        .await;
    assert!(classifications(schema_column(schema.ok(), "tickets", "body")).is_empty());
    let reply = run(
        &guarded,
        &agent,
        "support",
        "SELECT body FROM tickets WHERE id = 12",
        json!([]),
    )
    .await;
    assert!(
        !reply.ok().to_string().contains("4434 8678"),
        "{}",
        reply.body
    );
    for sql in probes {
        let reply = run(&guarded, &agent, "support", sql, json!([])).await;
        assert_probing_refused(&reply, "tickets.body");
        assert!(
            reply.body["decision"]["reasons"]
                .to_string()
                .contains("free text holding pii.card"),
            "{sql}: {}",
            reply.body
        );
    }
    // Whoever may see cards and phones raw may search for them.
    let reader = pii_reader(&guarded);
    for sql in probes {
        run(&guarded, &reader, "support", sql, json!([])).await.ok();
    }
    // The default leaves free text searchable.
    let agent = open.agent_token();
    for sql in probes {
        run(&open, &agent, "support", sql, json!([])).await.ok();
    }
}
