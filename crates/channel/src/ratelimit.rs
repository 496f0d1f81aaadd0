//! Attempt budget for password roles: a token bucket per (peer, role), with the clock injected.
//!
//! Every password-role PAKE that reaches key confirmation lets the peer test one password
//! guess. The I/O layer therefore takes a token *before* starting a role's PAKE
//! ([`RateLimiter::try_acquire`], the `permit` of [`crate::OfferSent::start`]) and gives it back
//! only when the peer's confirmation verified or no PAKE ran ([`RateLimiter::refund`]). Charging
//! first means parallel connections cannot run more guesses than the bucket holds.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

use crate::name::RoleName;

/// Bucket size and refill rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Most attempts in a burst (the bucket's capacity). At least 1.
    pub burst: u32,
    /// One attempt is added back per this interval. Must not be zero.
    pub refill_every: Duration,
    /// Most (peer, role) buckets kept; when full, buckets that are full (equal to absent) are
    /// dropped, and if none is, new peers are refused (fail closed).
    pub max_buckets: usize,
}

impl Default for RateLimit {
    /// 5 attempts, one more per minute, 100 000 buckets.
    fn default() -> Self {
        Self {
            burst: 5,
            refill_every: Duration::from_secs(60),
            max_buckets: 100_000,
        }
    }
}

/// The peer and role are out of attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("password role attempts rate limited")]
pub struct RateLimited {
    /// When the next attempt will be allowed (`None`: the limiter is full of other peers).
    pub retry_after: Option<Duration>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: u32,
    /// The instant up to which refills have been credited.
    credited: Instant,
}

/// Token buckets keyed by peer (any key the I/O layer trusts: an address, an SVID) and role.
#[derive(Debug)]
pub struct RateLimiter<P> {
    limit: RateLimit,
    buckets: HashMap<(P, RoleName), Bucket>,
}

impl<P: Eq + Hash + Clone> RateLimiter<P> {
    /// An empty limiter. A zero `burst` is raised to 1, a zero `refill_every` to 1 ms.
    #[must_use]
    pub fn new(mut limit: RateLimit) -> Self {
        limit.burst = limit.burst.max(1);
        limit.refill_every = limit.refill_every.max(Duration::from_millis(1));
        Self {
            limit,
            buckets: HashMap::new(),
        }
    }

    fn refill(limit: &RateLimit, b: &mut Bucket, now: Instant) {
        let elapsed = now.saturating_duration_since(b.credited);
        let steps = elapsed.as_nanos() / limit.refill_every.as_nanos().max(1);
        let steps = u32::try_from(steps).unwrap_or(u32::MAX);
        if steps == 0 {
            return;
        }
        b.tokens = b.tokens.saturating_add(steps).min(limit.burst);
        if b.tokens == limit.burst {
            b.credited = now;
        } else {
            b.credited += limit.refill_every * steps;
        }
    }

    /// Takes one attempt for `peer` and `role` at `now`.
    ///
    /// # Errors
    /// [`RateLimited`] if the bucket is empty, or the limiter is full and this is a new peer.
    pub fn try_acquire(
        &mut self,
        peer: &P,
        role: &RoleName,
        now: Instant,
    ) -> Result<(), RateLimited> {
        let key = (peer.clone(), role.clone());
        if !self.buckets.contains_key(&key) && self.buckets.len() >= self.limit.max_buckets {
            let limit = self.limit;
            self.buckets.retain(|_, b| {
                Self::refill(&limit, b, now);
                b.tokens < limit.burst
            });
            if self.buckets.len() >= self.limit.max_buckets {
                return Err(RateLimited { retry_after: None });
            }
        }
        let limit = self.limit;
        let b = self.buckets.entry(key).or_insert(Bucket {
            tokens: limit.burst,
            credited: now,
        });
        Self::refill(&limit, b, now);
        if b.tokens == 0 {
            let next = b.credited + limit.refill_every;
            return Err(RateLimited {
                retry_after: Some(next.saturating_duration_since(now)),
            });
        }
        b.tokens -= 1;
        Ok(())
    }

    /// Gives back an attempt taken by [`Self::try_acquire`] that tested no password (the PAKE
    /// did not run) or succeeded.
    pub fn refund(&mut self, peer: &P, role: &RoleName) {
        if let Some(b) = self.buckets.get_mut(&(peer.clone(), role.clone())) {
            b.tokens = b.tokens.saturating_add(1).min(self.limit.burst);
        }
    }

    /// Attempts left for `peer` and `role` at `now` (for tests and metrics).
    #[must_use]
    pub fn remaining(&self, peer: &P, role: &RoleName, now: Instant) -> u32 {
        self.buckets
            .get(&(peer.clone(), role.clone()))
            .map_or(self.limit.burst, |b| {
                let mut b = *b;
                Self::refill(&self.limit, &mut b, now);
                b.tokens
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(s: &str) -> RoleName {
        RoleName::new(s).unwrap()
    }

    #[test]
    fn bucket_drains_and_refills() {
        let t0 = Instant::now();
        let mut rl = RateLimiter::new(RateLimit {
            burst: 3,
            refill_every: Duration::from_secs(10),
            max_buckets: 10,
        });
        let (p, r) = ("10.0.0.1", role("payment"));
        for _ in 0..3 {
            rl.try_acquire(&p, &r, t0).unwrap();
        }
        let err = rl.try_acquire(&p, &r, t0).unwrap_err();
        assert_eq!(err.retry_after, Some(Duration::from_secs(10)));
        // Other roles and other peers have their own buckets.
        rl.try_acquire(&p, &role("approval"), t0).unwrap();
        rl.try_acquire(&"10.0.0.2", &r, t0).unwrap();
        // 9 s later still nothing; at 10 s one attempt.
        assert!(rl.try_acquire(&p, &r, t0 + Duration::from_secs(9)).is_err());
        rl.try_acquire(&p, &r, t0 + Duration::from_secs(10))
            .unwrap();
        assert!(
            rl.try_acquire(&p, &r, t0 + Duration::from_secs(11))
                .is_err()
        );
        // A long pause refills only to the burst.
        assert_eq!(rl.remaining(&p, &r, t0 + Duration::from_secs(1000)), 3);
    }

    #[test]
    fn refund_restores_success() {
        let t0 = Instant::now();
        let mut rl = RateLimiter::new(RateLimit {
            burst: 1,
            refill_every: Duration::from_secs(60),
            max_buckets: 10,
        });
        let r = role("payment");
        for _ in 0..100 {
            rl.try_acquire(&1u32, &r, t0).unwrap();
            rl.refund(&1u32, &r);
        }
        rl.try_acquire(&1u32, &r, t0).unwrap();
        assert!(rl.try_acquire(&1u32, &r, t0).is_err());
    }

    #[test]
    fn full_table_fails_closed() {
        let t0 = Instant::now();
        let mut rl = RateLimiter::new(RateLimit {
            burst: 2,
            refill_every: Duration::from_secs(60),
            max_buckets: 2,
        });
        let r = role("payment");
        rl.try_acquire(&1u32, &r, t0).unwrap();
        rl.try_acquire(&2u32, &r, t0).unwrap();
        assert_eq!(
            rl.try_acquire(&3u32, &r, t0),
            Err(RateLimited { retry_after: None })
        );
        // Once peer 1's bucket is full again it can be dropped to make room.
        rl.try_acquire(&3u32, &r, t0 + Duration::from_secs(60))
            .unwrap();
    }
}
