//! Notifications: a new mismatch group, or a change of a watched gate's
//! verdict, posted to a generic webhook (versioned JSON, `payload`) and a
//! Slack-compatible one (`{"text": …}`). Whoever has news hands an
//! [`Event`] to the [`Notifier`], which queues it without waiting (a full
//! queue drops it, counted); one task delivers each event to each target,
//! retrying with backoff. Nothing here is on a client's path, and a receiver
//! that is down costs only its own retries. `watch` decides the watched gate
//! periodically and sends its changes.

pub mod payload;
pub mod watch;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::{Settings, WebhookUrl};
use crate::gate::GateVerdict;
use crate::store::GroupDelta;
use crate::writer::health::StoreHealth;

/// Events waiting for delivery at most; beyond, new ones are dropped and
/// counted.
const QUEUE: usize = 1_000;
/// One delivery attempt's time limit.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// The waits before each retry: four attempts in all.
const BACKOFF: [Duration; 3] = [
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(2),
];

/// Something worth telling.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// A mismatch group the store had not seen (exactly one instance sends it).
    NewGroup(NewGroup),
    /// The watched gate decided differently than the last time.
    GateChanged(GateChange),
}

/// A new mismatch group: what it is, never a body or a header's value.
#[derive(Clone, Debug, PartialEq)]
pub struct NewGroup {
    pub fingerprint: String,
    pub endpoint: String,
    /// JSON Pointers of the differing parts of the body.
    pub paths: Vec<String>,
    /// Names of the differing headers.
    pub headers: Vec<String>,
    /// The statuses (primary, candidate) when they differ.
    pub statuses: Option<(u16, u16)>,
    pub first_seen_ms: i64,
}

/// A change of the watched gate's verdict.
#[derive(Clone, Debug, PartialEq)]
pub struct GateChange {
    /// The gate's criteria as configured.
    pub gate: String,
    /// None for the first decision since start.
    pub from: Option<GateVerdict>,
    pub to: GateVerdict,
    pub reason: String,
    pub since_ms: i64,
    pub until_ms: i64,
}

impl From<&GroupDelta> for NewGroup {
    fn from(g: &GroupDelta) -> NewGroup {
        NewGroup {
            fingerprint: g.fingerprint.clone(),
            endpoint: g.endpoint.clone(),
            paths: g.paths.clone(),
            headers: g.headers.clone(),
            statuses: g.statuses,
            first_seen_ms: g.first_seen,
        }
    }
}

/// What a target receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// The versioned JSON of `payload`.
    Webhook,
    /// `{"text": …}`, as Slack's and Mattermost's incoming webhooks take.
    Slack,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Webhook => "webhook",
            Format::Slack => "slack",
        }
    }
}

/// Where notifications go.
#[derive(Clone, Debug)]
pub struct Target {
    pub format: Format,
    pub url: WebhookUrl,
}

/// Deliveries per target and the events dropped, for `/metrics`.
#[derive(Debug, Default)]
pub struct NotifyStats {
    /// Events dropped because the queue was full.
    pub dropped: AtomicU64,
    /// By [`Format`]: delivered, given up after the last attempt, retried.
    pub sent: [AtomicU64; 2],
    pub failed: [AtomicU64; 2],
    pub retries: [AtomicU64; 2],
}

fn slot(format: Format) -> usize {
    match format {
        Format::Webhook => 0,
        Format::Slack => 1,
    }
}

impl NotifyStats {
    /// (target, sent, failed, retries) for each format.
    pub fn by_target(&self) -> [(&'static str, u64, u64, u64); 2] {
        [Format::Webhook, Format::Slack].map(|f| {
            let i = slot(f);
            (
                f.as_str(),
                self.sent[i].load(Ordering::Relaxed),
                self.failed[i].load(Ordering::Relaxed),
                self.retries[i].load(Ordering::Relaxed),
            )
        })
    }
}

/// The sending side: cheap to clone, never waits.
#[derive(Clone, Debug)]
pub struct Notifier {
    tx: mpsc::Sender<Event>,
    stats: Arc<NotifyStats>,
    /// Tells the delivery task to take nothing more and finish the queue,
    /// whoever still holds a sender (the store writer's hook does).
    closing: CancellationToken,
}

impl Notifier {
    /// Starts the delivery task on the current runtime; it ends when every
    /// `Notifier` is dropped and the queue is delivered.
    pub fn start(
        targets: Vec<Target>,
        instance: String,
    ) -> (Notifier, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let stats = Arc::new(NotifyStats::default());
        let closing = CancellationToken::new();
        let task = tokio::spawn(deliver_all(
            rx,
            targets,
            instance,
            Arc::clone(&stats),
            closing.clone(),
        ));
        let notifier = Notifier { tx, stats, closing };
        (notifier, task)
    }

    /// Queues an event; a full queue drops it, counted.
    pub fn send(&self, event: Event) {
        if self.tx.try_send(event).is_err() {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn stats(&self) -> Arc<NotifyStats> {
        Arc::clone(&self.stats)
    }
}

async fn deliver_all(
    mut rx: mpsc::Receiver<Event>,
    targets: Vec<Target>,
    instance: String,
    stats: Arc<NotifyStats>,
    closing: CancellationToken,
) {
    let client = match reqwest::Client::builder()
        .timeout(ATTEMPT_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(client) => client,
        Err(e) => {
            tracing::error!(error = %e, "notifications cannot be sent: no HTTP client");
            return;
        }
    };
    loop {
        let event = tokio::select! {
            event = rx.recv() => event,
            // Nothing more is taken; what is queued is still delivered.
            _ = closing.cancelled(), if !rx.is_closed() => {
                rx.close();
                continue;
            }
        };
        let Some(event) = event else { break };
        let at = crate::time::now_ms();
        for target in &targets {
            let body = match target.format {
                Format::Webhook => payload::webhook(&event, &instance, at),
                Format::Slack => payload::slack(&event, &instance),
            };
            deliver(&client, target, body, &stats).await;
        }
    }
}

/// Why one attempt failed, and whether another may succeed.
enum Attempt {
    Sent,
    Retry(String),
    GiveUp(String),
}

async fn attempt(client: &reqwest::Client, url: &WebhookUrl, body: &str) -> Attempt {
    let sent = client
        .post(url.url().clone())
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await;
    match sent {
        Ok(r) if r.status().is_success() => Attempt::Sent,
        // A receiver that refuses the message will refuse it again; one
        // that is overloaded or failing may not.
        Ok(r) if r.status().is_client_error() && r.status().as_u16() != 429 => {
            Attempt::GiveUp(format!("answered {}", r.status().as_u16()))
        }
        Ok(r) => Attempt::Retry(format!("answered {}", r.status().as_u16())),
        // Without the URL, whose path may be the secret.
        Err(e) => Attempt::Retry(
            if e.is_timeout() {
                "timed out"
            } else if e.is_connect() {
                "could not connect"
            } else {
                "failed"
            }
            .to_string(),
        ),
    }
}

/// One event to one target: up to four attempts, then counted as failed.
async fn deliver(client: &reqwest::Client, target: &Target, body: String, stats: &NotifyStats) {
    let i = slot(target.format);
    let mut waits = BACKOFF.iter();
    loop {
        let why = match attempt(client, &target.url, &body).await {
            Attempt::Sent => {
                stats.sent[i].fetch_add(1, Ordering::Relaxed);
                return;
            }
            Attempt::GiveUp(why) => Some(why),
            Attempt::Retry(why) => match waits.next() {
                Some(wait) => {
                    stats.retries[i].fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(*wait).await;
                    None
                }
                None => Some(why),
            },
        };
        if let Some(why) = why {
            stats.failed[i].fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                target = target.format.as_str(),
                url = %target.url,
                why,
                "a notification could not be delivered"
            );
            return;
        }
    }
}

/// The running notifications of `serve`: the delivery task and the gate
/// watcher, as the settings ask for them.
#[derive(Debug, Default)]
pub struct Notifications {
    notifier: Option<Notifier>,
    delivery: Option<tokio::task::JoinHandle<()>>,
    watcher: Option<(CancellationToken, tokio::task::JoinHandle<()>)>,
}

/// How long undelivered notifications may hold up shutdown.
const DRAIN: Duration = Duration::from_secs(5);

impl Notifications {
    /// Starts what `settings` ask for on the current runtime (nothing
    /// without a notification URL; the settings refuse a watched gate
    /// without one).
    pub fn start(settings: &Settings) -> Notifications {
        let targets: Vec<Target> = [
            (Format::Webhook, &settings.notify_webhook_url),
            (Format::Slack, &settings.notify_slack_url),
        ]
        .into_iter()
        .filter_map(|(format, url)| url.clone().map(|url| Target { format, url }))
        .collect();
        if targets.is_empty() {
            return Notifications::default();
        }
        for t in &targets {
            tracing::info!(target = t.format.as_str(), url = %t.url, "notifications on");
        }
        let (notifier, delivery) = Notifier::start(targets, settings.instance.clone());
        Notifications {
            notifier: Some(notifier),
            delivery: Some(delivery),
            watcher: None,
        }
    }

    /// Starts the gate watcher when `settings` name a gate (and a database).
    pub fn watch(&mut self, settings: &Settings, health: Option<StoreHealth>) {
        let (Some(gate), Some(notifier)) = (&settings.notify_gate, &self.notifier) else {
            return;
        };
        let Some(database) = &settings.database_url else {
            tracing::warn!("notify_gate needs a database to decide from; not watched");
            return;
        };
        let stop = CancellationToken::new();
        let task = tokio::spawn(watch::watch_gate(
            gate.clone(),
            settings.notify_gate_every,
            database.clone(),
            health,
            notifier.clone(),
            stop.clone(),
        ));
        self.watcher = Some((stop, task));
    }

    /// Deliveries and drops so far, when notifications are on.
    pub fn stats(&self) -> Option<Arc<NotifyStats>> {
        self.notifier.as_ref().map(Notifier::stats)
    }

    /// The sending side, for the store writer.
    pub fn notifier(&self) -> Option<Notifier> {
        self.notifier.clone()
    }

    /// Stops the watcher and delivers what is queued, for at most a few
    /// seconds; what is left then is dropped, counted.
    pub async fn finish(mut self) {
        if let Some((stop, task)) = self.watcher.take() {
            stop.cancel();
            let _ = task.await;
        }
        let stats = self.notifier.as_ref().map(Notifier::stats);
        let queued = self
            .notifier
            .as_ref()
            .map_or(0, |n| QUEUE - n.tx.capacity());
        if let Some(notifier) = self.notifier.take() {
            notifier.closing.cancel();
        }
        if let Some(mut task) = self.delivery.take() {
            if tokio::time::timeout(DRAIN, &mut task).await.is_err() {
                task.abort();
                if let Some(stats) = stats {
                    stats.dropped.fetch_add(queued as u64, Ordering::Relaxed);
                }
                tracing::warn!("notifications still undelivered at shutdown were dropped");
            }
        }
    }
}
