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
    TaggingDirective,
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
    /// Whether a copy's answer lacking a version id means the bucket keeps none (learned
    /// once; radosgw omits it from CopyObject answers even on a versioned bucket).
    copy_versions: std::sync::OnceLock<bool>,
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
        if opts.anonymous {
            loader = loader.no_credentials();
        } else if let Some(c) = &opts.credentials {
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
            // Path-style whenever an endpoint is in force: given, or from the environment
            // (AWS_ENDPOINT_URL) or the profile (`endpoint_url`).
            .force_path_style(
                opts.force_path_style
                    .unwrap_or(opts.endpoint_url.is_some() || sdk.endpoint_url().is_some()),
            )
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
        if opts.request_payer {
            conf = conf.interceptor(intercept::RequestPayer);
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
                copy_versions: std::sync::OnceLock::new(),
            }),
        })
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

    /// Whether the ETags of what this store writes are MD5s: not with SSE-C or SSE-KMS.
    fn etags_are_md5(&self) -> bool {
        let o = &self.inner.opts;
        // A directory bucket's ETags are not MD5s either.
        o.sse_c.is_none()
            && !matches!(o.sse, Some(Sse::Kms { .. }))
            && !list::is_directory_bucket(&self.inner.url.bucket)
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
            encryption: out
                .server_side_encryption()
                .map(|s| s.as_str().to_owned())
                .or_else(|| out.sse_customer_algorithm().map(|_| SSE_C.to_owned())),
        }
    }};
}

#[async_trait]
impl Store for S3Store {
    fn list(&self, prefix: &str) -> BoxStream<'static, Result<Entry>> {
        self.list_objects(prefix)
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
        self.get_object(key, opts).await
    }

    async fn put(&self, key: &Key, body: Body, opts: PutOptions) -> Result<PutResult> {
        self.put_object(key, body, opts).await
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

    fn copy_source(&self, key: &Key) -> Option<CopySource> {
        self.copy_source_of(key)
    }

    fn can_copy_from(&self, source: &CopySource) -> bool {
        self.reaches(source)
    }

    async fn put_copy(&self, to: &Key, from: &CopyFrom, opts: PutOptions) -> Result<PutResult> {
        self.copy_in(to, from, opts).await
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

    async fn first_part(&self, key: &Key) -> Result<FirstPart> {
        self.part_lookup(key, None, true).await
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
mod get;
mod intercept;
mod list;
mod multipart;
mod options;
mod pending;
mod put;
pub mod settings;
mod versions;
use errors::{kind_of_code, map_sdk_error, root_cause};
use intercept::MeterInterceptor;
use list::decode_listed_key;
use multipart::AbortGuard;
pub use options::{PendingUpload, S3Options, S3Url, StaticCredentials};
use put::{check_declared_size, send_conditioned};
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
