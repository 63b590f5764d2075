//! A deadline for reading a request body: a client that sends its body a byte at a time
//! (slowloris) must not hold a request open for longer than `SEISMO_HTTP_BODY_TIMEOUT_SECONDS`.
//!
//! Every request body is wrapped in a `Deadline` as it comes off the connection. Reading it
//! works as before until the deadline passes; then the read fails with `BodyTimeout`, which
//! the extractors turn into a 408. The deadline is for the whole body, not per chunk: a chunk
//! every few seconds would keep a per-chunk timer from ever firing.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::Sleep;

/// The body was not complete when its deadline passed.
#[derive(Debug, thiserror::Error)]
#[error("the request body was not complete within {0} s")]
pub struct BodyTimeout(pub u64);

/// A body that fails with `BodyTimeout` once `timeout` has passed since it was wrapped.
pub struct Deadline<B> {
    inner: B,
    sleep: Pin<Box<Sleep>>,
    timeout: Duration,
}

impl<B> Deadline<B> {
    pub fn new(inner: B, timeout: Duration) -> Self {
        Deadline {
            inner,
            sleep: Box::pin(tokio::time::sleep(timeout)),
            timeout,
        }
    }
}

impl<B> Body for Deadline<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<axum::BoxError>,
{
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        // Data already there is taken first: a body that arrived in time is never failed.
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|frame| frame.map_err(Into::into)));
        }
        match this.sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(BodyTimeout(this.timeout.as_secs()).into()))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Whether `error` (or one of its causes) is a `BodyTimeout`.
pub fn is_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(error) = cause {
        if error.is::<BodyTimeout>() {
            return true;
        }
        cause = error.source();
    }
    false
}
