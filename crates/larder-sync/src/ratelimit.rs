//! Rate limits shared by every worker of a run: objects per second and bytes per second
//! (s3sync's `--rate-limit-objects` and `--rate-limit-bandwidth`).
//!
//! A token bucket whose tokens may go into debt: a taker takes what it needs at once and
//! sleeps for the debt's time, so a 1 MiB chunk under a 100 KiB/s limit waits 10 s instead of
//! starving behind small ones, and the long-run rate is exact. The bucket holds at most a
//! tenth of a second of tokens (at least one object, at least one 64 KiB chunk), so an idle
//! moment does not buy a burst.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;

use bytes::Bytes;
use futures::{Future, Stream};
use larder_store::{ByteStream, Result};

/// A token bucket: `rate` tokens a second.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    capacity: f64,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    tokens: f64,
    last: Instant,
}

impl RateLimiter {
    /// `rate` tokens a second (objects, or bytes); at least one token of burst, or `min_burst`.
    pub fn new(rate: f64, min_burst: f64) -> Arc<Self> {
        let rate = rate.max(f64::MIN_POSITIVE);
        let capacity = (rate / 10.0).max(min_burst).max(1.0);
        Arc::new(RateLimiter {
            rate,
            capacity,
            // Start empty: the first second runs at the rate, not at rate + burst.
            state: Mutex::new(State {
                tokens: 0.0,
                last: Instant::now(),
            }),
        })
    }

    /// A limiter of `n` objects a second.
    pub fn objects(n: f64) -> Arc<Self> {
        Self::new(n, 1.0)
    }

    /// A limiter of `n` bytes a second.
    pub fn bytes(n: u64) -> Arc<Self> {
        Self::new(n as f64, 64.0 * 1024.0)
    }

    /// Takes `n` tokens; returns how long the taker must wait for them.
    fn take(&self, n: f64) -> Duration {
        let mut s = self.state.lock().expect("rate limiter lock");
        let now = Instant::now();
        let elapsed = now.duration_since(s.last).as_secs_f64();
        s.last = now;
        s.tokens = (s.tokens + elapsed * self.rate).min(self.capacity);
        s.tokens -= n;
        if s.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-s.tokens / self.rate)
        }
    }

    /// Waits until `n` tokens are granted.
    pub async fn acquire(&self, n: u64) {
        let wait = self.take(n as f64);
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    /// `body`, each chunk released only when its bytes are granted.
    pub fn limit(self: &Arc<Self>, body: ByteStream) -> ByteStream {
        Box::pin(Limited {
            inner: body,
            limiter: self.clone(),
            sleep: None,
            ready: None,
        })
    }
}

struct Limited {
    inner: ByteStream,
    limiter: Arc<RateLimiter>,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    ready: Option<Bytes>,
}

impl Stream for Limited {
    type Item = Result<Bytes>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some(s) = &mut this.sleep {
                if s.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                this.sleep = None;
            }
            if let Some(b) = this.ready.take() {
                return Poll::Ready(Some(Ok(b)));
            }
            match this.inner.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(b))) => {
                    let wait = this.limiter.take(b.len() as f64);
                    if wait.is_zero() {
                        return Poll::Ready(Some(Ok(b)));
                    }
                    this.ready = Some(b);
                    this.sleep = Some(Box::pin(tokio::time::sleep(wait)));
                }
                other => return other,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn objects_come_at_the_rate_across_takers() {
        let l = RateLimiter::objects(100.0);
        let start = tokio::time::Instant::now();
        let tasks: Vec<_> = (0..4)
            .map(|_| {
                let l = l.clone();
                tokio::spawn(async move {
                    for _ in 0..50 {
                        l.acquire(1).await;
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        // 200 objects at 100/s, shared by four takers: 2 s (paused clock, exact).
        let took = start.elapsed().as_secs_f64();
        assert!((1.9..=2.1).contains(&took), "{took}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_limited_body_flows_at_the_byte_rate() {
        use futures::StreamExt;
        let chunks: Vec<Result<Bytes>> = (0..10)
            .map(|_| Ok(Bytes::from(vec![0u8; 100_000])))
            .collect();
        let l = RateLimiter::bytes(250_000);
        let start = tokio::time::Instant::now();
        let mut s = l.limit(futures::stream::iter(chunks).boxed());
        let mut n = 0;
        while let Some(c) = s.next().await {
            n += c.unwrap().len();
        }
        assert_eq!(n, 1_000_000);
        let took = start.elapsed().as_secs_f64();
        assert!((3.9..=4.1).contains(&took), "{took}");
    }
}
