//! Bounds on the memory that clients' requests make the server hold.
//!
//! [`Budget`]: a process-wide cap on the bytes held by request bodies being read and answers being
//! written (`--web.max-bytes-in-flight`), so that many connections each sending a large write,
//! or many slow scrapers each holding a rendered page, cannot exhaust memory. Beyond it a
//! request gets 503, which Prometheus's remote write retries with backoff. One reservation is
//! always granted when nothing else is held, so a single request larger than the cap (a big
//! `/metrics` page) is still served.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::base::locks::lock;

pub struct Budget {
    /// Set again when a memory limit it derives from changes.
    limit: AtomicUsize,
    held: AtomicUsize,
}

/// Bytes taken from a [`Budget`], given back when dropped.
pub struct Reservation<'a> {
    budget: &'a Budget,
    bytes: usize,
}

impl Budget {
    pub fn new(limit: usize) -> Budget {
        Budget {
            limit: AtomicUsize::new(limit),
            held: AtomicUsize::new(0),
        }
    }

    pub fn limit(&self) -> usize {
        self.limit.load(Ordering::Relaxed)
    }

    /// A new cap; what is held stays held, and new reservations meet the new cap.
    pub fn set_limit(&self, limit: usize) {
        self.limit.store(limit, Ordering::Relaxed);
    }

    /// Takes `bytes` when they fit under the limit, or when nothing is held at all.
    pub fn reserve(&self, bytes: usize) -> Option<Reservation<'_>> {
        self.held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                let total = held.checked_add(bytes)?;
                (held == 0 || total <= self.limit()).then_some(total)
            })
            .ok()?;
        Some(Reservation {
            budget: self,
            bytes,
        })
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        self.budget.held.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

/// Buffers kept for reuse, each at most `max_bytes` in capacity and at most `max_total_bytes`
/// in all, so that what is kept stays bounded however many connections come and go.
pub struct SparePool {
    buffers: Mutex<Vec<Vec<u8>>>,
    max_bytes: usize,
    max_total_bytes: usize,
}

impl SparePool {
    pub fn new(max_bytes: usize, max_total_bytes: usize) -> SparePool {
        SparePool {
            buffers: Mutex::default(),
            max_bytes,
            max_total_bytes,
        }
    }

    /// A kept buffer, emptied, or a new one.
    pub fn take(&self) -> Vec<u8> {
        lock(&self.buffers).pop().unwrap_or_default()
    }

    /// Keeps `buffer` for reuse when there is room and it is not too large; drops it otherwise.
    pub fn give_back(&self, mut buffer: Vec<u8>) {
        if buffer.capacity() == 0 || buffer.capacity() > self.max_bytes {
            return;
        }
        buffer.clear();
        let mut buffers = lock(&self.buffers);
        let kept: usize = buffers.iter().map(Vec::capacity).sum();
        if kept + buffer.capacity() <= self.max_total_bytes {
            buffers.push(buffer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_fit_under_the_limit_and_are_given_back() {
        let budget = Budget::new(100);
        let first = budget.reserve(60).expect("fits");
        let second = budget.reserve(40).expect("fits exactly");
        assert!(budget.reserve(1).is_none(), "full");
        drop(second);
        assert!(budget.reserve(41).is_none(), "60 + 41 > 100");
        let third = budget.reserve(40).expect("fits again");
        drop((first, third));
        assert_eq!(budget.held.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn spare_buffers_are_reused_emptied_and_bounded() {
        let pool = SparePool::new(100, 25);
        let mut first = pool.take();
        first.extend_from_slice(b"abc");
        let address = first.as_ptr();
        pool.give_back(first);
        let again = pool.take();
        assert_eq!(
            (again.as_ptr(), again.len()),
            (address, 0),
            "the same buffer, empty"
        );
        pool.give_back(Vec::with_capacity(1000));
        assert_eq!(pool.take().capacity(), 0, "too large a buffer was not kept");
        for _ in 0..3 {
            pool.give_back(Vec::with_capacity(10));
        }
        assert_eq!(lock(&pool.buffers).len(), 2, "at most 25 bytes kept in all");
    }

    #[test]
    fn one_oversized_reservation_is_granted_when_nothing_is_held() {
        let budget = Budget::new(100);
        let big = budget.reserve(1000).expect("alone, it may pass the limit");
        assert!(budget.reserve(1).is_none());
        drop(big);
        assert!(budget.reserve(usize::MAX).is_some());
    }
}
