//! The `gatehouse` binary as a new user meets it: `serve` on the embedded default,
//! `token`, `openapi`, and clear failures for bad configuration.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_gatehouse");

fn gatehouse(args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .env_remove("GATEHOUSE_CONFIG")
        .env_remove("GATEHOUSE_DATA_DIR")
        .output()
        .expect("gatehouse runs")
}

/// A `gatehouse serve` process; killed when dropped.
struct Served {
    child: Child,
    http: String,
    output: Vec<String>,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(data_dir: &Path) -> Served {
    serve_with(data_dir, &[])
}

fn serve_with(data_dir: &Path, extra: &[&str]) -> Served {
    let mut child = Command::new(BIN)
        .args(["serve", "--data-dir"])
        .arg(data_dir)
        .args(extra)
        .args(["--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0"])
        .env_remove("GATEHOUSE_CONFIG")
        .env("GATEHOUSE_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut output = Vec::new();
    let mut http = None;
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("utf-8 output");
        if let Some(rest) = line.trim().strip_prefix("REST  ") {
            http = rest.split_whitespace().next().map(str::to_owned);
        }
        let done = line.contains("-d '{");
        output.push(line);
        if done {
            break;
        }
    }
    let http = http.unwrap_or_else(|| panic!("no REST address printed: {output:?}"));
    Served {
        child,
        http,
        output,
    }
}

fn token(data_dir: &Path) -> String {
    let out = gatehouse(&[
        "token",
        "--sub",
        "ada",
        "--kind",
        "human",
        "--data-dir",
        data_dir.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

async fn count_customers(http: &str, token: &str) -> i64 {
    // reqwest is built without a default TLS provider; the server process picks ring, and
    // so does this client (plain HTTP here, but the client is built with TLS support).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::new();
    let mut last_error = String::new();
    for _ in 0..50 {
        match client
            .post(format!("{http}/v1/query"))
            .bearer_auth(token)
            .json(
                &serde_json::json!({"datasource": "shop", "sql": "SELECT count(*) FROM customers"}),
            )
            .send()
            .await
        {
            Ok(response) => {
                let body: serde_json::Value = response.json().await.unwrap();
                return body["rows"][0][0]
                    .as_i64()
                    .unwrap_or_else(|| panic!("{body}"));
            }
            Err(error) => last_error = error.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("server did not answer: {last_error}");
}

#[tokio::test]
async fn embedded_default_serves_prints_a_first_query_and_keeps_data_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");

    let first = serve(&data_dir);
    let printed = first.output.join("\n");
    assert!(printed.contains("gatehouse token --sub"), "{printed}");
    assert!(printed.contains("curl"), "{printed}");
    assert!(
        printed.contains(&format!("--data-dir {}", data_dir.display())),
        "{printed}"
    );

    let secret = data_dir.join("hs256.secret");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&secret).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600, "the generated secret is private");
    for file in ["control.db", "shop.db", "shop_prod.db"] {
        assert!(data_dir.join(file).exists(), "{file} created");
    }

    let token = token(&data_dir);
    let customers = count_customers(&first.http, &token).await;
    assert!(customers >= 200);
    let secret_before = std::fs::read(&secret).unwrap();
    drop(first);

    let second = serve(&data_dir);
    assert_eq!(
        std::fs::read(&secret).unwrap(),
        secret_before,
        "secret kept"
    );
    assert_eq!(
        count_customers(&second.http, &token).await,
        customers,
        "data kept; old token valid"
    );
}

/// SIGHUP makes a running server re-read its policy files.
#[tokio::test]
async fn sighup_reloads_policies() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.cedar");
    let reads_only = "@id(\"read\")\n@reason(\"reads only\")\npermit (principal, action == Action::\"select\", resource);\n";
    std::fs::write(&policy, reads_only).unwrap();
    let config = dir.path().join("gatehouse.toml");
    std::fs::write(
        &config,
        format!("[policy]\nfiles = [\"{}\"]\n", policy.display()),
    )
    .unwrap();
    let served = serve_with(dir.path(), &["--config", config.to_str().unwrap()]);
    let token = token(dir.path());
    count_customers(&served.http, &token).await; // waits until it answers

    let client = reqwest::Client::new();
    let explain = || async {
        let body: serde_json::Value = client
            .post(format!("{}/v1/explain", served.http))
            .bearer_auth(&token)
            .json(&serde_json::json!({"datasource": "shop", "sql": "DELETE FROM orders WHERE id = 1"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["decision"]["effect"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(explain().await, "deny");
    std::fs::write(
        &policy,
        format!("{reads_only}@id(\"delete\")\n@reason(\"deletes too\")\npermit (principal, action == Action::\"delete\", resource);\n"),
    )
    .unwrap();
    let pid = served.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    let mut effect = String::new();
    for _ in 0..50 {
        effect = explain().await;
        if effect == "allow" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(effect, "allow", "the reloaded policies apply");
}

#[test]
fn token_without_a_secret_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let out = gatehouse(&[
        "token",
        "--sub",
        "ada",
        "--data-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("gatehouse serve"), "{stderr}");
}

#[test]
fn token_rejects_bad_arguments() {
    for args in [
        &["token", "--sub", "ada", "--kind", "robot"][..],
        &["token", "--sub", "ada", "--ttl", "1w"][..],
        &["token", "--sub", "", "--ttl", "1h"][..],
    ] {
        let out = gatehouse(args);
        assert!(!out.status.success(), "{args:?}");
        assert!(!out.stderr.is_empty(), "{args:?}");
    }
}

#[test]
fn token_refuses_to_sign_for_public_key_configurations() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gatehouse.toml");
    std::fs::write(&config, "[auth]\njwks_url = \"http://127.0.0.1:9/jwks\"\n").unwrap();
    let out = gatehouse(&[
        "token",
        "--sub",
        "ada",
        "--config",
        config.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("HS256"));
}

#[test]
fn bad_configuration_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gatehouse.toml");
    std::fs::write(&config, "[[datasources]]\nname = \"a\"\nenvironment = \"dev\"\nurl = \"sqlite://a.db\"\nmax_rows = -5\n").unwrap();
    let out = gatehouse(&[
        "serve",
        "--config",
        config.to_str().unwrap(),
        "--data-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("datasources[0].max_rows"), "{stderr}");
}

#[test]
fn example_policies_are_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/policies");
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let config = gatehouse::config::PolicyConfig {
            files: vec![path.clone()],
        };
        gatehouse::policy::PolicyEngine::load(&config)
            .unwrap_or_else(|e| panic!("{} does not load: {e}", path.display()));
    }
}

#[test]
fn example_configuration_is_valid() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/gatehouse.toml");
    gatehouse::config::Config::load(Some(&example), Vec::new())
        .expect("examples/gatehouse.toml loads");
}

/// The checked-in OpenAPI document is what the code generates; regenerate it with
/// `cargo run -- openapi > openapi/gatehouse.json`.
#[test]
fn checked_in_openapi_is_current() {
    let out = gatehouse(&["openapi"]);
    assert!(out.status.success());
    let generated: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi/gatehouse.json");
    let checked_in: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&path).expect("openapi/gatehouse.json exists"),
    )
    .unwrap();
    assert!(
        generated == checked_in,
        "openapi/gatehouse.json is stale: run `cargo run -- openapi > openapi/gatehouse.json`"
    );
}

/// examples/clients/query.py works against the real server, rows and problems alike.
#[tokio::test]
async fn python_client_example_runs() {
    if Command::new("python3").arg("--version").output().is_err() {
        panic!("python3 is needed for the client example test");
    }
    let dir = tempfile::tempdir().unwrap();
    let served = serve(dir.path());
    let token = token(dir.path());
    count_customers(&served.http, &token).await; // waits until it answers
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/clients/query.py");
    let run = |args: &[&str]| {
        Command::new("python3")
            .arg(&script)
            .args(args)
            .env("GATEHOUSE_URL", &served.http)
            .env("GATEHOUSE_TOKEN", &token)
            .output()
            .unwrap()
    };
    let ok = run(&[
        "shop",
        "SELECT id, status FROM orders WHERE id < ? ORDER BY id",
        "4",
    ]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let stdout = String::from_utf8(ok.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 4, "header and three rows: {stdout}");
    assert!(stdout.starts_with("id\tstatus"));
    let refused = run(&["shop_prod", "DROP TABLE orders"]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.starts_with("403 "), "{stderr}");
}
