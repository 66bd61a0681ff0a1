//! The snapshot pipeline, step by step, on 64 MiB of database-like data (8 KiB pages of
//! text and integer tuples with zeroed free space, about 3x compressible) and on random
//! data (incompressible, like TOAST or WAL full-page images of compressed columns).
//!
//! Steps: FastCDC alone; FastCDC + keyed BLAKE3 per chunk; zstd per chunk; sealing per
//! chunk; the whole pipeline into a pack. Throughput is reported per input byte.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use vault::crypto::{SecretKey, WriterKeys};
use vault::pack::{self, BlobKind, PackWriter};
use vault::repo::ChunkerParams;

const SIZE: usize = 64 << 20;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn database_like(size: usize) -> Vec<u8> {
    let words: Vec<&[u8]> = [
        "passed",
        "failed",
        "errored",
        "travis-ci",
        "master",
        "pull_request",
        "push",
        "ubuntu",
        "xenial",
        "bionic",
        "ruby",
        "node_js",
        "python",
        "go",
        "job",
        "build",
        "repository",
    ]
    .iter()
    .map(|w| w.as_bytes())
    .collect();
    let mut rng = Rng(0x9e3779b97f4a7c15);
    let mut out = Vec::with_capacity(size);
    while out.len() < size {
        let mut page = vec![0u8; 8192];
        page[..24].copy_from_slice(&rng.next().to_le_bytes().repeat(3));
        let fill = 2048 + (rng.next() % 5000) as usize;
        let mut pos = 8192 - fill;
        while pos < 8192 - 64 {
            let id = rng.next() % 1_000_000;
            page[pos..pos + 8].copy_from_slice(&id.to_le_bytes());
            pos += 8;
            for _ in 0..3 {
                let w = words[(rng.next() % words.len() as u64) as usize];
                page[pos..pos + w.len()].copy_from_slice(w);
                pos += w.len() + 1;
            }
            pos += 4;
        }
        out.extend_from_slice(&page);
    }
    out.truncate(size);
    out
}

fn random(size: usize) -> Vec<u8> {
    let mut rng = Rng(42);
    (0..size / 8)
        .flat_map(|_| rng.next().to_le_bytes())
        .collect()
}

fn chunks<'a>(data: &'a [u8], p: &ChunkerParams, seed: u64) -> Vec<&'a [u8]> {
    fastcdc::v2020::FastCDC::with_level_and_seed(
        data,
        p.min_size,
        p.avg_size,
        p.max_size,
        fastcdc::v2020::Normalization::Level1,
        seed,
    )
    .map(|c| &data[c.offset..c.offset + c.length])
    .collect()
}

fn bench(c: &mut Criterion) {
    let keys = WriterKeys::from_id_key(SecretKey::random());
    let reader = age::x25519::Identity::generate();
    let params = ChunkerParams::default();
    for (label, data) in [("database", database_like(SIZE)), ("random", random(SIZE))] {
        let mut g = c.benchmark_group(format!("pipeline/{label}"));
        g.throughput(Throughput::Bytes(SIZE as u64));
        g.sample_size(10);
        g.bench_function(BenchmarkId::new("fastcdc", label), |b| {
            b.iter(|| chunks(&data, &params, keys.chunker_seed()).len())
        });
        g.bench_function(BenchmarkId::new("fastcdc+blake3", label), |b| {
            b.iter(|| {
                chunks(&data, &params, keys.chunker_seed())
                    .iter()
                    .map(|c| keys.blob_id(c).0[0] as usize)
                    .sum::<usize>()
            })
        });
        let cut = chunks(&data, &params, keys.chunker_seed());
        for level in [-3, -1, 1, 3] {
            g.bench_function(BenchmarkId::new(format!("zstd-{level}"), label), |b| {
                b.iter(|| {
                    cut.iter()
                        .map(|c| pack::compress(c, level).map_or(c.len(), |z| z.len()))
                        .sum::<usize>()
                })
            });
            let packed: usize = cut
                .iter()
                .map(|c| pack::compress(c, level).map_or(c.len(), |z| z.len()))
                .sum();
            eprintln!(
                "{label}: zstd {level} keeps {:.1}% of the bytes",
                packed as f64 * 100.0 / SIZE as f64
            );
        }
        g.bench_function(BenchmarkId::new("whole pipeline into packs", label), |b| {
            b.iter(|| {
                let mut w = PackWriter::new(&[reader.to_public()], 16 << 20, 4 << 20).unwrap();
                let mut packed = 0;
                for c in &cut {
                    let id = keys.blob_id(c);
                    let z = pack::compress(c, 1);
                    w.add(
                        id,
                        BlobKind::Data,
                        c.len() as u32,
                        z.is_some(),
                        z.as_deref().unwrap_or(c),
                    )
                    .unwrap();
                    if w.len() >= 16 << 20 {
                        let full = std::mem::replace(
                            &mut w,
                            PackWriter::new(&[reader.to_public()], 16 << 20, 4 << 20).unwrap(),
                        );
                        packed += full.finish(&keys).unwrap().0.len();
                    }
                }
                packed + w.finish(&keys).unwrap().0.len()
            })
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
