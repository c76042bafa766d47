//! larder's cache against the `cacache` crate on the same workloads (sync APIs, a fresh
//! directory per iteration): write then read 10,000 entries of 10 KiB, and one 256 MiB entry.
//!
//!     cargo bench -p larder-cache --bench vs_cacache
//!
//! Both verify on read. Defaults differ: larder hashes with SHA-512 (npm's default, required
//! for npm-compatible caches), the crate with SHA-256; the `larder-sha256` rows use the
//! crate's algorithm for a like-for-like figure. larder also fsyncs content before renaming
//! it into place.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

const SMALL: usize = 10_000;
const SMALL_SIZE: usize = 10 << 10;
const BIG: usize = 256 << 20;

fn payload(len: usize, seed: u64) -> Vec<u8> {
    larder_store::conformance::pattern(len, seed).to_vec()
}

/// SHA-256 instead of larder's default SHA-512: the `cacache` crate's default, for a
/// like-for-like comparison.
fn sha256() -> larder_cache::WriteOptions {
    larder_cache::WriteOptions::default().with_algorithm(Some(larder_cache::Algorithm::Sha256))
}

/// Runs `f` on a fresh directory per iteration, timing only `f`.
fn fresh(iters: u64, mut f: impl FnMut(&std::path::Path)) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let d = tempfile::tempdir().unwrap();
        let t = Instant::now();
        f(d.path());
        total += t.elapsed();
    }
    total
}

fn small(c: &mut Criterion) {
    let items: Vec<(String, Vec<u8>)> = (0..SMALL)
        .map(|i| (format!("key-{i}"), payload(SMALL_SIZE, i as u64)))
        .collect();
    let mut g = c.benchmark_group("10k x 10KiB");
    g.sample_size(10);
    g.throughput(Throughput::Elements(SMALL as u64));
    g.bench_function(BenchmarkId::new("write", "larder"), |b| {
        b.iter_custom(|n| {
            fresh(n, |dir| {
                let cache = larder_cache::Cache::new(dir);
                for (k, v) in &items {
                    cache.put(k, v).unwrap();
                }
            })
        })
    });
    g.bench_function(BenchmarkId::new("write", "larder-sha256"), |b| {
        b.iter_custom(|n| {
            fresh(n, |dir| {
                let cache = larder_cache::Cache::new(dir);
                for (k, v) in &items {
                    cache.put_with(k, v, sha256()).unwrap();
                }
            })
        })
    });
    g.bench_function(BenchmarkId::new("write", "cacache"), |b| {
        b.iter_custom(|n| {
            fresh(n, |dir| {
                for (k, v) in &items {
                    cacache::write_sync(dir, k, v).unwrap();
                }
            })
        })
    });
    // Reads: one filled cache per tool.
    let ld = tempfile::tempdir().unwrap();
    let lc = larder_cache::Cache::new(ld.path());
    let cd = tempfile::tempdir().unwrap();
    let l2 = tempfile::tempdir().unwrap();
    let lc2 = larder_cache::Cache::new(l2.path());
    for (k, v) in &items {
        lc.put(k, v).unwrap();
        lc2.put_with(k, v, sha256()).unwrap();
        cacache::write_sync(cd.path(), k, v).unwrap();
    }
    g.bench_function(BenchmarkId::new("read", "larder-sha256"), |b| {
        b.iter(|| {
            for (k, _) in &items {
                criterion::black_box(lc2.get(k).unwrap());
            }
        })
    });
    g.bench_function(BenchmarkId::new("read", "larder"), |b| {
        b.iter(|| {
            for (k, _) in &items {
                criterion::black_box(lc.get(k).unwrap());
            }
        })
    });
    g.bench_function(BenchmarkId::new("read", "cacache"), |b| {
        b.iter(|| {
            for (k, _) in &items {
                criterion::black_box(cacache::read_sync(cd.path(), k).unwrap());
            }
        })
    });
    g.finish();
}

fn big(c: &mut Criterion) {
    let data = payload(BIG, 42);
    let mut g = c.benchmark_group("1 x 256MiB");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(BIG as u64));
    g.bench_function(BenchmarkId::new("write", "larder"), |b| {
        b.iter_custom(|n| {
            fresh(n, |dir| {
                drop(larder_cache::Cache::new(dir).put("big", &data).unwrap())
            })
        })
    });
    g.bench_function(BenchmarkId::new("write", "larder-sha256"), |b| {
        b.iter_custom(|n| {
            fresh(n, |dir| {
                drop(
                    larder_cache::Cache::new(dir)
                        .put_with("big", &data, sha256())
                        .unwrap(),
                )
            })
        })
    });
    g.bench_function(BenchmarkId::new("write", "cacache"), |b| {
        b.iter_custom(|n| {
            fresh(n, |dir| {
                drop(cacache::write_sync(dir, "big", &data).unwrap())
            })
        })
    });
    let ld = tempfile::tempdir().unwrap();
    let lc = larder_cache::Cache::new(ld.path());
    lc.put("big", &data).unwrap();
    let cd = tempfile::tempdir().unwrap();
    cacache::write_sync(cd.path(), "big", &data).unwrap();
    let l2 = tempfile::tempdir().unwrap();
    let lc2 = larder_cache::Cache::new(l2.path());
    lc2.put_with("big", &data, sha256()).unwrap();
    g.bench_function(BenchmarkId::new("read", "larder-sha256"), |b| {
        b.iter(|| criterion::black_box(lc2.get("big").unwrap()))
    });
    g.bench_function(BenchmarkId::new("read", "larder"), |b| {
        b.iter(|| criterion::black_box(lc.get("big").unwrap()))
    });
    g.bench_function(BenchmarkId::new("read", "cacache"), |b| {
        b.iter(|| criterion::black_box(cacache::read_sync(cd.path(), "big").unwrap()))
    });
    g.finish();
}

criterion_group!(benches, small, big);
criterion_main!(benches);
