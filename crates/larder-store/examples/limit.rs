//! The "limit" client of `bench/peers.sh`: the least a sync can do with aws-sdk-s3 on the same
//! server, for scale. It checks nothing, records nothing, keeps no state, never fsyncs:
//!
//! ```text
//! limit DIR s3://BUCKET/PREFIX/ [--concurrency N]   PUT every file (multipart past 8 MiB)
//! limit s3://BUCKET/PREFIX/ DIR [--concurrency N]   GET every object (8 MiB ranges past 8 MiB)
//! ```
//!
//! Endpoint from `LARDER_ENDPOINT_URL`, credentials and region from the usual AWS variables.
//! Not larder: a yardstick.

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use aws_sdk_s3::Client;
use futures::{StreamExt, TryStreamExt};

const PART: u64 = 8 << 20;
type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

#[tokio::main]
async fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n = match args.iter().position(|a| a == "--concurrency") {
        Some(i) => args[i + 1].parse()?,
        None => 32,
    };
    let (src, dst) = (&args[0], &args[1]);
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(std::env::var("LARDER_ENDPOINT_URL")?)
        .load()
        .await;
    let conf = aws_sdk_s3::config::Builder::from(&sdk)
        .force_path_style(true)
        .request_checksum_calculation(aws_sdk_s3::config::RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(aws_sdk_s3::config::ResponseChecksumValidation::WhenRequired)
        .build();
    let c = Client::from_conf(conf);
    match src.strip_prefix("s3://") {
        Some(s) => download(c, split(s), PathBuf::from(dst), n).await,
        None => {
            let d = dst.strip_prefix("s3://").ok_or("one side is s3://")?;
            upload(c, PathBuf::from(src), split(d), n).await
        }
    }
}

fn split(s: &str) -> (String, String) {
    let (b, p) = s.split_once('/').unwrap_or((s, ""));
    (b.to_owned(), p.to_owned())
}

fn files(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        if p.is_dir() {
            files(root, &p, out)?;
        } else {
            out.push(p.strip_prefix(root).expect("under root").to_path_buf());
        }
    }
    Ok(())
}

async fn upload(c: Client, root: PathBuf, (bucket, prefix): (String, String), n: usize) -> Res<()> {
    let mut all = Vec::new();
    files(&root, &root, &mut all)?;
    futures::stream::iter(all)
        .map(|rel| {
            let (c, b) = (c.clone(), bucket.clone());
            let key = format!("{prefix}{}", rel.to_string_lossy());
            let path = root.join(rel);
            async move {
                let size = std::fs::metadata(&path)?.len();
                if size <= PART {
                    let body = ByteStream::from(tokio::fs::read(&path).await?);
                    c.put_object().bucket(b).key(key).body(body).send().await?;
                    return Ok::<_, Box<dyn std::error::Error + Send + Sync>>(());
                }
                let up = c
                    .create_multipart_upload()
                    .bucket(&b)
                    .key(&key)
                    .send()
                    .await?;
                let id = up.upload_id().unwrap_or_default().to_owned();
                let file = Arc::new(std::fs::File::open(&path)?);
                let parts: Vec<CompletedPart> = futures::stream::iter(0..size.div_ceil(PART))
                    .map(|i| {
                        let (c, b, key, id, file) =
                            (c.clone(), b.clone(), key.clone(), id.clone(), file.clone());
                        async move {
                            let len = PART.min(size - i * PART) as usize;
                            let buf = tokio::task::spawn_blocking(move || {
                                let mut buf = vec![0; len];
                                file.read_exact_at(&mut buf, i * PART).map(|_| buf)
                            })
                            .await??;
                            let out = c
                                .upload_part()
                                .bucket(b)
                                .key(key)
                                .upload_id(id)
                                .part_number(i as i32 + 1)
                                .body(ByteStream::from(buf))
                                .send()
                                .await?;
                            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(
                                CompletedPart::builder()
                                    .part_number(i as i32 + 1)
                                    .set_e_tag(out.e_tag().map(str::to_owned))
                                    .build(),
                            )
                        }
                    })
                    .buffered(4)
                    .try_collect()
                    .await?;
                c.complete_multipart_upload()
                    .bucket(b)
                    .key(key)
                    .upload_id(id)
                    .multipart_upload(
                        CompletedMultipartUpload::builder()
                            .set_parts(Some(parts))
                            .build(),
                    )
                    .send()
                    .await?;
                Ok(())
            }
        })
        .buffer_unordered(n)
        .try_collect::<()>()
        .await
}

async fn download(
    c: Client,
    (bucket, prefix): (String, String),
    root: PathBuf,
    n: usize,
) -> Res<()> {
    let mut pages = c
        .list_objects_v2()
        .bucket(&bucket)
        .prefix(&prefix)
        .into_paginator()
        .send();
    let mut objects = Vec::new();
    while let Some(page) = pages.next().await {
        for o in page?.contents() {
            objects.push(Ok((
                o.key().unwrap_or_default().to_owned(),
                o.size().unwrap_or(0) as u64,
            )));
        }
    }
    futures::stream::iter(objects)
        .map_ok(|(key, size)| {
            let (c, b) = (c.clone(), bucket.clone());
            let path = root.join(key.strip_prefix(&prefix).unwrap_or(&key));
            async move {
                std::fs::create_dir_all(path.parent().expect("a parent"))?;
                let file = Arc::new(std::fs::File::create(&path)?);
                let ranges =
                    (0..size.div_ceil(PART).max(1)).map(|i| (i * PART, PART.min(size - i * PART)));
                futures::stream::iter(ranges)
                    .map(|(at, len)| {
                        let (c, b, key, file) = (c.clone(), b.clone(), key.clone(), file.clone());
                        async move {
                            let mut req = c.get_object().bucket(b).key(key);
                            if size > PART {
                                req = req.range(format!("bytes={at}-{}", at + len - 1));
                            }
                            let mut body = req.send().await?.body;
                            let mut off = at;
                            while let Some(chunk) = body.try_next().await? {
                                let f = file.clone();
                                off += chunk.len() as u64;
                                let start = off - chunk.len() as u64;
                                tokio::task::spawn_blocking(move || f.write_all_at(&chunk, start))
                                    .await??;
                            }
                            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
                        }
                    })
                    .buffer_unordered(8)
                    .try_collect::<()>()
                    .await
            }
        })
        .try_buffer_unordered(n)
        .try_collect::<()>()
        .await
}
