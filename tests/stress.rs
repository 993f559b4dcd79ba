//! Stress: two threads pin and verify content while a third discards continuously.
//!
//! A pool of handles (small slot-backed and multi-page span-backed) holds `u64` words that encode
//! the handle's generation and each word's position, so a reader that sees any byte from a discarded
//! page (zero), from another allocation that reused the memory (another generation) or half of a
//! write (torn) counts a corruption. Readers upgrade random handles and verify every word under the
//! pin; the discarder calls `Discardable::discard` and `Manager::reclaim` continuously and replaces
//! discarded handles with fresh ones, while readers may still hold the old ones.
//!
//! Runs for `STRESS_SECS` seconds (default 2), then until the minimum counts are reached (at most
//! 30 s more), and asserts zero corruption and minimum counts of successful pins, discards and failed
//! upgrades.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use discardable::{Discardable, Manager, Policy};

const POOL: usize = 32;
/// Pins per reader visit to a handle.
const BURST: usize = 16;
const MIN_PINS: u64 = 1000;
const MIN_DISCARDS: u64 = 100;
const MIN_FAILED: u64 = 100;

/// Word `i` of generation `gen`.
fn word(gen: u64, i: usize) -> u64 {
    (gen << 32) ^ (i as u64).wrapping_mul(0x9E37_79B9) ^ 0x5555_0000_0000_5555
}

/// A handle with the generation its words encode.
struct Entry {
    gen: u64,
    handle: Arc<Discardable<[u64]>>,
}

/// Small xorshift generator; each thread owns one.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Words for slot `index`: even slots are small (at most 2 KiB, slot-backed), odd ones span
/// several pages.
fn words_for(index: usize, rng: &mut Rng) -> usize {
    if index % 2 == 0 {
        1 + rng.below(256)
    } else {
        513 + rng.below(2 * 1024)
    }
}

fn make(manager: &Manager, gen: u64, words: usize) -> Entry {
    let data: Vec<u64> = (0..words).map(|i| word(gen, i)).collect();
    Entry { gen, handle: Arc::new(Discardable::from_slice_in(&data, manager)) }
}

fn stress_secs() -> f64 {
    std::env::var("STRESS_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(2.0)
}

#[derive(Default)]
struct Counts {
    pins: AtomicU64,
    failed_upgrades: AtomicU64,
    discards: AtomicU64,
    reclaimed_bytes: AtomicU64,
    corrupt_words: AtomicU64,
    bad_lengths: AtomicU64,
    resurrections: AtomicU64,
    replaced: AtomicU64,
}

impl Counts {
    fn enough(&self) -> bool {
        self.pins.load(Relaxed) > MIN_PINS
            && self.discards.load(Relaxed) > MIN_DISCARDS
            && self.failed_upgrades.load(Relaxed) > MIN_FAILED
    }
}

/// Verifies every word of `entry` under a pin; returns whether the pin succeeded.
fn verify(entry: &Entry, expected_len: usize, counts: &Counts) -> bool {
    let Some(pinned) = entry.handle.upgrade() else {
        counts.failed_upgrades.fetch_add(1, Relaxed);
        // Invariant 2: once discarded, discarded for good.
        if !entry.handle.is_discarded() || entry.handle.upgrade().is_some() {
            counts.resurrections.fetch_add(1, Relaxed);
        }
        return false;
    };
    counts.pins.fetch_add(1, Relaxed);
    if pinned.len() != expected_len {
        counts.bad_lengths.fetch_add(1, Relaxed);
    }
    // Read twice: the bytes must not change (nor vanish) while the pin lives, even as the
    // discarder works on this very handle.
    for _ in 0..2 {
        let bad = pinned.iter().enumerate().filter(|&(i, &w)| w != word(entry.gen, i)).count();
        if bad > 0 {
            counts.corrupt_words.fetch_add(bad as u64, Relaxed);
        }
        thread::yield_now();
    }
    true
}

#[test]
fn readers_never_see_torn_or_foreign_bytes_while_a_discarder_races() {
    // Limit above the pool's size: only the discarder thread and `reclaim` discard here.
    let manager = Manager::builder().policy(Policy::Clock).limit(1 << 30).start().unwrap();
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let next_gen = AtomicU64::new(1);
    let pool: Vec<Mutex<(Entry, usize)>> = (0..POOL)
        .map(|i| {
            let words = words_for(i, &mut rng);
            Mutex::new((make(&manager, next_gen.fetch_add(1, Relaxed), words), words))
        })
        .collect();
    let counts = Counts::default();
    let stop = AtomicBool::new(false);
    let min_time = Duration::from_secs_f64(stress_secs());
    let hard_stop = min_time + Duration::from_secs(30);
    let start = Instant::now();

    thread::scope(|s| {
        for seed in [0x9E37_79B9_7F4A_7C15u64, 0xD1B5_4A32_D192_ED03] {
            let (pool, counts, stop) = (&pool, &counts, &stop);
            s.spawn(move || {
                let mut rng = Rng(seed);
                while !stop.load(Relaxed) {
                    let (entry, len) = {
                        let slot = pool[rng.below(POOL)].lock().unwrap();
                        (Entry { gen: slot.0.gen, handle: Arc::clone(&slot.0.handle) }, slot.1)
                    };
                    // A burst of pins on one handle: unpinning and pinning again at once gives
                    // the discarder many chances to race a fresh pin.
                    for _ in 0..BURST {
                        if !verify(&entry, len, counts) {
                            break;
                        }
                    }
                    // `entry` may hold the last reference to a replaced handle: dropping it here
                    // exercises drops on reader threads.
                }
            });
        }
        let (pool, counts, stop, manager, next_gen) = (&pool, &counts, &stop, &manager, &next_gen);
        s.spawn(move || {
            let mut rng = Rng(0x1234_5678_9ABC_DEF1);
            let mut round = 0u64;
            loop {
                let elapsed = start.elapsed();
                if (elapsed >= min_time && counts.enough()) || elapsed >= hard_stop {
                    stop.store(true, Relaxed);
                    break;
                }
                round += 1;
                // Discard a few random handles directly, retrying while readers pin them.
                for _ in 0..4 {
                    let handle = Arc::clone(&pool[rng.below(POOL)].lock().unwrap().0.handle);
                    for _ in 0..1000 {
                        if handle.is_discarded() {
                            break;
                        }
                        if handle.discard() {
                            counts.discards.fetch_add(1, Relaxed);
                            assert!(handle.upgrade().is_none(), "upgrade succeeded right after discard");
                            break;
                        }
                        std::hint::spin_loop();
                    }
                }
                // And let the manager pick victims in policy order.
                if round % 8 == 0 {
                    let before = manager.stats().discarded_count;
                    let freed = manager.reclaim(256 << 10);
                    let after = manager.stats().discarded_count;
                    counts.reclaimed_bytes.fetch_add(freed as u64, Relaxed);
                    counts.discards.fetch_add(after.saturating_sub(before), Relaxed);
                }
                // Leave discarded handles in place a little so readers meet them, then replace
                // them (readers may still hold the old ones).
                if round % 3 == 0 {
                    for (i, slot) in pool.iter().enumerate() {
                        let mut slot = slot.lock().unwrap();
                        if slot.0.handle.is_discarded() {
                            let words = words_for(i, &mut rng);
                            *slot = (make(manager, next_gen.fetch_add(1, Relaxed), words), words);
                            counts.replaced.fetch_add(1, Relaxed);
                        }
                    }
                }
                thread::yield_now();
            }
        });
    });

    let elapsed = start.elapsed();
    let stats = manager.stats();
    let c = |a: &AtomicU64| a.load(Relaxed);
    eprintln!(
        "stress: {:.2?}: {} pins, {} failed upgrades, {} discards ({} reclaimed bytes), {} replaced; {:?}",
        elapsed,
        c(&counts.pins),
        c(&counts.failed_upgrades),
        c(&counts.discards),
        c(&counts.reclaimed_bytes),
        c(&counts.replaced),
        stats
    );
    assert_eq!(c(&counts.corrupt_words), 0, "torn or foreign words seen under a pin");
    assert_eq!(c(&counts.bad_lengths), 0, "pinned slices of the wrong length");
    assert_eq!(c(&counts.resurrections), 0, "a discarded handle upgraded again");
    assert!(c(&counts.pins) > MIN_PINS, "too few successful pins: {}", c(&counts.pins));
    assert!(c(&counts.discards) > MIN_DISCARDS, "too few discards: {}", c(&counts.discards));
    assert!(c(&counts.failed_upgrades) > MIN_FAILED, "too few failed upgrades: {}", c(&counts.failed_upgrades));
    assert!(c(&counts.reclaimed_bytes) > 0, "reclaim never freed anything");
    assert_eq!(stats.discarded_count, c(&counts.discards), "every discard is counted exactly once");
    assert_eq!(stats.allocations, POOL, "one live handle per pool slot once readers let go");
    drop(pool);
    assert_eq!(manager.stats().allocations, 0);
    assert_eq!(manager.stats().discardable_bytes, 0, "all bytes freed once every handle is dropped");
}

/// The same readers, with the manager thread as the only discarder: the pool is four times the
/// limit, and the main thread keeps recreating what the manager took.
#[test]
fn readers_race_the_manager_thread_enforcing_a_small_limit() {
    let page = 4096;
    let limit = 64 * page;
    let manager = Manager::builder().policy(Policy::Lru).limit(limit).start().unwrap();
    let mut rng = Rng(0xA076_1D64_78BD_642F);
    let mut gen = 1u64;
    let words_of = |i: usize| if i % 2 == 0 { 200 } else { 4 * page / 8 };
    let pool: Vec<Mutex<(Entry, usize)>> = (0..POOL * 2)
        .map(|i| {
            gen += 1;
            Mutex::new((make(&manager, gen, words_of(i)), words_of(i)))
        })
        .collect();
    let counts = Counts::default();
    let stop = AtomicBool::new(false);
    let run_for = Duration::from_secs_f64((stress_secs() / 2.0).max(0.2));
    let start = Instant::now();
    thread::scope(|s| {
        for seed in [0x8CB9_2BA7_2F3D_8DD7u64, 0x4F1B_BCDC_BEF1_0A5B] {
            let (pool, counts, stop) = (&pool, &counts, &stop);
            s.spawn(move || {
                let mut rng = Rng(seed);
                while !stop.load(Relaxed) {
                    let (entry, len) = {
                        let slot = pool[rng.below(pool.len())].lock().unwrap();
                        (Entry { gen: slot.0.gen, handle: Arc::clone(&slot.0.handle) }, slot.1)
                    };
                    verify(&entry, len, counts);
                }
            });
        }
        while start.elapsed() < run_for {
            for (i, slot) in pool.iter().enumerate() {
                let mut slot = slot.lock().unwrap();
                if slot.0.handle.is_discarded() {
                    gen += 1;
                    *slot = (make(&manager, gen, words_of(i)), words_of(i));
                    counts.replaced.fetch_add(1, Relaxed);
                }
            }
            let _ = rng.next();
            thread::sleep(Duration::from_millis(1));
        }
        stop.store(true, Relaxed);
    });
    let stats = manager.stats();
    let c = |a: &AtomicU64| a.load(Relaxed);
    eprintln!(
        "manager-thread stress: {} pins, {} failed upgrades, {} replaced; {:?}",
        c(&counts.pins),
        c(&counts.failed_upgrades),
        c(&counts.replaced),
        stats
    );
    assert_eq!(c(&counts.corrupt_words), 0, "torn or foreign words seen under a pin");
    assert_eq!(c(&counts.bad_lengths), 0);
    assert_eq!(c(&counts.resurrections), 0, "a discarded handle upgraded again");
    assert!(c(&counts.pins) > 100, "too few pins: {}", c(&counts.pins));
    assert!(stats.discarded_count > 0, "the manager thread never enforced the limit");
    // With nobody pinning any more, the manager brings the arena under its limit.
    let deadline = Instant::now() + Duration::from_secs(10);
    while manager.stats().discardable_bytes > limit {
        assert!(Instant::now() < deadline, "still over the limit after 10 s: {:?}", manager.stats());
        thread::sleep(Duration::from_millis(10));
    }
}
