//! A body stream that passes every chunk on untouched while keeping a copy,
//! up to a size limit, for the comparison.
//!
//! Chunks are kept as shared `Bytes` (no copy on the client's path) and joined
//! later in the background. The tee reports exactly once: when the stream
//! ends, fails, or is dropped unfinished (the client went away).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;

/// Why no complete copy of a body was kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TeeError {
    /// The body was larger than the limit.
    TooLarge,
    /// The stream failed or was dropped before its end.
    Incomplete,
}

/// Receives the copy: the chunks of a whole body, or why there are none.
pub type TeeReport = Box<dyn FnOnce(Result<Vec<Bytes>, TeeError>) + Send>;

pub struct Tee<S> {
    inner: Pin<Box<S>>,
    chunks: Vec<Bytes>,
    len: usize,
    limit: usize,
    overflowed: bool,
    report: Option<TeeReport>,
}

impl<S> Tee<S> {
    pub fn new(inner: S, limit: usize, report: TeeReport) -> Self {
        Tee {
            inner: Box::pin(inner),
            chunks: Vec::new(),
            len: 0,
            limit,
            overflowed: false,
            report: Some(report),
        }
    }

    fn finish(&mut self, result: Result<(), TeeError>) {
        if let Some(report) = self.report.take() {
            let result = match result {
                Ok(()) if self.overflowed => Err(TeeError::TooLarge),
                Ok(()) => Ok(std::mem::take(&mut self.chunks)),
                Err(e) => Err(e),
            };
            report(result);
        }
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
            Poll::Ready(Some(Ok(chunk))) if this.report.is_some() && !this.overflowed => {
                this.len += chunk.len();
                if this.len > this.limit {
                    // Keep counting nothing more; free what was kept at once.
                    this.overflowed = true;
                    this.chunks = Vec::new();
                } else {
                    this.chunks.push(chunk.clone());
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

    fn tee(
        chunks: Vec<&'static str>,
        limit: usize,
    ) -> (Tee<impl Stream<Item = Result<Bytes, ()>>>, Seen) {
        let seen: Seen = Arc::default();
        let sink = seen.clone();
        let stream = futures_util::stream::iter(chunks.into_iter().map(|c| Ok(Bytes::from(c))));
        let tee = Tee::new(
            stream,
            limit,
            Box::new(move |r| sink.lock().unwrap().push(r)),
        );
        (tee, seen)
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
}
