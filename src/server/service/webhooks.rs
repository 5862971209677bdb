//! Webhooks: administrators register endpoints; the changes they subscribe
//! to are put in the store's outbox as they commit (see
//! [`crate::server::store::webhooks`]), and a [`Deliverer`] on every node
//! sends them, signed, retrying with backoff (see
//! [`crate::domain::webhooks::retry_after`]).
//!
//! Every attempt of one event carries the same `Tally-Webhook-Id`, and its
//! body is the same bytes; the signature is
//! `v1=hex(HMAC-SHA256(secret, "<timestamp>.<body>"))` with the attempt's
//! `Tally-Webhook-Timestamp` (unix seconds), so a receiver can refuse
//! replays of old requests and dedupe retries by id.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;

use super::Engine;
use super::audit;
use crate::domain::webhooks::{
    Delivery, DeliveryStatus, Endpoint, EndpointSpec, EventType, host_and_port, public_address, retry_after,
};
use crate::server::error::{AppError, AppResult};
use crate::server::store::view::Affects;
use crate::server::store::webhooks::{self, Attempt, Claimed};
use crate::server::store::{StoreResult, alerts};
use sqlx::AnyConnection;

/// Puts alerts `ids` in the webhook outbox as events of `event_type`, in
/// the caller's transaction: the services say what a change of an alert
/// tells webhooks; the store only records it.
pub(crate) async fn announce_alerts(
    conn: &mut AnyConnection,
    event_type: EventType,
    ids: impl IntoIterator<Item = i64>,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    for id in ids {
        let alert = alerts::alert_by_id(&mut *conn, id).await?;
        let data = crate::server::views::alert::AlertData::from(&alert);
        webhooks::enqueue(&mut *conn, event_type, &data, now).await?;
    }
    Ok(())
}

/// What the delivery log says of an attempt that got no HTTP answer.
pub const NOT_DELIVERED: &str = "no HTTP answer from the endpoint (unreachable, refused or too slow)";

/// An attempt without an answer in this long is a failure (and retried).
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// A node holds the deliveries it takes this long: well past an attempt's
/// timeout, so only a node that died lets one go to another.
pub const LEASE: Duration = Duration::from_secs(60);
/// Deliveries one node takes at a time (sent concurrently).
const BATCH: i64 = 16;
/// How often an idle node looks for due deliveries.
pub const POLL: Duration = Duration::from_millis(500);

/// The signature header's value for one attempt.
pub fn signature(secret: &str, timestamp: i64, body: &str) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    format!("v1={}", hex::encode(mac.finalize().into_bytes()))
}

fn new_secret() -> String {
    use rand::RngCore;
    let mut b = [0u8; 24];
    rand::rngs::OsRng.fill_bytes(&mut b);
    format!("whsec_{}", hex::encode(b))
}

/// What the audit log keeps of an endpoint (never its secret).
#[derive(serde::Serialize)]
struct EndpointSnapshot<'a> {
    url: &'a str,
    events: &'a [EventType],
    description: &'a str,
}

impl Engine {
    /// Registers an endpoint; returns it and its signing secret, which is
    /// not shown again.
    pub async fn create_webhook(
        &self,
        url: &str,
        events: &[String],
        description: &str,
        actor: &str,
        now: DateTime<Utc>,
    ) -> AppResult<(Endpoint, String)> {
        let spec = EndpointSpec::parse(url, events, description).map_err(AppError::Invalid)?;
        if !self.config.webhook_allow_private {
            check_target(&spec.url).await.map_err(AppError::Invalid)?;
        }
        let id = format!("wh_{}", uuid::Uuid::new_v4().simple());
        let secret = new_secret();
        let mut tx = self.store.begin().await?;
        tx.affects(Affects::NothingCached);
        webhooks::insert_endpoint(&mut tx, &id, &spec, &self.config.secrets.seal(&id, &secret), now).await?;
        let after = EndpointSnapshot { url: &spec.url, events: &spec.events, description: &spec.description };
        audit::record(&mut tx, actor, "webhook.create", ("webhook", &id), audit::NONE, Some(&after), now).await?;
        let endpoint = webhooks::endpoint(&mut tx, &id).await?.expect("the endpoint just written");
        tx.commit().await?;
        Ok((endpoint, secret))
    }

    /// Seals the signing secrets stored in plain text (by a version before
    /// secrets were sealed); how many.
    pub async fn seal_webhook_secrets(&self) -> AppResult<usize> {
        let mut tx = self.store.begin().await?;
        tx.affects(Affects::NothingCached);
        let plain = webhooks::plain_secrets(&mut tx).await?;
        for (id, secret) in &plain {
            webhooks::set_secret(&mut tx, id, &self.config.secrets.seal(id, secret)).await?;
        }
        tx.commit().await?;
        Ok(plain.len())
    }

    /// Live endpoints, newest first.
    pub async fn webhooks(&self) -> AppResult<Vec<Endpoint>> {
        let mut conn = self.store.pool().acquire().await?;
        Ok(webhooks::endpoints(&mut conn, false).await?)
    }

    /// Stops sending to an endpoint; its undelivered events are cancelled.
    pub async fn delete_webhook(&self, id: &str, actor: &str, now: DateTime<Utc>) -> AppResult<()> {
        let mut tx = self.store.begin().await?;
        tx.affects(Affects::NothingCached);
        let Some(before) = webhooks::endpoint(&mut tx, id).await?.filter(|e| e.deleted_at.is_none()) else {
            return Err(AppError::NotFound(format!("no webhook endpoint with id `{id}`")));
        };
        webhooks::delete_endpoint(&mut tx, id, now).await?;
        let before = EndpointSnapshot { url: &before.url, events: &before.events, description: &before.description };
        audit::record(&mut tx, actor, "webhook.delete", ("webhook", id), Some(&before), audit::NONE, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// An endpoint's latest deliveries (deleted endpoints keep theirs).
    pub async fn webhook_deliveries(&self, id: &str, limit: i64) -> AppResult<(Endpoint, Vec<Delivery>)> {
        let mut conn = self.store.pool().acquire().await?;
        let endpoint = webhooks::endpoint(&mut conn, id)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("no webhook endpoint with id `{id}`")))?;
        let list = webhooks::deliveries(&mut conn, id, limit.clamp(1, 500)).await?;
        Ok((endpoint, list))
    }

    /// Sends a delivery again now, with the same event id and body.
    pub async fn replay_delivery(
        &self,
        endpoint_id: &str,
        delivery_id: i64,
        actor: &str,
        now: DateTime<Utc>,
    ) -> AppResult<Delivery> {
        let mut tx = self.store.begin().await?;
        tx.affects(Affects::NothingCached);
        let endpoint = webhooks::endpoint(&mut tx, endpoint_id)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("no webhook endpoint with id `{endpoint_id}`")))?;
        if endpoint.deleted_at.is_some() {
            return Err(AppError::Conflict(format!(
                "webhook endpoint `{endpoint_id}` is deleted: nothing is sent to it"
            )));
        }
        if !webhooks::replay(&mut tx, endpoint_id, delivery_id, now).await? {
            return Err(AppError::NotFound(format!("endpoint `{endpoint_id}` has no delivery {delivery_id}")));
        }
        audit::record(
            &mut tx,
            actor,
            "webhook.replay",
            ("webhook", endpoint_id),
            audit::NONE,
            Some(&json!({"delivery_id": delivery_id})),
            now,
        )
        .await?;
        let d = webhooks::delivery(&mut tx, endpoint_id, delivery_id).await?.expect("the delivery just replayed");
        tx.commit().await?;
        Ok(d)
    }
}

/// Why `url` may not be a webhook target when only public receivers are
/// allowed: it names, or its host resolves to, an address that is not
/// public ([`crate::domain::webhooks::public_address`]).
pub async fn check_target(url: &str) -> Result<(), String> {
    let (host, port) = host_and_port(url).ok_or_else(|| format!("`{url}` names no host"))?;
    public_addresses(&host, port).await.map(|_| ())
}

/// Every address `host` (a name or an address) stands for, when all are
/// public; else why not. The one check for registration and for sending.
async fn public_addresses(host: &str, port: u16) -> Result<Vec<std::net::SocketAddr>, String> {
    let found: Vec<std::net::SocketAddr> =
        match tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((host, port))).await {
            Ok(Ok(found)) => found.collect(),
            _ => return Err(format!("the host `{host}` does not resolve; give a host with a public address")),
        };
    match found.iter().find(|a| !public_address(a.ip())) {
        Some(a) => Err(format!(
            "`{host}` is {}, a loopback, private or link-local address: webhooks go to public addresses only \
             (set TALLY_WEBHOOK_ALLOW_PRIVATE=1 for a receiver inside your network)",
            a.ip()
        )),
        None if found.is_empty() => Err(format!("the host `{host}` has no address")),
        None => Ok(found),
    }
}

/// The longest a webhook host's lookup may take.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Resolves webhook hosts for the deliverer's connections and, unless
/// private targets are allowed, refuses any host with a non-public
/// address: a name that resolved to a public address at registration
/// cannot be turned toward an internal one later (DNS rebinding), since
/// the address checked is the address connected to.
#[derive(Clone, Debug)]
struct GuardedResolver {
    allow_private: bool,
}

impl tower::Service<hyper_util::client::legacy::connect::dns::Name> for GuardedResolver {
    type Response = std::vec::IntoIter<std::net::SocketAddr>;
    type Error = std::io::Error;
    type Future =
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send + 'static>>;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: hyper_util::client::legacy::connect::dns::Name) -> Self::Future {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let found = if allow_private {
                tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((name.as_str(), 0)))
                    .await
                    .map_err(|_| std::io::Error::other("lookup timed out"))??
                    .collect()
            } else {
                public_addresses(name.as_str(), 0).await.map_err(std::io::Error::other)?
            };
            Ok(found.into_iter())
        })
    }
}

type HttpClient = Client<hyper_rustls::HttpsConnector<HttpConnector<GuardedResolver>>, Full<Bytes>>;

/// Attempts on this node since it started, by result, for `/metrics`.
#[derive(Debug, Default)]
pub struct DeliveryCounters {
    /// [delivered, will retry, given up]
    results: [AtomicU64; 3],
}

impl DeliveryCounters {
    fn count(&self, next: DeliveryStatus) {
        let i = match next {
            DeliveryStatus::Delivered => 0,
            DeliveryStatus::Pending => 1,
            DeliveryStatus::Failed | DeliveryStatus::Cancelled => 2,
        };
        self.results[i].fetch_add(1, Ordering::Relaxed);
    }

    /// `(result, attempts)`: `delivered`, `retry`, `failed`.
    pub fn results(&self) -> [(&'static str, u64); 3] {
        let n = |i: usize| self.results[i].load(Ordering::Relaxed);
        [("delivered", n(0)), ("retry", n(1)), ("failed", n(2))]
    }
}

/// Sends due deliveries from this node.
#[derive(Clone, Debug)]
pub struct Deliverer {
    engine: Engine,
    client: HttpClient,
    pub counters: Arc<DeliveryCounters>,
}

impl Deliverer {
    pub fn new(engine: Engine) -> Deliverer {
        let mut http =
            HttpConnector::new_with_resolver(GuardedResolver { allow_private: engine.config.webhook_allow_private });
        http.enforce_http(false);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(hyper_util::rt::TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(https);
        Deliverer { engine, client, counters: Arc::default() }
    }

    /// Takes the deliveries due at `now` (up to a batch), sends them and
    /// records each attempt. How many were attempted.
    pub async fn deliver_due(&self, now: DateTime<Utc>) -> AppResult<usize> {
        let token = uuid::Uuid::new_v4().simple().to_string();
        let lease_until = now + chrono::Duration::from_std(LEASE).expect("a minute");
        let claimed = {
            let mut tx = self.engine.store.begin().await?;
            tx.affects(Affects::NothingCached);
            let backend = self.engine.store.backend();
            let c = webhooks::claim(&mut tx, backend, now, lease_until, &token, BATCH).await?;
            tx.commit().await?;
            c
        };
        let n = claimed.len();
        let attempts = futures::future::join_all(claimed.into_iter().map(|c| self.attempt(c, now))).await;
        let mut tx = self.engine.store.begin().await?;
        tx.affects(Affects::NothingCached);
        for (id, attempt) in attempts {
            if webhooks::finish(&mut tx, id, &token, &attempt).await? {
                self.counters.count(attempt.next);
            } else {
                tracing::warn!(
                    delivery = id,
                    "a webhook delivery's lease ran out during its attempt; another node retries it"
                );
            }
        }
        tx.commit().await?;
        Ok(n)
    }

    /// Delivers batch after batch while full batches are due.
    async fn deliver_backlog(&self) -> AppResult<()> {
        while self.deliver_due(Utc::now()).await? == BATCH as usize {}
        Ok(())
    }

    /// Sends one delivery once and says what becomes of it.
    async fn attempt(&self, c: Claimed, now: DateTime<Utc>) -> (i64, Attempt) {
        let timestamp = Utc::now().timestamp();
        let sent = self.send(&c, timestamp).await;
        // When the attempt began (the caller's clock, simulated in tests).
        let at = now;
        let (status, error) = match sent {
            Ok(status) if crate::domain::webhooks::delivered(status) => {
                return (
                    c.id,
                    Attempt { at, status: Some(status), error: None, next: DeliveryStatus::Delivered, retry_at: None },
                );
            }
            Ok(status) => (Some(status), Some(format!("the endpoint answered {status}"))),
            Err(e) => (None, Some(e)),
        };
        let first = c.first_attempt_at.unwrap_or(at);
        let attempts = u32::try_from(c.attempts + 1).unwrap_or(u32::MAX);
        let since_first = (at - first).to_std().unwrap_or_default();
        let (next, retry_at) = match retry_after(attempts, since_first) {
            Some(wait) => (DeliveryStatus::Pending, Some(at + chrono::Duration::from_std(wait).expect("hours"))),
            None => (DeliveryStatus::Failed, None),
        };
        (c.id, Attempt { at, status, error, next, retry_at })
    }

    async fn send(&self, c: &Claimed, timestamp: i64) -> Result<u16, String> {
        // A name is checked by the resolver; an address in the URL (which
        // the connector never resolves) here.
        let literal = host_and_port(&c.url).is_some_and(|(h, _)| h.parse::<std::net::IpAddr>().is_ok());
        if !self.engine.config.webhook_allow_private && literal && check_target(&c.url).await.is_err() {
            return Err(NOT_DELIVERED.into());
        }
        let secret = self.engine.config.secrets.open(&c.endpoint_id, &c.secret)?;
        let req = hyper::Request::post(&c.url)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header(hyper::header::USER_AGENT, concat!("Tally-Webhooks/", env!("CARGO_PKG_VERSION")))
            .header("Tally-Webhook-Id", &c.event_id)
            .header("Tally-Webhook-Timestamp", timestamp.to_string())
            .header("Tally-Webhook-Signature", signature(&secret, timestamp, &c.body))
            .body(Full::new(Bytes::from(c.body.clone())))
            .map_err(|e| format!("cannot build the request: {e}"))?;
        // One message for every way of getting no HTTP answer (refused,
        // unreachable, reset, timed out, refused by the address check), so
        // the delivery log cannot be used to scan ports; the log of this
        // node says which.
        match tokio::time::timeout(ATTEMPT_TIMEOUT, self.client.request(req)).await {
            Err(_) => {
                tracing::info!(endpoint = %c.endpoint_id, "webhook attempt timed out");
                Err(NOT_DELIVERED.into())
            }
            Ok(Err(e)) => {
                tracing::info!(endpoint = %c.endpoint_id, error = %e, source = ?std::error::Error::source(&e), "webhook attempt failed");
                Err(NOT_DELIVERED.into())
            }
            Ok(Ok(resp)) => Ok(resp.status().as_u16()),
        }
    }

    /// Delivers until the store closes: whatever is due, then a look every
    /// [`POLL`]. Every node runs one; leases keep them from sending the
    /// same delivery twice.
    pub async fn run(self) {
        let mut closed = self.engine.store.live().closed();
        let mut failures = 0u32;
        loop {
            let due = async {
                let mut conn = self.engine.store.pool().acquire().await?;
                webhooks::any_due(&mut conn, Utc::now()).await
            };
            let result = match due.await {
                Ok(true) => self.deliver_backlog().await,
                Ok(false) => Ok(()),
                Err(e) => Err(e.into()),
            };
            match result {
                Ok(()) => failures = 0,
                Err(e) => {
                    failures += 1;
                    if failures == 1 || failures.is_multiple_of(60) {
                        tracing::warn!(error = %e, "webhook deliveries: cannot read the outbox; will retry");
                    }
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(POLL) => {}
                _ = closed.wait_for(|c| *c) => return,
            }
        }
    }
}
