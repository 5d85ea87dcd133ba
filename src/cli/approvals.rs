//! `gatehouse approvals list | show | approve | reject`: the approver's (and the waiting
//! requester's) view of a running server, over its REST API.
//!
//! This talks to a server rather than opening the control store itself: deciding goes
//! through the same checks, audit events and notifications as every other vote, and the
//! caller is whoever the bearer token says, never an identity assumed on the command line.
//!
//! Output: `list` prints a table and the others a short summary; `--json` prints the
//! server's JSON instead, for scripts. A refusal prints the problem's code and detail to
//! stderr and exits non-zero.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use clap::{Args, Subcommand};
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use gatehouse::approval::Status;

/// Allowance on top of a long-poll's wait for connecting and the answer itself; also the
/// whole budget of the calls that do not wait.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Statement text shown per row of `list`; `show` prints all of it.
const LIST_STATEMENT_CHARS: usize = 60;
/// How much of an unexpected (non-problem) error body is quoted.
const QUOTED_BODY_CHARS: usize = 200;

#[derive(Args)]
pub struct ApprovalsArgs {
    #[command(subcommand)]
    command: ApprovalsCommand,
    /// Base URL of the Gatehouse REST API.
    #[arg(
        long,
        env = "GATEHOUSE_SERVER",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    server: reqwest::Url,
    /// Bearer token (JWT) to call the server with: who you are to it.
    #[arg(long, env = "GATEHOUSE_TOKEN", global = true, hide_env_values = true)]
    token: Option<String>,
    /// Print the server's JSON instead of a table or summary.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Subcommand)]
enum ApprovalsCommand {
    /// List the approval requests you made or may decide, newest first.
    List {
        /// Only requests in this status: pending, approved, rejected, expired,
        /// executing, executed or failed.
        #[arg(long)]
        status: Option<Status>,
    },
    /// Show one approval request.
    Show {
        /// The approval id.
        id: Uuid,
        /// Wait up to this many seconds for its status to change (the server caps it).
        #[arg(long)]
        wait_s: Option<u64>,
    },
    /// Approve a request. It becomes approved once enough distinct approvers agree.
    Approve {
        /// The approval id.
        id: Uuid,
        /// A comment stored with your vote.
        #[arg(long)]
        comment: Option<String>,
    },
    /// Reject a request: final, whatever others voted.
    Reject {
        /// The approval id.
        id: Uuid,
        /// A comment stored with your vote: say why.
        #[arg(long)]
        comment: Option<String>,
    },
}

/// Runs one `gatehouse approvals …` command to completion.
pub fn run(args: ApprovalsArgs) -> anyhow::Result<()> {
    if !matches!(args.server.scheme(), "http" | "https") || args.server.cannot_be_a_base() {
        bail!("--server must be an http(s) URL such as http://127.0.0.1:8080");
    }
    let token = args
        .token
        .as_deref()
        .filter(|t| !t.trim().is_empty())
        .context("no token: pass --token or set GATEHOUSE_TOKEN")?;
    // reqwest is built without a default TLS provider; an https server needs this one.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let remote = Remote {
        server: args.server.clone(),
        token: token.to_owned(),
    };
    let (answer, shape) = runtime.block_on(call(&remote, &args.command))?;
    let printed = if args.json {
        serde_json::to_string_pretty(&answer)?
    } else {
        match shape {
            Shape::List => table(&serde_json::from_value::<ApprovalList>(answer)?.approvals),
            Shape::One => summary(&serde_json::from_value::<ApprovalView>(answer)?),
        }
    };
    println!("{printed}");
    Ok(())
}

struct Remote {
    server: reqwest::Url,
    token: String,
}

enum Shape {
    List,
    One,
}

async fn call(remote: &Remote, command: &ApprovalsCommand) -> anyhow::Result<(Value, Shape)> {
    let mut timeout = REQUEST_TIMEOUT;
    let client = |timeout| {
        reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .context("cannot build the HTTP client")
    };
    let (request, shape) = match command {
        ApprovalsCommand::List { status } => {
            let mut url = remote.endpoint(&[])?;
            if let Some(status) = status {
                url.query_pairs_mut().append_pair("status", status.as_str());
            }
            (client(timeout)?.get(url), Shape::List)
        }
        ApprovalsCommand::Show { id, wait_s } => {
            let mut url = remote.endpoint(&[&id.to_string()])?;
            if let Some(wait_s) = wait_s {
                url.query_pairs_mut()
                    .append_pair("wait_s", &wait_s.to_string());
                timeout = timeout.saturating_add(Duration::from_secs(*wait_s));
            }
            (client(timeout)?.get(url), Shape::One)
        }
        ApprovalsCommand::Approve { id, comment } | ApprovalsCommand::Reject { id, comment } => {
            let verb = match command {
                ApprovalsCommand::Approve { .. } => "approve",
                _ => "reject",
            };
            let url = remote.endpoint(&[&id.to_string(), verb])?;
            let body = serde_json::json!({ "comment": comment });
            (client(timeout)?.post(url).json(&body), Shape::One)
        }
    };
    let response = request
        .bearer_auth(&remote.token)
        .send()
        .await
        .map_err(|e| anyhow!("cannot reach {}: {}", remote.server, e.without_url()))?;
    Ok((answer(response).await?, shape))
}

impl Remote {
    /// `<server>/v1/approvals/<segments…>`, each segment percent-encoded, keeping any path
    /// prefix the server URL has (a gateway behind a reverse proxy).
    fn endpoint(&self, segments: &[&str]) -> anyhow::Result<reqwest::Url> {
        let mut url = self.server.clone();
        url.set_query(None);
        url.set_fragment(None);
        url.path_segments_mut()
            .map_err(|()| anyhow!("--server cannot take a path"))?
            .pop_if_empty()
            .extend(["v1", "approvals"])
            .extend(segments);
        Ok(url)
    }
}

/// The problem members a refusal is reported with.
#[derive(Deserialize)]
struct Problem {
    code: String,
    detail: String,
}

/// The JSON body of a successful answer, or the refusal as an error.
async fn answer(response: reqwest::Response) -> anyhow::Result<Value> {
    let status = response.status();
    let text = response
        .text()
        .await
        .map_err(|e| anyhow!("the server's answer broke off: {}", e.without_url()))?;
    if status.is_success() {
        return serde_json::from_str(&text)
            .with_context(|| format!("the server answered {status} with a body that is not JSON"));
    }
    match serde_json::from_str::<Problem>(&text) {
        Ok(problem) => bail!(
            "{}: {} (HTTP {})",
            printable(&problem.code),
            printable(&problem.detail),
            status.as_u16()
        ),
        Err(_) => bail!(
            "the server answered {status}: {}",
            printable(&truncated(&text, QUOTED_BODY_CHARS))
        ),
    }
}

#[derive(Deserialize)]
struct ApprovalList {
    approvals: Vec<ApprovalView>,
}

/// The members of an approval this command prints; others the server adds are ignored.
#[derive(Deserialize)]
struct ApprovalView {
    id: String,
    status: String,
    requester: RequesterView,
    datasource: String,
    environment: String,
    statement: String,
    #[serde(default)]
    params: Vec<Value>,
    #[serde(default)]
    reasons: Vec<String>,
    #[serde(default)]
    approver_groups: Vec<String>,
    min_approvals: u32,
    approvals: u32,
    #[serde(default)]
    votes: Vec<VoteView>,
    created_at: String,
    expires_at: String,
    execution: Option<ExecutionView>,
}

#[derive(Deserialize)]
struct RequesterView {
    sub: String,
    kind: String,
    on_behalf_of: Option<String>,
}

#[derive(Deserialize)]
struct VoteView {
    approver_sub: String,
    verdict: String,
    comment: Option<String>,
    at: String,
}

#[derive(Deserialize)]
struct ExecutionView {
    ok: bool,
    rows_affected: u64,
    rows_returned: u64,
    error_code: Option<String>,
}

impl RequesterView {
    fn describe(&self) -> String {
        match &self.on_behalf_of {
            Some(person) => format!("{} ({}) for {person}", self.sub, self.kind),
            None => format!("{} ({})", self.sub, self.kind),
        }
    }
}

/// One row per approval, columns padded to their widest cell.
fn table(approvals: &[ApprovalView]) -> String {
    if approvals.is_empty() {
        return "no approval requests".to_owned();
    }
    let header = [
        "ID",
        "STATUS",
        "VOTES",
        "DATASOURCE",
        "REQUESTER",
        "EXPIRES",
        "STATEMENT",
    ]
    .map(str::to_owned);
    let rows: Vec<[String; 7]> = approvals
        .iter()
        .map(|a| {
            [
                a.id.clone(),
                a.status.clone(),
                format!("{}/{}", a.approvals, a.min_approvals),
                format!("{} ({})", a.datasource, a.environment),
                a.requester.describe(),
                a.expires_at.clone(),
                truncated(
                    &a.statement.split_whitespace().collect::<Vec<_>>().join(" "),
                    LIST_STATEMENT_CHARS,
                ),
            ]
            .map(|cell| printable(&cell))
        })
        .collect();
    let mut widths = header.clone().map(|h| h.chars().count());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let mut line = String::new();
        for (i, (cell, width)) in row.iter().zip(widths).enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<width$}  ");
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out.pop();
    out
}

/// A labelled summary of one approval.
fn summary(a: &ApprovalView) -> String {
    let mut lines: Vec<(&str, String)> = vec![
        ("id", a.id.clone()),
        (
            "status",
            format!(
                "{} ({} of {} approvals)",
                a.status, a.approvals, a.min_approvals
            ),
        ),
        ("requester", a.requester.describe()),
        (
            "datasource",
            format!("{} ({})", a.datasource, a.environment),
        ),
        ("statement", a.statement.clone()),
        ("params", Value::Array(a.params.clone()).to_string()),
    ];
    for reason in &a.reasons {
        lines.push(("reason", reason.clone()));
    }
    lines.push(("approvers", a.approver_groups.join(", ")));
    lines.push(("created", a.created_at.clone()));
    lines.push(("expires", a.expires_at.clone()));
    for vote in &a.votes {
        let comment = vote
            .comment
            .as_deref()
            .map(|c| format!(": {c}"))
            .unwrap_or_default();
        lines.push((
            "vote",
            format!(
                "{} by {} at {}{comment}",
                vote.verdict, vote.approver_sub, vote.at
            ),
        ));
    }
    if let Some(run) = &a.execution {
        let outcome = if run.ok {
            format!(
                "ok, {} rows affected, {} rows returned",
                run.rows_affected, run.rows_returned
            )
        } else {
            format!(
                "failed: {}",
                run.error_code.as_deref().unwrap_or("unknown error")
            )
        };
        lines.push(("execution", outcome));
    }
    lines
        .into_iter()
        .map(|(label, value)| format!("{label:<11}{}", printable(&value)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The text with control characters escaped. Statements, comments and subjects come from
/// other people: printed raw, an escape sequence in one could rewrite what an approver's
/// terminal shows.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// At most `max` characters, with `…` when something was cut.
fn truncated(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(id: &str, statement: &str) -> ApprovalView {
        serde_json::from_value(serde_json::json!({
            "id": id, "status": "pending",
            "requester": {"sub": "agent-7", "kind": "agent", "groups": [], "on_behalf_of": "ada"},
            "datasource": "ledger", "environment": "prod", "statement": statement,
            "params": [{"type": "int", "value": 1}], "reasons": ["needs a dba"],
            "approver_groups": ["dba"], "min_approvals": 2, "approvals": 1,
            "votes": [{"approver_sub": "grace", "approver_kind": "human", "verdict": "approve",
                       "comment": "ok", "at": "2026-01-01T00:00:00Z"}],
            "created_at": "2026-01-01T00:00:00Z", "expires_at": "2026-01-01T01:00:00Z",
            "decided_at": null, "execution": null, "future_member": true
        }))
        .unwrap()
    }

    #[test]
    fn control_characters_never_reach_the_terminal() {
        assert_eq!(printable("a\u{1b}[2Jb\nc"), "a\\u{1b}[2Jb\\nc");
        let shown = summary(&view("x", "UPDATE t SET a = 1 -- \u{1b}]0;owned\u{7}"));
        assert!(
            !shown.contains('\u{1b}') && !shown.contains('\u{7}'),
            "{shown}"
        );
    }

    #[test]
    fn table_aligns_columns_and_shortens_statements() {
        let long = format!("UPDATE t SET a = 1\n   WHERE {}", "b = 2 AND ".repeat(20));
        let shown = table(&[
            view("id-1", "DELETE FROM t WHERE id = 1"),
            view("id-22", &long),
        ]);
        let lines: Vec<&str> = shown.lines().collect();
        assert_eq!(lines.len(), 3, "{shown}");
        let column = |line: &str| line.find("pending").or_else(|| line.find("STATUS"));
        assert_eq!(column(lines[0]), column(lines[1]));
        assert_eq!(column(lines[1]), column(lines[2]));
        assert!(lines[1].contains("1/2") && lines[1].contains("agent-7 (agent) for ada"));
        assert!(
            lines[2].contains("UPDATE t SET a = 1 WHERE b = 2"),
            "{shown}"
        );
        assert!(lines[2].ends_with('…'), "{shown}");
        assert_eq!(table(&[]), "no approval requests");
    }

    #[test]
    fn endpoints_keep_a_path_prefix_and_encode_segments() {
        let remote = |server: &str| Remote {
            server: server.parse().unwrap(),
            token: String::new(),
        };
        assert_eq!(
            remote("http://h:8080")
                .endpoint(&["a b", "approve"])
                .unwrap()
                .as_str(),
            "http://h:8080/v1/approvals/a%20b/approve"
        );
        assert_eq!(
            remote("https://h/gatehouse/?x=1")
                .endpoint(&[])
                .unwrap()
                .as_str(),
            "https://h/gatehouse/v1/approvals"
        );
    }
}
