//! `rate_limit` of `--web.config.file`, as exporter-toolkit applies it: one token bucket for the
//! whole server (Go's `rate.NewLimiter(rate.Every(interval), burst)`), holding `burst` tokens
//! and gaining one every `interval`; a request that finds it empty is answered 429.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::base::locks::lock;

pub struct RateLimiter {
    interval: Duration,
    burst: u32,
    /// Tokens left, and when they were counted.
    bucket: Mutex<(f64, Instant)>,
}

impl RateLimiter {
    /// A full bucket.
    pub fn new(interval: Duration, burst: u32) -> RateLimiter {
        RateLimiter {
            interval,
            burst,
            bucket: Mutex::new((f64::from(burst), Instant::now())),
        }
    }

    /// Takes a token if there is one; otherwise how long until there is.
    pub fn take(&self) -> Result<(), Duration> {
        self.take_at(Instant::now())
    }

    fn take_at(&self, now: Instant) -> Result<(), Duration> {
        if self.interval.is_zero() {
            return Ok(());
        }
        let mut bucket = lock(&self.bucket);
        let (tokens, counted) = *bucket;
        let gained =
            now.saturating_duration_since(counted).as_secs_f64() / self.interval.as_secs_f64();
        let tokens = (tokens + gained).min(f64::from(self.burst));
        if tokens >= 1.0 {
            *bucket = (tokens - 1.0, now);
            Ok(())
        } else {
            *bucket = (tokens, now);
            Err(self.interval.mul_f64(1.0 - tokens))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_one_token_per_interval() {
        let limiter = RateLimiter::new(Duration::from_secs(1), 3);
        let start = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.take_at(start), Ok(()));
        }
        let wait = limiter.take_at(start).unwrap_err();
        assert_eq!(wait, Duration::from_secs(1));
        let half = start + Duration::from_millis(500);
        assert!(limiter.take_at(half).is_err());
        assert_eq!(limiter.take_at(start + Duration::from_millis(1000)), Ok(()));
        // Idle for long, the bucket holds `burst` tokens, not more.
        let later = start + Duration::from_secs(60);
        for _ in 0..3 {
            assert_eq!(limiter.take_at(later), Ok(()));
        }
        assert!(limiter.take_at(later).is_err());
    }

    #[test]
    fn a_zero_interval_limits_nothing() {
        let limiter = RateLimiter::new(Duration::ZERO, 1);
        for _ in 0..100 {
            assert_eq!(limiter.take(), Ok(()));
        }
    }
}
