//! Reading a request body into one `Bytes`: bounded in size and time, copied at most once.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use bytes::{Bytes, BytesMut};
use http_body::Body;
use hyper::body::Incoming;
use tokio::time::{Instant, Sleep};

/// Why a body could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// Declared or actual length over the route's limit.
    #[error("body over the limit")]
    TooLarge,
    /// The whole body did not arrive before the deadline.
    #[error("body did not arrive in time")]
    Timeout,
    /// The client stopped sending mid-body (reset, malformed chunking).
    #[error("body incomplete")]
    Incomplete,
}

/// Reads `body` completely, stopping as soon as it exceeds `limit` bytes or `deadline` passes.
///
/// A body that arrives as one frame is returned as that frame, without a copy. Otherwise one
/// buffer is allocated, sized from `declared` (the Content-Length, already checked against
/// `limit`) so that a large body is not reallocated while it grows.
///
/// # Errors
/// See [`BodyError`].
pub async fn read_limited(
    mut body: Incoming,
    declared: Option<u64>,
    limit: u64,
    deadline: Instant,
) -> Result<Bytes, BodyError> {
    let mut first: Option<Bytes> = None;
    let mut buf: Option<BytesMut> = None;
    let mut total: u64 = 0;
    // One timer for the whole body, armed only if a frame is not ready at once (a small body
    // usually arrives with its head and is read without touching the timer wheel).
    let mut timer: Option<Pin<Box<Sleep>>> = None;
    loop {
        let next = std::future::poll_fn(|cx| {
            if let Poll::Ready(f) = Pin::new(&mut body).poll_frame(cx) {
                return Poll::Ready(Some(f));
            }
            let t = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
            t.as_mut().poll(cx).map(|()| None)
        })
        .await;
        let frame = match next {
            None => return Err(BodyError::Timeout),
            Some(None) => break,
            Some(Some(Err(_))) => return Err(BodyError::Incomplete),
            Some(Some(Ok(frame))) => frame,
        };
        // Trailers (HTTP/2, chunked) are not part of any signature; they are dropped.
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if data.is_empty() {
            continue;
        }
        total += data.len() as u64;
        if total > limit {
            return Err(BodyError::TooLarge);
        }
        match (&mut first, &mut buf) {
            (None, None) => first = Some(data),
            (Some(f), None) => {
                let want = declared.unwrap_or(0).max(total).min(limit);
                let mut b = BytesMut::with_capacity(usize::try_from(want).unwrap_or(usize::MAX));
                b.extend_from_slice(f);
                b.extend_from_slice(&data);
                first = None;
                buf = Some(b);
            }
            (_, Some(b)) => b.extend_from_slice(&data),
        }
    }
    Ok(match (first, buf) {
        (_, Some(b)) => b.freeze(),
        (Some(f), None) => f,
        (None, None) => Bytes::new(),
    })
}
