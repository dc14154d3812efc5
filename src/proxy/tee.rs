//! A body stream that passes every chunk on untouched while keeping a copy,
//! up to a size limit and within the memory budget, for the comparison.
//!
//! Large chunks are kept as shared `Bytes` (no copy on the client's path) and
//! joined later in the background. Small ones are copied into a buffer of the
//! tee's own: kept as they came, each would pin the larger read buffer it was
//! cut from for as long as the copy waits in the shadow queue. The tee reports exactly once: when the stream
//! ends or reaches its declared length (hyper stops polling a body once it
//! has sent Content-Length bytes), fails, or is dropped unfinished (the
//! client went away).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures_util::Stream;

use crate::budget::{Claim, Copied};

/// Why no complete copy of a body was kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TeeError {
    /// The body was larger than the limit.
    TooLarge,
    /// The memory budget for copies was used up.
    OverBudget,
    /// The stream failed or was dropped before its end.
    Incomplete,
}

/// Receives the copy, or why there is none.
pub type TeeReport = Box<dyn FnOnce(Result<Copied, TeeError>) + Send>;

/// Chunks shorter than this are copied (see the module's note).
const COPY_BELOW: usize = 64 * 1024;

pub struct Tee<S> {
    inner: Pin<Box<S>>,
    chunks: Vec<Bytes>,
    /// Small chunks copied since the last large one.
    small: BytesMut,
    len: usize,
    /// The body's exact length, when known in advance.
    expected: Option<u64>,
    limit: usize,
    /// Why copying stopped early, if it did.
    overflow: Option<TeeError>,
    claim: Option<Claim>,
    report: Option<TeeReport>,
}

impl<S> Tee<S> {
    /// `expected` is the exact length if known (a body's `size_hint().exact()`).
    pub fn new(
        inner: S,
        expected: Option<u64>,
        limit: usize,
        claim: Claim,
        report: TeeReport,
    ) -> Self {
        let mut tee = Tee {
            inner: Box::pin(inner),
            chunks: Vec::new(),
            small: BytesMut::new(),
            len: 0,
            expected,
            limit,
            overflow: None,
            claim: Some(claim),
            report: Some(report),
        };
        if expected == Some(0) {
            tee.finish(Ok(()));
        }
        tee
    }

    fn finish(&mut self, result: Result<(), TeeError>) {
        if let Some(report) = self.report.take() {
            let result = match result {
                Ok(()) => match (self.overflow, self.claim.take()) {
                    (None, Some(claim)) => {
                        self.keep_small();
                        Ok(Copied {
                            chunks: std::mem::take(&mut self.chunks),
                            claim,
                        })
                    }
                    (overflow, _) => Err(overflow.unwrap_or(TeeError::Incomplete)),
                },
                Err(e) => Err(e),
            };
            report(result);
        }
    }

    /// Moves the small chunks copied so far into the kept chunks, in order.
    fn keep_small(&mut self) {
        if !self.small.is_empty() {
            let small = std::mem::take(&mut self.small);
            // Grown by doubling, the buffer may be up to twice what it
            // holds: kept, its spare room would be held unaccounted.
            let kept = match small.capacity() > small.len() + small.len() / 4 {
                true => Bytes::copy_from_slice(&small),
                false => small.freeze(),
            };
            self.chunks.push(kept);
        }
    }

    fn keep(&mut self, chunk: &Bytes) {
        if chunk.len() >= COPY_BELOW {
            self.keep_small();
            self.chunks.push(chunk.clone());
            return;
        }
        if self.small.capacity() == 0 {
            // A small declared body in one allocation; a larger one grows
            // with what arrives, never reserved ahead of the bytes counted.
            let declared = self
                .expected
                .map_or(0, |n| n.min(COPY_BELOW as u64) as usize);
            self.small.reserve(declared.max(chunk.len()));
        }
        self.small.extend_from_slice(chunk);
    }
}

impl<S, E> Stream for Tee<S>
where
    S: Stream<Item = Result<Bytes, E>>,
{
    type Item = Result<Bytes, E>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let polled = this.inner.as_mut().poll_next(cx);
        match &polled {
            Poll::Ready(Some(Ok(chunk))) if this.report.is_some() && this.overflow.is_none() => {
                this.len += chunk.len();
                let fits = this.claim.as_mut().is_some_and(|c| c.grow(chunk.len()));
                if this.len > this.limit || !fits {
                    this.overflow = Some(if this.len > this.limit {
                        TeeError::TooLarge
                    } else {
                        TeeError::OverBudget
                    });
                    // Free the copy and report at once, so no shadow slot
                    // waits for a long stream's end.
                    this.chunks = Vec::new();
                    this.small = BytesMut::new();
                    this.claim = None;
                    this.finish(Ok(()));
                } else {
                    this.keep(chunk);
                }
                if this.expected.is_some_and(|n| this.len as u64 >= n) {
                    this.finish(Ok(()));
                }
            }
            Poll::Ready(Some(Err(_))) => this.finish(Err(TeeError::Incomplete)),
            Poll::Ready(None) => this.finish(Ok(())),
            _ => {}
        }
        polled
    }
}

impl<S> Drop for Tee<S> {
    fn drop(&mut self) {
        self.finish(Err(TeeError::Incomplete));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;
    use std::sync::{Arc, Mutex};

    type Seen = Arc<Mutex<Vec<Result<Vec<Bytes>, TeeError>>>>;

    fn budget() -> crate::budget::BodyBudget {
        crate::budget::BodyBudget::new(1 << 20)
    }

    type TestTee = Tee<futures_util::stream::Iter<std::vec::IntoIter<Result<Bytes, ()>>>>;

    fn tee(chunks: Vec<&'static str>, limit: usize) -> (TestTee, Seen) {
        tee_of_length(chunks, None, limit)
    }

    fn tee_of_length(
        chunks: Vec<&'static str>,
        expected: Option<u64>,
        limit: usize,
    ) -> (TestTee, Seen) {
        let seen: Seen = Arc::default();
        let sink = seen.clone();
        let items: Vec<Result<Bytes, ()>> =
            chunks.into_iter().map(|c| Ok(Bytes::from(c))).collect();
        let report = Box::new(move |r: Result<Copied, TeeError>| {
            sink.lock().unwrap().push(r.map(|c| c.chunks))
        });
        (
            Tee::new(
                futures_util::stream::iter(items),
                expected,
                limit,
                budget().claim(),
                report,
            ),
            seen,
        )
    }

    /// Small chunks are copied into one buffer (not kept pinning the read
    /// buffers they were cut from); large ones are kept as they are; the
    /// order holds.
    #[tokio::test]
    async fn small_chunks_are_copied_together_and_large_ones_kept() {
        let large: &'static str = "L".repeat(COPY_BELOW).leak();
        let (tee, seen) = tee(vec!["ab", "cd", large, "ef"], 1 << 20);
        let passed: Vec<_> = tee.collect().await;
        assert_eq!(passed.len(), 4);
        let seen = seen.lock().unwrap();
        let copy = seen[0].as_ref().unwrap();
        assert_eq!(copy.len(), 3, "ab+cd, the large chunk, ef");
        assert_eq!(
            (&copy[0][..], copy[1].len(), &copy[2][..]),
            (&b"abcd"[..], COPY_BELOW, &b"ef"[..])
        );
    }

    #[tokio::test]
    async fn passes_everything_and_reports_once() {
        let (tee, seen) = tee(vec!["ab", "cd"], 10);
        let out: Vec<_> = tee.collect().await;
        assert_eq!(out, vec![Ok(Bytes::from("ab")), Ok(Bytes::from("cd"))]);
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].as_ref().unwrap().concat(), b"abcd");
    }

    #[tokio::test]
    async fn over_the_limit_still_passes_but_reports_too_large() {
        let (tee, seen) = tee(vec!["abc", "def"], 4);
        assert_eq!(tee.collect::<Vec<_>>().await.len(), 2);
        assert_eq!(seen.lock().unwrap().as_slice(), &[Err(TeeError::TooLarge)]);
    }

    #[tokio::test]
    async fn dropped_early_reports_incomplete() {
        let (mut tee, seen) = tee(vec!["ab", "cd"], 10);
        assert!(tee.next().await.is_some());
        drop(tee);
        assert_eq!(
            seen.lock().unwrap().as_slice(),
            &[Err(TeeError::Incomplete)]
        );
    }

    #[tokio::test]
    async fn a_body_of_declared_length_is_whole_without_its_end() {
        let (mut tee, seen) = tee_of_length(vec!["ab", "cd"], Some(4), 10);
        tee.next().await;
        tee.next().await;
        drop(tee);
        assert_eq!(seen.lock().unwrap()[0].as_ref().unwrap().concat(), b"abcd");
        let (tee, seen) = tee_of_length(vec![], Some(0), 10);
        drop(tee);
        assert_eq!(seen.lock().unwrap()[0].as_ref().unwrap().len(), 0);
    }

    #[tokio::test]
    async fn a_used_up_budget_stops_the_copy_not_the_stream() {
        let budget = crate::budget::BodyBudget::new(3);
        let seen: Seen = Arc::default();
        let sink = seen.clone();
        let items: Vec<Result<Bytes, ()>> = vec![Ok(Bytes::from("ab")), Ok(Bytes::from("cd"))];
        let report = Box::new(move |r: Result<Copied, TeeError>| {
            sink.lock().unwrap().push(r.map(|c| c.chunks))
        });
        let tee = Tee::new(
            futures_util::stream::iter(items),
            None,
            100,
            budget.claim(),
            report,
        );
        assert_eq!(tee.collect::<Vec<_>>().await.len(), 2);
        assert_eq!(
            seen.lock().unwrap().as_slice(),
            &[Err(TeeError::OverBudget)]
        );
        assert_eq!(
            budget.remaining(),
            3,
            "the partial copy's bytes are given back"
        );
    }
}
