//! One client connection's state: whether a request is under way or its
//! response is still being written, when it went idle, when the next request
//! head began; the watchdog that closes it past a deadline; and the socket
//! wrapper and guards that keep that state true.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{Notify, OwnedSemaphorePermit};

use super::ConnectionStats;
use crate::config::ConnectionLimits;

/// The HTTP/2 connection preface, which tells an HTTP/2 client from the start.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0";

/// Milliseconds since the server started: a cheap shared clock for deadlines.
#[derive(Clone, Copy)]
pub(super) struct Clock(pub(super) Instant);

impl Clock {
    fn now(self) -> u64 {
        self.0.elapsed().as_millis() as u64 + 1
    }
    fn instant(self, ms: u64) -> tokio::time::Instant {
        tokio::time::Instant::from_std(self.0 + Duration::from_millis(ms.saturating_sub(1)))
    }
}

/// Why the watchdog closes a connection.
#[derive(Clone, Copy, Debug)]
pub(super) enum Overdue {
    Head,
    Idle,
}

/// One connection's state, shared by its socket, its requests and its watchdog.
pub(super) struct Conn {
    clock: Clock,
    /// Requests whose response body has not been handed over whole.
    busy: AtomicUsize,
    /// A write found the socket full: response bytes still wait to be sent.
    stalled: AtomicBool,
    /// Requests begun on this connection.
    served: AtomicU64,
    /// When the connection last had nothing under way (ms on the clock).
    idle_since: AtomicU64,
    /// When the first byte of the next request head arrived; 0 while none has.
    head_started: AtomicU64,
    /// HTTP/2: frames come and go between requests, so only idleness counts.
    h2: AtomicBool,
    /// Served no more: closed, or handed over to an upgraded protocol.
    finished: AtomicBool,
    /// Wakes the watchdog when the state above changes.
    changed: Notify,
    /// Asks the connection to close once idle (eviction).
    pub(super) evict: Notify,
    /// Wakes the accept loop when a connection goes idle or closes.
    room: Arc<Notify>,
}

impl Conn {
    pub(super) fn new(clock: Clock, room: Arc<Notify>) -> Conn {
        Conn {
            clock,
            busy: AtomicUsize::new(0),
            stalled: AtomicBool::new(false),
            served: AtomicU64::new(0),
            idle_since: AtomicU64::new(clock.now()),
            head_started: AtomicU64::new(0),
            h2: AtomicBool::new(false),
            finished: AtomicBool::new(false),
            changed: Notify::new(),
            evict: Notify::new(),
            room,
        }
    }

    fn on_first_read(&self, bytes: &[u8]) {
        if bytes.starts_with(H2_PREFACE) {
            self.h2.store(true, Ordering::Relaxed);
        }
    }

    fn on_read(&self) {
        if self.busy.load(Ordering::Relaxed) == 0
            && !self.h2.load(Ordering::Relaxed)
            && self.head_started.load(Ordering::Relaxed) == 0
        {
            self.head_started.store(self.clock.now(), Ordering::Relaxed);
            self.changed.notify_one();
        }
    }

    fn on_write(&self, stalled: bool) {
        let was = self.stalled.swap(stalled, Ordering::AcqRel);
        if was && !stalled {
            // The response is out: idleness starts now.
            self.idle_since.store(self.clock.now(), Ordering::Relaxed);
            self.changed.notify_one();
            self.room.notify_one();
        }
    }

    pub(super) fn begin_request(self: &Arc<Self>) -> RequestGuard {
        self.busy.fetch_add(1, Ordering::AcqRel);
        self.served.fetch_add(1, Ordering::Relaxed);
        self.head_started.store(0, Ordering::Relaxed);
        RequestGuard(self.clone())
    }

    pub(super) fn finish(&self) {
        self.finished.store(true, Ordering::Release);
    }

    fn quiet(&self) -> bool {
        self.busy.load(Ordering::Acquire) == 0 && !self.stalled.load(Ordering::Acquire)
    }

    /// Since when it has waited, if it may be closed to make room: nothing
    /// under way and not served any more by anything else; waiting either
    /// for a request (since it went idle) or for the rest of a request head
    /// (since its first byte: a head that takes long is the usual attack).
    pub(super) fn waiting_since(&self) -> Option<u64> {
        let waiting = self.quiet() && !self.finished.load(Ordering::Acquire);
        waiting.then(|| match self.head_started.load(Ordering::Relaxed) {
            0 => self.idle_since.load(Ordering::Relaxed),
            started => started,
        })
    }

    /// Resolves when a deadline has passed, saying which.
    pub(super) async fn overdue(&self, limits: &ConnectionLimits) -> Overdue {
        let ms = |d: Duration| d.as_millis() as u64;
        loop {
            let changed = self.changed.notified();
            let idle_since = self.idle_since.load(Ordering::Relaxed);
            let deadline = if !self.quiet() {
                None
            } else {
                match self.head_started.load(Ordering::Relaxed) {
                    0 if self.served.load(Ordering::Relaxed) == 0
                        && !self.h2.load(Ordering::Relaxed) =>
                    {
                        Some((
                            idle_since.saturating_add(ms(limits.header_read_timeout)),
                            Overdue::Head,
                        ))
                    }
                    0 => Some((
                        idle_since.saturating_add(ms(limits.idle_timeout)),
                        Overdue::Idle,
                    )),
                    started => Some((
                        started.saturating_add(ms(limits.header_read_timeout)),
                        Overdue::Head,
                    )),
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

/// Held by a request until its response body has been handed over whole (or
/// dropped); the socket's stall flag covers what is still being sent.
pub(super) struct RequestGuard(Arc<Conn>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let conn = &self.0;
        conn.idle_since.store(conn.clock.now(), Ordering::Relaxed);
        conn.busy.fetch_sub(1, Ordering::AcqRel);
        conn.changed.notify_one();
        conn.room.notify_one();
    }
}

/// A response body that keeps its request counted as under way until it ends.
pub(super) struct Tracked {
    pub(super) inner: axum::body::Body,
    pub(super) _guard: RequestGuard,
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

/// The open connections, for eviction at the cap.
#[derive(Default)]
pub(super) struct Registry {
    next: AtomicU64,
    open: Mutex<std::collections::HashMap<u64, Arc<Conn>>>,
    /// Notified when a connection goes idle or closes: room may be made.
    pub(super) room: Arc<Notify>,
}

impl Registry {
    pub(super) fn add(&self, conn: Arc<Conn>) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.lock().insert(id, conn);
        id
    }

    fn remove(&self, id: u64) {
        self.lock().remove(&id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<u64, Arc<Conn>>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Asks the connection that has waited longest for a request to close;
    /// false when none is waiting.
    pub(super) fn evict_oldest_waiting(&self) -> bool {
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

/// A connection's place: its slot under the cap and its registry entry,
/// given back when its socket closes, whoever holds the socket by then (a
/// protocol upgrade takes it over), and even if its task panicked.
pub(super) struct Place {
    pub(super) _slot: OwnedSemaphorePermit,
    pub(super) id: u64,
    pub(super) registry: Arc<super::conn::Registry>,
    pub(super) stats: Arc<ConnectionStats>,
}

impl Drop for Place {
    fn drop(&mut self) {
        self.registry.remove(self.id);
        self.stats.open.fetch_sub(1, Ordering::Relaxed);
        self.registry.room.notify_one();
    }
}

/// The client socket, noting when a request head begins and when writes
/// find it full; it holds the connection's place.
pub(super) struct Watched {
    pub(super) io: TcpStream,
    pub(super) conn: Arc<Conn>,
    pub(super) first_read: bool,
    pub(super) _place: Place,
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
            if std::mem::take(&mut self.first_read) {
                self.conn.on_first_read(&buf.filled()[before..]);
            }
            self.conn.on_read();
        }
        polled
    }
}

impl Watched {
    fn noted<T>(&self, polled: Poll<std::io::Result<T>>) -> Poll<std::io::Result<T>> {
        self.conn.on_write(polled.is_pending());
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write(cx, buf);
        self.noted(polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.noted(polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let polled = Pin::new(&mut self.io).poll_flush(cx);
        self.noted(polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
