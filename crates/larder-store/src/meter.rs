//! Counting (and limiting) the requests a store really sends: the basis of request, byte and
//! price budgets.
//!
//! A [`RequestMeter`] given to the S3 backend ([`crate::S3Options::meter`]) sees every HTTP
//! request just before it is sent (retries included: each attempt is billed), classifies it
//! by the price list's kinds ([`RequestKind`]) and admits it, or refuses it when it would
//! pass a budget: the request is never sent, the operation fails, and
//! [`RequestMeter::stalled`] says which budget and why.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Request kinds as S3 prices them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestKind {
    /// ListObjectsV2, ListParts, ListMultipartUploads.
    List,
    /// GetObject.
    Get,
    /// HeadObject, HeadBucket.
    Head,
    /// PutObject, UploadPart, CopyObject, Create/CompleteMultipartUpload (PUT, COPY, POST).
    Put,
    /// DeleteObject(s), AbortMultipartUpload (free on S3).
    Delete,
}

impl RequestKind {
    /// Every kind, in the order of [`Requests`].
    pub const ALL: [RequestKind; 5] = [
        RequestKind::List,
        RequestKind::Get,
        RequestKind::Head,
        RequestKind::Put,
        RequestKind::Delete,
    ];

    /// The name in messages (`PUT`).
    pub fn name(self) -> &'static str {
        match self {
            RequestKind::List => "LIST",
            RequestKind::Get => "GET",
            RequestKind::Head => "HEAD",
            RequestKind::Put => "PUT",
            RequestKind::Delete => "DELETE",
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    /// Classifies an HTTP request to S3 by method and URI.
    pub fn classify(method: &str, uri: &str) -> RequestKind {
        let query = uri.split_once('?').map_or("", |(_, q)| q);
        let has = |p: &str| {
            query
                .split('&')
                .any(|kv| kv == p || kv.starts_with(&format!("{p}=")))
        };
        match method {
            "GET" if has("list-type") || has("uploads") || has("uploadId") => RequestKind::List,
            "GET" => RequestKind::Get,
            "HEAD" => RequestKind::Head,
            "POST" if has("delete") => RequestKind::Delete,
            "DELETE" => RequestKind::Delete,
            _ => RequestKind::Put,
        }
    }
}

/// Requests per kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Requests {
    /// LIST requests.
    pub list: u64,
    /// GET requests.
    pub get: u64,
    /// HEAD requests.
    pub head: u64,
    /// PUT, COPY and POST requests.
    pub put: u64,
    /// DELETE requests.
    pub delete: u64,
}

impl Requests {
    /// The count of `kind`.
    pub fn of(&self, kind: RequestKind) -> u64 {
        match kind {
            RequestKind::List => self.list,
            RequestKind::Get => self.get,
            RequestKind::Head => self.head,
            RequestKind::Put => self.put,
            RequestKind::Delete => self.delete,
        }
    }

    /// Adds `n` of `kind`.
    pub fn add(&mut self, kind: RequestKind, n: u64) {
        match kind {
            RequestKind::List => self.list += n,
            RequestKind::Get => self.get += n,
            RequestKind::Head => self.head += n,
            RequestKind::Put => self.put += n,
            RequestKind::Delete => self.delete += n,
        }
    }

    /// All requests.
    pub fn total(&self) -> u64 {
        self.list + self.get + self.head + self.put + self.delete
    }
}

/// Prices in US dollars: per 1,000 requests of each kind, and per GB (10^9 bytes) out.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pricing {
    /// Per 1,000 LIST requests.
    pub list_per_1000: f64,
    /// Per 1,000 GET requests.
    pub get_per_1000: f64,
    /// Per 1,000 HEAD requests.
    pub head_per_1000: f64,
    /// Per 1,000 PUT/COPY/POST requests.
    pub put_per_1000: f64,
    /// Per 1,000 DELETE requests.
    pub delete_per_1000: f64,
    /// Per GB downloaded (data transfer out to the internet).
    pub out_per_gb: f64,
}

impl Default for Pricing {
    /// S3 Standard in us-east-1 as AWS listed it (aws.amazon.com/s3/pricing, read
    /// 2026-11): PUT, COPY, POST, LIST $0.005 per 1,000; GET and other requests $0.0004 per
    /// 1,000; DELETE free; data transfer out $0.09 per GB (first 10 TB tier).
    fn default() -> Self {
        Pricing {
            list_per_1000: 0.005,
            get_per_1000: 0.0004,
            head_per_1000: 0.0004,
            put_per_1000: 0.005,
            delete_per_1000: 0.0,
            out_per_gb: 0.09,
        }
    }
}

impl Pricing {
    /// The price of `r` requests and `bytes_out` downloaded bytes.
    pub fn price(&self, r: &Requests, bytes_out: u64) -> f64 {
        (r.list as f64 * self.list_per_1000
            + r.get as f64 * self.get_per_1000
            + r.head as f64 * self.head_per_1000
            + r.put as f64 * self.put_per_1000
            + r.delete as f64 * self.delete_per_1000)
            / 1000.0
            + bytes_out as f64 / 1e9 * self.out_per_gb
    }
}

/// Limits per run; `None` is unlimited.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Limits {
    /// Requests per kind.
    pub requests: [Option<u64>; 5],
    /// Bytes sent in request bodies.
    pub upload_bytes: Option<u64>,
    /// Bytes received in GET bodies: once reached, no further GET is sent (a GET's size is
    /// known only from its answer, so the last one admitted may pass it by its own size).
    pub download_bytes: Option<u64>,
    /// Price in US dollars, with [`Limits::pricing`].
    pub price_usd: Option<f64>,
    /// The prices.
    pub pricing: Pricing,
}

impl Limits {
    /// Sets the limit of `kind`.
    pub fn with(mut self, kind: RequestKind, n: Option<u64>) -> Self {
        self.requests[kind.index()] = n;
        self
    }
}

/// See the module docs.
#[derive(Debug, Default)]
pub struct RequestMeter {
    counts: [AtomicU64; 5],
    upload_bytes: AtomicU64,
    download_bytes: AtomicU64,
    limits: Limits,
    /// Admission is one decision at a time, so two requests cannot both take the last slot.
    admit: Mutex<()>,
    stalled: Mutex<Option<String>>,
}

impl RequestMeter {
    /// A meter with these limits.
    pub fn new(limits: Limits) -> Self {
        RequestMeter {
            limits,
            ..RequestMeter::default()
        }
    }

    /// Counts a request of `kind` carrying `body` bytes, or refuses it (and records why)
    /// when it would pass a limit.
    ///
    /// # Errors
    ///
    /// The reason, naming the budget: `PUT budget 5 exhausted: …`.
    pub fn admit(&self, kind: RequestKind, body: u64) -> Result<(), String> {
        let _one = self.admit.lock().expect("meter lock");
        let n = self.counts[kind.index()].load(Ordering::SeqCst);
        let refuse = |why: String| {
            let mut s = self.stalled.lock().expect("meter lock");
            if s.is_none() {
                *s = Some(why.clone());
            }
            Err(why)
        };
        if let Some(limit) = self.limits.requests[kind.index()] {
            if n + 1 > limit {
                return refuse(format!(
                    "{} budget {limit} exhausted: {n} {} request(s) sent, the next would pass it",
                    kind.name(),
                    kind.name()
                ));
            }
        }
        if let (RequestKind::Get, Some(limit)) = (kind, self.limits.download_bytes) {
            let down = self.download_bytes.load(Ordering::SeqCst);
            if down >= limit {
                return refuse(format!(
                    "download-bytes budget {limit} exhausted: {down} bytes received"
                ));
            }
        }
        let up = self.upload_bytes.load(Ordering::SeqCst);
        if let Some(limit) = self.limits.upload_bytes {
            if up + body > limit {
                return refuse(format!(
                    "upload-bytes budget {limit} exhausted: {up} bytes sent, the next request carries {body}"
                ));
            }
        }
        if let Some(limit) = self.limits.price_usd {
            let mut r = self.requests();
            r.add(kind, 1);
            let price = self
                .limits
                .pricing
                .price(&r, self.download_bytes.load(Ordering::SeqCst));
            if price > limit {
                return refuse(format!(
                    "price budget ${limit} exhausted: the next {} request would bring the run to ${price:.6}",
                    kind.name()
                ));
            }
        }
        self.counts[kind.index()].fetch_add(1, Ordering::SeqCst);
        self.upload_bytes.fetch_add(body, Ordering::SeqCst);
        Ok(())
    }

    /// Counts bytes downloaded (response bodies).
    pub fn downloaded(&self, n: u64) {
        self.download_bytes.fetch_add(n, Ordering::SeqCst);
    }

    /// The requests sent so far.
    pub fn requests(&self) -> Requests {
        let mut r = Requests::default();
        for k in RequestKind::ALL {
            r.add(k, self.counts[k.index()].load(Ordering::SeqCst));
        }
        r
    }

    /// Bytes sent in request bodies so far.
    pub fn upload_bytes(&self) -> u64 {
        self.upload_bytes.load(Ordering::SeqCst)
    }

    /// Bytes received in response bodies so far.
    pub fn download_bytes(&self) -> u64 {
        self.download_bytes.load(Ordering::SeqCst)
    }

    /// The price of what was sent so far.
    pub fn price(&self) -> f64 {
        self.limits
            .pricing
            .price(&self.requests(), self.download_bytes())
    }

    /// Why a request was refused, once one was.
    pub fn stalled(&self) -> Option<String> {
        self.stalled.lock().expect("meter lock").clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_classified_as_priced() {
        use RequestKind::*;
        for (m, u, k) in [
            ("GET", "/b?list-type=2&prefix=x", List),
            ("GET", "/b/k?uploadId=1", List),
            ("GET", "/b?uploads", List),
            ("GET", "/b/k", Get),
            ("GET", "/b/k?partNumber=1", Get),
            ("HEAD", "/b", Head),
            ("PUT", "/b/k", Put),
            ("PUT", "/b/k?partNumber=2&uploadId=1", Put),
            ("POST", "/b/k?uploads", Put),
            ("POST", "/b/k?uploadId=1", Put),
            ("POST", "/b?delete", Delete),
            ("DELETE", "/b/k?uploadId=1", Delete),
        ] {
            assert_eq!(RequestKind::classify(m, u), k, "{m} {u}");
        }
    }

    #[test]
    fn limits_refuse_the_request_that_would_pass_them() {
        let m = RequestMeter::new(Limits::default().with(RequestKind::Put, Some(2)));
        assert!(m.admit(RequestKind::Put, 10).is_ok());
        assert!(m.admit(RequestKind::Put, 10).is_ok());
        assert!(
            m.admit(RequestKind::Get, 0).is_ok(),
            "other kinds are not limited"
        );
        let why = m.admit(RequestKind::Put, 10).unwrap_err();
        assert!(why.starts_with("PUT budget 2 exhausted"), "{why}");
        assert_eq!(m.stalled().as_deref(), Some(why.as_str()));
        assert_eq!(m.requests().put, 2);
        assert_eq!(m.upload_bytes(), 20);

        let m = RequestMeter::new(Limits {
            price_usd: Some(0.00001),
            ..Limits::default()
        });
        assert!(m.admit(RequestKind::Put, 0).is_ok(), "$0.000005");
        assert!(m.admit(RequestKind::Put, 0).is_ok(), "$0.00001");
        assert!(m
            .admit(RequestKind::Put, 0)
            .unwrap_err()
            .contains("price budget"));
        assert!((m.price() - 0.00001).abs() < 1e-12);

        let m = RequestMeter::new(Limits {
            download_bytes: Some(100),
            ..Limits::default()
        });
        assert!(m.admit(RequestKind::Get, 0).is_ok());
        m.downloaded(100);
        assert!(m.admit(RequestKind::Head, 0).is_ok(), "only GETs download");
        assert!(m
            .admit(RequestKind::Get, 0)
            .unwrap_err()
            .starts_with("download-bytes budget 100"));
    }
}
