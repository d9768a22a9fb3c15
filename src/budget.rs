//! A process-wide cap on the bytes held by request bodies being read and answers being
//! written (`--web.max-bytes-in-flight`), so that many connections each sending a large write,
//! or many slow scrapers each holding a rendered page, cannot exhaust memory. Beyond it a
//! request gets 503, which Prometheus's remote write retries with backoff. One reservation is
//! always granted when nothing else is held, so a single request larger than the cap (a big
//! `/metrics` page) is still served.

use std::sync::atomic::{AtomicUsize, Ordering};

pub struct Budget {
    limit: usize,
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
            limit,
            held: AtomicUsize::new(0),
        }
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Takes `bytes` when they fit under the limit, or when nothing is held at all.
    pub fn reserve(&self, bytes: usize) -> Option<Reservation<'_>> {
        self.held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                let total = held.checked_add(bytes)?;
                (held == 0 || total <= self.limit).then_some(total)
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
    fn one_oversized_reservation_is_granted_when_nothing_is_held() {
        let budget = Budget::new(100);
        let big = budget.reserve(1000).expect("alone, it may pass the limit");
        assert!(budget.reserve(1).is_none());
        drop(big);
        assert!(budget.reserve(usize::MAX).is_some());
    }
}
