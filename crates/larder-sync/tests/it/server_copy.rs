//! Server-side copy, S3 → S3 on one Garage with the same credentials: no byte passes
//! through larder (no GET, no body sent), the copies' ETags are the sources' (a multipart
//! object copied along its parts), metadata travels, and a re-run copies nothing.

use std::sync::Arc;

use larder_store::conformance::pattern;
use larder_store::meter::{Limits, RequestMeter};
use larder_store::{Body, Headers, PutOptions, S3Options, Store};
use larder_sync::{sync, ServerSideCopy};

use crate::*;

const MIB: usize = 1 << 20;

async fn metered(prefix: &str) -> (Arc<larder_store::S3Store>, Arc<RequestMeter>) {
    let meter = Arc::new(RequestMeter::new(Limits::default()));
    let opts = S3Options::default()
        .with_multipart_threshold(5 << 20)
        .with_part_size(5 << 20)
        .with_meter(Some(meter.clone()));
    (
        Arc::new(larder_testutil::s3_store(opts, Some(prefix)).await),
        meter,
    )
}

#[tokio::test]
async fn s3_copies_on_one_server_move_no_bytes_and_keep_etags_and_metadata() {
    let run = larder_testutil::unique("sscopy");
    let (src, _) = metered(&format!("{run}/src")).await;
    let typed = PutOptions::default()
        .with_content_type(Some("text/markdown".into()))
        .with_metadata([("owner".to_owned(), "ann".to_owned())].into())
        .with_headers(Headers {
            content_disposition: Some("attachment".into()),
            ..Default::default()
        })
        .with_mtime(Some(t(1)));
    src.put(&key("doc.md"), Body::from_bytes(&b"# notes\n"[..]), typed)
        .await
        .unwrap();
    put(src.as_ref(), "empty", Bytes::new(), t(2)).await;
    // Three parts of 5 MiB (the last shorter): copied along them, its ETag is the source's.
    put(src.as_ref(), "big.bin", pattern(12 * MIB + 5, 7), t(3)).await;

    let (dst, meter) = metered(&format!("{run}/dst")).await;
    let r = sync(src.clone(), dst.clone(), opts()).await.unwrap();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(
        (r.transferred, r.server_side_copies, r.etag_verified),
        (3, 3, 3)
    );
    let sent = meter.requests();
    assert_eq!(sent.get, 0, "no object was read through larder: {sent:?}");
    assert_eq!(meter.download_bytes(), 0);
    // Request bodies: only the part list of the one CompleteMultipartUpload.
    assert!(meter.upload_bytes() < 1024, "{}", meter.upload_bytes());

    let (src_list, dst_list) = (listing(src.as_ref()).await, listing(dst.as_ref()).await);
    assert_eq!(src_list, dst_list, "same keys, sizes and ETags");
    assert!(
        dst_list
            .iter()
            .any(|(k, _, e)| k == "big.bin" && e.ends_with("-3")),
        "{dst_list:?}"
    );
    assert_eq!(contents(src.as_ref()).await, contents(dst.as_ref()).await);
    let m = dst.head(&key("doc.md")).await.unwrap().unwrap();
    assert_eq!(m.content_type.as_deref(), Some("text/markdown"));
    assert_eq!(m.metadata.get("owner").map(String::as_str), Some("ann"));
    assert_eq!(m.headers.content_disposition.as_deref(), Some("attachment"));
    assert_eq!(m.mtime, Some(t(1)), "the source's mtime is recorded");

    // The copies are up to date: nothing to do, no request but the listings.
    let before = meter.requests();
    let again = sync(src.clone(), dst.clone(), opts()).await.unwrap();
    assert_eq!((again.transferred, again.skipped), (0, 3));
    let after = meter.requests();
    assert_eq!(after.put - before.put, 0);
    assert_eq!(after.head - before.head, 0);

    // Turned off, the same objects are streamed and hashed.
    let (plain, plain_meter) = metered(&format!("{run}/plain")).await;
    let never = opts().with_server_side_copy(ServerSideCopy::Never);
    let r = sync(src.clone(), plain.clone(), never).await.unwrap();
    assert_eq!((r.transferred, r.server_side_copies), (3, 0));
    assert!(plain_meter.upload_bytes() >= 12 * MIB as u64);
    assert_eq!(contents(src.as_ref()).await, contents(plain.as_ref()).await);
}

#[tokio::test]
async fn s3_a_copy_never_reads_a_source_changed_since_it_was_listed() {
    let run = larder_testutil::unique("sscopy");
    let (src, _) = metered(&format!("{run}/src")).await;
    put(src.as_ref(), "k", &b"first"[..], t(1)).await;
    let (dst, _) = metered(&format!("{run}/dst")).await;
    let listed: Vec<larder_store::Entry> = src.list("").try_collect().await.unwrap();
    put(src.as_ref(), "k", &b"second, longer"[..], t(2)).await;
    // A source listed before the change: the copy is conditional on the listed ETag.
    let stale = Arc::new(Relisted {
        inner: src.clone(),
        entries: listed,
    });
    let r = sync(stale, dst.clone(), opts()).await.unwrap();
    assert_eq!(r.errors.len(), 1, "{r:?}");
    assert!(r.errors[0].message.contains("k"), "{:?}", r.errors);
    assert!(
        dst.head(&key("k")).await.unwrap().is_none(),
        "nothing written"
    );
}

async fn listing(s: &dyn Store) -> Vec<(String, u64, String)> {
    let mut v: Vec<_> = s
        .list("")
        .map_ok(|e| (e.key.into_string(), e.size, e.etag.unwrap_or_default()))
        .try_collect()
        .await
        .unwrap();
    v.sort();
    v
}

/// A store whose listing is a fixed, earlier one: what a sync sees when an object changes
/// between its listing and its copy.
#[derive(Debug)]
struct Relisted {
    inner: Arc<larder_store::S3Store>,
    entries: Vec<larder_store::Entry>,
}

impl std::fmt::Display for Relisted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.inner.fmt(f)
    }
}

#[async_trait::async_trait]
impl Store for Relisted {
    fn list(
        &self,
        _: &str,
    ) -> futures::stream::BoxStream<'static, larder_store::Result<larder_store::Entry>> {
        futures::stream::iter(self.entries.clone().into_iter().map(Ok)).boxed()
    }
    async fn head(&self, k: &Key) -> larder_store::Result<Option<larder_store::ObjectMeta>> {
        self.inner.head(k).await
    }
    async fn get(
        &self,
        k: &Key,
        o: larder_store::GetOptions,
    ) -> larder_store::Result<larder_store::GetResult> {
        self.inner.get(k, o).await
    }
    async fn put(
        &self,
        k: &Key,
        b: Body,
        o: PutOptions,
    ) -> larder_store::Result<larder_store::PutResult> {
        self.inner.put(k, b, o).await
    }
    async fn delete(&self, k: &[Key]) -> larder_store::Result<larder_store::DeleteReport> {
        self.inner.delete(k).await
    }
    async fn copy(
        &self,
        a: &Key,
        b: &Key,
        o: larder_store::CopyOptions,
    ) -> larder_store::Result<larder_store::PutResult> {
        self.inner.copy(a, b, o).await
    }
    fn copy_source(&self, k: &Key) -> Option<larder_store::CopySource> {
        self.inner.copy_source(k)
    }
    fn capabilities(&self) -> larder_store::Capabilities {
        self.inner.capabilities()
    }
    fn location(&self, k: &str) -> String {
        self.inner.location(k)
    }
}
