//! A request body with a read deadline: once it has passed, the next read
//! fails with [`BodyDeadlineExceeded`] instead of waiting for the client.
//!
//! ```text
//!  header section read ─▶ DeadlineBody::new (deadline = now + timeout)
//!  handler reads ─▶ deadline passed? ─▶ yes: Err(BodyDeadlineExceeded)
//!                                   └─▶ no:  the next frame, when it comes
//! ```
//!
//! The deadline bounds the whole body, not the gap between two frames, so a
//! client sending a byte every few seconds is cut off as surely as a silent
//! one. Readers recognise the error with [`is_body_deadline`] (it arrives
//! wrapped in axum's and http-body-util's error types) and answer 408
//! `request_timeout`. A body nobody reads costs nothing: the deadline is a
//! timer polled only while reading.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::BoxError;
use axum::body::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::Sleep;

/// The body of a request was not read completely before its deadline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BodyDeadlineExceeded {
    /// The deadline, counted from the end of the header section.
    pub timeout: Duration,
}

impl fmt::Display for BodyDeadlineExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the request body did not arrive within {} ms",
            self.timeout.as_millis()
        )
    }
}

impl StdError for BodyDeadlineExceeded {}

/// `inner`, failing with [`BodyDeadlineExceeded`] once `timeout` has passed
/// since it was wrapped.
pub struct DeadlineBody<B> {
    inner: B,
    deadline: Pin<Box<Sleep>>,
    timeout: Duration,
}

impl<B> DeadlineBody<B> {
    /// Wraps `inner`; the deadline starts now.
    pub fn new(inner: B, timeout: Duration) -> Self {
        DeadlineBody {
            inner,
            deadline: Box::pin(tokio::time::sleep(timeout)),
            timeout,
        }
    }
}

impl<B> Body for DeadlineBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        // The deadline first: a client that always has one more byte ready
        // must not outlast it either.
        if this.deadline.as_mut().poll(cx).is_ready() {
            let timeout = this.timeout;
            return Poll::Ready(Some(Err(Box::new(BodyDeadlineExceeded { timeout }))));
        }
        Pin::new(&mut this.inner)
            .poll_frame(cx)
            .map(|frame| frame.map(|result| result.map_err(Into::into)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Whether `error`, or any error in its source chain, is a
/// [`BodyDeadlineExceeded`].
pub fn is_body_deadline(error: &(dyn StdError + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(error) = next {
        if error.is::<BodyDeadlineExceeded>() {
            return true;
        }
        next = error.source();
    }
    false
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use axum::body::to_bytes;
    use futures::{StreamExt, stream};

    /// A body of one chunk, then silence.
    fn stalled() -> axum::body::Body {
        let first = stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(b"{"))]);
        axum::body::Body::from_stream(first.chain(stream::pending()))
    }

    #[tokio::test]
    async fn a_stalled_body_fails_at_the_deadline() {
        let started = std::time::Instant::now();
        let body = axum::body::Body::new(DeadlineBody::new(stalled(), Duration::from_millis(200)));
        let error = to_bytes(body, 1024).await.unwrap_err();
        assert!(is_body_deadline(&error), "{error}");
        assert!(error.to_string().contains("200 ms"), "{error}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn a_complete_body_is_read() {
        let body = axum::body::Body::new(DeadlineBody::new(
            axum::body::Body::from("{}"),
            Duration::from_secs(5),
        ));
        assert_eq!(to_bytes(body, 1024).await.unwrap(), "{}");
    }

    #[test]
    fn other_errors_are_not_deadlines() {
        let error = axum::Error::new(std::io::Error::other("reset"));
        assert!(!is_body_deadline(&error));
        let nested = axum::Error::new(axum::Error::new(BodyDeadlineExceeded {
            timeout: Duration::from_secs(1),
        }));
        assert!(is_body_deadline(&nested));
    }
}
