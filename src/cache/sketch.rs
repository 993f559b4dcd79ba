//! Admission (TinyLFU): a small frequency sketch over key hashes, so a
//! full cache admits a new key only when it was asked for more often,
//! lately, than the entry it would push out, and one-hit wonders (a scan, a
//! burst of cold keys) do not push out what is read again.
//!
//! Owns: a count-min sketch of 4-bit counters (four per key, from the key's
//! 64-bit hash), halved every `20 ×` its width of increments so old counts
//! fade. It counts every access: a request to store a key when the insert
//! asks for admission, and a resident key's hits in batches, when the
//! capacity sweep visits it and sees its access counter moved. Counters are
//! relaxed atomics: a lost increment under a race only delays one
//! admission.
//!
//! Must never: sit on the hit path (a hit writes nothing here; the sweep
//! counts it later), or block.

use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

/// See the module docs.
#[derive(Debug)]
pub(crate) struct Sketch {
    /// Sixteen 4-bit counters per word.
    words: Box<[AtomicU64]>,
    mask: usize,
    additions: AtomicUsize,
    period: usize,
}

impl Sketch {
    /// A sketch for a cache of about `entries` keys: one word (sixteen
    /// counters) per key, as TinyLFU sizes its sketch, aged every twenty
    /// keys' worth of increments (TinyLFU's ten made the counts at the
    /// margin of a small cache too coarse: 0.4 points of hit ratio lost at
    /// 1 % capacity in the `hit_ratio` bench; longer adapts more slowly to
    /// a change in what is popular).
    pub(crate) fn new(entries: usize) -> Self {
        let words = entries.clamp(64, 1 << 24).next_power_of_two();
        Self {
            words: (0..words).map(|_| AtomicU64::new(0)).collect(),
            mask: words - 1,
            additions: AtomicUsize::new(0),
            period: 20 * entries.max(64),
        }
    }

    /// Bytes the sketch uses.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.words.len() * size_of::<AtomicU64>()
    }

    /// The four (word, shift) counter positions of `hash`.
    #[inline]
    fn slots(&self, hash: u64) -> [(usize, u32); 4] {
        let mut h = hash;
        core::array::from_fn(|i| {
            h = h.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(29) ^ (i as u64);
            (((h >> 8) as usize) & self.mask, ((h & 15) as u32) * 4)
        })
    }

    /// How often `hash` was counted lately (0..=15).
    pub(crate) fn estimate(&self, hash: u64) -> u8 {
        self.slots(hash).iter().map(|&(w, s)| ((self.words[w].load(Relaxed) >> s) & 15) as u8).min().unwrap_or(0)
    }

    /// Counts one more sighting of `hash`; ages the sketch when due.
    pub(crate) fn increment(&self, hash: u64) {
        self.add(hash, 1);
    }

    /// Counts `n` more sightings of `hash` at once (the sweep's batch of a
    /// resident key's hits since its last visit); ages the sketch when due.
    pub(crate) fn add(&self, hash: u64, n: u8) {
        if n == 0 {
            return;
        }
        // Conservative update: raise only the counters below the new
        // estimate, so keys sharing a counter inflate each other less.
        let target = (u64::from(self.estimate(hash)) + u64::from(n)).min(15);
        for (w, s) in self.slots(hash) {
            let word = &self.words[w];
            let cur = word.load(Relaxed);
            let count = (cur >> s) & 15;
            if target > count {
                // A lost race loses these counts, which only delays an
                // admission.
                let _ = word.compare_exchange(cur, cur + ((target - count) << s), Relaxed, Relaxed);
            }
        }
        if self.additions.fetch_add(usize::from(n), Relaxed) + usize::from(n) >= self.period {
            self.additions.store(0, Relaxed);
            for word in self.words.iter() {
                // Halve every counter: shift, and drop the bit each counter
                // received from its upper neighbour.
                let _ = word.fetch_update(Relaxed, Relaxed, |v| Some((v >> 1) & 0x7777_7777_7777_7777));
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn counts_and_ages() {
        let s = Sketch::new(1000);
        assert_eq!(s.estimate(42), 0);
        s.increment(42);
        s.increment(42);
        assert_eq!(s.estimate(42), 2);
        assert!(s.estimate(43) <= 1, "another key shares at most some counters");
        for _ in 0..20 {
            s.increment(7);
        }
        assert_eq!(s.estimate(7), 15, "saturates at 15");
        s.add(9, 5);
        s.add(9, 14);
        assert_eq!(s.estimate(9), 15, "a batch saturates too");
        for k in 0..(s.period as u64) {
            s.increment(1_000_000 + k);
        }
        assert!(s.estimate(7) < 15, "aged");
    }
}
