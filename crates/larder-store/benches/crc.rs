//! The CRCs larder computes, each from the crate it uses now against `crc-fast` (already in
//! the build through aws-smithy-checksums): 64 MiB fed in 1 MiB chunks.
//! `cargo bench -p larder-store --bench crc`.

use crc_fast::{CrcAlgorithm, Digest};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const SIZE: usize = 64 << 20;
const CHUNK: usize = 1 << 20;

fn data() -> Vec<u8> {
    (0..SIZE)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

fn crcs(c: &mut Criterion) {
    let data = data();
    let mut g = c.benchmark_group("crc-64MiB");
    g.throughput(Throughput::Bytes(SIZE as u64));
    g.sample_size(10);
    let fast = |a: CrcAlgorithm| {
        let mut d = Digest::new(a);
        for ch in data.chunks(CHUNK) {
            d.update(ch);
        }
        d.finalize()
    };
    g.bench_function("crc32/crc32fast", |b| {
        b.iter(|| {
            let mut h = crc32fast::Hasher::new();
            for ch in data.chunks(CHUNK) {
                h.update(ch);
            }
            h.finalize()
        })
    });
    g.bench_function("crc32/crc-fast", |b| {
        b.iter(|| fast(CrcAlgorithm::Crc32IsoHdlc))
    });
    g.bench_function("crc32c/crc32c", |b| {
        b.iter(|| data.chunks(CHUNK).fold(0, crc32c::crc32c_append))
    });
    g.bench_function("crc32c/crc-fast", |b| {
        b.iter(|| fast(CrcAlgorithm::Crc32Iscsi))
    });
    g.bench_function("crc64nvme/crc64fast-nvme", |b| {
        b.iter(|| {
            let mut h = crc64fast_nvme::Digest::new();
            for ch in data.chunks(CHUNK) {
                h.write(ch);
            }
            h.sum64()
        })
    });
    g.bench_function("crc64nvme/crc-fast", |b| {
        b.iter(|| fast(CrcAlgorithm::Crc64Nvme))
    });
    g.finish();
}

criterion_group!(benches, crcs);
criterion_main!(benches);
