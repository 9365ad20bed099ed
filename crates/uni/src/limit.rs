//! Rate limits for the UNI: one token bucket per device and one for everyone, so a device that
//! loops cannot starve others and a flood cannot starve the platform. Buckets live in shards to
//! keep the hot path's lock contention low; idle buckets are dropped.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
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

/// Per-key and global token buckets.
pub struct RateLimiter {
    per_key: Rate,
    global: Rate,
    global_bucket: Mutex<Bucket>,
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
            global,
            global_bucket: Mutex::new(Bucket { tokens: global.burst, at: now }),
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
        let mut g = self.global_bucket.lock().unwrap_or_else(|e| e.into_inner());
        if g.take(self.global, now) {
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
}
