//! Adaptive concurrency: the S3 requests in flight back off when the server says it is
//! overloaded, and recover when it stops.
//!
//! Every HTTP attempt (the SDK's own retries too) takes a permit from a [`Throttle`] shared by
//! one store. The limit works as TCP's window:
//!
//! * **Slow start**: it starts at [`INITIAL`] and grows by one per answer (doubling per round
//!   of requests) until the server first says "slow down".
//! * **AIMD** after that: a `503` or `429` halves it, from the number actually in flight, at
//!   most once per [`DECREASE_EVERY`]; for [`HOLD_AFTER_DECREASE`] after a decrease it does
//!   not grow; then every other answer adds `1/limit`, about one per round of requests.
//! * A `Retry-After` header pauses new attempts for that long (at most [`MAX_PAUSE`]).
//!
//! A permit is held from the request's start to its answer's head.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;

/// The shortest time between two decreases: one overload episode halves the limit once, not
/// once per request that was already in flight.
pub const DECREASE_EVERY: Duration = Duration::from_millis(250);

/// The limit a throttle starts at.
pub const INITIAL: usize = 8;

/// How long the limit stays put after a decrease, so one overload is not met again at once.
pub const HOLD_AFTER_DECREASE: Duration = Duration::from_secs(1);

/// The longest `Retry-After` honoured.
pub const MAX_PAUSE: Duration = Duration::from_secs(60);

#[derive(Debug)]
struct State {
    limit: f64,
    in_flight: usize,
    pause_until: Option<Instant>,
    last_decrease: Option<Instant>,
    slow_start: bool,
    stats: ThrottleStats,
}

/// What a [`Throttle`] saw and did.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ThrottleStats {
    /// Answers that said "slow down" (503, 429).
    pub throttled: u64,
    /// Times the limit was halved.
    pub decreases: u64,
    /// The lowest limit reached (0: never limited).
    pub min_limit: usize,
    /// Pauses for a `Retry-After`.
    pub pauses: u64,
}

/// The AIMD limit of requests in flight; see the module docs.
#[derive(Debug)]
pub struct Throttle {
    state: Mutex<State>,
    notify: tokio::sync::Notify,
    max: usize,
}

/// A request in flight; dropping it frees the place.
#[derive(Debug)]
pub struct Permit(Arc<Throttle>);

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.state.lock().expect("throttle lock").in_flight -= 1;
        self.0.notify.notify_waiters();
    }
}

impl Throttle {
    /// A throttle of at most `max` in flight, starting at [`INITIAL`] in slow start.
    pub fn new(max: usize) -> Arc<Self> {
        let max = max.max(1);
        Arc::new(Throttle {
            state: Mutex::new(State {
                limit: INITIAL.min(max) as f64,
                in_flight: 0,
                pause_until: None,
                last_decrease: None,
                slow_start: true,
                stats: ThrottleStats::default(),
            }),
            notify: tokio::sync::Notify::new(),
            max,
        })
    }

    /// Waits for a place (and the end of a pause).
    pub async fn acquire(self: &Arc<Self>) -> Permit {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let wait = {
                let mut s = self.state.lock().expect("throttle lock");
                match s.pause_until {
                    Some(t) if t > Instant::now() => Some(t),
                    _ if s.in_flight < (s.limit as usize).max(1) => {
                        s.in_flight += 1;
                        return Permit(self.clone());
                    }
                    _ => None,
                }
            };
            match wait {
                Some(until) => tokio::time::sleep_until(until.into()).await,
                None => notified.await,
            }
        }
    }

    /// Learns from one answer's status and `Retry-After`.
    pub fn observe(&self, status: u16, retry_after: Option<Duration>) {
        let mut s = self.state.lock().expect("throttle lock");
        let now = Instant::now();
        if status == 503 || status == 429 {
            s.stats.throttled += 1;
            let due = s
                .last_decrease
                .is_none_or(|t| now.duration_since(t) >= DECREASE_EVERY);
            if due {
                s.slow_start = false;
                let base = s.limit.min(s.in_flight.max(1) as f64);
                s.limit = (base / 2.0).max(1.0);
                s.last_decrease = Some(now);
                s.stats.decreases += 1;
                let l = s.limit as usize;
                s.stats.min_limit = if s.stats.min_limit == 0 {
                    l
                } else {
                    s.stats.min_limit.min(l)
                };
            }
            if let Some(d) = retry_after {
                let until = now + d.min(MAX_PAUSE);
                if s.pause_until.is_none_or(|t| t < until) {
                    s.pause_until = Some(until);
                    s.stats.pauses += 1;
                }
            }
        } else if s.slow_start {
            s.limit = (s.limit + 1.0).min(self.max as f64);
        } else if s
            .last_decrease
            .is_none_or(|t| now.duration_since(t) >= HOLD_AFTER_DECREASE)
        {
            s.limit = (s.limit + 1.0 / s.limit).min(self.max as f64);
        }
    }

    /// The current limit.
    pub fn limit(&self) -> usize {
        self.state.lock().expect("throttle lock").limit as usize
    }

    /// What it saw and did.
    pub fn stats(&self) -> ThrottleStats {
        self.state.lock().expect("throttle lock").stats
    }
}

/// `Retry-After: <seconds>` (fractions accepted); an HTTP date is not.
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    let secs: f64 = v.trim().parse().ok()?;
    (secs.is_finite() && secs >= 0.0)
        .then(|| Duration::from_secs_f64(secs.min(MAX_PAUSE.as_secs_f64())))
}

/// The HTTP client the SDK uses by default (hyper 1, rustls with aws-lc, proxies from the
/// environment), built here so it can be wrapped: the loaded configuration does not hold it.
pub(crate) fn default_https_client() -> SharedHttpClient {
    use aws_smithy_http_client::{proxy::ProxyConfig, tls, Builder, ConnectorBuilder};
    Builder::new().build_with_connector_fn(|settings, runtime_components| {
        let mut b = ConnectorBuilder::default().tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::AwsLc,
        ));
        b.set_connector_settings(settings.cloned());
        if let Some(c) = runtime_components {
            b.set_sleep_impl(c.sleep_impl());
        }
        b.set_proxy_config(Some(ProxyConfig::from_env()));
        b.build()
    })
}

/// The SDK's HTTP client with every attempt passing through a [`Throttle`].
#[derive(Debug, Clone)]
pub(crate) struct ThrottledClient {
    pub(crate) inner: SharedHttpClient,
    pub(crate) throttle: Arc<Throttle>,
}

#[derive(Debug)]
struct ThrottledConnector {
    inner: SharedHttpConnector,
    throttle: Arc<Throttle>,
}

impl HttpConnector for ThrottledConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let (inner, throttle) = (self.inner.clone(), self.throttle.clone());
        HttpConnectorFuture::new(async move {
            let permit = throttle.acquire().await;
            let res = inner.call(request).await;
            if let Ok(resp) = &res {
                let retry_after = resp
                    .headers()
                    .get("retry-after")
                    .and_then(parse_retry_after);
                throttle.observe(resp.status().as_u16(), retry_after);
            }
            drop(permit);
            res
        })
    }
}

impl HttpClient for ThrottledClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(ThrottledConnector {
            inner: self.inner.http_connector(settings, components),
            throttle: self.throttle.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halves_from_what_is_in_flight_once_per_episode_and_recovers() {
        let t = Throttle::new(64);
        {
            let mut s = t.state.lock().unwrap();
            s.in_flight = 20;
        }
        // Slow start: one more per answer, from INITIAL.
        assert_eq!(t.limit(), INITIAL);
        for _ in 0..20 {
            t.observe(200, None);
        }
        assert_eq!(t.limit(), INITIAL + 20);
        t.observe(503, None);
        assert_eq!(t.limit(), 10, "half of the 20 in flight");
        t.observe(503, None); // same episode
        assert_eq!(t.limit(), 10);
        assert_eq!(t.stats().throttled, 2);
        assert_eq!(t.stats().decreases, 1);
        for _ in 0..50 {
            t.observe(200, None);
        }
        assert_eq!(t.limit(), 10, "held after a decrease");
        t.state.lock().unwrap().last_decrease = Some(Instant::now() - HOLD_AFTER_DECREASE);
        for _ in 0..200 {
            t.observe(200, None);
        }
        assert!(
            (15..=30).contains(&t.limit()),
            "additive increase: {}",
            t.limit()
        );
    }

    #[test]
    fn retry_after_parses_seconds_only() {
        assert_eq!(parse_retry_after("2"), Some(Duration::from_secs(2)));
        assert_eq!(parse_retry_after(" 0.5 "), Some(Duration::from_millis(500)));
        assert_eq!(parse_retry_after("9999"), Some(MAX_PAUSE));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(parse_retry_after("-1"), None);
    }

    #[tokio::test]
    async fn permits_respect_the_limit_and_a_pause() {
        let t = Throttle::new(2);
        let a = t.acquire().await;
        let _b = t.acquire().await;
        let t2 = t.clone();
        let third = tokio::spawn(async move { t2.acquire().await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!third.is_finished(), "a third waits for a place");
        drop(a);
        let _c = tokio::time::timeout(Duration::from_secs(1), third)
            .await
            .unwrap()
            .unwrap();

        let t = Throttle::new(4);
        t.observe(429, Some(Duration::from_millis(200)));
        let start = Instant::now();
        let _p = t.acquire().await;
        assert!(
            start.elapsed() >= Duration::from_millis(150),
            "paused for Retry-After"
        );
        assert_eq!(t.stats().pauses, 1);
    }
}
