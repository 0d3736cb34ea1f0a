//! A token bucket in integer milli-tokens; time is passed in (ms).

/// Allows `rate` events per second on average with bursts of up to `burst`.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    /// Milli-tokens added per millisecond (= events per second).
    rate: u64,
    /// Capacity in milli-tokens.
    capacity: u64,
    tokens: u64,
    last_ms: i64,
}

impl TokenBucket {
    /// A full bucket at `now_ms`.
    pub fn new(rate_per_s: u32, burst: u32, now_ms: i64) -> Self {
        let capacity = u64::from(burst.max(1)) * 1000;
        TokenBucket {
            rate: u64::from(rate_per_s),
            capacity,
            tokens: capacity,
            last_ms: now_ms,
        }
    }

    /// Takes one token if available.
    pub fn take(&mut self, now_ms: i64) -> bool {
        let elapsed = u64::try_from(now_ms.saturating_sub(self.last_ms)).unwrap_or(0);
        self.last_ms = self.last_ms.max(now_ms);
        self.tokens = self
            .tokens
            .saturating_add(elapsed.saturating_mul(self.rate))
            .min(self.capacity);
        if self.tokens >= 1000 {
            self.tokens -= 1000;
            true
        } else {
            false
        }
    }

    /// How many [`TokenBucket::take`]s at `now_ms` would succeed (nothing is taken).
    pub fn available(&self, now_ms: i64) -> u64 {
        let elapsed = u64::try_from(now_ms.saturating_sub(self.last_ms)).unwrap_or(0);
        self.tokens
            .saturating_add(elapsed.saturating_mul(self.rate))
            .min(self.capacity)
            / 1000
    }

    /// Whether the bucket is full at `now_ms` (idle long enough to be forgotten).
    pub fn is_full(&self, now_ms: i64) -> bool {
        let elapsed = u64::try_from(now_ms.saturating_sub(self.last_ms)).unwrap_or(0);
        self.tokens
            .saturating_add(elapsed.saturating_mul(self.rate))
            >= self.capacity
    }
}

#[cfg(test)]
mod tests {
    use super::TokenBucket;

    #[test]
    fn burst_then_rate() {
        let mut b = TokenBucket::new(10, 5, 0);
        for _ in 0..5 {
            assert!(b.take(0));
        }
        assert!(!b.take(0));
        // 10/s: one token per 100 ms.
        assert!(!b.take(99));
        assert!(b.take(100));
        assert!(!b.take(100));
        // A long pause refills only up to the burst.
        assert_eq!(b.available(100), 0);
        assert_eq!(b.available(10_000), 5);
        assert!(b.is_full(10_000));
        for _ in 0..5 {
            assert!(b.take(10_000));
        }
        assert!(!b.take(10_000));
    }

    #[test]
    fn clock_going_backwards_does_not_mint_tokens() {
        let mut b = TokenBucket::new(1, 1, 1_000);
        assert!(b.take(1_000));
        assert!(!b.take(500));
        assert!(!b.take(1_000));
        assert!(b.take(2_000));
    }
}
