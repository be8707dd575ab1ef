//! Reading a request body: bounded in size and time, kept as the frames it arrived in where
//! that is safe, and sent on as those frames.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use prometheus::IntGauge;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
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
    /// The body does not fit in what is left of the [`BodyBudget`].
    #[error("buffered body budget exhausted")]
    Overloaded,
}

/// The bytes all request bodies together may hold while they are buffered
/// (`limits.max_buffered_bytes`): a body reserves its bytes before it holds them, and gives
/// them back when its [`RawBody`] is dropped (sent on, refused, or its client gone). A body
/// that does not fit is refused at once, never queued: queueing would hold its connection
/// and could not make memory appear, while a sender told 503 retries later.
#[derive(Debug, Clone)]
pub struct BodyBudget {
    permits: Arc<Semaphore>,
    gauge: IntGauge,
}

impl BodyBudget {
    /// A budget of `bytes` (at most 1 GiB, as config sizes are), shown in `gauge`.
    pub fn new(bytes: u64, gauge: IntGauge) -> BodyBudget {
        let bytes = usize::try_from(bytes)
            .unwrap_or(usize::MAX)
            .min(Semaphore::MAX_PERMITS);
        BodyBudget {
            permits: Arc::new(Semaphore::new(bytes)),
            gauge,
        }
    }

    /// Bytes not reserved right now.
    pub fn available(&self) -> u64 {
        self.permits.available_permits() as u64
    }

    /// Reads `body` completely, stopping as soon as it exceeds `limit` bytes or `deadline`
    /// passes, or the bytes it holds do not fit in this budget ([`BodyError::Overloaded`]): a
    /// declared length is reserved before the first byte is read, a body without one reserves
    /// as its frames arrive.
    ///
    /// When the length was declared (`declared`, the Content-Length, already checked against
    /// `limit`), frames of [`KEEP_FRAME`] bytes or more are kept as they are: the body is
    /// never copied as a whole, and what it holds of hyper's read buffers is the body itself.
    /// Smaller frames, and every frame of a body without a declared length (chunked: its
    /// frames may sit in buffers mostly made of chunk framing), are copied into buffers of our
    /// own.
    ///
    /// # Errors
    /// See [`BodyError`].
    pub async fn read(
        &self,
        mut body: Incoming,
        declared: Option<u64>,
        limit: u64,
        deadline: Instant,
    ) -> Result<RawBody, BodyError> {
        let budget = self;
        let mut reserved = Reservation::default();
        if !reserved.cover(budget, declared.unwrap_or(0)) {
            return Err(BodyError::Overloaded);
        }
        // Bytes held: kept frames, plus the capacity of the buffers small frames are copied into.
        let mut held: u64 = 0;
        let mut pieces: Vec<Bytes> = Vec::new();
        // Small frames, copied together until the next kept frame (or the end).
        let mut small: Option<BytesMut> = None;
        // Of `small`'s capacity, what `held` counts already.
        let mut small_counted: usize = 0;
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
            let keep = declared.is_some() && data.len() >= KEEP_FRAME;
            if keep || (pieces.is_empty() && small.is_none() && Some(total) == declared) {
                // Kept whole; so is a body that arrives as one frame, however small.
                if let Some(s) = small.take() {
                    pieces.push(s.freeze());
                    small_counted = 0;
                }
                held += data.len() as u64;
                if !reserved.cover(budget, held) {
                    return Err(BodyError::Overloaded);
                }
                pieces.push(data);
                continue;
            }
            let s = small.get_or_insert_with(|| {
                // Room for this frame and a few more like it, never more than the rest of the
                // declared body: kept frames may follow, and a buffer frozen half empty would
                // hold its capacity as long as the body lives. It grows as needed.
                let rest =
                    declared.map_or(u64::MAX, |d| d.saturating_sub(total - data.len() as u64));
                let want = (data.len() as u64).max(KEEP_FRAME as u64).min(rest);
                BytesMut::with_capacity(usize::try_from(want).unwrap_or(usize::MAX))
            });
            s.extend_from_slice(&data);
            // The buffer's whole capacity is held, counted as it is made and as it grows.
            held += s.capacity().saturating_sub(small_counted) as u64;
            small_counted = s.capacity();
            if !reserved.cover(budget, held) {
                return Err(BodyError::Overloaded);
            }
        }
        if let Some(s) = small {
            pieces.push(s.freeze());
        }
        Ok(RawBody {
            pieces,
            sent: 0,
            len: total,
            _reserved: reserved,
        })
    }
}

/// Bytes reserved from a [`BodyBudget`]; given back when dropped.
#[derive(Debug, Default)]
pub struct Reservation {
    permit: Option<OwnedSemaphorePermit>,
    gauge: Option<IntGauge>,
}

impl Reservation {
    /// Bytes held.
    pub fn bytes(&self) -> u64 {
        self.permit.as_ref().map_or(0, |p| p.num_permits() as u64)
    }

    /// Makes the reservation at least `bytes`; false (and unchanged) if the budget has not
    /// that much left.
    fn cover(&mut self, budget: &BodyBudget, bytes: u64) -> bool {
        let more = bytes.saturating_sub(self.bytes());
        if more == 0 {
            return true;
        }
        let Ok(n) = u32::try_from(more) else {
            return false;
        };
        let Ok(p) = Arc::clone(&budget.permits).try_acquire_many_owned(n) else {
            return false;
        };
        budget.gauge.add(i64::from(n));
        self.gauge.get_or_insert_with(|| budget.gauge.clone());
        match &mut self.permit {
            Some(held) => held.merge(p),
            None => self.permit = Some(p),
        }
        true
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Some(g) = &self.gauge {
            g.sub(i64::try_from(self.bytes()).unwrap_or(i64::MAX));
        }
    }
}

/// A frame at least this large is kept as it is (no copy) when the body's length was declared.
/// Smaller ones are copied together: a client trickling a body byte by byte must not make us
/// hold a million tiny frames.
pub const KEEP_FRAME: usize = 16 * 1024;

/// A whole request body, in order: the exact bytes received, as one or more pieces.
#[derive(Debug, Default)]
pub struct RawBody {
    pieces: Vec<Bytes>,
    /// Pieces already handed on as frames (see the [`Body`] impl).
    sent: usize,
    len: u64,
    /// What the pieces hold of the [`BodyBudget`], given back with the body.
    _reserved: Reservation,
}

impl RawBody {
    /// A body of `bytes` held outside the [`BodyBudget`] (a spooled request being delivered).
    pub fn from_bytes(bytes: Bytes) -> RawBody {
        RawBody {
            len: bytes.len() as u64,
            pieces: if bytes.is_empty() {
                Vec::new()
            } else {
                vec![bytes]
            },
            sent: 0,
            _reserved: Reservation::default(),
        }
    }

    /// Its length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether it has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The pieces not yet sent on: their concatenation is the body.
    pub fn pieces(&self) -> &[Bytes] {
        &self.pieces[self.sent..]
    }

    /// The body as the verifier reads it.
    pub fn as_verify(&self) -> crate::verify::Body<'_> {
        crate::verify::Body::chunked(self.pieces())
    }
}

/// Sent on as the same pieces, with an exact length (a `Content-Length` for the next hop).
impl Body for RawBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        let Some(piece) = this.pieces.get_mut(this.sent) else {
            return Poll::Ready(None);
        };
        let piece = std::mem::take(piece);
        this.sent += 1;
        this.len -= piece.len() as u64;
        Poll::Ready(Some(Ok(Frame::data(piece))))
    }

    fn is_end_stream(&self) -> bool {
        self.len == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_grow_within_the_budget_and_come_back_when_dropped() {
        let gauge = IntGauge::new("t", "t").unwrap();
        let budget = BodyBudget::new(100, gauge.clone());
        let mut a = Reservation::default();
        assert!(a.cover(&budget, 60));
        assert!(a.cover(&budget, 40), "already covered");
        let mut b = Reservation::default();
        assert!(!b.cover(&budget, 41), "over what is left");
        assert_eq!(b.bytes(), 0, "a refused reservation takes nothing");
        assert!(b.cover(&budget, 40));
        assert!(!a.cover(&budget, 61));
        assert_eq!((a.bytes(), budget.available(), gauge.get()), (60, 0, 100));
        drop(a);
        assert_eq!((budget.available(), gauge.get()), (60, 40));
        drop(b);
        assert_eq!((budget.available(), gauge.get()), (100, 0));
    }
}
