//! Differential fuzzing of `DiscardAlloc` through `GlobalAlloc` against a
//! naive model written here (a list of live blocks and a `BTreeMap` of their
//! address ranges, none of the crate's code).
//!
//! # What is driven
//!
//! A plain `static ALLOC: DiscardAlloc`, called through the `GlobalAlloc`
//! trait; it is *not* this binary's global allocator (libFuzzer and the
//! model allocate through the system's), but its state (thread heaps, class
//! spans, the page heap) is process-global anyway, exactly as when it is
//! installed. An input is a list of [`Op`]s: allocations of any size from 1
//! byte to multi-MiB and a few absurd ones (>= 1 TiB, which may be refused)
//! with alignments from 1 byte to 64 MiB, zeroed or not; frees; reallocs;
//! frees sent to a persistent helper thread (cross-thread frees, waited for
//! or left to race with what the main thread does next); allocations made
//! by the helper (so the main thread's frees are remote to a live, idle
//! owner, whose parked spans they may empty); short-lived threads that
//! allocate, free some, and exit with blocks still live (abandoned spans,
//! later adopted or swept); and `purge` of the page heap. Everything still
//! live is freed at the end of each input.
//!
//! # What is checked
//!
//! - Every block is aligned as asked, `usable_size >= size`, and its usable
//!   range overlaps no other live block's (checked against the `BTreeMap`).
//!   A large block (over 64 KiB or aligned above 128, per the allocator's
//!   module docs) has `usable_size` equal to its size rounded up to pages
//!   (or, after an in-place `realloc`, the span it kept); a small one wastes
//!   less than half (at most the next power of two of `max(size, align)`).
//! - Contents: each block gets a fresh tag byte written over it (whole up to
//!   [`WHOLE`], else its first and last 4 KiB and [`SAMPLES`] spread bytes),
//!   verified before every free and realloc, by `Verify`, and in a block a
//!   `realloc` moved (over the bytes it must preserve); `alloc_zeroed`
//!   blocks read zero; blocks written by an exiting thread keep its tag.
//! - Null only for absurd sizes (>= [`ABSURD`]); a failed realloc leaves the
//!   block intact.
//! - Accounting, from `DiscardAlloc::stats()`, after every op once no
//!   cross-thread free is in flight (the purge timer's sweep is run first,
//!   so nothing else changes the counters meanwhile): `in_use` is at least
//!   the sum of the live blocks' usable sizes; `mapped >= in_use +
//!   retained`; both are whole pages; ops that touch only large blocks
//!   change `in_use` by exactly the spans they map or free; `purge` leaves
//!   nothing retained; and once an input freed everything, no absurd span
//!   is still counted. (The page heap's retention bound is private and
//!   tuned, so `retained` is not compared with it.)

#![no_main]

use std::alloc::{GlobalAlloc, Layout};
use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering::*};
use std::sync::mpsc::{self, Sender};
use std::sync::OnceLock;

use arbitrary::Arbitrary;
use discardable::{__fuzz, AllocStats, DiscardAlloc};
use libfuzzer_sys::fuzz_target;

/// The allocator under test (not installed as the global allocator).
static ALLOC: DiscardAlloc = DiscardAlloc::new();

/// Largest size served from a size class (`alloc/mod.rs` docs).
const SMALL_MAX: usize = 64 << 10;
/// Largest alignment served from a size class (`alloc/mod.rs` docs).
const CLASS_ALIGN_MAX: usize = 128;
/// Sizes from here on may be refused (null).
const ABSURD: usize = 1 << 40;
/// Most live blocks per input; further allocations are skipped.
const MAX_LIVE: usize = 48;
/// Most live bytes (absurd blocks aside) per input.
const MAX_LIVE_BYTES: usize = 192 << 20;
/// Most ops run per input.
const MAX_OPS: usize = 256;
/// Blocks up to this size are tagged and verified whole.
const WHOLE: usize = 1 << 20;
/// Bigger ones: this many bytes at each end, and [`SAMPLES`] spread bytes.
const EDGE: usize = 4096;
/// See [`EDGE`].
const SAMPLES: usize = 64;

/// Interesting sizes: around the small classes, pages, 64 KiB (the class
/// limit), class span sizes and 300 KiB.
const BOUNDARY: [usize; 30] = [
    1, 7, 8, 9, 16, 17, 100, 127, 128, 129, 1000, 4095, 4096, 4097, 8192, 8193, 16384, 32767, 32768, 57345, 65535,
    65536, 65537, 69632, 131072, 262143, 262144, 299_999, 524_288, 524_289,
];
/// Multi-MiB sizes, up to past a whole 32 MiB segment (huge spans).
const HUGE: [usize; 12] = [
    1 << 20,
    (2 << 20) + 1,
    (4 << 20) - 1,
    8 << 20,
    (8 << 20) + 4096,
    16 << 20,
    (32 << 20) - (64 << 10),
    (32 << 20) - (36 << 10),
    (32 << 20) - (32 << 10),
    32 << 20,
    (32 << 20) + 1,
    40 << 20,
];

/// A request size (never 0: `GlobalAlloc` forbids it).
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Size {
    /// 1..=256.
    Tiny(u8),
    /// 1..=65536.
    Small(u16),
    /// One of [`BOUNDARY`].
    Boundary(u8),
    /// 1..=300 KiB.
    Large(u32),
    /// One of [`HUGE`].
    Huge(u8),
    /// `2^(40..=62)` give or take 32 KiB: may be refused.
    Absurd(u8, u16),
}

impl Size {
    fn get(self) -> usize {
        match self {
            Size::Tiny(x) => usize::from(x) + 1,
            Size::Small(x) => usize::from(x) + 1,
            Size::Boundary(i) => BOUNDARY[usize::from(i) % BOUNDARY.len()],
            Size::Large(x) => x as usize % (300 << 10) + 1,
            Size::Huge(i) => HUGE[usize::from(i) % HUGE.len()],
            Size::Absurd(k, d) => (1usize << (40 + k % 23)) - (32 << 10) + usize::from(d),
        }
    }
}

/// A requested alignment.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Align {
    /// 8, what most Rust allocations ask for.
    Word,
    /// `2^(0..=13)`: up to two pages.
    Shift(u8),
    /// `2^(14..=26)`: up to 2 MiB and beyond a segment (64 MiB).
    Big(u8),
}

impl Align {
    fn get(self) -> usize {
        match self {
            Align::Word => 8,
            Align::Shift(s) => 1 << (s % 14),
            Align::Big(s) => 1 << (14 + s % 13),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Op {
    Alloc {
        size: Size,
        align: Align,
        zeroed: bool,
    },
    /// The helper thread allocates (it owns the spans; the main thread's
    /// frees of such blocks are remote).
    AllocOnHelper {
        size: Size,
        align: Align,
        zeroed: bool,
    },
    Dealloc {
        index: u8,
    },
    Realloc {
        index: u8,
        new_size: Size,
    },
    /// The helper thread frees the block; with `wait`, the main thread waits
    /// for it, else the free races with the next ops.
    FreeOnHelper {
        index: u8,
        wait: bool,
    },
    /// A new thread allocates `count % 8 + 1` blocks and tags them, frees
    /// those whose bit is set in `free_mask`, and exits: its spans are
    /// abandoned with the rest live, which become this thread's to free.
    ThreadExit {
        count: u8,
        size: Size,
        align: Align,
        free_mask: u8,
    },
    /// `purge()` of the page heap.
    Purge,
    /// Waits for the helper's frees.
    WaitHelper,
    /// Verifies one block's tag.
    Verify {
        index: u8,
    },
}

fn is_large(size: usize, align: usize) -> bool {
    size > SMALL_MAX || align > CLASS_ALIGN_MAX
}

/// The byte ranges of a `size`-byte block that carry its tag.
fn spots(size: usize) -> Vec<Range<usize>> {
    if size <= WHOLE {
        return std::iter::once(0..size).collect();
    }
    let mut v = vec![0..EDGE, size - EDGE..size];
    // `size / SAMPLES > 16 KiB`, so every sample lies between the edges.
    v.extend((1..SAMPLES).map(|i| size / SAMPLES * i + i * 61 % 4096).map(|at| at..at + 1));
    v
}

/// Writes `tag` over the tagged ranges of the block.
///
/// # Safety
///
/// `[ptr, ptr + size)` must be a live block owned by the caller.
unsafe fn write_tag(ptr: usize, size: usize, tag: u8) {
    for r in spots(size) {
        // SAFETY: `r` lies inside the block (caller).
        unsafe { std::ptr::write_bytes((ptr + r.start) as *mut u8, tag, r.len()) };
    }
}

/// The index of the first byte of `bytes` that is not `want`. Word-wide
/// XORs first: a byte-wise compare loop would call libFuzzer's compare hook
/// for every byte, which made this the target's hot spot.
fn first_mismatch(bytes: &[u8], want: u8) -> Option<usize> {
    let pattern = u64::from_ne_bytes([want; 8]);
    // SAFETY: every bit pattern is a valid `u64`.
    let (head, words, tail) = unsafe { bytes.align_to::<u64>() };
    let edges = head.iter().chain(tail).fold(0, |d, &b| d | (b ^ want));
    let diff = words.iter().fold(u64::from(edges), |d, &w| d | (w ^ pattern));
    if diff == 0 {
        return None;
    }
    bytes.iter().position(|&b| b != want)
}

/// Checks that the tagged ranges of a `size`-byte block, cut at `limit`,
/// hold `want`.
///
/// # Safety
///
/// `[ptr, ptr + min(size, limit))` must be readable and not written
/// concurrently.
unsafe fn check_bytes(ptr: usize, size: usize, limit: usize, want: u8, what: &str) {
    for r in spots(size) {
        let r = r.start.min(limit)..r.end.min(limit);
        // SAFETY: inside the readable prefix (caller).
        let bytes = unsafe { std::slice::from_raw_parts((ptr + r.start) as *const u8, r.len()) };
        if let Some(k) = first_mismatch(bytes, want) {
            panic!(
                "{what}: byte {} of the {size}-byte block at {ptr:#x} is {:#04x}, want {want:#04x}",
                r.start + k,
                bytes[k]
            );
        }
    }
}

/// A live block of the model.
#[derive(Debug, Clone, Copy)]
struct Block {
    ptr: usize,
    size: usize,
    align: usize,
    usable: usize,
    tag: u8,
}

impl Block {
    fn layout(&self) -> Layout {
        Layout::from_size_align(self.size, self.align).expect("valid layout")
    }

    fn large(&self) -> bool {
        is_large(self.size, self.align)
    }

    fn verify(&self, what: &str) {
        // SAFETY: a live block of the model, written only by this thread.
        unsafe { check_bytes(self.ptr, self.size, self.size, self.tag, what) };
    }
}

/// What a fresh block must hold before it is tagged.
#[derive(Debug, Clone, Copy)]
enum Content {
    Any,
    Zero,
    Tag(u8),
    /// The first `len` bytes of a `size`-byte block tagged `tag` (realloc).
    Moved {
        tag: u8,
        size: usize,
        len: usize,
    },
}

/// A job for the helper thread.
enum Job {
    Free { ptr: usize, layout: Layout },
    Alloc { layout: Layout, zeroed: bool, reply: Sender<usize> },
}

/// Frees sent to the helper and not yet done.
static PENDING: AtomicUsize = AtomicUsize::new(0);

/// The helper thread's queue (the thread is started once per process).
fn helper() -> &'static Sender<Job> {
    static JOBS: OnceLock<Sender<Job>> = OnceLock::new();
    JOBS.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("heap_ops-helper".into())
            .spawn(move || {
                for job in rx {
                    match job {
                        Job::Free { ptr, layout } => {
                            // SAFETY: the main thread handed over a live
                            // block of `ALLOC` with its layout and forgot it.
                            unsafe { ALLOC.dealloc(ptr as *mut u8, layout) };
                            PENDING.fetch_sub(1, Release);
                        }
                        Job::Alloc { layout, zeroed, reply } => {
                            // SAFETY: `layout` has a non-zero size.
                            let p = unsafe {
                                if zeroed {
                                    ALLOC.alloc_zeroed(layout)
                                } else {
                                    ALLOC.alloc(layout)
                                }
                            };
                            reply.send(p as usize).expect("main thread waits");
                        }
                    }
                }
            })
            .expect("spawn the helper thread");
        tx
    })
}

/// Waits until the helper did every free sent to it.
fn wait_helper() {
    while PENDING.load(Acquire) != 0 {
        std::thread::yield_now();
    }
}

/// The stats, if nothing but this thread can change them now: no free in
/// flight on the helper, and no emptied abandoned span left for the purge
/// timer to sweep (it is swept here first). The timer's `purge` may still
/// run, but it only lowers `retained`.
fn quiet_stats() -> Option<AllocStats> {
    if PENDING.load(Acquire) != 0 {
        return None;
    }
    __fuzz::sweep_abandoned();
    Some(DiscardAlloc::stats())
}

/// The model: the live blocks and their usable address ranges.
#[derive(Default)]
struct Model {
    live: Vec<Block>,
    /// Start -> end of every live block's usable range.
    ranges: BTreeMap<usize, usize>,
    next_tag: u8,
    page: usize,
}

impl Model {
    fn tag(&mut self) -> u8 {
        self.next_tag = self.next_tag % 255 + 1;
        self.next_tag
    }

    fn live_bytes(&self) -> usize {
        self.live.iter().filter(|b| b.size < ABSURD).map(|b| b.size).sum()
    }

    /// Whether a block of `size` may be added (after `freeing` one).
    fn room(&self, size: usize, freeing: Option<&Block>) -> bool {
        let gone = freeing.map_or(0, |b| if b.size < ABSURD { b.size } else { 0 });
        if freeing.is_none() && self.live.len() >= MAX_LIVE {
            return false;
        }
        if size >= ABSURD {
            // One absurd block at a time, so the address space never runs
            // out for the ordinary ones.
            self.live.iter().filter(|b| b.size >= ABSURD).count()
                == usize::from(freeing.is_some_and(|b| b.size >= ABSURD))
        } else {
            self.live_bytes() - gone + size <= MAX_LIVE_BYTES
        }
    }

    fn pick(&self, index: u8) -> Option<usize> {
        (!self.live.is_empty()).then(|| usize::from(index) % self.live.len())
    }

    /// Takes block `i` out of the model.
    fn forget(&mut self, i: usize) -> Block {
        let b = self.live.swap_remove(i);
        let end = self.ranges.remove(&b.ptr);
        assert_eq!(end, Some(b.ptr + b.usable), "model ranges out of sync");
        b
    }

    /// Checks a block the allocator just returned and adds it to the model,
    /// tagged afresh.
    fn admit(&mut self, p: *mut u8, size: usize, align: usize, content: Content, what: &str) -> Block {
        let ptr = p as usize;
        assert!(ptr.is_multiple_of(align), "{what}: {ptr:#x} ({size} bytes) is not aligned to {align}");
        // SAFETY: `p` is a live allocation of `ALLOC`.
        let usable = unsafe { DiscardAlloc::usable_size(p) };
        assert!(usable >= size, "{what}: usable_size {usable} < size {size} at {ptr:#x} (align {align})");
        if is_large(size, align) {
            let span = size.next_multiple_of(self.page);
            assert!(
                usable == span || matches!(content, Content::Moved { .. }),
                "{what}: large block of {size} bytes (align {align}) has usable_size {usable}, want {span}"
            );
        } else {
            let bound = size.max(align).next_power_of_two().max(8);
            assert!(usable <= bound, "{what}: small block of {size} bytes (align {align}) has usable_size {usable}");
        }
        let end = ptr + usable;
        if let Some((&s, &e)) = self.ranges.range(..end).next_back() {
            assert!(e <= ptr, "{what}: block {ptr:#x}..{end:#x} overlaps live block {s:#x}..{e:#x}");
        }
        match content {
            Content::Any => {}
            // SAFETY: the fresh block is ours and `size` bytes long.
            Content::Zero => unsafe { check_bytes(ptr, size, size, 0, &format!("{what} (zeroed)")) },
            // SAFETY: as above; its creator is done with it.
            Content::Tag(t) => unsafe { check_bytes(ptr, size, size, t, &format!("{what} (thread's tag)")) },
            // SAFETY: as above; `len <= size`.
            Content::Moved { tag, size: old, len } => unsafe {
                check_bytes(ptr, old, len, tag, &format!("{what} (contents kept)"))
            },
        }
        let tag = self.tag();
        // SAFETY: the block is ours and `size` bytes long.
        unsafe { write_tag(ptr, size, tag) };
        let b = Block { ptr, size, align, usable, tag };
        self.live.push(b);
        self.ranges.insert(ptr, end);
        b
    }

    /// Runs `op`; returns the exact change of `stats().in_use` it must
    /// cause when it touches only large blocks.
    fn run(&mut self, op: &Op) -> Option<i128> {
        match *op {
            Op::Alloc { size, align, zeroed } => {
                let (size, align) = (size.get(), align.get());
                if !self.room(size, None) {
                    return None;
                }
                let layout = Layout::from_size_align(size, align).ok()?;
                // SAFETY: `size > 0`.
                let p = unsafe {
                    if zeroed {
                        ALLOC.alloc_zeroed(layout)
                    } else {
                        ALLOC.alloc(layout)
                    }
                };
                if p.is_null() {
                    assert!(size >= ABSURD, "alloc({size}, align {align}) returned null");
                    return Some(0);
                }
                let content = if zeroed { Content::Zero } else { Content::Any };
                let b = self.admit(p, size, align, content, "alloc");
                b.large().then_some(b.usable as i128)
            }
            Op::AllocOnHelper { size, align, zeroed } => {
                let (size, align) = (size.get(), align.get());
                if !self.room(size, None) {
                    return None;
                }
                let layout = Layout::from_size_align(size, align).ok()?;
                let (reply, answer) = mpsc::channel();
                helper().send(Job::Alloc { layout, zeroed, reply }).expect("helper runs");
                let p = answer.recv().expect("helper answers") as *mut u8;
                if p.is_null() {
                    assert!(size >= ABSURD, "alloc({size}, align {align}) on the helper returned null");
                    return Some(0);
                }
                let content = if zeroed { Content::Zero } else { Content::Any };
                let b = self.admit(p, size, align, content, "alloc on the helper");
                b.large().then_some(b.usable as i128)
            }
            Op::Dealloc { index } => {
                let b = self.forget(self.pick(index)?);
                b.verify("before dealloc");
                // SAFETY: a live block of `ALLOC` with its layout.
                unsafe { ALLOC.dealloc(b.ptr as *mut u8, b.layout()) };
                b.large().then_some(-(b.usable as i128))
            }
            Op::FreeOnHelper { index, wait } => {
                let b = self.forget(self.pick(index)?);
                b.verify("before a free on the helper");
                PENDING.fetch_add(1, AcqRel);
                helper().send(Job::Free { ptr: b.ptr, layout: b.layout() }).expect("helper runs");
                if wait {
                    wait_helper();
                }
                b.large().then_some(-(b.usable as i128))
            }
            Op::Realloc { index, new_size } => {
                let i = self.pick(index)?;
                let b = self.live[i];
                let new_size = new_size.get();
                // Copying an absurd prefix would touch terabytes.
                if !self.room(new_size, Some(&b)) || b.size.min(new_size) >= ABSURD {
                    return None;
                }
                Layout::from_size_align(new_size, b.align).ok()?;
                b.verify("before realloc");
                // SAFETY: a live block of `ALLOC` with its layout; the new
                // size is non-zero and valid with the same alignment.
                let q = unsafe { ALLOC.realloc(b.ptr as *mut u8, b.layout(), new_size) };
                if q.is_null() {
                    assert!(new_size >= ABSURD, "realloc({} -> {new_size}, align {}) returned null", b.size, b.align);
                    b.verify("after a failed realloc");
                    return Some(0);
                }
                self.forget(i);
                let kept = Content::Moved { tag: b.tag, size: b.size, len: b.size.min(new_size) };
                let n = self.admit(q, new_size, b.align, kept, "realloc");
                if n.large() && n.usable != new_size.next_multiple_of(self.page) {
                    assert!(
                        q as usize == b.ptr && n.usable == b.usable,
                        "realloc({} -> {new_size}) kept no span: usable {} (was {}), moved {}",
                        b.size,
                        n.usable,
                        b.usable,
                        q as usize != b.ptr
                    );
                }
                if !b.large() && q as usize == b.ptr {
                    assert_eq!(n.usable, b.usable, "realloc in place changed a small block's usable size");
                }
                (b.large() && n.large()).then_some(n.usable as i128 - b.usable as i128)
            }
            Op::ThreadExit { count, size, align, free_mask } => {
                let (size, align, count) = (size.get(), align.get(), usize::from(count % 8) + 1);
                if size >= ABSURD
                    || self.live.len() + count > MAX_LIVE
                    || self.live_bytes() + count * size > MAX_LIVE_BYTES
                {
                    return None;
                }
                let layout = Layout::from_size_align(size, align).ok()?;
                let first_tag = self.tag();
                let blocks = std::thread::spawn(move || {
                    let mut kept = Vec::new();
                    let mut mine = Vec::new();
                    for k in 0..count {
                        // SAFETY: `size > 0`.
                        let p = unsafe { ALLOC.alloc(layout) } as usize;
                        if p == 0 {
                            kept.push((0, 0));
                            continue;
                        }
                        let tag = first_tag.wrapping_add(k as u8) | 1;
                        // SAFETY: a fresh block of `size` bytes.
                        unsafe { write_tag(p, size, tag) };
                        mine.push((p, tag, free_mask >> k & 1 == 1));
                    }
                    for (p, tag, free) in mine {
                        if free {
                            // SAFETY: allocated above with `layout`.
                            unsafe { ALLOC.dealloc(p as *mut u8, layout) };
                        } else {
                            kept.push((p, tag));
                        }
                    }
                    kept
                })
                .join()
                .expect("the allocating thread ran");
                for (p, tag) in blocks {
                    assert!(p != 0, "alloc({size}, align {align}) on an exiting thread returned null");
                    self.admit(p as *mut u8, size, align, Content::Tag(tag), "block of an exited thread");
                }
                None
            }
            Op::Purge => {
                match quiet_stats() {
                    Some(_) => {
                        __fuzz::purge();
                        let s = DiscardAlloc::stats();
                        assert_eq!(s.retained, 0, "purge() left retained pages: {s:?}");
                    }
                    None => __fuzz::purge(),
                }
                Some(0)
            }
            Op::WaitHelper => {
                wait_helper();
                None
            }
            Op::Verify { index } => {
                self.live[self.pick(index)?].verify("verify");
                Some(0)
            }
        }
    }

    /// The invariants of a quiet snapshot.
    fn check_stats(&self, s: &AllocStats, what: &str) {
        let live: u128 = self.live.iter().map(|b| b.usable as u128).sum();
        assert!(s.in_use as u128 >= live, "{what}: in_use {} < {live} bytes usable in live blocks: {s:?}", s.in_use);
        assert!(s.mapped as u128 >= s.in_use as u128 + s.retained as u128, "{what}: mapped < in_use + retained: {s:?}");
        assert!(
            s.in_use.is_multiple_of(self.page) && s.mapped.is_multiple_of(self.page),
            "{what}: not whole pages: {s:?}"
        );
    }
}

fuzz_target!(|ops: Vec<Op>| {
    let mut m = Model { page: __fuzz::page_size(), ..Model::default() };
    for (step, op) in ops.iter().take(MAX_OPS).enumerate() {
        let before = quiet_stats();
        let delta = m.run(op);
        let Some(after) = quiet_stats() else { continue };
        let what = format!("op {step} ({op:?})");
        m.check_stats(&after, &what);
        if let (Some(before), Some(delta)) = (before, delta) {
            assert_eq!(
                after.in_use as i128 - before.in_use as i128,
                delta,
                "{what}: in_use went from {} to {} ({before:?} -> {after:?})",
                before.in_use,
                after.in_use
            );
        }
    }
    while let Some(i) = m.pick(0) {
        let b = m.forget(i);
        b.verify("at the end");
        // SAFETY: a live block of `ALLOC` with its layout.
        unsafe { ALLOC.dealloc(b.ptr as *mut u8, b.layout()) };
    }
    wait_helper();
    let end = quiet_stats().expect("nothing in flight");
    m.check_stats(&end, "after freeing everything");
    assert!(end.in_use < ABSURD, "an absurd span is still counted after everything was freed: {end:?}");
});
