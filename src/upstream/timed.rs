//! Backend latency as the network saw it, not as the proxy's threads did:
//! each backend connection records when it last wrote a request, and the
//! kernel's receive timestamp (`SO_TIMESTAMPNS`) of the first byte read
//! after that. Their difference is the time to the response's first byte,
//! whatever the delay before a thread got round to reading it. Without it,
//! the candidate (read on the shadow stage's low-priority threads) would
//! look slower than the primary whenever the proxy is busy, by however
//! long those threads waited for a CPU.
//!
//! [`TimedConnector`] wraps hyper-util's `HttpConnector`; every response
//! carries its connection's [`ResponseClock`] in its extensions (hyper-util
//! puts a connection's `extra` there). One request is in flight per HTTP/1
//! connection, so the clock's last write and first read belong to the
//! response being read; HTTP/2 multiplexes, so [`time_to_first_byte`]
//! answers only for HTTP/1.
//!
//! Where it can be off: a later segment the kernel merges into the first
//! one before it is read carries the later arrival time (a head flushed
//! long before its body, read late), and a TLS 1.3 server's session ticket
//! may be the first byte after the first request on a new connection.

use std::future::Future;
use std::io;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

/// A connection's clock: the wall time of the last request write, and the
/// kernel's receive time of the first byte read after it, in nanoseconds
/// since the epoch (the kernel stamps with the wall clock).
#[derive(Debug, Default)]
struct Clock {
    last_write: AtomicU64,
    first_byte: AtomicU64,
    /// A write happened and no byte has been read since.
    awaiting: AtomicBool,
}

fn nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// The clock of the connection a response came on. hyper-util clones it
/// into each response's extensions as the response head arrives, and a
/// clone is a snapshot: once the response is out, the connection may carry
/// the next request (a bodiless response frees it at once) without changing
/// this one's numbers.
#[derive(Debug)]
pub struct ResponseClock(Stamp);

#[derive(Debug)]
enum Stamp {
    /// The connection's own, in its `Connected`.
    Live(Arc<Clock>),
    /// A response's: (last write, first byte) when the head arrived.
    Taken(u64, u64),
}

impl Clone for ResponseClock {
    fn clone(&self) -> Self {
        ResponseClock(match &self.0 {
            Stamp::Live(clock) => Stamp::Taken(
                clock.last_write.load(Ordering::Acquire),
                clock.first_byte.load(Ordering::Acquire),
            ),
            Stamp::Taken(wrote, read) => Stamp::Taken(*wrote, *read),
        })
    }
}

/// The time from the request's last byte written to the response's first
/// byte received, for an HTTP/1 response read through a [`TimedConnector`].
pub fn time_to_first_byte<B>(response: &http::Response<B>) -> Option<Duration> {
    if response.version() >= http::Version::HTTP_2 {
        return None;
    }
    let (wrote, read) = match &response.extensions().get::<ResponseClock>()?.0 {
        Stamp::Taken(wrote, read) => (*wrote, *read),
        Stamp::Live(clock) => (
            clock.last_write.load(Ordering::Acquire),
            clock.first_byte.load(Ordering::Acquire),
        ),
    };
    // A clock step between the two leaves nothing to trust.
    (wrote != 0 && read >= wrote).then(|| Duration::from_nanos(read - wrote))
}

/// hyper-util's connector, with each TCP connection timed.
#[derive(Clone, Debug)]
pub struct TimedConnector(pub HttpConnector);

impl tower_service::Service<http::Uri> for TimedConnector {
    type Response = TokioIo<Timed>;
    type Error = <HttpConnector as tower_service::Service<http::Uri>>::Error;
    type Future =
        Pin<Box<dyn Future<Output = Result<TokioIo<Timed>, Self::Error>> + Send + 'static>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let connecting = self.0.call(uri);
        Box::pin(async move {
            let stream = connecting.await?.into_inner();
            // Without receive timestamps the first read's own time stands
            // in: still the time the response was read, as before.
            let stamped = nix::sys::socket::setsockopt(
                &stream,
                nix::sys::socket::sockopt::ReceiveTimestampns,
                &true,
            )
            .is_ok();
            Ok(TokioIo::new(Timed {
                stream,
                clock: Arc::default(),
                stamped,
            }))
        })
    }
}

/// A TCP connection that keeps its [`Clock`].
#[derive(Debug)]
pub struct Timed {
    stream: TcpStream,
    clock: Arc<Clock>,
    stamped: bool,
}

impl Connection for Timed {
    fn connected(&self) -> Connected {
        self.stream
            .connected()
            .extra(ResponseClock(Stamp::Live(Arc::clone(&self.clock))))
    }
}

/// A control message buffer aligned for `cmsghdr`, large enough for one
/// timestamp.
#[repr(C, align(8))]
struct ControlBuffer([u8; 64]);

/// One `recvmsg` of up to `into.len()` bytes, with its receive timestamp.
fn receive_stamped(fd: i32, into: &mut [u8]) -> io::Result<(usize, Option<u64>)> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    let mut control = ControlBuffer([0; 64]);
    let mut iov = [io::IoSliceMut::new(into)];
    let message = recvmsg::<()>(fd, &mut iov, Some(&mut control.0), MsgFlags::empty())
        .map_err(io::Error::from)?;
    let stamp = message.cmsgs().ok().and_then(|mut c| {
        c.find_map(|m| match m {
            ControlMessageOwned::ScmTimestampns(ts) => Some(
                (ts.tv_sec() as u64)
                    .saturating_mul(1_000_000_000)
                    .saturating_add(ts.tv_nsec() as u64),
            ),
            _ => None,
        })
    });
    Ok((message.bytes, stamp))
}

impl Timed {
    /// The first read after a write: one byte, so that the timestamp is the
    /// first segment's (for TCP the kernel reports the last segment a read
    /// touched, and by the time a busy proxy reads, later ones may be in).
    fn poll_first_read(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let fd = self.stream.as_raw_fd();
        loop {
            ready!(self.stream.poll_read_ready(cx))?;
            let into = &mut buf.initialize_unfilled_to(1)[..1];
            match self
                .stream
                .try_io(Interest::READABLE, || receive_stamped(fd, into))
            {
                Ok((n, stamp)) => {
                    if n > 0 {
                        let at = stamp.unwrap_or_else(|| nanos(SystemTime::now()));
                        self.clock.first_byte.store(at, Ordering::Release);
                        self.clock.awaiting.store(false, Ordering::Release);
                    }
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    fn wrote(&self, n: usize) {
        if n > 0 {
            self.clock
                .last_write
                .store(nanos(SystemTime::now()), Ordering::Release);
            self.clock.awaiting.store(true, Ordering::Release);
        }
    }
}

impl AsyncRead for Timed {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if buf.remaining() == 0 || !this.clock.awaiting.load(Ordering::Acquire) {
            return Pin::new(&mut this.stream).poll_read(cx, buf);
        }
        if !this.stamped {
            let before = buf.filled().len();
            ready!(Pin::new(&mut this.stream).poll_read(cx, buf))?;
            if buf.filled().len() > before {
                this.clock
                    .first_byte
                    .store(nanos(SystemTime::now()), Ordering::Release);
                this.clock.awaiting.store(false, Ordering::Release);
            }
            return Poll::Ready(Ok(()));
        }
        this.poll_first_read(cx, buf)
    }
}

impl AsyncWrite for Timed {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let n = ready!(Pin::new(&mut this.stream).poll_write(cx, buf))?;
        this.wrote(n);
        Poll::Ready(Ok(n))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let n = ready!(Pin::new(&mut this.stream).poll_write_vectored(cx, bufs))?;
        this.wrote(n);
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}
