//! S3-compatible object storage as a [`Store`], through `aws-sdk-s3`.
//!
//! # Non-AWS servers
//!
//! The SDK by default signs uploads with a streaming checksum trailer that Garage and Ceph
//! reject. This backend sets `request_checksum_calculation = WhenRequired` and sends what it
//! computes itself instead: `Content-MD5` on every PUT and part, and the
//! `x-amz-checksum-<algo>` header when an additional checksum is asked for. With an endpoint
//! URL, path-style addressing is the default (`http://host/bucket/key`).
//!
//! # Writes
//!
//! A body of at most [`S3Options::multipart_threshold`] bytes is one `PutObject`; a larger one
//! is a multipart upload of [`S3Options::part_size`] parts, [`S3Options::parts_in_flight`] at a
//! time, read from the body while earlier parts are in flight. Every part's ETag is checked
//! against its MD5, and the final ETag against the multipart ETag recomputed from the part
//! MD5s. A failed or cancelled upload is aborted, so no parts are left behind to be billed.
//!
//! # Reads
//!
//! A whole-object read whose size is known from a listing ([`GetOptions::size_hint`]) and at
//! least [`S3Options::get_parallel_threshold`] is split into ranged GETs of
//! [`S3Options::get_part_size`], [`S3Options::get_parts_in_flight`] at a time, each after the
//! first conditional on the first one's ETag (`If-Match`), so a concurrent overwrite is an
//! error, never a mix of two versions.
//!
//! # Listing
//!
//! `ListObjectsV2`, one page (at most 1,000 keys) in memory at a time, continued by token.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream as SdkByteStream;
use aws_sdk_s3::types::{
    ChecksumAlgorithm as SdkChecksumAlgorithm, ChecksumMode, ChecksumType,
    CompletedMultipartUpload, CompletedPart, Delete, MetadataDirective, ObjectIdentifier,
};
use aws_sdk_s3::Client;
use bytes::{Bytes, BytesMut};
use futures::stream::{self, BoxStream, StreamExt};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::error::{Error, ErrorKind, Op, Result};
use crate::integrity::{
    self, checksum_raw, composite_checksum, normalize_etag, Checksum, ChecksumAlgorithm, Hasher,
};
use crate::types::*;
use crate::{format_mtime, parse_mtime, Key, Store, MTIME_METADATA};

/// Sets the `checksum_<algo>` field of an SDK request or part builder.
macro_rules! with_checksum {
    ($builder:expr, $algorithm:expr, $value:expr) => {{
        let (b, v) = ($builder, $value);
        match $algorithm {
            ChecksumAlgorithm::Crc32 => b.checksum_crc32(v),
            ChecksumAlgorithm::Crc32c => b.checksum_crc32_c(v),
            ChecksumAlgorithm::Crc64Nvme => b.checksum_crc64_nvme(v),
            ChecksumAlgorithm::Sha1 => b.checksum_sha1(v),
            ChecksumAlgorithm::Sha256 => b.checksum_sha256(v),
        }
    }};
}

/// The additional checksums an SDK response carries (PutObject, CompleteMultipartUpload,
/// HeadObject and GetObject outputs share these getters).
macro_rules! response_checksums {
    ($out:expr) => {{
        let o = $out;
        [
            (ChecksumAlgorithm::Crc32, o.checksum_crc32()),
            (ChecksumAlgorithm::Crc32c, o.checksum_crc32_c()),
            (ChecksumAlgorithm::Crc64Nvme, o.checksum_crc64_nvme()),
            (ChecksumAlgorithm::Sha1, o.checksum_sha1()),
            (ChecksumAlgorithm::Sha256, o.checksum_sha256()),
        ]
    }};
}

/// Sets what every write of this store carries (PutObject and CreateMultipartUpload share
/// these setters): Content-Type, Cache-Control, the other headers, user metadata, tags,
/// storage class, ACL and encryption.
macro_rules! with_write_settings {
    ($builder:expr, $inner:expr, $opts:expr) => {{
        let (b, inner, o): (_, &Inner, &PutOptions) = ($builder, $inner, $opts);
        let (so, features) = (&inner.opts, inner.features());
        let h = &o.headers;
        let mut b = b
            .set_content_type(o.content_type.clone())
            .set_cache_control(o.cache_control.clone())
            .set_content_encoding(h.content_encoding.clone())
            .set_content_disposition(h.content_disposition.clone())
            .set_content_language(h.content_language.clone())
            .set_website_redirect_location(h.website_redirect.clone())
            .set_metadata(Some(sdk_metadata(o)));
        if let Some(e) = &h.expires {
            let t = aws_smithy_types::DateTime::from_str(
                e,
                aws_smithy_types::date_time::Format::HttpDate,
            )
            .map_err(|err| {
                Error::new(ErrorKind::InvalidConfig, Op::Put, e.clone())
                    .with_detail(format!("Expires is not an HTTP date: {err}"))
            })?;
            b = b.expires(t);
        }
        if let Some(t) = o
            .tags
            .as_ref()
            .filter(|t| !t.is_empty() && features.tagging)
        {
            b = b.tagging(settings::tagging_header(t));
        }
        if let Some(c) = &o.storage_class {
            b = b.storage_class(aws_sdk_s3::types::StorageClass::from(c.as_str()));
        }
        if let Some(a) = &so.acl {
            b = b.acl(aws_sdk_s3::types::ObjectCannedAcl::from(a.as_str()));
        }
        match &so.sse {
            Some(Sse::Aes256) => {
                b = b.server_side_encryption(aws_sdk_s3::types::ServerSideEncryption::Aes256)
            }
            Some(Sse::Kms { key_id }) => {
                b = b
                    .server_side_encryption(aws_sdk_s3::types::ServerSideEncryption::AwsKms)
                    .set_ssekms_key_id(key_id.clone())
            }
            None => {}
        }
        if let Some(k) = &so.sse_c {
            b = b
                .sse_customer_algorithm("AES256")
                .sse_customer_key(k.key_base64())
                .sse_customer_key_md5(k.key_md5_base64());
        }
        b
    }};
}

/// Sends the SSE-C key on a read or part upload (GetObject, HeadObject, UploadPart, …).
macro_rules! with_sse_c {
    ($builder:expr, $store_opts:expr) => {{
        let (b, so): (_, &S3Options) = ($builder, $store_opts);
        match &so.sse_c {
            Some(k) => b
                .sse_customer_algorithm("AES256")
                .sse_customer_key(k.key_base64())
                .sse_customer_key_md5(k.key_md5_base64()),
            None => b,
        }
    }};
}

const MIB: u64 = 1 << 20;
/// S3's limit on the number of parts of one upload.
const MAX_PARTS: u64 = 10_000;
/// S3's smallest part (but the last).
pub const MIN_PART_SIZE: u64 = 5 * MIB;
/// S3's largest single PUT or CopyObject.
const MAX_SINGLE: u64 = 5 * 1024 * MIB;

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

impl Default for S3Options {
    fn default() -> Self {
        S3Options {
            endpoint_url: None,
            region: None,
            profile: None,
            force_path_style: None,
            credentials: None,
            multipart_threshold: 8 * MIB,
            part_size: 8 * MIB,
            parts_in_flight: 4,
            get_parallel_threshold: 16 * MIB,
            get_part_size: 8 * MIB,
            get_parts_in_flight: 4,
            list_page_size: 1000,
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

/// An S3 bucket (and prefix) as a [`Store`]. See the module docs.
#[derive(Clone)]
pub struct S3Store {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    url: S3Url,
    opts: S3Options,
    /// How errors name the server: `` `http://127.0.0.1:3900` `` or `AWS S3`.
    endpoint: Arc<str>,
    throttle: Arc<crate::throttle::Throttle>,
    /// What the server implements: [`S3Options::features`], or what
    /// [`S3Store::detect_features`] found.
    features: std::sync::RwLock<ServerFeatures>,
}

impl Inner {
    fn features(&self) -> ServerFeatures {
        *self.features.read().expect("features lock")
    }
}

impl fmt::Debug for S3Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Store")
            .field("url", &self.inner.url)
            .field("endpoint_url", &self.inner.opts.endpoint_url)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for S3Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.inner.url, f)
    }
}

/// The kind of the request in flight, from `read_before_transmit` to `read_after_transmit`.
#[derive(Debug, Clone)]
struct SentKind(crate::meter::RequestKind);

impl aws_smithy_types::config_bag::Storable for SentKind {
    type Storer = aws_smithy_types::config_bag::StoreReplace<Self>;
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

/// Feeds a [`crate::meter::RequestMeter`] every request just before it is sent (each retry
/// too), and stops the ones it refuses.
#[derive(Debug)]
struct MeterInterceptor(Arc<crate::meter::RequestMeter>);

impl aws_sdk_s3::config::Intercept for MeterInterceptor {
    fn name(&self) -> &'static str {
        "larder-request-meter"
    }

    fn read_before_transmit(
        &self,
        ctx: &aws_sdk_s3::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _rc: &aws_sdk_s3::config::RuntimeComponents,
        cfg: &mut aws_sdk_s3::config::ConfigBag,
    ) -> std::result::Result<(), aws_sdk_s3::error::BoxError> {
        let req = ctx.request();
        let kind = crate::meter::RequestKind::classify(req.method(), req.uri());
        cfg.interceptor_state().store_put(SentKind(kind));
        let body = req
            .headers()
            .get("content-length")
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        self.0.admit(kind, body).map_err(|why| why.into())
    }

    fn read_after_transmit(
        &self,
        ctx: &aws_sdk_s3::config::interceptors::BeforeDeserializationInterceptorContextRef<'_>,
        _rc: &aws_sdk_s3::config::RuntimeComponents,
        cfg: &mut aws_sdk_s3::config::ConfigBag,
    ) -> std::result::Result<(), aws_sdk_s3::error::BoxError> {
        let resp = ctx.response();
        // Only a GET's body is data out (a HEAD's Content-Length is the object's size).
        let get = cfg
            .load::<SentKind>()
            .is_some_and(|k| k.0 == crate::meter::RequestKind::Get);
        if get && resp.status().is_success() {
            if let Some(n) = resp
                .headers()
                .get("content-length")
                .and_then(|v| v.parse::<u64>().ok())
            {
                self.0.downloaded(n);
            }
        }
        Ok(())
    }
}

/// Characters to escape in `x-amz-copy-source` (everything but unreserved characters and `/`).
const COPY_SOURCE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

impl S3Store {
    /// Connects to the bucket of `url` (no request is made until the first operation).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidConfig`] for a bad option.
    pub async fn new(url: S3Url, mut opts: S3Options) -> Result<Self> {
        let bad = |why: String| {
            Error::new(ErrorKind::InvalidConfig, Op::Open, url.to_string()).with_detail(why)
        };
        if opts.part_size < MIN_PART_SIZE {
            return Err(bad(format!(
                "part size {} is below S3's minimum of 5 MiB",
                opts.part_size
            )));
        }
        if opts.multipart_threshold > MAX_SINGLE {
            return Err(bad(
                "multipart threshold above S3's 5 GiB single-PUT limit".into()
            ));
        }
        if !(1..=1000).contains(&opts.list_page_size) {
            return Err(bad("the list page size is 1 to 1000".into()));
        }
        opts.parts_in_flight = opts.parts_in_flight.max(1);
        opts.get_parts_in_flight = opts.get_parts_in_flight.max(1);
        opts.get_part_size = opts.get_part_size.max(MIB);

        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        if let Some(p) = &opts.profile {
            loader = loader.profile_name(p);
        }
        if let Some(r) = &opts.region {
            loader = loader.region(aws_config::Region::new(r.clone()));
        }
        if let Some(e) = &opts.endpoint_url {
            url::Url::parse(e).map_err(|err| bad(format!("endpoint URL `{e}`: {err}")))?;
            loader = loader.endpoint_url(e);
        }
        if let Some(c) = &opts.credentials {
            loader = loader.credentials_provider(aws_sdk_s3::config::Credentials::new(
                c.access_key_id.clone(),
                c.secret_access_key.clone(),
                c.session_token.clone(),
                None,
                "larder",
            ));
        }
        let sdk = loader.load().await;
        let mut conf = aws_sdk_s3::config::Builder::from(&sdk)
            .request_checksum_calculation(
                aws_sdk_s3::config::RequestChecksumCalculation::WhenRequired,
            )
            .response_checksum_validation(
                aws_sdk_s3::config::ResponseChecksumValidation::WhenRequired,
            )
            .force_path_style(opts.force_path_style.unwrap_or(opts.endpoint_url.is_some()))
            .retry_config(
                aws_sdk_s3::config::retry::RetryConfig::standard()
                    .with_max_attempts(opts.max_attempts.max(1)),
            )
            .timeout_config(
                aws_sdk_s3::config::timeout::TimeoutConfig::builder()
                    .connect_timeout(opts.connect_timeout)
                    .read_timeout(opts.read_timeout)
                    .build(),
            )
            .stalled_stream_protection(
                aws_sdk_s3::config::StalledStreamProtectionConfig::enabled()
                    .grace_period(opts.idle_timeout.max(std::time::Duration::from_secs(1)))
                    .build(),
            );
        if sdk.region().is_none() {
            conf = conf.region(aws_config::Region::new("us-east-1"));
        }
        let throttle = opts
            .throttle
            .clone()
            .unwrap_or_else(|| crate::throttle::Throttle::new(1024));
        if opts.adaptive {
            let inner = sdk
                .http_client()
                .unwrap_or_else(crate::throttle::default_https_client);
            conf = conf.http_client(crate::throttle::ThrottledClient {
                inner,
                throttle: throttle.clone(),
            });
        }
        if let Some(m) = &opts.meter {
            conf = conf.interceptor(MeterInterceptor(m.clone()));
        }
        let endpoint = match &opts.endpoint_url {
            Some(e) => format!("`{e}`"),
            None => "AWS S3".to_owned(),
        }
        .into();
        let opts_features = opts.features;
        Ok(S3Store {
            inner: Arc::new(Inner {
                client: Client::from_conf(conf.build()),
                url,
                opts,
                endpoint,
                throttle,
                features: std::sync::RwLock::new(opts_features),
            }),
        })
    }

    /// Aborts the multipart uploads under this store's prefix that the journal says dead
    /// runs left and nobody resumed; returns how many. Without a journal, none.
    pub async fn abort_orphans(&self) -> u64 {
        let i = &self.inner;
        let Some(j) = &i.opts.journal else { return 0 };
        let mut n = 0;
        for (key, upload_id) in j.orphans(&i.url.bucket, &i.url.prefix) {
            let res = i
                .client
                .abort_multipart_upload()
                .bucket(&i.url.bucket)
                .key(&key)
                .upload_id(&upload_id)
                .send()
                .await;
            match res {
                Ok(_) => n += 1,
                Err(SdkError::ServiceError(e)) if e.err().code() == Some("NoSuchUpload") => {}
                Err(e) => {
                    tracing::warn!(key, upload_id, error = %aws_sdk_s3::error::DisplayErrorContext(&e), "could not abort a multipart upload a killed run left");
                    continue;
                }
            }
            j.finished(&i.url.bucket, &upload_id);
        }
        n
    }

    /// What adaptive concurrency saw and did (all zero when it is off or was never needed).
    pub fn throttle_stats(&self) -> crate::throttle::ThrottleStats {
        self.inner.throttle.stats()
    }

    /// The bucket and prefix.
    pub fn url(&self) -> &S3Url {
        &self.inner.url
    }

    /// Checks that the bucket exists and the credentials may use it (one `HeadBucket`), for a
    /// clear error before any work starts.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotFound`] for a missing bucket, [`ErrorKind::PermissionDenied`] for
    /// rejected credentials, [`ErrorKind::Transient`] for an unreachable server.
    pub async fn check(&self) -> Result<()> {
        self.check_bucket().await
    }

    /// Asks the server which of [`ServerFeatures`] it implements, with one request that
    /// writes nothing (GetObjectTagging of a key that does not exist: `NoSuchKey` from a
    /// server with tags, `NotImplemented` from one without, such as Garage), and uses the
    /// answer from then on. A server without object tags is taken to have neither versions
    /// nor conditional writes (Garage ignores `If-None-Match` on a PUT: trusting it would
    /// overwrite silently).
    ///
    /// # Errors
    ///
    /// When the server cannot be asked (unreachable, credentials rejected).
    pub async fn detect_features(&self) -> Result<ServerFeatures> {
        let i = &self.inner;
        let probe = self.full_key(".larder-feature-probe");
        let answer = i
            .client
            .get_object_tagging()
            .bucket(&i.url.bucket)
            .key(&probe)
            .send()
            .await;
        let found = match answer {
            Ok(_) => ServerFeatures::default(),
            Err(e) => {
                let e = map_sdk_error(
                    &i.endpoint,
                    e,
                    Op::Head,
                    self.location(".larder-feature-probe"),
                );
                match e.kind() {
                    ErrorKind::NotFound => ServerFeatures::default(),
                    // Garage: additional checksums, none of the rest.
                    ErrorKind::Unsupported => ServerFeatures {
                        checksums: true,
                        ..ServerFeatures::none()
                    },
                    _ => return Err(e),
                }
            }
        };
        // What the caller configured stays off where it was off.
        let configured = i.opts.features;
        let found = ServerFeatures {
            versioning: found.versioning && configured.versioning,
            tagging: found.tagging && configured.tagging,
            conditional_writes: found.conditional_writes && configured.conditional_writes,
            checksums: found.checksums && configured.checksums,
            part_numbers: i.features().part_numbers,
        };
        *i.features.write().expect("features lock") = found;
        Ok(found)
    }

    async fn check_bucket(&self) -> Result<()> {
        let i = &self.inner;
        i.client
            .head_bucket()
            .bucket(&i.url.bucket)
            .send()
            .await
            .map_err(|e| {
                let mut err =
                    map_sdk_error(&i.endpoint, e, Op::Open, format!("s3://{}", i.url.bucket));
                if err.kind() == ErrorKind::NotFound {
                    err = err.with_detail(format!("bucket `{}` does not exist", i.url.bucket));
                }
                err
            })?;
        Ok(())
    }

    /// The multipart uploads in progress under `prefix` (key, upload id): what an
    /// interrupted upload by another tool left behind, billed until aborted.
    ///
    /// # Errors
    ///
    /// As for a listing.
    pub async fn multipart_uploads(&self, prefix: &str) -> Result<Vec<(Key, String)>> {
        Ok(self
            .pending_uploads(prefix)
            .await?
            .into_iter()
            .map(|u| (u.key, u.upload_id))
            .collect())
    }

    /// Aborts one multipart upload (its parts are deleted; nothing is billed for it after).
    ///
    /// # Errors
    ///
    /// When the server refuses; an upload already gone is not an error.
    pub async fn abort_upload(&self, key: &Key, upload_id: &str) -> Result<()> {
        let i = &self.inner;
        match i
            .client
            .abort_multipart_upload()
            .bucket(&i.url.bucket)
            .key(self.full_key(key.as_str()))
            .upload_id(upload_id)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => {
                let err = map_sdk_error(&i.endpoint, e, Op::Delete, self.location(key.as_str()));
                if err.kind() == ErrorKind::NotFound {
                    Ok(())
                } else {
                    Err(err)
                }
            }
        }
    }

    /// The multipart uploads in progress under `prefix`, with when each was started.
    ///
    /// # Errors
    ///
    /// As for a listing.
    pub async fn pending_uploads(&self, prefix: &str) -> Result<Vec<PendingUpload>> {
        let i = &self.inner;
        let mut out = Vec::new();
        let (mut key_marker, mut id_marker) = (None::<String>, None::<String>);
        loop {
            let page = i
                .client
                .list_multipart_uploads()
                .bucket(&i.url.bucket)
                .prefix(self.full_key(prefix))
                .set_key_marker(key_marker.take())
                .set_upload_id_marker(id_marker.take())
                .send()
                .await
                .map_err(|e| {
                    map_sdk_error(&self.inner.endpoint, e, Op::List, self.location(prefix))
                })?;
            for u in page.uploads() {
                if let (Some(k), Some(id)) = (u.key().and_then(|k| self.strip(k)), u.upload_id()) {
                    out.push(PendingUpload {
                        key: k,
                        upload_id: id.to_owned(),
                        initiated: to_system_time(u.initiated()),
                    });
                }
            }
            if page.is_truncated() != Some(true) {
                return Ok(out);
            }
            key_marker = page.next_key_marker().map(str::to_owned);
            id_marker = page.next_upload_id_marker().map(str::to_owned);
            if key_marker.is_none() && id_marker.is_none() {
                return Ok(out);
            }
        }
    }

    /// Whether the ETags of what this store writes are MD5s: not with SSE-C or SSE-KMS.
    fn etags_are_md5(&self) -> bool {
        let o = &self.inner.opts;
        o.sse_c.is_none() && !matches!(o.sse, Some(Sse::Kms { .. }))
    }

    /// The conditional-write error a put with a condition fails with when the server does
    /// not implement them.
    fn check_condition_supported(&self, key: &Key, opts: &PutOptions) -> Result<()> {
        let features = self.inner.features();
        let missing = if opts.condition.is_some() && !features.conditional_writes {
            "conditional writes (If-None-Match / If-Match)"
        } else if opts.tags.as_ref().is_some_and(|t| !t.is_empty()) && !features.tagging {
            "object tags"
        } else {
            return Ok(());
        };
        Err(
            Error::new(ErrorKind::Unsupported, Op::Put, self.location(key.as_str()))
                .with_detail(format!("this server does not implement {missing}")),
        )
    }

    fn full_key(&self, key: &str) -> String {
        format!("{}{}", self.inner.url.prefix, key)
    }

    fn strip(&self, full: &str) -> Option<Key> {
        full.strip_prefix(&self.inner.url.prefix)
            .and_then(|k| Key::new(k).ok())
    }

    async fn put_single(&self, key: &Key, data: Bytes, opts: &PutOptions) -> Result<PutResult> {
        let i = &self.inner;
        let loc = self.location(key.as_str());
        let mut hasher = Hasher::new();
        if let Some(a) = opts.checksum {
            hasher = hasher.with_checksum(a);
        }
        hasher.update(&data);
        let digests = hasher.finish();
        // Built afresh for each try (a PutObject request with its body cannot be cloned).
        let build = |if_match: Option<String>| -> Result<_> {
            let req = i
                .client
                .put_object()
                .bucket(&i.url.bucket)
                .key(self.full_key(key.as_str()))
                .content_length(data.len() as i64)
                .content_md5(digests.md5_base64().expect("md5 computed"))
                .set_if_match(if_match);
            let mut req = with_write_settings!(req, i, opts);
            if let Some(WriteCondition::IfNoneMatch) = &opts.condition {
                req = req.if_none_match("*");
            }
            if let Some(a) = opts.checksum {
                let c = digests.checksum(a).expect("computed above").value.clone();
                req = with_checksum!(req, a, c);
            }
            Ok(req.body(SdkByteStream::from(data.clone())))
        };
        let send =
            |req: Result<aws_sdk_s3::operation::put_object::builders::PutObjectFluentBuilder>| {
                let loc = loc.clone();
                async move {
                    req?.send()
                        .await
                        .map_err(|e| map_sdk_error(&self.inner.endpoint, e, Op::Put, loc))
                }
            };
        let out = match &opts.condition {
            Some(WriteCondition::IfMatch(e)) => {
                let mut values = if_match_values(e).into_iter();
                let mut res = send(build(values.next())).await;
                for alt in values {
                    if matches!(&res, Err(err) if err.kind() == ErrorKind::Conflict) {
                        res = send(build(Some(alt))).await;
                    }
                }
                res?
            }
            _ => send(build(None)).await?,
        };
        let md5 = digests.md5_hex().expect("md5 computed");
        let etag = match out.e_tag().map(normalize_etag).filter(|e| !e.is_empty()) {
            Some(e) => Some(e),
            None => Some(self.confirm_stored(key, &loc, digests.size, &md5).await?),
        };
        // With SSE-C or SSE-KMS the ETag is not the MD5; the server checked Content-MD5.
        if self.etags_are_md5() {
            check_etag(&loc, Op::Put, etag.as_deref(), &md5)?;
        }
        let checksum = opts
            .checksum
            .and_then(|a| checksum_of(Some(a), response_checksums!(&out)));
        if let (Some(a), Some(got)) = (opts.checksum, &checksum) {
            check_checksum(&loc, Op::Put, got, digests.checksum(a).expect("computed"))?;
        }
        Ok(PutResult {
            size: digests.size,
            etag,
            checksum,
            digests: Some(digests),
            version_id: out.version_id().map(str::to_owned),
        })
    }

    /// A write the server acknowledged without an ETag is not taken on trust: one HEAD must
    /// show the object with the size and the ETag (`want`) of what was sent. Anything else is
    /// an integrity error naming the key, never a silent success. Returns the ETag seen.
    async fn confirm_stored(&self, key: &Key, loc: &str, size: u64, want: &str) -> Result<String> {
        let unverified = |why: String| {
            Error::new(ErrorKind::Integrity, Op::Put, loc)
                .with_detail(format!("the server answered without an ETag, and {why}"))
        };
        match self.head(key).await? {
            None => Err(unverified("does not have the object".to_owned())),
            Some(m) if m.size != size => Err(unverified(format!(
                "holds {} bytes where {size} were sent",
                m.size
            ))),
            Some(ObjectMeta { etag: None, .. }) => Err(unverified(
                "a HEAD shows none either: the write cannot be verified".to_owned(),
            )),
            Some(ObjectMeta { etag: Some(e), .. }) if e != want && looks_like_md5_etag(&e) => {
                Err(unverified(format!(
                    "the object's ETag `{e}` is not the MD5 of what was sent `{want}`"
                )))
            }
            Some(ObjectMeta { etag: Some(e), .. }) => Ok(e),
        }
    }

    async fn get_range(
        &self,
        key: &Key,
        range: Option<String>,
        opts: &GetOptions,
        if_match: Option<String>,
    ) -> Result<aws_sdk_s3::operation::get_object::GetObjectOutput> {
        let i = &self.inner;
        let mut req = i
            .client
            .get_object()
            .bucket(&i.url.bucket)
            .key(self.full_key(key.as_str()))
            .set_range(range)
            .set_if_match(if_match.or_else(|| opts.if_match.clone()))
            .set_if_none_match(
                opts.if_none_match
                    .as_ref()
                    .map(|e| format!("\"{}\"", normalize_etag(e))),
            )
            .set_version_id(opts.version_id.clone());
        req = with_sse_c!(req, &i.opts);
        if opts.checksum {
            req = req.checksum_mode(ChecksumMode::Enabled);
        }
        req.send().await.map_err(|e| {
            map_sdk_error(
                &self.inner.endpoint,
                e,
                Op::Get,
                self.location(key.as_str()),
            )
        })
    }
}

/// A body that was declared `declared` bytes long (a file's size when opened) must be that
/// long; else the source changed while being read and must not be committed.
fn check_declared_size(loc: &str, declared: Option<u64>, read: u64) -> Result<()> {
    match declared {
        Some(want) if want != read => Err(Error::new(ErrorKind::Integrity, Op::Put, loc)
            .with_detail(format!(
                "the body was {want} bytes long when opened but {read} bytes were read; nothing was written"
            ))),
        _ => Ok(()),
    }
}

fn base64_of(raw: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(raw)
}

/// The aborts running in the background, so a process can wait for them before it exits
/// (a runtime shutting down would cancel them half-way).
fn background() -> &'static tokio_util::task::TaskTracker {
    static TRACKER: std::sync::OnceLock<tokio_util::task::TaskTracker> = std::sync::OnceLock::new();
    TRACKER.get_or_init(tokio_util::task::TaskTracker::new)
}

/// Waits, at most `timeout`, for the multipart-upload aborts still running in the background
/// (after a failed or cancelled put). A program calls it before its runtime shuts down, so
/// no upload is left behind to be billed. Returns whether all finished.
pub async fn finish_background_aborts(timeout: std::time::Duration) -> bool {
    let t = background();
    t.close();
    let done = tokio::time::timeout(timeout, t.wait()).await.is_ok();
    t.reopen();
    done
}

fn sdk_algorithm(a: ChecksumAlgorithm) -> SdkChecksumAlgorithm {
    match a {
        ChecksumAlgorithm::Crc32 => SdkChecksumAlgorithm::Crc32,
        ChecksumAlgorithm::Crc32c => SdkChecksumAlgorithm::Crc32C,
        ChecksumAlgorithm::Crc64Nvme => SdkChecksumAlgorithm::Crc64Nvme,
        ChecksumAlgorithm::Sha1 => SdkChecksumAlgorithm::Sha1,
        ChecksumAlgorithm::Sha256 => SdkChecksumAlgorithm::Sha256,
    }
}

fn sdk_metadata(opts: &PutOptions) -> HashMap<String, String> {
    let mut m: HashMap<String, String> = opts
        .metadata
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
        .collect();
    if let Some(t) = opts.mtime {
        m.insert(MTIME_METADATA.to_owned(), format_mtime(t));
    }
    m
}

/// The checksum of `wanted` (or, with `None`, the first present) among a response's.
fn checksum_of(
    wanted: Option<ChecksumAlgorithm>,
    present: [(ChecksumAlgorithm, Option<&str>); 5],
) -> Option<Checksum> {
    present
        .into_iter()
        .filter(|(a, _)| wanted.is_none_or(|w| w == *a))
        .find_map(|(algorithm, v)| {
            v.map(|v| Checksum {
                algorithm,
                value: v.to_owned(),
            })
        })
}

fn check_etag(loc: &str, op: Op, got: Option<&str>, want: &str) -> Result<()> {
    match got {
        Some(g) if g == want => Ok(()),
        // A server whose ETags are not MD5-based (SSE-KMS, some gateways) answers with a
        // value of another shape; only a well-formed MD5 ETag that differs is a mismatch.
        Some(g) if !looks_like_md5_etag(g) => Ok(()),
        None => Ok(()),
        Some(g) => Err(
            Error::new(ErrorKind::Integrity, op, loc).with_detail(format!(
                "the server's ETag `{g}` does not match the MD5 of the bytes sent `{want}`"
            )),
        ),
    }
}

/// The If-Match values to try, in order: the quoted ETag (RFC 9110, AWS), then the bare one
/// (radosgw compares If-Match on writes with the unquoted ETag and answers 412 to the
/// quoted form). Only the same ETag is ever sent, so the second try cannot match another
/// version than the first would have.
pub(super) fn if_match_values(etag: &str) -> Vec<String> {
    let bare = etag.trim_matches('"');
    vec![format!("\"{bare}\""), bare.to_owned()]
}

fn looks_like_md5_etag(e: &str) -> bool {
    let (hex, parts) = e.split_once('-').unwrap_or((e, "1"));
    hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()) && parts.parse::<u32>().is_ok()
}

fn check_checksum(loc: &str, op: Op, got: &Checksum, want: &Checksum) -> Result<()> {
    if got.value == want.value {
        Ok(())
    } else {
        Err(
            Error::new(ErrorKind::Integrity, op, loc).with_detail(format!(
                "the server's {} checksum `{}` does not match the bytes sent `{}`",
                got.algorithm, got.value, want.value
            )),
        )
    }
}

fn to_system_time(t: Option<&aws_smithy_types::DateTime>) -> Option<SystemTime> {
    t.and_then(|d| SystemTime::try_from(*d).ok())
}

/// Splits user metadata into larder's mtime and the rest.
fn split_metadata(
    m: Option<&HashMap<String, String>>,
) -> (BTreeMap<String, String>, Option<SystemTime>) {
    let mut out = BTreeMap::new();
    let mut mtime = None;
    for (k, v) in m.into_iter().flatten() {
        if k.eq_ignore_ascii_case(MTIME_METADATA) {
            mtime = parse_mtime(v);
        } else {
            out.insert(k.to_ascii_lowercase(), v.clone());
        }
    }
    // Other tools' recorded mtimes (rclone, s3cmd, s5cmd, mc) when larder's is absent; their
    // entries stay in the user metadata, so they are carried as they were.
    let mtime = mtime.or_else(|| crate::foreign_mtime(|k| out.get(k).map(String::as_str)));
    (out, mtime)
}

/// Builds [`ObjectMeta`] from a HeadObject or GetObject output (they share these getters).
macro_rules! object_meta {
    ($out:expr, $key:expr, $size:expr) => {{
        let out = $out;
        let (metadata, mtime) = split_metadata(out.metadata());
        ObjectMeta {
            key: $key,
            size: $size,
            last_modified: to_system_time(out.last_modified()),
            etag: out.e_tag().map(normalize_etag),
            content_type: out.content_type().map(str::to_owned),
            cache_control: out.cache_control().map(str::to_owned),
            metadata,
            mtime,
            checksum: checksum_of(None, response_checksums!(out)),
            storage_class: out.storage_class().map(|s| s.as_str().to_owned()),
            headers: Headers {
                content_encoding: out.content_encoding().map(str::to_owned),
                content_disposition: out.content_disposition().map(str::to_owned),
                content_language: out.content_language().map(str::to_owned),
                expires: out.expires_string().map(str::to_owned),
                website_redirect: out.website_redirect_location().map(str::to_owned),
            },
            tag_count: None,
        }
    }};
}

use crate::key::decode_url_key as decode_listed_key;

/// Parts larger than this are not read as aligned ranges (a few are held in memory at once).
const MAX_ALIGNED_PART: u64 = 16 * MIB;

/// Reads a range's body whole, checking its length.
async fn collect_range(mut body: ByteStream, start: u64, len: u64, loc: &str) -> Result<Bytes> {
    let mut buf = BytesMut::with_capacity(len as usize);
    while let Some(chunk) = body.next().await {
        buf.extend_from_slice(&chunk?);
    }
    if buf.len() as u64 != len {
        return Err(
            Error::new(ErrorKind::Integrity, Op::Get, loc).with_detail(format!(
                "range {start}..{} returned {} bytes",
                start + len,
                buf.len()
            )),
        );
    }
    Ok(buf.freeze())
}

/// Hashes one part on the blocking pool (the parts in flight hash on as many cores) and
/// records its MD5.
async fn hash_part(buf: Bytes, index: u64, md5s: &PartMd5s) -> Result<Bytes> {
    let (b, m) = (buf.clone(), md5s.clone());
    tokio::task::spawn_blocking(move || m.insert(index, integrity::md5(&b)))
        .await
        .map_err(|e| Error::new(ErrorKind::Other, Op::Get, "part hash").with_source(e))?;
    Ok(buf)
}

/// Parses `bytes START-END/TOTAL`.
fn parse_content_range(s: &str) -> Option<(u64, u64, u64)> {
    let s = s.trim().strip_prefix("bytes ")?;
    let (range, total) = s.split_once('/')?;
    let (a, b) = range.split_once('-')?;
    Some((a.parse().ok()?, b.parse().ok()?, total.parse().ok()?))
}

fn body_stream(body: SdkByteStream, loc: String) -> ByteStream {
    stream::unfold(Some(body), move |body| {
        let loc = loc.clone();
        async move {
            let mut body = body?;
            match body.try_next().await {
                Ok(Some(b)) => Some((Ok(b), Some(body))),
                Ok(None) => None,
                Err(e) => {
                    let cause = root_cause(&e);
                    let detail = if cause.contains("throughput") {
                        // The SDK's stalled-stream protection (S3Options::idle_timeout).
                        format!("the body stalled: no byte arrived within the idle timeout (timed out; {cause})")
                    } else {
                        format!("the connection failed while reading the body: {cause}")
                    };
                    Some((
                        Err(Error::new(ErrorKind::Transient, Op::Get, loc)
                            .with_detail(detail)
                            .with_source(e)),
                        None,
                    ))
                }
            }
        }
    })
    .boxed()
}

#[async_trait]
impl Store for S3Store {
    fn list(&self, prefix: &str) -> BoxStream<'static, Result<Entry>> {
        let this = self.clone();
        let full_prefix = self.full_key(prefix);
        // State: None = finished; Some(token) = fetch the page after `token` (None: first).
        stream::unfold(Some(None::<String>), move |state| {
            let this = this.clone();
            let full_prefix = full_prefix.clone();
            async move {
                let token = state?;
                let i = &this.inner;
                let out = i
                    .client
                    .list_objects_v2()
                    .bucket(&i.url.bucket)
                    .prefix(&full_prefix)
                    .max_keys(i.opts.list_page_size)
                    // Keys with characters XML 1.0 cannot carry (control characters) would
                    // make the whole page unparsable: have them URL-encoded, decoded below.
                    .encoding_type(aws_sdk_s3::types::EncodingType::Url)
                    .set_continuation_token(token)
                    .send()
                    .await;
                let out = match out {
                    Ok(o) => o,
                    Err(e) => {
                        let mut err =
                            map_sdk_error(&this.inner.endpoint, e, Op::List, this.location(""));
                        if err.kind() == ErrorKind::NotFound {
                            err = err
                                .with_detail(format!("bucket `{}` does not exist", i.url.bucket));
                        }
                        return Some((stream::iter(vec![Err(err)]), None));
                    }
                };
                let entries: Vec<Result<Entry>> = out
                    .contents()
                    .iter()
                    .filter_map(|o| {
                        let raw = o.key()?;
                        let Some(full) = decode_listed_key(raw) else {
                            return Some(Err(Error::new(
                                ErrorKind::InvalidKey,
                                Op::List,
                                this.location(""),
                            )
                            .with_detail(format!(
                                "the server listed a key that is not valid URL-encoded UTF-8: `{}`",
                                raw.escape_debug()
                            ))));
                        };
                        let key = this.strip(&full)?;
                        Some(Ok(Entry {
                            key,
                            size: o.size().unwrap_or(0).max(0) as u64,
                            last_modified: to_system_time(o.last_modified()),
                            etag: o.e_tag().map(normalize_etag),
                            storage_class: o.storage_class().map(|s| s.as_str().to_owned()),
                        }))
                    })
                    .collect();
                let next = match (out.is_truncated(), out.next_continuation_token()) {
                    (Some(true), Some(t)) => Some(Some(t.to_owned())),
                    _ => None,
                };
                Some((stream::iter(entries), next))
            }
        })
        .flatten()
        .boxed()
    }

    async fn head(&self, key: &Key) -> Result<Option<ObjectMeta>> {
        self.head_object(key, None).await
    }

    async fn head_version(&self, key: &Key, version_id: &str) -> Result<Option<ObjectMeta>> {
        self.head_object(key, Some(version_id)).await
    }

    async fn version_tags(&self, key: &Key, version_id: &str) -> Result<Option<Tags>> {
        self.object_tags_of(key, Some(version_id)).await
    }

    async fn version_part_size(&self, key: &Key, version_id: &str) -> Result<Option<u64>> {
        self.part_size_of(key, Some(version_id)).await
    }

    async fn get(&self, key: &Key, opts: GetOptions) -> Result<GetResult> {
        let i = &self.inner;
        let loc = self.location(key.as_str());
        let parallel = opts.range.is_none()
            && opts
                .size_hint
                .is_some_and(|s| s >= i.opts.get_parallel_threshold);
        // Ranges aligned to the object's parts, each hashed on its own, when asked for and
        // the parts are small enough to hold a few in memory.
        let aligned = opts
            .part_md5s
            .filter(|p| parallel && (MIB..=MAX_ALIGNED_PART).contains(p));
        let step = aligned.unwrap_or(i.opts.get_part_size);
        let header = match &opts.range {
            Some(GetRange::Bounded(r)) if r.start >= r.end => {
                return Err(Error::new(ErrorKind::InvalidRange, Op::Get, loc)
                    .with_detail(format!("range {} is empty", GetRange::Bounded(r.clone()))))
            }
            Some(GetRange::Bounded(r)) => Some(format!("bytes={}-{}", r.start, r.end - 1)),
            Some(GetRange::From(s)) => Some(format!("bytes={s}-")),
            None if parallel => Some(format!("bytes=0-{}", step - 1)),
            None => None,
        };
        let out = self.get_range(key, header, &opts, None).await?;
        let (range, total) = match out.content_range().and_then(parse_content_range) {
            Some((a, b, total)) => (a..b + 1, total),
            None => {
                let n = out.content_length().unwrap_or(0).max(0) as u64;
                (0..n, n)
            }
        };
        let mut meta = object_meta!(&out, key.clone(), total);
        if self.inner.features().tagging {
            meta.tag_count = Some(out.tag_count().unwrap_or(0).max(0) as u64);
        }
        if !opts.checksum {
            meta.checksum = None;
        } else if parallel && range.end < total {
            // A ranged response carries no whole-object checksum: ask for it once, pinned to
            // the version being read.
            let head = self.head(key).await?;
            meta.checksum = match head {
                Some(h) if h.etag == meta.etag => h.checksum,
                _ => {
                    return Err(Error::new(ErrorKind::Conflict, Op::Get, loc)
                        .with_detail("the object changed while being read"))
                }
            };
        }
        let md5s = aligned.map(|_| PartMd5s::default());
        let first_body = body_stream(out.body, loc.clone());
        let first: ByteStream = match &md5s {
            // Part 0 is read and hashed like the others, so no part is hashed serially.
            Some(m) => {
                let (m, loc, len) = (m.clone(), loc.clone(), range.end - range.start);
                stream::once(async move {
                    let buf = collect_range(first_body, 0, len, &loc).await?;
                    hash_part(buf, 0, &m).await
                })
                .boxed()
            }
            None => first_body,
        };
        if !parallel || range.end >= total {
            let range = if parallel { 0..total } else { range };
            return Ok(GetResult {
                meta,
                range,
                body: first,
                part_md5s: md5s,
            });
        }
        // Parallel ranged GETs for the rest, pinned to the first response's ETag.
        let etag = meta.etag.clone();
        let version_id = opts.version_id.clone();
        let ranges: Vec<(u64, u64)> = (range.end..total)
            .step_by(step as usize)
            .map(|s| (s, (s + step).min(total)))
            .collect();
        let this = self.clone();
        let key2 = key.clone();
        let md5s2 = md5s.clone();
        let rest = stream::iter(ranges)
            .map(move |(s, e)| {
                let this = this.clone();
                let key = key2.clone();
                let etag = etag.clone();
                let md5s = md5s2.clone();
                let version_id = version_id.clone();
                tokio::spawn(async move {
                    let loc = this.location(key.as_str());
                    let out = this
                        .get_range(
                            &key,
                            Some(format!("bytes={}-{}", s, e - 1)),
                            &GetOptions {
                                version_id,
                                ..GetOptions::default()
                            },
                            etag.map(|e| format!("\"{e}\"")),
                        )
                        .await?;
                    let buf =
                        collect_range(body_stream(out.body, loc.clone()), s, e - s, &loc).await?;
                    match &md5s {
                        Some(m) => hash_part(buf, s / step, m).await,
                        None => Ok(buf),
                    }
                })
            })
            .buffered(i.opts.get_parts_in_flight)
            .map(move |joined| match joined {
                Ok(r) => r,
                Err(e) => Err(Error::new(ErrorKind::Other, Op::Get, "parallel get").with_source(e)),
            });
        Ok(GetResult {
            meta,
            range: 0..total,
            body: first.chain(rest).boxed(),
            part_md5s: md5s,
        })
    }

    async fn put(&self, key: &Key, body: Body, mut opts: PutOptions) -> Result<PutResult> {
        self.check_condition_supported(key, &opts)?;
        if !self.inner.features().checksums {
            // The server would ignore them (radosgw before Reef): nothing to send or check.
            opts.checksum = None;
        }
        let threshold = self.inner.opts.multipart_threshold;
        let size_hint = body.size();
        let mut stream = body.into_stream();
        let mut buf = BytesMut::new();
        let mut eof = false;
        // Read up to one byte past the threshold to learn which kind of upload this is.
        while (buf.len() as u64) <= threshold {
            match stream.next().await {
                Some(chunk) => buf.extend_from_slice(&chunk?),
                None => {
                    eof = true;
                    break;
                }
            }
        }
        if eof {
            check_declared_size(&self.location(key.as_str()), size_hint, buf.len() as u64)?;
            self.put_single(key, buf.freeze(), &opts).await
        } else {
            self.put_multipart(key, buf, stream, size_hint, &opts).await
        }
    }

    async fn delete(&self, keys: &[Key]) -> Result<DeleteReport> {
        let i = &self.inner;
        let mut report = DeleteReport::default();
        for batch in keys.chunks(1000) {
            let objects = batch
                .iter()
                .map(|k| {
                    ObjectIdentifier::builder()
                        .key(self.full_key(k.as_str()))
                        .build()
                        .expect("key is set")
                })
                .collect();
            let delete = Delete::builder()
                .set_objects(Some(objects))
                .quiet(true)
                .build()
                .expect("objects are set");
            let out = i
                .client
                .delete_objects()
                .bucket(&i.url.bucket)
                .delete(delete)
                .send()
                .await
                .map_err(|e| {
                    map_sdk_error(&self.inner.endpoint, e, Op::Delete, self.location(""))
                })?;
            for e in out.errors() {
                let Some(key) = e.key().and_then(|k| self.strip(k)) else {
                    continue;
                };
                let code = e.code().unwrap_or("");
                let err = Error::new(
                    kind_of_code(code, 0),
                    Op::Delete,
                    self.location(key.as_str()),
                )
                .with_detail(format!("{code}: {}", e.message().unwrap_or("")));
                report.failed.push((key, err));
            }
        }
        Ok(report)
    }

    async fn copy(&self, from: &Key, to: &Key, opts: CopyOptions) -> Result<PutResult> {
        self.copy_object(from, to, opts).await
    }

    async fn tags(&self, key: &Key) -> Result<Option<Tags>> {
        self.object_tags(key).await
    }

    fn list_versions(&self, prefix: &str) -> BoxStream<'static, Result<Version>> {
        self.versions_stream(prefix)
    }

    async fn first_part_size(&self, key: &Key) -> Result<Option<u64>> {
        self.part_size_of(key, None).await
    }

    fn identity(&self) -> String {
        format!(
            "{} at {}",
            self.location(""),
            self.inner.opts.endpoint_url.as_deref().unwrap_or("aws")
        )
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            metadata: true,
            checksums: self.inner.features().checksums,
            etag_md5: self.etags_are_md5(),
            multipart: true,
            file_and_prefix: true,
            part_lookup: self.inner.features().part_numbers,
            versioning: self.inner.features().versioning,
            tagging: self.inner.features().tagging,
            conditional_writes: self.inner.features().conditional_writes,
            ..Capabilities::default()
        }
    }

    fn location(&self, key: &str) -> String {
        format!(
            "s3://{}/{}{}",
            self.inner.url.bucket, self.inner.url.prefix, key
        )
    }
}

// After the macros they use (they are textually scoped).
mod copy;
mod errors;
mod multipart;
pub mod settings;
mod versions;
use errors::{kind_of_code, map_sdk_error, root_cause};
use multipart::AbortGuard;
pub use settings::{ServerFeatures, Sse, SseCustomerKey};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::integrity::md5_hex;

    #[test]
    fn listed_keys_are_url_decoded_once() {
        for (raw, key) in [
            ("a%20b", "a b"),
            ("a+b", "a b"),
            ("a%2Bb", "a+b"),
            ("100%25", "100%"),
            ("ctl-%01.txt", "ctl-\u{1}.txt"),
            ("esc-%1B", "esc-\u{1b}"),
            ("caf%C3%A9", "café"),
            ("%252B", "%2B"),
        ] {
            assert_eq!(decode_listed_key(raw).as_deref(), Some(key), "{raw}");
        }
        assert_eq!(decode_listed_key("bad-%FF"), None, "not UTF-8");
    }

    #[test]
    fn parse_urls() {
        let u = S3Url::parse("s3://my-bucket/photos/2024").unwrap();
        assert_eq!(u.bucket, "my-bucket");
        assert_eq!(u.prefix, "photos/2024/");
        assert_eq!(S3Url::parse("s3://b.c.d").unwrap().prefix, "");
        assert_eq!(S3Url::parse("s3://bkt/").unwrap().prefix, "");
        for bad in [
            "http://b/x",
            "s3://",
            "s3:///x",
            "s3://B_ad/x",
            "s3://ab/x",
            "b/x",
        ] {
            let e = S3Url::parse(bad).expect_err(bad);
            assert_eq!(e.kind(), ErrorKind::InvalidConfig, "{bad}");
            assert!(e.to_string().contains(bad), "{e}");
        }
    }

    #[test]
    fn content_range() {
        assert_eq!(parse_content_range("bytes 0-9/100"), Some((0, 9, 100)));
        assert_eq!(parse_content_range("bytes */100"), None);
    }

    #[test]
    fn etag_shapes() {
        assert!(looks_like_md5_etag("5eb63bbbe01eeed093cb22bb8f5acdc3"));
        assert!(looks_like_md5_etag("5eb63bbbe01eeed093cb22bb8f5acdc3-12"));
        assert!(!looks_like_md5_etag("garage-etag"));
        assert!(check_etag("x", Op::Put, Some(&md5_hex(b"a")), &md5_hex(b"a")).is_ok());
        let e = check_etag("x", Op::Put, Some(&md5_hex(b"a")), &md5_hex(b"b")).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Integrity);
    }

    #[test]
    fn error_codes() {
        assert_eq!(kind_of_code("NoSuchBucket", 404), ErrorKind::NotFound);
        assert_eq!(
            kind_of_code("SignatureDoesNotMatch", 403),
            ErrorKind::PermissionDenied
        );
        assert_eq!(kind_of_code("", 503), ErrorKind::Transient);
        assert_eq!(kind_of_code("SlowDown", 503), ErrorKind::Transient);
    }
}
