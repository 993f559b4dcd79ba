//! `Cache` under concurrent get / insert / get_or_insert_with / remove /
//! clear on several threads, with forced reclaims from another: every guard
//! must hold exactly the bytes some insert of its key wrote, and the
//! counters must add up once the threads stop. Bounded (about 2 s).
#![cfg(not(loom))]

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use discardable::{Cache, Manager};

/// A value that names its key and version: 16 header bytes, then a pattern
/// derived from both, of a length that crosses the small/span boundary.
fn value(key: u64, version: u64) -> Vec<u8> {
    let len = 16 + ((key * 977 + version * 131) % 6000) as usize;
    let mut v = Vec::with_capacity(len);
    v.extend_from_slice(&key.to_le_bytes());
    v.extend_from_slice(&version.to_le_bytes());
    v.extend((16..len).map(|i| (key as usize ^ version as usize ^ i) as u8));
    v
}

fn check(key: u64, bytes: &[u8]) {
    assert!(bytes.len() >= 16, "key {key}: {} bytes", bytes.len());
    let k = u64::from_le_bytes(bytes[..8].try_into().unwrap());
    let version = u64::from_le_bytes(bytes[8..16].try_into().unwrap());
    assert_eq!(k, key, "a guard for key {key} holds key {k}'s value");
    assert_eq!(bytes, value(key, version).as_slice(), "key {key} version {version}: corrupted bytes");
}

/// A tiny xorshift, so the test needs no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn concurrent_mix_with_forced_reclaims_keeps_every_guard_intact() {
    let manager = Manager::builder().limit(8 << 20).start().unwrap();
    let cache: Arc<Cache<u64, [u8]>> =
        Arc::new(Cache::builder().manager(&manager).capacity(4 << 20).shards(8).build().unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..3u64)
        .map(|t| {
            let (cache, stop) = (Arc::clone(&cache), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (t + 1));
                let mut held = Vec::new();
                let mut version = t << 40;
                let mut ops = 0u64;
                while !stop.load(Relaxed) {
                    let key = rng.next() % 2048;
                    version += 1;
                    match rng.next() % 100 {
                        0..=49 => {
                            if let Some(g) = cache.get(&key) {
                                check(key, &g);
                                if rng.next() % 8 == 0 {
                                    held.push((key, g));
                                }
                            }
                        }
                        50..=69 => cache.insert(key, &value(key, version)).unwrap(),
                        70..=89 => {
                            let g = cache.get_or_insert_with(key, || value(key, version)).unwrap();
                            check(key, &g);
                        }
                        90..=97 => {
                            cache.remove(&key);
                        }
                        98 => cache.clear(),
                        _ => held.clear(),
                    }
                    if held.len() > 32 {
                        held.remove(0);
                    }
                    for (k, g) in &held {
                        check(*k, g);
                    }
                    ops += 1;
                }
                ops
            })
        })
        .collect();
    let reclaimer = {
        let (manager, stop) = (manager.clone(), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut freed = 0;
            while !stop.load(Relaxed) {
                freed += manager.reclaim(256 << 10);
                std::thread::sleep(Duration::from_millis(2));
            }
            freed
        })
    };
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(50));
        assert!(cache.weighted_size() <= (4 << 20) + (64 << 10), "capacity: {}", cache.weighted_size());
    }
    stop.store(true, Relaxed);
    let ops: u64 = workers.into_iter().map(|w| w.join().unwrap()).sum();
    let freed = reclaimer.join().unwrap();
    assert!(ops > 1000 && freed > 0, "ops {ops}, freed {freed}");

    // Quiet now: counters add up, and no dead key outlives a manager pass.
    manager.reclaim(0);
    let s = cache.stats();
    assert_eq!(s.entries as usize, cache.len());
    assert_eq!(s.dead_entries, 0, "{s:?}");
    assert_eq!(s.inserts, s.entries + s.discarded + s.removed, "{s:?}");
    for key in 0..2048 {
        if let Some(g) = cache.get(&key) {
            check(key, &g);
        }
    }
    drop(cache);
    manager.reclaim(0);
    assert_eq!(manager.stats().discardable_bytes, 0, "{:?}", manager.stats());
}
