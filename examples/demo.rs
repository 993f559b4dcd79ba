//! The main demonstration: a cache of "decoded images" four times larger
//! than its budget. The manager thread discards cold images in the
//! background; the program notices at `upgrade()` and recomputes, while the
//! hot set stays resident and memory stays bounded.
//!
//! Run with `cargo run --release --example demo`. It checks what it prints
//! (the hot set survives, memory ends at the budget, discarded images were
//! recomputed) and exits non-zero if a claim fails; CI runs it.

use std::time::{Duration, Instant};

use discardable::{Discardable, Manager, Policy};

const IMAGE: usize = 1 << 20; // 1 MiB per decoded image
const IMAGES: usize = 256; // 256 MiB if all were kept
const LIMIT: usize = 64 << 20; // budget: 64 MiB
const HOT: usize = 16; // images the "user" keeps looking at

/// Byte `i` of image `id`.
fn pixel(id: usize, i: usize) -> u8 {
    (i.wrapping_mul(31) ^ id.wrapping_mul(131)) as u8
}

/// A stand-in for an expensive decode: deterministic bytes per image.
fn decode(id: usize) -> Vec<u8> {
    (0..IMAGE).map(|i| pixel(id, i)).collect()
}

fn rss_mib() -> f64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: f64 = statm.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0.0);
    pages * 4096.0 / (1 << 20) as f64
}

fn main() -> Result<(), discardable::Error> {
    let manager = Manager::builder().policy(Policy::Clock).limit(LIMIT).start()?;
    let mut cache: Vec<Discardable<[u8]>> = Vec::with_capacity(IMAGES);
    let mut decodes = 0;
    let start = Instant::now();

    // Decode everything once; keep touching the hot set as we go.
    for id in 0..IMAGES {
        cache.push(Discardable::from_slice_in(&decode(id), &manager));
        decodes += 1;
        for (hot, image) in cache.iter().enumerate().take(HOT) {
            if let Some(bytes) = image.upgrade() {
                assert_eq!(bytes[7], pixel(hot, 7), "pinned bytes are intact");
            }
        }
    }
    std::thread::sleep(Duration::from_millis(100)); // let the manager catch up
    let after_fill = manager.stats();
    let hot_after_fill = cache[..HOT].iter().filter(|d| !d.is_discarded()).count();

    // Second pass over everything: discarded images are recomputed.
    let mut recomputed = 0;
    for id in 0..IMAGES {
        let alive = match cache[id].upgrade() {
            Some(bytes) => {
                assert_eq!(bytes[IMAGE - 1], pixel(id, IMAGE - 1));
                true
            }
            None => false,
        };
        if !alive {
            cache[id] = Discardable::from_slice_in(&decode(id), &manager);
            recomputed += 1;
        }
        for hot in cache.iter().take(HOT) {
            drop(hot.upgrade()); // the user keeps looking at the hot set
        }
    }
    let hot_alive = cache[..HOT].iter().filter(|d| !d.is_discarded()).count();
    let stats = manager.stats();

    println!("discardable demo: {IMAGES} images of 1 MiB, budget {} MiB, policy CLOCK", LIMIT >> 20);
    println!(
        "  first pass       : held {:>4} MiB, discarded {} images, hot set alive {hot_after_fill}/{HOT}",
        after_fill.discardable_bytes >> 20,
        after_fill.discarded_count
    );
    println!("  second pass      : {recomputed} images recomputed, hot set alive {hot_alive}/{HOT}");
    println!(
        "  now              : held {:>4} MiB (limit {} MiB), pinned {} B, RSS {:.0} MiB",
        stats.discardable_bytes >> 20,
        stats.limit >> 20,
        stats.pinned_bytes,
        rss_mib()
    );
    println!(
        "  total            : {} decodes, {} discards ({} MiB), {:.2?}",
        decodes + recomputed,
        stats.discarded_count,
        stats.discarded_bytes >> 20,
        start.elapsed()
    );

    // Check what the lines above claim; exit non-zero if a claim fails.
    let mut failed = Vec::new();
    if hot_alive < HOT * 3 / 4 {
        failed.push(format!("the hot set did not survive: {hot_alive}/{HOT} alive"));
    }
    // The manager thread enforces the budget asynchronously: give it a
    // moment, then the held bytes must be within it.
    let deadline = Instant::now() + Duration::from_secs(5);
    while manager.stats().discardable_bytes > LIMIT && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let held = manager.stats().discardable_bytes;
    if held > LIMIT {
        failed.push(format!("memory is not at the budget: {} MiB held, limit {} MiB", held >> 20, LIMIT >> 20));
    }
    if stats.discarded_count == 0 || recomputed == 0 {
        failed.push("nothing was discarded and recomputed: the budget was never exercised".into());
    }
    if failed.is_empty() {
        println!("PASS: hot set survived, memory at the budget, discarded images recomputed");
        Ok(())
    } else {
        for f in &failed {
            eprintln!("FAIL: {f}");
        }
        std::process::exit(1);
    }
}
