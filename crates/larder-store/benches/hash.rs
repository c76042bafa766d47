//! Throughput of each integrity primitive over 64 MiB, as `cargo bench -p larder-store --bench
//! hash` prints it (criterion reports MiB/s under "thrpt").

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use larder_store::integrity::{ChecksumAlgorithm, Hasher};

const SIZE: usize = 64 << 20;
/// Fed in 1 MiB chunks, as a file or network read delivers them.
const CHUNK: usize = 1 << 20;

fn data() -> Vec<u8> {
    let mut v = vec![0u8; SIZE];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for b in v.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    v
}

fn feed(mut h: Hasher, data: &[u8]) -> larder_store::integrity::Digests {
    for c in data.chunks(CHUNK) {
        h.update(c);
    }
    h.finish()
}

fn hashes(c: &mut Criterion) {
    let data = data();
    let mut g = c.benchmark_group("hash-64MiB");
    g.throughput(Throughput::Bytes(SIZE as u64));
    g.sample_size(10);
    g.bench_function("md5", |b| b.iter(|| feed(Hasher::new(), &data)));
    g.bench_function(BenchmarkId::new("md5+multipart-etag", "8MiB parts"), |b| {
        b.iter(|| feed(Hasher::new().with_part_size(8 << 20), &data))
    });
    for a in ChecksumAlgorithm::ALL {
        // The hasher always computes MD5; isolate the checksum by subtracting the md5 row,
        // or read the "md5+<algo>" figure as what an upload with that checksum costs.
        g.bench_function(BenchmarkId::new("md5+", a.as_str()), |b| {
            b.iter(|| feed(Hasher::new().with_checksum(a), &data))
        });
        g.bench_function(BenchmarkId::new("alone", a.as_str()), |b| {
            b.iter(|| larder_store::integrity::checksum_raw(a, &data))
        });
    }
    g.finish();
}

criterion_group!(benches, hashes);
criterion_main!(benches);
