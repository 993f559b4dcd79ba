//! `Discardable<[u8]>::read_at` against a plain `memcpy` (`copy_from_slice`) out of a `Vec<u8>`.
//!
//! For each size (64 B, 4 KiB, 1 MiB) both sides copy `size` bytes from offset 0 of a source of
//! exactly that size into the same destination buffer: ours through `read_at` (range check, pin,
//! copy, unpin, in a manager of its own that never comes near its limit), the peer through
//! `dst.copy_from_slice(&vec[..])`. Both loops are `#[inline(never)]` and pass the buffers through
//! `black_box`, so neither copy can be elided. The `Vec` source and the destination are both
//! page-aligned (carved out of larger buffers), and the table prints our source's offset in its
//! page: glibc's `memcpy` uses `rep movsb` from 2 KiB up, and on AMD CPUs with FSRM that is about
//! 30x slower when the destination's page offset is a few bytes above the source's (measured here:
//! 4 KiB in 4.6 us instead of 0.13 us with the destination 16 bytes above the source), which two
//! plain `vec![0u8; 4096]`s from malloc hit by accident. Aligning both avoids measuring that.
//!
//! Each round runs one batch of each side (the order flips every round), a ratio per round, and the
//! table shows the median (min-max) over rounds. Goal (issue): ours <= 1.1x memcpy.
//!
//! Run: `cargo bench --bench read_at` (well under a minute). Knobs (environment): `READ_AT_ROUNDS`
//! (21), `READ_AT_BYTES` (bytes copied per batch per side, 256 MiB: the copy count per batch is
//! that divided by the size, at least 1000); `READ_AT_QUICK=1` or `-- --quick` for a short run.
//! Without `--bench` (as under `cargo test --benches`) it runs a tiny smoke configuration.

#[path = "support/measure.rs"]
mod measure;
use measure::{env_or, loadavg, summary, time};

use std::hint::black_box;

use discardable::{Discardable, Manager};

/// The sizes measured.
const SIZES: [usize; 3] = [64, 4 << 10, 1 << 20];

/// `n` reads of `dst.len()` bytes at offset 0 through `read_at`.
#[inline(never)]
fn ours_batch(src: &Discardable<[u8]>, dst: &mut [u8], n: usize) {
    for _ in 0..n {
        black_box(src).read_at(0, black_box(&mut *dst)).expect("read_at failed");
        black_box(&mut *dst);
    }
}

/// `n` copies of `dst.len()` bytes out of `src`.
#[inline(never)]
fn memcpy_batch(src: &[u8], dst: &mut [u8], n: usize) {
    for _ in 0..n {
        black_box(&mut *dst).copy_from_slice(black_box(src));
        black_box(&mut *dst);
    }
}

/// The page size the buffers are aligned to.
const PAGE: usize = 4096;

/// The page-aligned `size` bytes inside `buf` (which has `size + PAGE` bytes).
fn page_aligned(buf: &mut [u8], size: usize) -> &mut [u8] {
    let skip = buf.as_ptr().align_offset(PAGE);
    &mut buf[skip..skip + size]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        return;
    }
    let smoke = !args.iter().any(|a| a == "--bench") || args.iter().any(|a| a == "--test");
    let quick =
        args.iter().any(|a| a == "--quick") || std::env::var("READ_AT_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
    let (rounds, bytes) = if smoke {
        (1, 1 << 20)
    } else if quick {
        (5, 64 << 20)
    } else {
        (21, 256 << 20)
    };
    let rounds = env_or("READ_AT_ROUNDS", rounds).max(1);
    let bytes = env_or("READ_AT_BYTES", bytes);
    println!("read_at: {rounds} rounds, ~{} MiB per batch per side; load average {}", bytes >> 20, loadavg());

    let manager = Manager::builder().limit(64 << 20).start().expect("starting a manager");
    println!();
    println!(
        "| size | read_at ns/op | memcpy ns/op | read_at GiB/s | memcpy GiB/s | read_at/memcpy | our source's page offset |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    let mut worst: f64 = 0.0;
    for size in SIZES {
        let pattern: Vec<u8> = (0..size).map(|i| (i * 7 + 3) as u8).collect();
        let ours = Discardable::from_slice_in(&pattern[..], &manager);
        let mut vec_buf = vec![0u8; size + PAGE];
        let vec = page_aligned(&mut vec_buf, size);
        vec.copy_from_slice(&pattern);
        let vec = &*vec;
        let mut dst_buf = vec![0u8; size + PAGE];
        let dst = page_aligned(&mut dst_buf, size);
        let ours_offset = ours.upgrade().map_or(0, |p| p.as_ptr() as usize % PAGE);
        let n = (bytes / size).max(1000);
        // Warm-up and a check that both sides copy the same bytes.
        ours_batch(&ours, dst, n.min(1000));
        assert_eq!(dst, &pattern[..], "read_at copied the wrong bytes");
        dst.fill(0);
        memcpy_batch(vec, dst, n.min(1000));
        assert_eq!(dst, &pattern[..], "memcpy copied the wrong bytes");

        let (mut a, mut b, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..rounds {
            let (x, y) = if round % 2 == 0 {
                let x = time(n, || ours_batch(&ours, dst, n));
                (x, time(n, || memcpy_batch(vec, dst, n)))
            } else {
                let y = time(n, || memcpy_batch(vec, dst, n));
                (time(n, || ours_batch(&ours, dst, n)), y)
            };
            a.push(x);
            b.push(y);
            ratios.push(x / y);
        }
        assert!(!ours.is_discarded(), "the source was discarded during the bench");
        let (x, y) = (summary(a).0, summary(b).0);
        let (r, lo, hi) = summary(ratios);
        worst = worst.max(r);
        let gibs = |ns: f64| size as f64 / ns / 1.073_741_824;
        let label = match size {
            s if s >= 1 << 20 => format!("{} MiB", s >> 20),
            s if s >= 1 << 10 => format!("{} KiB", s >> 10),
            s => format!("{s} B"),
        };
        println!(
            "| {label} | {x:.1} | {y:.1} | {:.1} | {:.1} | {r:.2} ({lo:.2}-{hi:.2}) | {ours_offset} |",
            gibs(x),
            gibs(y)
        );
    }
    println!();
    let verdict = if worst <= 1.1 { "met" } else { "NOT met" };
    println!(
        "goal read_at <= 1.1x memcpy at every size: {verdict} (worst median {worst:.2}); load average {}",
        loadavg()
    );
}
