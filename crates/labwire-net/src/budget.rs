//! One memory budget for the frames in flight of all the connections of a server.
//!
//! A client that announces a maximum-size frame and stalls before its last byte makes the
//! server hold that frame's buffer until the request deadline; many such clients used to hold
//! gigabytes. Every connection may hold [`FREE_BYTES`] of read buffer without asking (so small
//! requests, the common case, never touch the budget); a buffer that must grow past that first
//! takes the bytes it grows by from the server's [`FrameBudget`]. When the budget is spent, the
//! connection stops reading (TCP pushes back on its client) and waits for bytes to be returned,
//! at most until its request's deadline, which then closes it
//! ([`ConnectionEnd::ReadTimeout`]); a frame larger than the whole budget is refused at once
//! ([`ConnectionEnd::OverBudget`]). The process never holds more than the budget plus
//! [`FREE_BYTES`] per connection in partial requests.
//!
//! The codec decides how long a frame is. A protocol whose header says so gives the budget a
//! [`ClaimedLength`] (ARKEO: a `u32` length prefix; COMET: a `u16` header and a content
//! length): a frame's whole buffer is then taken from the budget and allocated once, exactly,
//! when its header arrives — no doubling, and no buffer larger than its frame. Without one, a
//! buffer grows by doubling, each step taken from the budget before it is allocated.
//!
//! A buffer larger than [`FREE_BYTES`] is released once its request is decoded, and its bytes
//! go back to the budget: a kept-alive connection does not keep a large frame's memory.

use std::sync::Arc;

use bytes::BytesMut;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::service::ConnectionEnd;

/// Bytes a [`FrameBudget`] holds when none is configured: 64 MiB.
pub const DEFAULT_FRAME_BUDGET: usize = 64 * 1024 * 1024;

/// Read buffer a connection may hold without taking from its server's budget: 64 KiB.
pub const FREE_BYTES: usize = 64 * 1024;

/// Bytes asked of the socket per read once a request has begun.
pub(crate) const READ_CHUNK: usize = 4096;

/// How long the frame at the start of `buf` is, header included, once its header has arrived
/// (`None` until then, or when the header is invalid: the codec reports that). Sans-IO and
/// cheap: it looks at a header, nothing more.
pub type ClaimedLength = fn(&[u8]) -> Option<usize>;

/// The bytes of frames in flight a server may hold beyond [`FREE_BYTES`] per connection,
/// shared by all its connections (clones share it). See the [module docs](self).
#[derive(Debug, Clone)]
pub struct FrameBudget {
    /// `None`: no limit.
    bytes: Option<Arc<Semaphore>>,
    total: usize,
    claimed_length: Option<ClaimedLength>,
}

/// What a connection holds of its server's budget.
pub(crate) type Held = Option<OwnedSemaphorePermit>;

impl FrameBudget {
    /// A budget of `total` bytes (at most [`Semaphore::MAX_PERMITS`]).
    pub fn new(total: usize) -> Self {
        let total = total.min(Semaphore::MAX_PERMITS);
        Self {
            bytes: Some(Arc::new(Semaphore::new(total))),
            total,
            claimed_length: None,
        }
    }

    /// No limit (a connection served on its own, [`crate::service::serve_connection`]): buffers
    /// are still grown exactly to a claimed frame length.
    pub fn unlimited() -> Self {
        Self {
            bytes: None,
            total: usize::MAX,
            claimed_length: None,
        }
    }

    /// Reads a frame's length from its header (see [`ClaimedLength`]).
    #[must_use]
    pub fn with_claimed_length(mut self, claimed_length: ClaimedLength) -> Self {
        self.claimed_length = Some(claimed_length);
        self
    }

    /// The budget's size in bytes (`usize::MAX`: unlimited).
    pub fn total(&self) -> usize {
        self.total
    }

    /// Bytes not taken right now.
    pub fn available(&self) -> usize {
        self.bytes
            .as_ref()
            .map_or(usize::MAX, |bytes| bytes.available_permits())
    }

    /// Makes room in `buf` for the next read of a request, taking what it grows by from the
    /// budget first (waiting, at most until `deadline`, for bytes to be returned).
    pub(crate) async fn make_room(
        &self,
        buf: &mut BytesMut,
        held: &mut Held,
        deadline: Instant,
        read_timeout: std::time::Duration,
    ) -> Result<(), ConnectionEnd> {
        let len = buf.len();
        let capacity = buf.capacity();
        let paid = capacity <= FREE_BYTES + holding(held);
        // The common case, and the hot path: room for a read, all of it paid for.
        if paid && capacity - len >= READ_CHUNK {
            return Ok(());
        }
        let claimed = self
            .claimed_length
            .and_then(|claimed| claimed(buf))
            .filter(|&total| total > len);
        let target = claimed.unwrap_or(len + READ_CHUNK);
        if paid && capacity >= target {
            return Ok(());
        }
        if capacity.max(target) <= FREE_BYTES {
            buf.reserve(target - len);
            return Ok(());
        }
        // A claimed frame gets exactly its length; an unknown one grows by doubling.
        let grown = if capacity >= target {
            capacity
        } else if claimed.is_some() {
            target
        } else {
            target.max(capacity.saturating_mul(2))
        };
        self.take(
            grown.saturating_sub(FREE_BYTES),
            held,
            deadline,
            read_timeout,
        )
        .await?;
        if grown > capacity {
            let mut bigger = BytesMut::with_capacity(grown);
            bigger.extend_from_slice(buf);
            *buf = bigger;
        }
        Ok(())
    }

    /// Holds `charge` bytes of the budget in all (more if already held).
    async fn take(
        &self,
        charge: usize,
        held: &mut Held,
        deadline: Instant,
        read_timeout: std::time::Duration,
    ) -> Result<(), ConnectionEnd> {
        let Some(bytes) = &self.bytes else {
            return Ok(());
        };
        let more = charge.saturating_sub(holding(held));
        if more == 0 {
            return Ok(());
        }
        if charge > self.total {
            return Err(ConnectionEnd::OverBudget {
                needed: charge,
                budget: self.total,
            });
        }
        let Ok(more) = u32::try_from(more) else {
            return Err(ConnectionEnd::OverBudget {
                needed: charge,
                budget: self.total,
            });
        };
        let permit = match bytes.clone().try_acquire_many_owned(more) {
            Ok(permit) => permit,
            Err(_) => {
                tracing::debug!(
                    bytes = more,
                    available = bytes.available_permits(),
                    "frame budget spent: waiting"
                );
                match tokio::time::timeout_at(deadline, bytes.clone().acquire_many_owned(more))
                    .await
                {
                    Ok(Ok(permit)) => permit,
                    // The semaphore is never closed.
                    Ok(Err(_)) | Err(_) => return Err(ConnectionEnd::ReadTimeout(read_timeout)),
                }
            }
        };
        match held {
            Some(held) => held.merge(permit),
            None => *held = Some(permit),
        }
        Ok(())
    }
}

/// Bytes of the budget `held` holds.
fn holding(held: &Held) -> usize {
    held.as_ref().map_or(0, OwnedSemaphorePermit::num_permits)
}

/// After a request: a buffer larger than [`FREE_BYTES`] is replaced by one just large enough
/// for what it still holds (bytes of the next request), and the budget it no longer needs is
/// returned.
pub(crate) fn release(buf: &mut BytesMut, held: &mut Held) {
    if buf.capacity() > FREE_BYTES && buf.len() <= FREE_BYTES {
        *buf = if buf.is_empty() {
            BytesMut::new()
        } else {
            BytesMut::from(&buf[..])
        };
    }
    if buf.capacity() <= FREE_BYTES {
        *held = None;
    }
}

impl Default for FrameBudget {
    /// [`DEFAULT_FRAME_BUDGET`].
    fn default() -> Self {
        Self::new(DEFAULT_FRAME_BUDGET)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn u32_prefixed(buf: &[u8]) -> Option<usize> {
        let header: [u8; 4] = buf.get(..4)?.try_into().ok()?;
        Some(4 + u32::from_be_bytes(header) as usize)
    }

    fn soon() -> Instant {
        Instant::now() + Duration::from_millis(50)
    }

    const T: Duration = Duration::from_millis(50);

    #[tokio::test]
    async fn small_requests_never_touch_the_budget() {
        let budget = FrameBudget::new(0);
        let mut buf = BytesMut::from(&b"abc"[..]);
        let mut held = None;
        budget
            .make_room(&mut buf, &mut held, soon(), T)
            .await
            .unwrap();
        assert!(held.is_none());
        assert!(buf.capacity() >= 3 + READ_CHUNK && buf.capacity() <= FREE_BYTES);
    }

    #[tokio::test]
    async fn a_claimed_frame_is_taken_from_the_budget_and_allocated_once_exactly() {
        let budget = FrameBudget::new(4 << 20).with_claimed_length(u32_prefixed);
        let frame = 1 << 20;
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&u32::try_from(frame).unwrap().to_be_bytes());
        let mut held = None;
        budget
            .make_room(&mut buf, &mut held, soon(), T)
            .await
            .unwrap();
        assert_eq!(buf.capacity(), 4 + frame);
        assert_eq!(holding(&held), 4 + frame - FREE_BYTES);
        assert_eq!(budget.available(), (4 << 20) - (4 + frame - FREE_BYTES));
        // Again: nothing more is taken.
        budget
            .make_room(&mut buf, &mut held, soon(), T)
            .await
            .unwrap();
        assert_eq!(budget.available(), (4 << 20) - (4 + frame - FREE_BYTES));
        release(&mut { BytesMut::new() }, &mut held);
        assert_eq!(budget.available(), 4 << 20);
    }

    #[tokio::test]
    async fn a_spent_budget_makes_a_connection_wait_until_its_deadline() {
        let budget = FrameBudget::new(2 << 20).with_claimed_length(u32_prefixed);
        let header = |len: u32| BytesMut::from(&len.to_be_bytes()[..]);
        let (mut first, mut held_first) = (header(1 << 20), None);
        budget
            .make_room(&mut first, &mut held_first, soon(), T)
            .await
            .unwrap();
        let (mut second, mut held_second) = (header(3 << 19), None);
        let end = budget
            .make_room(&mut second, &mut held_second, soon(), T)
            .await
            .unwrap_err();
        assert!(matches!(end, ConnectionEnd::ReadTimeout(_)), "{end}");
        assert!(held_second.is_none());
        assert_eq!(second.capacity(), 4, "nothing was allocated");
        // Once the first returns its bytes, the second gets them.
        let waiting = {
            let budget = budget.clone();
            tokio::spawn(async move {
                let deadline = Instant::now() + Duration::from_secs(10);
                budget
                    .make_room(&mut second, &mut held_second, deadline, T)
                    .await
                    .map(|()| second.capacity())
            })
        };
        drop(held_first);
        assert_eq!(waiting.await.unwrap().unwrap(), 4 + (3 << 19));
    }

    #[tokio::test]
    async fn a_frame_larger_than_the_whole_budget_is_refused_at_once() {
        let budget = FrameBudget::new(1 << 20).with_claimed_length(u32_prefixed);
        let mut buf = BytesMut::from(&(4u32 << 20).to_be_bytes()[..]);
        let far = Instant::now() + Duration::from_secs(3600);
        let end = budget
            .make_room(&mut buf, &mut None, far, T)
            .await
            .unwrap_err();
        assert!(matches!(end, ConnectionEnd::OverBudget { .. }), "{end}");
    }

    #[tokio::test]
    async fn without_a_claimed_length_a_buffer_doubles_within_the_budget() {
        let budget = FrameBudget::new(1 << 20);
        let mut buf = BytesMut::with_capacity(FREE_BYTES);
        buf.resize(FREE_BYTES, 0);
        let mut held = None;
        budget
            .make_room(&mut buf, &mut held, soon(), T)
            .await
            .unwrap();
        assert_eq!(buf.capacity(), 2 * FREE_BYTES);
        assert_eq!(holding(&held), FREE_BYTES);
        assert_eq!(&buf[..], &[0u8; FREE_BYTES][..]);
    }

    #[test]
    fn release_shrinks_a_large_buffer_and_keeps_its_remaining_bytes() {
        let budget = FrameBudget::new(1 << 20);
        let mut held = Some(
            budget
                .bytes
                .clone()
                .unwrap()
                .try_acquire_many_owned(1000)
                .unwrap(),
        );
        let mut buf = BytesMut::with_capacity(1 << 20);
        buf.extend_from_slice(b"next");
        release(&mut buf, &mut held);
        assert_eq!(&buf[..], b"next");
        assert!(buf.capacity() <= FREE_BYTES);
        assert!(held.is_none());
        assert_eq!(budget.available(), 1 << 20);
    }
}
