//! Client connections: accepted under a cap, each with a deadline for its
//! request heads and for idleness between requests, and closed gracefully at
//! shutdown.
//!
//! A client that sends its request head a byte at a time, or opens
//! connections and sends nothing, would otherwise hold a file descriptor each
//! for as long as it likes, until no one else can connect. Here a request
//! head must arrive within `header_read_timeout` (from the connection's start
//! or from the first byte of a later request), a kept-alive connection with
//! no request under way is closed after `idle_timeout`, and at the cap the
//! connection that has waited longest for a request is closed to make room.
//! A request under way (a slow upload, a long download) is never cut here.

mod conn;
mod files;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::ConnectionLimits;
use conn::{Clock, Conn, Overdue, Place, Registry, Tracked, Watched};
pub use files::{fit_to_open_files, raise_open_file_limit, FileBudget};

/// What happened to client connections, for logs and reports.
#[derive(Debug, Default)]
pub struct ConnectionStats {
    pub accepted: AtomicU64,
    pub open: AtomicU64,
    /// Failed accepts (out of file descriptors, memory).
    pub accept_errors: AtomicU64,
    /// Closed because a request head took longer than `header_read_timeout`.
    pub header_timeouts: AtomicU64,
    /// Closed after `idle_timeout` without a request.
    pub idle_closed: AtomicU64,
    /// Closed at the cap to make room for a new one.
    pub evicted: AtomicU64,
    /// Requests read from clients (each request on a kept-alive connection).
    pub requests: AtomicU64,
}

impl ConnectionStats {
    fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The counts now: accepted, open, accept errors, header timeouts, idle
    /// closes, evictions.
    pub fn snapshot(&self) -> [u64; 6] {
        [
            &self.accepted,
            &self.open,
            &self.accept_errors,
            &self.header_timeouts,
            &self.idle_closed,
            &self.evicted,
        ]
        .map(|c| c.load(Ordering::Relaxed))
    }
}

/// Serves `router` on `listener` under `limits` until `shutdown` resolves,
/// then lets open requests finish for up to `grace` and closes the rest.
/// `limits.max_connections` is used as given: fit it to the open-file limit
/// first ([`fit_to_open_files`]).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    stats: Arc<ConnectionStats>,
    shutdown: impl Future<Output = ()> + Send,
    grace: Duration,
) {
    let cap = limits.max_connections.get();
    let slots = Arc::new(Semaphore::new(cap));
    let registry = Arc::new(Registry::default());
    let clock = Clock(Instant::now());
    let closing = CancellationToken::new();
    let mut tasks = JoinSet::new();
    let mut accept_errors_logged: Option<Instant> = None;
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        while tasks.try_join_next().is_some() {}
        let (tcp, remote) = match accepted {
            Ok(pair) => pair,
            Err(error) => {
                ConnectionStats::add(&stats.accept_errors);
                if is_transient(&error) {
                    continue;
                }
                // Out of descriptors or memory: say so (once a second at most)
                // and give the open connections a moment to finish.
                if accept_errors_logged.is_none_or(|at| at.elapsed() >= Duration::from_secs(1)) {
                    accept_errors_logged = Some(Instant::now());
                    tracing::error!(
                        %error,
                        failed_so_far = stats.accept_errors.load(Ordering::Relaxed),
                        "cannot accept client connections"
                    );
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(slot) = make_room(&slots, &registry, &stats, &mut shutdown).await else {
            break;
        };
        let _ = tcp.set_nodelay(true);
        ConnectionStats::add(&stats.accepted);
        stats.open.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn::new(clock, registry.room.clone()));
        let place = Place {
            _slot: slot,
            id: registry.add(conn.clone()),
            registry: registry.clone(),
            stats: stats.clone(),
        };
        let (router, stats, closing) = (router.clone(), stats.clone(), closing.clone());
        tasks.spawn(async move {
            serve_one(tcp, remote, place, conn, router, limits, stats, closing).await;
        });
    }
    drop(listener);
    closing.cancel();
    let finished =
        tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
    if finished.is_err() {
        tracing::warn!(
            grace_ms = grace.as_millis() as u64,
            open = tasks.len(),
            "client connections still open after the grace period; closing them"
        );
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }
}

/// A slot under the cap: free already, or made by asking the connection that
/// has waited longest for a request to close. While every connection has a
/// request under way, waits for one to go idle or close, and tries again;
/// `None` at shutdown.
async fn make_room(
    slots: &Arc<Semaphore>,
    registry: &Registry,
    stats: &ConnectionStats,
    shutdown: &mut (impl Future<Output = ()> + Unpin),
) -> Option<tokio::sync::OwnedSemaphorePermit> {
    if let Ok(slot) = slots.clone().try_acquire_owned() {
        return Some(slot);
    }
    // One eviction at a time: the one asked frees a slot as it closes.
    let mut evicting = false;
    loop {
        if !evicting && registry.evict_oldest_waiting() {
            ConnectionStats::add(&stats.evicted);
            evicting = true;
        }
        let room = registry.room.notified();
        tokio::select! {
            () = &mut *shutdown => return None,
            slot = slots.clone().acquire_owned() => return slot.ok(),
            () = room => {}
        }
    }
}

/// Errors that concern one connection only: the next accept may well succeed.
fn is_transient(error: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        error.kind(),
        ConnectionAborted | ConnectionReset | ConnectionRefused | Interrupted | WouldBlock
    )
}

#[allow(clippy::too_many_arguments)]
async fn serve_one(
    tcp: TcpStream,
    remote: SocketAddr,
    place: Place,
    conn: Arc<Conn>,
    router: Router,
    limits: ConnectionLimits,
    stats: Arc<ConnectionStats>,
    closing: CancellationToken,
) {
    let service = {
        let conn = conn.clone();
        let counted = Arc::clone(&stats);
        hyper::service::service_fn(move |mut request: http::Request<hyper::body::Incoming>| {
            ConnectionStats::add(&counted.requests);
            let guard = conn.begin_request();
            request.extensions_mut().insert(ConnectInfo(remote));
            let mut router = router.clone();
            async move {
                let response = tower_service::Service::call(&mut router, request).await?;
                Ok::<_, Infallible>(response.map(|inner| {
                    axum::body::Body::new(Tracked {
                        inner,
                        _guard: guard,
                    })
                }))
            }
        })
    };
    // The socket holds the connection's place: a protocol upgrade that takes
    // the socket over keeps it counted under the cap until it closes.
    let io = TokioIo::new(Watched {
        io: tcp,
        conn: conn.clone(),
        first_read: true,
        _place: place,
    });
    // No timer: hyper's own header-read timeout (30 s once a timer is set)
    // would also close idle connections; the watchdog here keeps time.
    let builder = auto::Builder::new(TokioExecutor::new());
    let connection = builder.serve_connection_with_upgrades(io, service);
    tokio::pin!(connection);
    let (mut evicted, mut shutting) = (false, false);
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                conn.finish();
                if let Err(error) = result {
                    tracing::debug!(%remote, %error, "client connection ended with an error");
                }
                return;
            }
            why = conn.overdue(&limits) => {
                match why {
                    Overdue::Head => ConnectionStats::add(&stats.header_timeouts),
                    Overdue::Idle => ConnectionStats::add(&stats.idle_closed),
                }
                tracing::debug!(%remote, reason = ?why, "closing a client connection");
                return;
            }
            // Closed at once while nothing is under way (hyper would wait for
            // a half-sent head); a request that began since it was chosen
            // gets its response first. The connection is polled only here,
            // so no request can begin while this runs.
            () = conn.evict.notified(), if !evicted && !shutting => {
                tracing::debug!(%remote, "closing a waiting client connection to make room");
                if conn.waiting_since().is_some() {
                    return;
                }
                evicted = true;
                connection.as_mut().graceful_shutdown();
            }
            () = closing.cancelled(), if !shutting => {
                // Idle connections close now; a request under way finishes first.
                shutting = true;
                if !evicted {
                    connection.as_mut().graceful_shutdown();
                }
            }
        }
    }
}
