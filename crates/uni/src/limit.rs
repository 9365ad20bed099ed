//! Rate limits for the UNI: one token bucket per device and one for everyone, so a device that
//! loops cannot starve others and a flood cannot starve the platform. Buckets live in shards to
//! keep the hot path's lock contention low; idle buckets are dropped.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

const SHARDS: usize = 64;
/// Buckets untouched this long are forgotten (they would be full again anyway).
const IDLE: Duration = Duration::from_secs(60);

/// A rate: `per_second` sustained, `burst` at once.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rate {
    /// Tokens added per second.
    pub per_second: f64,
    /// Bucket size.
    pub burst: f64,
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn take(&mut self, rate: Rate, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate.per_second).min(rate.burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Which limit refused a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limited {
    /// This device asked too often.
    Device,
    /// The platform as a whole is at its limit.
    Global,
}

/// The global limit as GCRA (the token bucket's equivalent as a "theoretical arrival time"),
/// on one atomic: every request passes it, so it takes no lock a descheduled thread could hold.
struct Gcra {
    /// Nanoseconds after `base` at which the bucket would be full again.
    tat: AtomicU64,
    base: Instant,
    /// Nanoseconds one request costs.
    cost: u64,
    /// How far ahead of now `tat` may run: the burst less one request.
    tolerance: u64,
}

impl Gcra {
    fn new(rate: Rate, base: Instant) -> Self {
        let cost = (1e9 / rate.per_second.max(1e-9)).min(u64::MAX as f64) as u64;
        let tolerance = ((rate.burst - 1.0).max(0.0) * cost as f64).min(u64::MAX as f64) as u64;
        Self { tat: AtomicU64::new(0), base, cost, tolerance }
    }

    fn take(&self, now: Instant) -> bool {
        let now = now.saturating_duration_since(self.base).as_nanos() as u64;
        let mut tat = self.tat.load(Ordering::Relaxed);
        loop {
            let start = tat.max(now);
            if start - now > self.tolerance {
                return false;
            }
            match self.tat.compare_exchange_weak(tat, start + self.cost, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return true,
                Err(t) => tat = t,
            }
        }
    }
}

/// Per-key and global token buckets.
pub struct RateLimiter {
    per_key: Rate,
    global: Gcra,
    shards: Vec<Mutex<Shard>>,
}

/// One shard of per-key buckets, swept of idle buckets when it has grown since the last sweep.
#[derive(Default)]
struct Shard {
    buckets: HashMap<String, Bucket>,
    sweep_at: usize,
}

impl RateLimiter {
    /// A limiter with `per_key` for each key and `global` for all.
    pub fn new(per_key: Rate, global: Rate) -> Self {
        let now = Instant::now();
        Self {
            per_key,
            global: Gcra::new(global, now),
            shards: (0..SHARDS).map(|_| Mutex::new(Shard { buckets: HashMap::new(), sweep_at: 1024 })).collect(),
        }
    }

    /// Takes one token for `key` (and one globally), or says which limit refused.
    pub fn check(&self, key: &str) -> Result<(), Limited> {
        let now = Instant::now();
        let mut h = std::collections::hash_map::DefaultHasher::new();
        key.hash(&mut h);
        let shard = &self.shards[(h.finish() as usize) % SHARDS];
        {
            let mut shard = shard.lock().unwrap_or_else(|e| e.into_inner());
            if shard.buckets.len() >= shard.sweep_at {
                // Amortized: sweep, then wait until the shard doubles before sweeping again.
                shard.buckets.retain(|_, b| now.saturating_duration_since(b.at) < IDLE);
                shard.sweep_at = (shard.buckets.len() * 2).max(1024);
            }
            let b = match shard.buckets.get_mut(key) {
                Some(b) => b,
                None => shard.buckets.entry(key.to_string()).or_insert(Bucket { tokens: self.per_key.burst, at: now }),
            };
            if !b.take(self.per_key, now) {
                return Err(Limited::Device);
            }
        }
        if self.global.take(now) {
            Ok(())
        } else {
            Err(Limited::Global)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn per_device_then_global() {
        let l = RateLimiter::new(Rate { per_second: 1.0, burst: 2.0 }, Rate { per_second: 10.0, burst: 3.0 });
        assert_eq!(l.check("a"), Ok(()));
        assert_eq!(l.check("a"), Ok(()));
        assert_eq!(l.check("a"), Err(Limited::Device), "burst of 2 used");
        assert_eq!(l.check("b"), Ok(()), "other devices are not affected");
        assert_eq!(l.check("c"), Err(Limited::Global), "global burst of 3 used");
        tokio::time::advance(Duration::from_millis(1000)).await;
        assert_eq!(l.check("a"), Ok(()), "one token back after a second");
        assert_eq!(l.check("a"), Err(Limited::Device));
    }

    #[tokio::test(start_paused = true)]
    async fn global_limit_refills_at_its_rate() {
        let l = RateLimiter::new(Rate { per_second: 1000.0, burst: 1000.0 }, Rate { per_second: 100.0, burst: 5.0 });
        let granted = |n: usize| (0..n).filter(|i| l.check(&format!("d{i}")).is_ok()).count();
        assert_eq!(granted(20), 5, "the burst");
        tokio::time::advance(Duration::from_millis(30)).await;
        assert_eq!(granted(20), 3, "30 ms at 100/s");
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(granted(20), 5, "never more than the burst, however long the pause");
    }
}
