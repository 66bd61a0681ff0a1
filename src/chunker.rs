//! Content-defined chunking of a byte stream (FastCDC v2020, normalisation level 1).
//!
//! The gear table is seeded from the id key, so chunk boundaries, and with them chunk
//! sizes, depend on a secret and cannot be used to recognise known files in a store.
//! Data is read into one reusable window of at least [`MIN_WINDOW`] bytes and twice the
//! maximum chunk size, and cut there, which gives the same boundaries as cutting the
//! whole stream at once. Only the uncut tail (under one maximum chunk) is moved to the
//! window's start before each refill, so most bytes are copied just once (into the chunk
//! handed to the packer), and a large file is read in few system calls.

use crate::repo::ChunkerParams;
use std::io::Read;

/// Smallest window: with 256 KiB chunks at most, refills move under an eighth of what
/// they read (a window of twice the maximum moved about half).
pub const MIN_WINDOW: usize = 2 << 20;

pub struct Chunker {
    params: ChunkerParams,
    seed: u64,
    window: Vec<u8>,
}

/// A chunking run failed: reading the source, or the caller's handler.
pub enum ChunkError<E> {
    Read(std::io::Error),
    Handler(E),
}

impl Chunker {
    pub fn new(params: ChunkerParams, seed: u64) -> Chunker {
        let window = vec![0u8; (params.max_size as usize * 2).max(MIN_WINDOW)];
        Chunker {
            params,
            seed,
            window,
        }
    }

    /// Cuts everything `source` yields into chunks, calling `handle` on each in order.
    /// Returns the number of bytes read.
    pub fn chunk<E>(
        &mut self,
        mut source: impl Read,
        mut handle: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<u64, ChunkError<E>> {
        let max = self.params.max_size as usize;
        let (mut start, mut end, mut eof, mut total) = (0usize, 0usize, false, 0u64);
        loop {
            // Keep at least one maximum chunk in the window unless the source is done, so
            // every cut sees exactly what it would see in the whole stream.
            if !eof && end - start < max {
                self.window.copy_within(start..end, 0);
                end -= start;
                start = 0;
                while !eof && end < self.window.len() {
                    match source.read(&mut self.window[end..]) {
                        Ok(0) => eof = true,
                        Ok(n) => end += n,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(ChunkError::Read(e)),
                    }
                }
            }
            if start == end {
                return Ok(total);
            }
            let window = &self.window[..end];
            let cdc = fastcdc::v2020::FastCDC::with_level_and_seed(
                window,
                self.params.min_size,
                self.params.avg_size,
                self.params.max_size,
                fastcdc::v2020::Normalization::Level1,
                self.seed,
            );
            while end - start >= max || (eof && start < end) {
                let (_, cut) = cdc.cut(start, end - start);
                handle(&window[start..cut]).map_err(ChunkError::Handler)?;
                total += (cut - start) as u64;
                start = cut;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(len: usize) -> Vec<u8> {
        let mut x = 77u64;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 56) as u8
            })
            .collect()
    }

    fn small() -> ChunkerParams {
        ChunkerParams {
            min_size: 4096,
            avg_size: 16384,
            max_size: 65536,
        }
    }

    /// Reads in odd, tiny pieces, as a pipe or a slow disk might.
    struct Trickle<'a>(&'a [u8], usize);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            self.1 = self.1 % 7919 + 1;
            let n = self.1.min(buf.len()).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn same_cuts_as_chunking_the_whole_buffer() {
        let input = data(3_000_000);
        let expected: Vec<usize> = fastcdc::v2020::FastCDC::with_level_and_seed(
            &input,
            4096,
            16384,
            65536,
            fastcdc::v2020::Normalization::Level1,
            99,
        )
        .map(|c| c.length)
        .collect();
        for reader_kind in 0..2 {
            let mut got = Vec::new();
            let mut joined = Vec::new();
            let mut chunker = Chunker::new(small(), 99);
            let result = if reader_kind == 0 {
                chunker.chunk(&input[..], |c| -> Result<(), ()> {
                    got.push(c.len());
                    joined.extend_from_slice(c);
                    Ok(())
                })
            } else {
                chunker.chunk(Trickle(&input, 0), |c| -> Result<(), ()> {
                    got.push(c.len());
                    joined.extend_from_slice(c);
                    Ok(())
                })
            };
            assert!(matches!(result, Ok(n) if n == input.len() as u64));
            assert_eq!(got, expected);
            assert!(joined == input);
        }
    }

    #[test]
    fn empty_and_tiny_inputs() {
        let mut chunker = Chunker::new(small(), 1);
        let mut n = 0;
        assert!(matches!(
            chunker.chunk(&b""[..], |_| -> Result<(), ()> {
                n += 1;
                Ok(())
            }),
            Ok(0)
        ));
        assert_eq!(n, 0);
        let mut seen = Vec::new();
        assert!(matches!(
            chunker.chunk(&b"abc"[..], |c| -> Result<(), ()> {
                seen.push(c.to_vec());
                Ok(())
            }),
            Ok(3)
        ));
        assert_eq!(seen, vec![b"abc".to_vec()]);
    }

    #[test]
    fn seed_changes_the_cuts() {
        let input = data(1_000_000);
        let cuts = |seed| {
            let mut v = Vec::new();
            let _ = Chunker::new(small(), seed).chunk(&input[..], |c| -> Result<(), ()> {
                v.push(c.len());
                Ok(())
            });
            v
        };
        assert_ne!(cuts(1), cuts(2));
    }
}
