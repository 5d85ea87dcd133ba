//! Webhooks: each `[[approvals.webhooks]]` receiver gets a signed JSON POST when an
//! approval is created, approved, rejected, or has run (executed or failed).
//!
//! Request: `content-type: application/json`, and
//! - `x-gatehouse-event`: the event (`created`, `approved`, `rejected`, `executed`,
//!   `failed`);
//! - `x-gatehouse-delivery`: a UUID, the same on every retry of one delivery, for
//!   receivers to drop duplicates;
//! - `x-gatehouse-timestamp`: Unix time in seconds when this attempt was signed;
//! - `x-gatehouse-signature`: `sha256=` and the lowercase hex HMAC-SHA256, keyed with the
//!   webhook's `secret`, of the timestamp header's value, one `.`, and the raw body bytes.
//!   Signing the timestamp lets a receiver refuse replays older than it tolerates.
//!
//! Body: `{"event": "approved", "delivery": "<uuid>", "approval": {…}}`, the approval as
//! [`super::Approval`] serializes it (statement and typed parameters included: receivers
//! are where approvers read what they are asked to approve).
//!
//! A delivery is attempted up to [`MAX_ATTEMPTS`] times, waiting 200 ms, 400 ms, 800 ms, …
//! between attempts, while the receiver cannot be reached or answers 408, 429 or 5xx; any
//! other answer is final. Deliveries run in background tasks: requests never wait for
//! them, and they are not kept across restarts.

use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::config::WebhookConfig;

use super::error::ApprovalError;
use super::model::ApprovalEvent;

pub const SIGNATURE_HEADER: &str = "x-gatehouse-signature";
pub const TIMESTAMP_HEADER: &str = "x-gatehouse-timestamp";
pub const EVENT_HEADER: &str = "x-gatehouse-event";
pub const DELIVERY_HEADER: &str = "x-gatehouse-delivery";

/// Attempts per delivery, the first included.
pub const MAX_ATTEMPTS: u32 = 5;
const FIRST_RETRY: Duration = Duration::from_millis(200);
/// One attempt's limit, connecting included.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// Deliveries in flight at once; the queue in front of them is bounded too.
const CONCURRENT_DELIVERIES: usize = 16;
const QUEUE_CAPACITY: usize = 1024;

struct Receiver {
    url: reqwest::Url,
    secret: Vec<u8>,
}

/// Checks the receivers and starts the delivery task; events sent to the returned queue
/// go to every receiver.
pub(super) fn start(
    webhooks: &[WebhookConfig],
) -> Result<(mpsc::Sender<ApprovalEvent>, JoinHandle<()>), ApprovalError> {
    let receivers = webhooks
        .iter()
        .enumerate()
        .map(|(i, hook)| {
            let url = reqwest::Url::parse(&hook.url)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https"))
                .ok_or_else(|| {
                    ApprovalError::Events(format!(
                        "approvals.webhooks[{i}].url is not an http(s) URL"
                    ))
                })?;
            if hook.secret.is_empty() {
                return Err(ApprovalError::Events(format!(
                    "approvals.webhooks[{i}].secret is empty"
                )));
            }
            Ok(Receiver {
                url,
                secret: hook.secret.as_bytes().to_vec(),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .timeout(ATTEMPT_TIMEOUT)
        // A receiver's redirect is not followed: the signed event goes where it was
        // configured to go, or nowhere.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| ApprovalError::Events(format!("cannot build the webhook client: {e}")))?;
    let (queue, events) = mpsc::channel(QUEUE_CAPACITY);
    let task = tokio::spawn(dispatch(client, Arc::new(receivers), events));
    Ok((queue, task))
}

async fn dispatch(
    client: reqwest::Client,
    receivers: Arc<Vec<Receiver>>,
    mut events: mpsc::Receiver<ApprovalEvent>,
) {
    let slots = Arc::new(Semaphore::new(CONCURRENT_DELIVERIES));
    while let Some(event) = events.recv().await {
        let delivery = Uuid::new_v4();
        let body = serde_json::json!({
            "event": event.kind.as_str(),
            "delivery": delivery,
            "approval": &*event.approval,
        });
        let body = match serde_json::to_vec(&body) {
            Ok(body) => Arc::<[u8]>::from(body),
            Err(e) => {
                tracing::error!(error = %e, "cannot encode an approval webhook");
                continue;
            }
        };
        for index in 0..receivers.len() {
            let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
                return;
            };
            let (client, receivers, body) = (client.clone(), Arc::clone(&receivers), body.clone());
            let event_name = event.kind.as_str();
            tokio::spawn(async move {
                deliver(&client, &receivers[index], event_name, delivery, body).await;
                drop(slot);
            });
        }
    }
}

async fn deliver(
    client: &reqwest::Client,
    receiver: &Receiver,
    event: &str,
    delivery: Uuid,
    body: Arc<[u8]>,
) {
    let mut pause = FIRST_RETRY;
    for attempt in 1..=MAX_ATTEMPTS {
        let timestamp = chrono::Utc::now().timestamp().to_string();
        let signature = sign(&receiver.secret, &timestamp, &body);
        let sent = client
            .post(receiver.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(EVENT_HEADER, event)
            .header(DELIVERY_HEADER, delivery.to_string())
            .header(TIMESTAMP_HEADER, &timestamp)
            .header(SIGNATURE_HEADER, format!("sha256={signature}"))
            .body(body.to_vec())
            .send()
            .await;
        let failure = match sent {
            Ok(response) if response.status().is_success() => return,
            Ok(response) => {
                let status = response.status();
                let retry = status.is_server_error()
                    || status == reqwest::StatusCode::REQUEST_TIMEOUT
                    || status == reqwest::StatusCode::TOO_MANY_REQUESTS;
                if !retry {
                    tracing::warn!(webhook.host = receiver.url.host_str().unwrap_or_default(),
                        %delivery, status = status.as_u16(),
                        "approval webhook refused; not retried");
                    return;
                }
                format!("status {}", status.as_u16())
            }
            // Without the URL: it may carry a token in its query.
            Err(e) => e.without_url().to_string(),
        };
        if attempt == MAX_ATTEMPTS {
            tracing::warn!(webhook.host = receiver.url.host_str().unwrap_or_default(),
                %delivery, error = %failure, attempts = attempt, "approval webhook not delivered");
            return;
        }
        tracing::debug!(%delivery, error = %failure, attempt, "approval webhook attempt failed; retrying");
        tokio::time::sleep(pause).await;
        pause *= 2;
    }
}

/// Lowercase hex HMAC-SHA256 of `timestamp.body` keyed with `secret`.
fn sign(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    // HMAC takes keys of any length; this cannot fail.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        unreachable!("HMAC accepts keys of any length")
    };
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_covers_timestamp_and_body() {
        // The primitive, pinned by RFC 4231 test case 2.
        let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // The signed material is `timestamp.body`.
        let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"1700000000.{\"a\":1}");
        let expected = hex::encode(mac.finalize().into_bytes());
        assert_eq!(sign(b"Jefe", "1700000000", br#"{"a":1}"#), expected);
        assert_ne!(sign(b"Jefe", "1700000001", br#"{"a":1}"#), expected);
        assert_ne!(sign(b"Jeff", "1700000000", br#"{"a":1}"#), expected);
        assert_ne!(sign(b"Jefe", "1700000000", br#"{"a":2}"#), expected);
    }

    #[test]
    fn receivers_are_checked_at_start() {
        let bad_url = [WebhookConfig {
            url: "ftp://example.test/hook".to_owned(),
            secret: "s".to_owned(),
        }];
        let empty_secret = [WebhookConfig {
            url: "https://example.test/hook".to_owned(),
            secret: String::new(),
        }];
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let _guard = runtime.enter();
        assert!(
            start(&bad_url)
                .unwrap_err()
                .to_string()
                .contains("webhooks[0].url")
        );
        assert!(
            start(&empty_secret)
                .unwrap_err()
                .to_string()
                .contains("secret is empty")
        );
    }
}
