//! `dsc_read` of 64 B through the C boundary against the Rust
//! `Discardable<[u8]>::read_at` it stands beside (goal, issue #14: at most
//! 1.2x).
//!
//! Both sides copy 64 bytes from offset 0 of an allocation of 64 bytes in
//! one manager (which never comes near its limit) into one destination
//! buffer. Ours calls the exported `dsc_read` through an `extern "C"`
//! function pointer passed through `black_box`, so the call is a real C-ABI
//! call that cannot be inlined (as from a C program; a call through the
//! shared library's PLT adds one indirect jump on top); the peer calls
//! `read_at` on the same kind of handle. Both loops are `#[inline(never)]`.
//!
//! Each round runs one batch of each side (the order flips every round) and
//! takes their ratio; the table shows the median (min-max) over rounds, and
//! the load average, side by side.
//!
//! Run: `cargo bench -p discardable-capi --bench read` (a few seconds).
//! `DSC_BENCH_ROUNDS` (21) and `DSC_BENCH_READS` (reads per batch per
//! side, 2,000,000). Without `--bench` (as under `cargo test --benches`) it
//! runs a tiny smoke configuration.

#[path = "../../benches/support/measure.rs"]
mod measure;
use measure::{env_or, summary, time};

use core::ffi::c_void;
use std::hint::black_box;

use discardable::{Discardable, Manager};
use discardable_capi::{dsc_alloc, dsc_free, dsc_handle, dsc_manager, dsc_manager_free, dsc_manager_new, dsc_status};

/// The size read.
const SIZE: usize = 64;

/// `dsc_read`'s type, as a C caller sees it.
type ReadFn = unsafe extern "C" fn(*mut dsc_handle, usize, *mut c_void, usize) -> dsc_status;

/// `n` reads through the C function pointer `read`.
#[inline(never)]
fn c_batch(read: ReadFn, h: *mut dsc_handle, dst: &mut [u8; SIZE], n: usize) {
    for _ in 0..n {
        // SAFETY: `h` is a live handle of `SIZE` bytes and `dst` is writable
        // for `SIZE` bytes.
        let s = unsafe { black_box(read)(black_box(h), 0, black_box(dst.as_mut_ptr()).cast(), SIZE) };
        assert!(s == dsc_status::DSC_OK, "dsc_read failed: {s:?}");
        black_box(&mut *dst);
    }
}

/// `n` reads through `read_at`.
#[inline(never)]
fn rust_batch(src: &Discardable<[u8]>, dst: &mut [u8; SIZE], n: usize) {
    for _ in 0..n {
        black_box(src).read_at(0, black_box(&mut dst[..])).expect("read_at failed");
        black_box(&mut *dst);
    }
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let (rounds, reads) =
        if bench { (env_or("DSC_BENCH_ROUNDS", 21), env_or("DSC_BENCH_READS", 2_000_000)) } else { (3, 1000) };

    let mut m: *mut dsc_manager = core::ptr::null_mut();
    // SAFETY: NULL config (the defaults) and a writable out pointer.
    let s = unsafe { dsc_manager_new(core::ptr::null(), &mut m) };
    assert_eq!(s, dsc_status::DSC_OK);
    // SAFETY: `m` is the live manager just made.
    let h = unsafe { dsc_alloc(m, SIZE) };
    assert!(!h.is_null());
    let peer_manager = Manager::builder().limit(64 << 20).start().expect("a manager");
    let peer = Discardable::from_slice_in(&[7u8; SIZE], &peer_manager);
    let mut dst = [0u8; SIZE];

    // Warm both paths.
    c_batch(dsc_read_fn(), h, &mut dst, reads / 10 + 1);
    rust_batch(&peer, &mut dst, reads / 10 + 1);

    let (mut c_ns, mut rust_ns, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let (c, r) = if round % 2 == 0 {
            let c = time(reads, || c_batch(dsc_read_fn(), h, &mut dst, reads));
            (c, time(reads, || rust_batch(&peer, &mut dst, reads)))
        } else {
            let r = time(reads, || rust_batch(&peer, &mut dst, reads));
            (time(reads, || c_batch(dsc_read_fn(), h, &mut dst, reads)), r)
        };
        c_ns.push(c);
        rust_ns.push(r);
        ratios.push(c / r);
    }
    let load = measure::loadavg();
    let (c, cmin, cmax) = summary(c_ns);
    let (r, rmin, rmax) = summary(rust_ns);
    let (q, qmin, qmax) = summary(ratios);
    println!("dsc_read vs read_at, {SIZE} B, {rounds} rounds of {reads} reads per side (load {load})");
    println!("| path | ns per read, median (min-max) |");
    println!("| --- | --- |");
    println!("| dsc_read (C ABI, function pointer) | {c:.2} ({cmin:.2}-{cmax:.2}) |");
    println!("| Discardable::read_at (Rust) | {r:.2} ({rmin:.2}-{rmax:.2}) |");
    println!("ratio dsc_read / read_at: {q:.3}x median ({qmin:.3}-{qmax:.3}); goal <= 1.2x");

    // SAFETY: `h` and `m` are live and freed once, here.
    unsafe { dsc_free(h) };
    // SAFETY: as above.
    unsafe { dsc_manager_free(m) };
}

/// The exported `dsc_read`, as a function pointer.
fn dsc_read_fn() -> ReadFn {
    discardable_capi::dsc_read
}
