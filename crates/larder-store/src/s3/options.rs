//! Where an S3 store points and how it talks to the server: the URL, credentials and
//! options.

use super::*;

/// An `s3://bucket/prefix` location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Url {
    /// The bucket.
    pub bucket: String,
    /// The key prefix the store is rooted at: empty, or ending with `/`.
    pub prefix: String,
}

impl S3Url {
    /// Parses `s3://bucket[/prefix]`. A prefix that does not end with `/` gets one: the store
    /// is rooted at a "directory", as `aws s3 sync` treats it.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidConfig`] naming the URL and what is wrong with it.
    pub fn parse(url: &str) -> Result<Self> {
        let bad = |why: &str| {
            Error::new(ErrorKind::InvalidConfig, Op::Open, url).with_detail(why.to_owned())
        };
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| bad("an S3 URL starts with `s3://`"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(bad("the URL names no bucket"));
        }
        let valid = bucket.len() >= 3
            && bucket.len() <= 63
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
            && !bucket.starts_with(['.', '-'])
            && !bucket.ends_with(['.', '-']);
        if !valid {
            return Err(bad(
                "a bucket name is 3 to 63 lowercase letters, digits, dots and hyphens",
            ));
        }
        let mut prefix = prefix.to_owned();
        if !prefix.is_empty() && !prefix.ends_with('/') {
            prefix.push('/');
        }
        Ok(S3Url {
            bucket: bucket.to_owned(),
            prefix,
        })
    }
}

impl fmt::Display for S3Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.prefix)
    }
}

/// Explicit credentials, instead of the standard AWS chain.
#[derive(Clone)]
pub struct StaticCredentials {
    /// The access key id.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: String,
    /// A session token, for temporary credentials.
    pub session_token: Option<String>,
}

impl fmt::Debug for StaticCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticCredentials")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// How to reach and use an S3-compatible server.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct S3Options {
    /// The endpoint, for a non-AWS server (`http://127.0.0.1:3900`).
    pub endpoint_url: Option<String>,
    /// The region; else the chain's (`AWS_REGION`, profile), else `us-east-1`.
    pub region: Option<String>,
    /// The profile in `~/.aws/config` to take credentials and region from.
    pub profile: Option<String>,
    /// Path-style addressing; default: on when an endpoint URL is given.
    pub force_path_style: Option<bool>,
    /// Credentials; default: the standard AWS chain (env, profile, SSO, IMDS, …).
    pub credentials: Option<StaticCredentials>,
    /// Send requests unsigned, as anybody (`--no-sign-request`): public buckets.
    pub anonymous: bool,
    /// Accept the charges of a requester-pays bucket: every request carries
    /// `x-amz-request-payer: requester` (`--request-payer`).
    pub request_payer: bool,
    /// Bodies larger than this are multipart uploads (default 8 MiB).
    pub multipart_threshold: u64,
    /// The part size of multipart uploads (default 8 MiB; at least 5 MiB; raised when a body
    /// of known size would need more than 10,000 parts).
    pub part_size: u64,
    /// Parts uploaded at once, per object (default 4).
    pub parts_in_flight: usize,
    /// Whole-object reads of known size at least this large use parallel ranged GETs
    /// (default 16 MiB).
    pub get_parallel_threshold: u64,
    /// The range size of parallel GETs (default 8 MiB).
    pub get_part_size: u64,
    /// Ranged GETs at once, per object (default 4).
    pub get_parts_in_flight: usize,
    /// Keys per LIST page, at most 1,000 (default 1,000).
    pub list_page_size: i32,
    /// Sort each listing in memory before handing it on (for servers that do not list in
    /// key order); default: only for S3 Express One Zone directory buckets (`…--x-s3`),
    /// whose listings are unordered.
    pub sort_listing: Option<bool>,
    /// Copies of larger objects use UploadPartCopy (default and S3 maximum 5 GiB).
    pub copy_multipart_threshold: u64,
    /// Attempts per request, with the SDK's exponential backoff and jitter (default 5).
    pub max_attempts: u32,
    /// How long to wait for a connection (default 10 s).
    pub connect_timeout: std::time::Duration,
    /// How long to wait for the first byte of an answer once a request is sent (default
    /// 60 s): a server that accepts the connection and never answers fails, retried.
    pub read_timeout: std::time::Duration,
    /// How long a body may stall (no byte up or down) before the transfer fails (default
    /// 60 s; at least 1 s).
    pub idle_timeout: std::time::Duration,
    /// Counts every request sent, and refuses those past its limits (budgets).
    pub meter: Option<Arc<crate::meter::RequestMeter>>,
    /// Back off on `503 SlowDown` / `429` (AIMD on the requests in flight, `Retry-After`
    /// honoured; see [`crate::throttle`]); `false` keeps the concurrency fixed (default true).
    pub adaptive: bool,
    /// The throttle to use (to read its [`crate::throttle::ThrottleStats`], or share it
    /// between stores on one server); else the store makes its own.
    pub throttle: Option<Arc<crate::throttle::Throttle>>,
    /// Where multipart uploads in progress are recorded, so a run killed mid-upload is
    /// resumed from the parts on the server (each checked by its MD5) by the next.
    pub journal: Option<Arc<dyn crate::journal::UploadJournal>>,
    /// What the server implements besides the core API (default: all of it, as AWS S3).
    pub features: ServerFeatures,
    /// A canned ACL for every object written (`private`, `public-read`,
    /// `bucket-owner-full-control`, …).
    pub acl: Option<String>,
    /// Server-side encryption of every object written, with server-managed keys.
    pub sse: Option<Sse>,
    /// SSE-C: every object written is encrypted with this key, and every read sends it.
    /// ETags are then not MD5s; transfers are verified by Content-MD5 on the way up (the
    /// server checks it) and by an additional checksum where one is asked for.
    pub sse_c: Option<SseCustomerKey>,
}

crate::with_setters!(S3Options {
    with_endpoint_url => endpoint_url: Option<String>,
    with_region => region: Option<String>,
    with_profile => profile: Option<String>,
    with_force_path_style => force_path_style: Option<bool>,
    with_credentials => credentials: Option<StaticCredentials>,
    with_anonymous => anonymous: bool,
    with_request_payer => request_payer: bool,
    with_multipart_threshold => multipart_threshold: u64,
    with_part_size => part_size: u64,
    with_parts_in_flight => parts_in_flight: usize,
    with_get_parallel_threshold => get_parallel_threshold: u64,
    with_get_part_size => get_part_size: u64,
    with_get_parts_in_flight => get_parts_in_flight: usize,
    with_list_page_size => list_page_size: i32,
    with_sort_listing => sort_listing: Option<bool>,
    with_copy_multipart_threshold => copy_multipart_threshold: u64,
    with_max_attempts => max_attempts: u32,
    with_connect_timeout => connect_timeout: std::time::Duration,
    with_read_timeout => read_timeout: std::time::Duration,
    with_idle_timeout => idle_timeout: std::time::Duration,
    with_meter => meter: Option<Arc<crate::meter::RequestMeter>>,
    with_adaptive => adaptive: bool,
    with_throttle => throttle: Option<Arc<crate::throttle::Throttle>>,
    with_journal => journal: Option<Arc<dyn crate::journal::UploadJournal>>,
    with_features => features: ServerFeatures,
    with_acl => acl: Option<String>,
    with_sse => sse: Option<Sse>,
    with_sse_c => sse_c: Option<SseCustomerKey>,
});

impl Default for S3Options {
    fn default() -> Self {
        S3Options {
            endpoint_url: None,
            region: None,
            profile: None,
            force_path_style: None,
            credentials: None,
            anonymous: false,
            request_payer: false,
            multipart_threshold: 8 * MIB,
            part_size: 8 * MIB,
            parts_in_flight: 4,
            get_parallel_threshold: 16 * MIB,
            get_part_size: 8 * MIB,
            get_parts_in_flight: 4,
            list_page_size: 1000,
            sort_listing: None,
            copy_multipart_threshold: MAX_SINGLE,
            max_attempts: 5,
            connect_timeout: std::time::Duration::from_secs(10),
            read_timeout: std::time::Duration::from_secs(60),
            idle_timeout: std::time::Duration::from_secs(60),
            meter: None,
            adaptive: true,
            throttle: None,
            journal: None,
            features: ServerFeatures::default(),
            acl: None,
            sse: None,
            sse_c: None,
        }
    }
}

/// A multipart upload in progress (or left behind by an interrupted client).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingUpload {
    /// The key it would write.
    pub key: Key,
    /// Its id.
    pub upload_id: String,
    /// When it was started.
    pub initiated: Option<SystemTime>,
}
