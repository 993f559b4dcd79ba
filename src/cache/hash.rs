//! The cache's default hasher: a folded-multiply hash with a per-cache
//! random seed.
//!
//! Owns: [`DefaultHashBuilder`]. Seeds come from std's `RandomState` (the
//! OS's randomness), so two caches, and two runs, place keys differently.
//! It is fast on the short keys caches see (integers, short strings), and
//! resists accidental clustering; like any seeded non-cryptographic hash
//! it is not a defence against an adversary who can observe timings. Use
//! `Cache::builder().hasher(std::hash::RandomState::new())` for SipHash.
//!
//! Must never: hash the same input differently within one builder.

use core::hash::{BuildHasher, Hasher};
use std::hash::RandomState;

const MUL: u64 = 0x5851_f42d_4c95_7f2d;

#[inline(always)]
fn fold(a: u64, b: u64) -> u64 {
    let r = u128::from(a) * u128::from(b);
    (r as u64) ^ ((r >> 64) as u64)
}

/// Builds [`FoldHasher`]s with a random seed (the cache's default).
#[derive(Debug, Clone)]
pub struct DefaultHashBuilder {
    seed: [u64; 2],
}

impl Default for DefaultHashBuilder {
    fn default() -> Self {
        let s = RandomState::new();
        Self { seed: [s.hash_one(0x243f_6a88_u64) | 1, s.hash_one(0x85a3_08d3_u64)] }
    }
}

impl BuildHasher for DefaultHashBuilder {
    type Hasher = FoldHasher;

    #[inline]
    fn build_hasher(&self) -> FoldHasher {
        FoldHasher { acc: self.seed[1], key: self.seed[0] }
    }
}

/// The hasher [`DefaultHashBuilder`] builds.
#[derive(Debug, Clone)]
pub struct FoldHasher {
    acc: u64,
    key: u64,
}

impl Hasher for FoldHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let word = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
            self.write_u64(word);
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut buf = [0u8; 8];
            buf[..rest.len()].copy_from_slice(rest);
            self.write_u64(u64::from_le_bytes(buf) ^ ((rest.len() as u64) << 56));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.write_u64(u64::from(i));
    }

    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.write_u64(u64::from(i));
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.write_u64(u64::from(i));
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.acc = fold(self.acc ^ i, self.key ^ MUL);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        fold(self.acc, self.key).rotate_left(23)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn seeded_and_spread() {
        let a = DefaultHashBuilder::default();
        let b = DefaultHashBuilder::default();
        assert_eq!(a.hash_one(7u64), a.hash_one(7u64));
        assert_ne!(a.hash_one(7u64), b.hash_one(7u64), "two builders, two seeds");
        assert_ne!(a.hash_one("ab"), a.hash_one("ba"));
        // Sequential keys spread over the top bits (shards) and low bits
        // (slots) alike.
        let mut top = [0u32; 16];
        let mut low = [0u32; 16];
        for k in 0..16_000u64 {
            let h = a.hash_one(k);
            top[(h >> 60) as usize] += 1;
            low[(h & 15) as usize] += 1;
        }
        assert!(top.iter().chain(&low).all(|&n| (700..1300).contains(&n)), "{top:?} {low:?}");
    }
}
