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

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::Router;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify, Semaphore};
use tokio::task::JoinSet;

use crate::config::ConnectionLimits;

/// File descriptors a client connection may cost at most: its own, and one
/// each to the primary and the candidate.
const DESCRIPTORS_PER_CONNECTION: u64 = 3;
/// Descriptors kept for everything else: the database, the record file, logs.
const DESCRIPTORS_RESERVED: u64 = 64;

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

/// The cap actually used: the configured one, lowered to what the process's
/// open-file limit can hold (each connection may cost three descriptors).
pub fn effective_cap(limits: &ConnectionLimits) -> usize {
    let configured = limits.max_connections.get();
    match open_file_limit() {
        Some(files) => {
            let fits = files.saturating_sub(DESCRIPTORS_RESERVED) / DESCRIPTORS_PER_CONNECTION;
            let fits = usize::try_from(fits).unwrap_or(usize::MAX).max(1);
            if fits < configured {
                tracing::warn!(
                    max_connections = configured,
                    open_file_limit = files,
                    used = fits,
                    "max_connections lowered to fit the open-file limit (3 descriptors a connection); raise the limit (ulimit -n) to allow more"
                );
            }
            configured.min(fits)
        }
        None => configured,
    }
}

/// Raises the soft open-file limit to the hard one, as servers commonly do:
/// the soft default (often 1,024) is far below what a proxy needs.
pub fn raise_open_file_limit() {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit and setrlimit only read and write the struct given.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0
                && limit.rlim_cur < limit.rlim_max
            {
                limit.rlim_cur = limit.rlim_max;
                let _ = libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
            }
        }
    }
}

fn open_file_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit only writes the struct given.
        let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0;
        (ok && limit.rlim_cur != libc::RLIM_INFINITY).then_some(limit.rlim_cur)
    }
    #[cfg(not(unix))]
    None
}

/// Milliseconds since the server started: a cheap shared clock for deadlines.
#[derive(Clone, Copy)]
struct Clock(Instant);

impl Clock {
    fn now(self) -> u64 {
        self.0.elapsed().as_millis() as u64 + 1
    }
    fn instant(self, ms: u64) -> tokio::time::Instant {
        tokio::time::Instant::from_std(self.0 + Duration::from_millis(ms.saturating_sub(1)))
    }
}

/// One connection's state, shared by its reader, its requests and its watchdog.
struct Conn {
    clock: Clock,
    /// Requests whose response has not been sent whole.
    busy: AtomicUsize,
    /// Requests begun on this connection.
    served: AtomicU64,
    /// When the connection last had no request under way (ms on the clock).
    idle_since: AtomicU64,
    /// When the first byte of the next request head arrived; 0 while none has.
    head_started: AtomicU64,
    /// Wakes the watchdog when the state above changes.
    changed: Notify,
    /// Tells the connection to close now (eviction).
    evict: Notify,
}

impl Conn {
    fn new(clock: Clock) -> Conn {
        Conn {
            clock,
            busy: AtomicUsize::new(0),
            served: AtomicU64::new(0),
            idle_since: AtomicU64::new(clock.now()),
            head_started: AtomicU64::new(0),
            changed: Notify::new(),
            evict: Notify::new(),
        }
    }

    fn on_read(&self) {
        if self.busy.load(Ordering::Relaxed) == 0 && self.head_started.load(Ordering::Relaxed) == 0
        {
            self.head_started.store(self.clock.now(), Ordering::Relaxed);
            self.changed.notify_one();
        }
    }

    fn begin_request(self: &Arc<Self>) -> RequestGuard {
        self.busy.fetch_add(1, Ordering::AcqRel);
        self.served.fetch_add(1, Ordering::Relaxed);
        self.head_started.store(0, Ordering::Relaxed);
        RequestGuard(self.clone())
    }

    /// Whether it waits for a request, and since when (for eviction).
    fn waiting_since(&self) -> Option<u64> {
        (self.busy.load(Ordering::Acquire) == 0).then(|| self.idle_since.load(Ordering::Relaxed))
    }

    /// Resolves when a deadline has passed, saying which.
    async fn overdue(&self, limits: &ConnectionLimits) -> Overdue {
        let ms = |d: Duration| d.as_millis() as u64;
        loop {
            let changed = self.changed.notified();
            let deadline = if self.busy.load(Ordering::Acquire) > 0 {
                None
            } else {
                match self.head_started.load(Ordering::Relaxed) {
                    0 if self.served.load(Ordering::Relaxed) == 0 => Some((
                        self.idle_since.load(Ordering::Relaxed) + ms(limits.header_read_timeout),
                        Overdue::Head,
                    )),
                    0 => Some((
                        self.idle_since.load(Ordering::Relaxed) + ms(limits.idle_timeout),
                        Overdue::Idle,
                    )),
                    started => Some((started + ms(limits.header_read_timeout), Overdue::Head)),
                }
            };
            match deadline {
                None => changed.await,
                Some((at, why)) if self.clock.now() >= at => return why,
                Some((at, _)) => {
                    tokio::select! {
                        () = changed => {}
                        () = tokio::time::sleep_until(self.clock.instant(at)) => {}
                    }
                }
            }
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Overdue {
    Head,
    Idle,
}

/// Held by a request until its response has been sent whole (or dropped).
struct RequestGuard(Arc<Conn>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let conn = &self.0;
        conn.idle_since.store(conn.clock.now(), Ordering::Relaxed);
        conn.busy.fetch_sub(1, Ordering::AcqRel);
        conn.changed.notify_one();
    }
}

/// A response body that keeps its request counted as under way until it ends.
struct Tracked {
    inner: axum::body::Body,
    _guard: RequestGuard,
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The client socket, noting when the first byte of a request head arrives.
struct Watched {
    io: TcpStream,
    conn: Arc<Conn>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.conn.on_read();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// The open connections, for eviction at the cap.
#[derive(Default)]
struct Registry {
    next: AtomicU64,
    open: Mutex<HashMap<u64, Arc<Conn>>>,
}

impl Registry {
    fn add(&self, conn: Arc<Conn>) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.lock().insert(id, conn);
        id
    }

    fn remove(&self, id: u64) {
        self.lock().remove(&id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Conn>>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Closes the connection that has waited longest for a request; false
    /// when every connection has a request under way.
    fn evict_oldest_waiting(&self) -> bool {
        let open = self.lock();
        let oldest = open
            .iter()
            .filter_map(|(id, c)| c.waiting_since().map(|since| (since, *id)))
            .min();
        match oldest.and_then(|(_, id)| open.get(&id)) {
            Some(conn) => {
                conn.evict.notify_one();
                true
            }
            None => false,
        }
    }
}

/// Serves `router` on `listener` under `limits` until `shutdown` resolves,
/// then lets open requests finish for up to `grace` and closes the rest.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    stats: Arc<ConnectionStats>,
    shutdown: impl Future<Output = ()> + Send,
    grace: Duration,
) {
    let cap = effective_cap(&limits);
    let slots = Arc::new(Semaphore::new(cap));
    let registry = Arc::new(Registry::default());
    let clock = Clock(Instant::now());
    let (closing_tx, closing) = watch::channel(false);
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
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                if registry.evict_oldest_waiting() {
                    ConnectionStats::add(&stats.evicted);
                }
                // Every connection has a request under way: wait for one to end.
                tokio::select! {
                    () = &mut shutdown => break,
                    slot = slots.clone().acquire_owned() => match slot {
                        Ok(slot) => slot,
                        Err(_) => break,
                    },
                }
            }
        };
        let _ = tcp.set_nodelay(true);
        ConnectionStats::add(&stats.accepted);
        let conn = Arc::new(Conn::new(clock));
        let id = registry.add(conn.clone());
        let (router, stats, registry, closing) = (
            router.clone(),
            stats.clone(),
            registry.clone(),
            closing.clone(),
        );
        tasks.spawn(async move {
            stats.open.fetch_add(1, Ordering::Relaxed);
            serve_one(tcp, remote, conn, router, limits, &stats, closing).await;
            stats.open.fetch_sub(1, Ordering::Relaxed);
            registry.remove(id);
            drop(slot);
        });
    }
    drop(listener);
    let _ = closing_tx.send(true);
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

/// Errors that concern one connection only: the next accept may well succeed.
fn is_transient(error: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        error.kind(),
        ConnectionAborted | ConnectionReset | ConnectionRefused | Interrupted | WouldBlock
    )
}

async fn serve_one(
    tcp: TcpStream,
    remote: SocketAddr,
    conn: Arc<Conn>,
    router: Router,
    limits: ConnectionLimits,
    stats: &ConnectionStats,
    mut closing: watch::Receiver<bool>,
) {
    let service = {
        let conn = conn.clone();
        hyper::service::service_fn(move |mut request: http::Request<hyper::body::Incoming>| {
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
    let io = TokioIo::new(Watched {
        io: tcp,
        conn: conn.clone(),
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new());
    let connection = builder.serve_connection_with_upgrades(io, service);
    tokio::pin!(connection);
    let mut graceful = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%remote, %error, "client connection ended with an error");
                }
                return;
            }
            why = conn.overdue(&limits), if !graceful => {
                match why {
                    Overdue::Head => ConnectionStats::add(&stats.header_timeouts),
                    Overdue::Idle => ConnectionStats::add(&stats.idle_closed),
                }
                tracing::debug!(%remote, reason = ?why, "closing a client connection");
                return;
            }
            () = conn.evict.notified() => {
                tracing::debug!(%remote, "closing a waiting client connection to make room");
                return;
            }
            _ = closing.wait_for(|closing| *closing), if !graceful => {
                // Idle connections close now; a request under way finishes first.
                graceful = true;
                connection.as_mut().graceful_shutdown();
            }
        }
    }
}
