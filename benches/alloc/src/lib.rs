//! Shared workloads of the allocator comparison.
//!
//! Each allocator binary (`system`, `mimalloc`, `jemalloc`, `discardable`)
//! installs its `#[global_allocator]` and calls [`main`], which runs the
//! workloads named on its command line and prints one machine-readable line
//! per workload:
//!
//! ```text
//! result alloc=mimalloc workload=hot secs=0.412345678 check=0123456789abcdef
//! rss alloc=mimalloc baseline=2.1 peak=1100.3 half=... all=... idle=... settle_ms=... (MiB)
//! ```
//!
//! Every workload is deterministic (xorshift RNG with fixed seeds, per-bucket
//! RNG state for the multi-threaded ones), writes a tag into each block it
//! allocates and checks it when freeing, and returns the sum of the tags it
//! read back, so the driver (`compare`) can check that every allocator did
//! the same work and the compiler cannot drop any of it.
//!
//! `ALLOC_BENCH_SCALE` (a float, default 1) scales every iteration count
//! (not the RSS lifecycle's 1 GiB peak); `ALLOC_BENCH_ALIGN` sets the
//! alignment of every block (default 8, most Rust types; 16 is `malloc`'s).

use std::alloc::{alloc, dealloc, handle_alloc_error, realloc, Layout};
use std::hint::black_box;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::mpsc::sync_channel;
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

/// Alignment of every block: 8, that of most Rust types (`Box<u64>`,
/// `Vec<usize>`, structs of words). `ALLOC_BENCH_ALIGN` overrides it (16
/// is `malloc`'s).
static ALIGN: AtomicUsize = AtomicUsize::new(8);
/// Page size assumed for touching memory.
const PAGE: usize = 4096;
const KIB: usize = 1 << 10;
const MIB: usize = 1 << 20;

/// A deterministic xorshift64* generator.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed (any value; zero is remapped).
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A value in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (((self.next_u64() >> 32) * n as u64) >> 32) as usize
    }

    /// A size in `lo..hi` (`hi / lo` a power of two), roughly
    /// log-uniform: a random doubling `[lo << k, lo << (k + 1))`, then a
    /// uniform size in it, rounded down to a multiple of 8. Integer-only,
    /// so the generator costs little next to the allocator.
    pub fn log_size(&mut self, lo: usize, hi: usize) -> usize {
        let octaves = (hi / lo).ilog2().max(1) as usize;
        let base = lo << self.below(octaves);
        ((base + self.below(base)) & !7).max(lo)
    }

    /// A small-object size: mostly 16 B to 1 KiB, one in sixteen up to 64 KiB.
    pub fn mixed_size(&mut self) -> usize {
        if self.below(16) == 0 {
            self.log_size(KIB, 64 * KIB)
        } else {
            self.log_size(16, KIB)
        }
    }

    /// A non-zero tag.
    pub fn tag(&mut self) -> u64 {
        self.next_u64() | 1
    }
}

/// A heap block of at least 16 bytes holding a tag in its first and last
/// eight bytes. Freed on drop.
#[derive(Debug)]
pub struct Block {
    ptr: NonNull<u8>,
    size: usize,
}

// SAFETY: a `Block` owns its memory exclusively; the global allocator may
// free it on any thread.
unsafe impl Send for Block {}

impl Block {
    /// Allocates `size` (>= 16) bytes through the global allocator and tags
    /// them.
    #[inline]
    pub fn new(size: usize, tag: u64) -> Self {
        assert!(size >= 16);
        let layout = Self::layout(size);
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { alloc(layout) };
        let Some(ptr) = NonNull::new(ptr) else { handle_alloc_error(layout) };
        let block = Self { ptr, size };
        block.write_tag(tag);
        block
    }

    fn layout(size: usize) -> Layout {
        Layout::from_size_align(size, ALIGN.load(Relaxed)).expect("block layout")
    }

    /// The block's size in bytes.
    pub fn size(&self) -> usize {
        self.size
    }

    #[inline]
    fn write_tag(&self, tag: u64) {
        // SAFETY: the block is live and at least 16 bytes long, so both
        // eight-byte windows are inside it; unaligned writes are allowed.
        unsafe {
            self.ptr.as_ptr().cast::<u64>().write_unaligned(tag);
            self.ptr.as_ptr().add(self.size - 8).cast::<u64>().write_unaligned(tag);
        }
    }

    /// Reads and checks the tag (both copies must agree).
    #[inline]
    pub fn tag(&self) -> u64 {
        // SAFETY: as in `write_tag`.
        let (a, b) = unsafe {
            (
                self.ptr.as_ptr().cast::<u64>().read_unaligned(),
                self.ptr.as_ptr().add(self.size - 8).cast::<u64>().read_unaligned(),
            )
        };
        assert_eq!(a, b, "block of {} bytes corrupted", self.size);
        a
    }

    /// Writes one byte in every page of `[from, size)` so the memory is
    /// really committed.
    pub fn touch(&mut self, from: usize) {
        let mut i = from;
        while i < self.size - 8 {
            if i >= 8 {
                // SAFETY: `8 <= i < size - 8`: inside the block, clear of
                // the tags.
                unsafe { self.ptr.as_ptr().add(i).write(i as u8) };
            }
            i += PAGE;
        }
    }

    /// Writes every byte between the tags (as C benchmarks touch the
    /// whole block).
    #[inline]
    pub fn fill(&mut self) {
        for i in 8..self.size - 8 {
            // SAFETY: `8 <= i < size - 8`: inside the block, clear of the
            // tags.
            unsafe { self.ptr.as_ptr().add(i).write(i as u8) };
        }
    }

    /// Grows the block to `new_size` with `realloc`, checking the contents
    /// moved, and writes the tag's second copy at the new end.
    pub fn grow(&mut self, new_size: usize) {
        let tag = self.tag();
        // SAFETY: the block is live with this layout; `new_size` is
        // non-zero and does not overflow when rounded to the alignment.
        let ptr = unsafe { realloc(self.ptr.as_ptr(), Self::layout(self.size), new_size) };
        let Some(ptr) = NonNull::new(ptr) else { handle_alloc_error(Self::layout(new_size)) };
        self.ptr = ptr;
        self.size = new_size;
        // SAFETY: the first eight bytes were preserved by `realloc`.
        assert_eq!(unsafe { ptr.as_ptr().cast::<u64>().read_unaligned() }, tag, "realloc lost contents");
        self.write_tag(tag);
    }

    /// Checks the tag, frees the block and returns the tag.
    #[inline]
    pub fn free(self) -> u64 {
        self.tag()
    }
}

impl Drop for Block {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: allocated by `alloc`/`realloc` with this layout, freed once.
        unsafe { dealloc(self.ptr.as_ptr(), Self::layout(self.size)) }
    }
}

/// The iteration-count scale, as `f64` bits (1.0 unless
/// `ALLOC_BENCH_SCALE` or [`set_scale`] says otherwise).
static SCALE: AtomicU64 = AtomicU64::new(0x3FF0_0000_0000_0000);

/// Scales every workload's iteration count by `scale` (not the RSS
/// lifecycle's 1 GiB peak).
pub fn set_scale(scale: f64) {
    assert!(scale > 0.0, "scale must be positive");
    SCALE.store(scale.to_bits(), Relaxed);
}

/// Scales an iteration count by the current scale (at least 1).
fn scaled(n: usize) -> usize {
    ((n as f64 * f64::from_bits(SCALE.load(Relaxed))) as usize).max(1)
}

/// Hot single-size alloc/free: for each size from 16 B to 64 KiB (powers of
/// two), allocate, tag, check and free the same size over and over.
pub fn hot() -> u64 {
    let n = scaled(3_000_000);
    let mut rng = Rng::new(1);
    let mut sum = 0u64;
    let mut size = 16;
    while size <= 64 * KIB {
        for _ in 0..n {
            let block = Block::new(black_box(size), rng.tag());
            sum = sum.wrapping_add(black_box(block).free());
        }
        size *= 2;
    }
    sum
}

/// Random-size churn in a working set: 20 000 live blocks of mixed sizes,
/// each step replaces a random one.
pub fn churn() -> u64 {
    let (slots, n) = (20_000, scaled(12_000_000));
    let mut rng = Rng::new(2);
    let mut set: Vec<Block> = (0..slots).map(|_| Block::new(rng.mixed_size(), rng.tag())).collect();
    let mut sum = 0u64;
    for _ in 0..n {
        let i = rng.below(slots);
        let fresh = Block::new(rng.mixed_size(), rng.tag());
        sum = sum.wrapping_add(std::mem::replace(&mut set[i], fresh).free());
    }
    set.into_iter().fold(sum, |s, b| s.wrapping_add(b.free()))
}

/// One larson bucket: a working set and the RNG that drives it, handed from
/// thread to thread between rounds.
struct Bucket {
    set: Vec<Block>,
    rng: Rng,
    sum: u64,
}

/// Larson-like: four threads, four buckets of 5 000 blocks (16 B to 1 KiB);
/// each round every thread replaces random blocks of one bucket, then the
/// buckets rotate, so most frees are of blocks another thread allocated.
pub fn larson() -> u64 {
    let (threads, slots, rounds, per_round) = (4, 5_000, scaled(600), 5_000);
    let buckets: Arc<Vec<Mutex<Bucket>>> = Arc::new(
        (0..threads).map(|t| Mutex::new(Bucket { set: Vec::new(), rng: Rng::new(100 + t as u64), sum: 0 })).collect(),
    );
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (buckets, barrier) = (buckets.clone(), barrier.clone());
            std::thread::spawn(move || {
                {
                    let mut b = buckets[t].lock().unwrap();
                    let b = &mut *b;
                    b.set = (0..slots).map(|_| Block::new(b.rng.log_size(16, KIB), b.rng.tag())).collect();
                }
                barrier.wait();
                for round in 0..rounds {
                    {
                        let mut guard = buckets[(t + round) % threads].lock().unwrap();
                        let b = &mut *guard;
                        for _ in 0..per_round {
                            let i = b.rng.below(slots);
                            let fresh = Block::new(b.rng.log_size(16, KIB), b.rng.tag());
                            b.sum = b.sum.wrapping_add(std::mem::replace(&mut b.set[i], fresh).free());
                        }
                    }
                    barrier.wait();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let mut sum = 0u64;
    for b in buckets.iter() {
        let mut b = b.lock().unwrap();
        sum = std::mem::take(&mut b.set).into_iter().fold(sum.wrapping_add(b.sum), |s, x| s.wrapping_add(x.free()));
    }
    sum
}

/// Producer/consumer: one thread allocates blocks (16 B to 512 B) in
/// batches of 256, another checks and frees them: every free is remote
/// (the batch vectors too).
pub fn prodcons() -> u64 {
    let (batches, batch) = (scaled(30_000), 256);
    let (tx, rx) = sync_channel::<Vec<Block>>(32);
    let consumer = std::thread::spawn(move || {
        let mut sum = 0u64;
        for v in rx {
            for b in v {
                sum = sum.wrapping_add(b.free());
            }
        }
        sum
    });
    let mut rng = Rng::new(3);
    for _ in 0..batches {
        let v: Vec<Block> = (0..batch).map(|_| Block::new(rng.log_size(16, 512), rng.tag())).collect();
        tx.send(v).unwrap();
    }
    drop(tx);
    consumer.join().unwrap()
}

fn batch(lifo: bool) -> u64 {
    let (n, rounds) = (100_000, scaled(50));
    let mut rng = Rng::new(if lifo { 4 } else { 5 });
    let mut sum = 0u64;
    let mut v: Vec<Block> = Vec::with_capacity(n);
    for _ in 0..rounds {
        v.extend((0..n).map(|_| Block::new(rng.log_size(16, 2 * KIB), rng.tag())));
        if lifo {
            while let Some(b) = v.pop() {
                sum = sum.wrapping_add(b.free());
            }
        } else {
            sum = v.drain(..).fold(sum, |s, b| s.wrapping_add(b.free()));
        }
    }
    sum
}

/// Batch-then-free, LIFO: allocate 100 000 blocks (16 B to 2 KiB), free
/// the last allocated first; repeated.
pub fn batch_lifo() -> u64 {
    batch(true)
}

/// Batch-then-free, reverse (FIFO): as [`batch_lifo`], freeing in
/// allocation order.
pub fn batch_fifo() -> u64 {
    batch(false)
}

/// Large blocks: a working set of 8 blocks of 64 KiB to 8 MiB (log-uniform,
/// every page touched), a random one replaced each step; every fourth step
/// also grows one block from 64 KiB to 8 MiB by `realloc` (x1.25 a step),
/// touching the new pages.
pub fn large() -> u64 {
    let (slots, n) = (8, scaled(1_000));
    let mut rng = Rng::new(6);
    let new = |rng: &mut Rng| {
        let mut b = Block::new(rng.log_size(64 * KIB, 8 * MIB), rng.tag());
        b.touch(0);
        b
    };
    let mut set: Vec<Block> = (0..slots).map(|_| new(&mut rng)).collect();
    let mut sum = 0u64;
    for step in 0..n {
        let i = rng.below(slots);
        let fresh = new(&mut rng);
        sum = sum.wrapping_add(std::mem::replace(&mut set[i], fresh).free());
        if step % 4 == 0 {
            let mut b = Block::new(64 * KIB, rng.tag());
            b.touch(0);
            while b.size() < 8 * MIB {
                let old = b.size();
                b.grow((old + old / 4).next_multiple_of(PAGE).min(8 * MIB));
                b.touch(old);
            }
            sum = sum.wrapping_add(b.free());
        }
    }
    set.into_iter().fold(sum, |s, b| s.wrapping_add(b.free()))
}

/// Thread create/exit with surviving objects: each round two threads each
/// allocate 2 000 blocks (16 B to 1 KiB), free every other one and exit;
/// the main thread keeps the survivors of the last four rounds and frees
/// older ones (frees into the heaps of exited threads).
pub fn threads() -> u64 {
    let (rounds, per_thread, keep) = (scaled(1_500), 2_000, 4);
    let mut sum = 0u64;
    let mut kept: std::collections::VecDeque<Vec<Block>> = std::collections::VecDeque::new();
    for round in 0..rounds {
        let handles: Vec<_> = (0..2)
            .map(|t| {
                std::thread::spawn(move || {
                    let mut rng = Rng::new(1_000 + 2 * round as u64 + t);
                    let mut sum = 0u64;
                    let mut survivors = Vec::with_capacity(per_thread / 2);
                    for i in 0..per_thread {
                        let b = Block::new(rng.log_size(16, KIB), rng.tag());
                        if i % 2 == 0 {
                            survivors.push(b);
                        } else {
                            sum = sum.wrapping_add(b.free());
                        }
                    }
                    (sum, survivors)
                })
            })
            .collect();
        for h in handles {
            let (s, survivors) = h.join().unwrap();
            sum = sum.wrapping_add(s);
            kept.push_back(survivors);
        }
        while kept.len() > 2 * keep {
            sum = kept.pop_front().unwrap().into_iter().fold(sum, |s, b| s.wrapping_add(b.free()));
        }
    }
    kept.into_iter().flatten().fold(sum, |s, b| s.wrapping_add(b.free()))
}

/// glibc's `bench-malloc-simple` pattern (mimalloc-bench's `glibc-simple`):
/// 16-byte blocks, each filled byte by byte; for `n` of 25, 100, 400 and
/// 1 600, `2 000 000 / n` times: allocate `n`, free the first half in
/// allocation order and the second half last-first. A warm-up pass, a
/// pass on the main thread, one on a fresh thread, one on the main thread
/// again.
pub fn simple() -> u64 {
    const SIZE: usize = 16;
    let iters = scaled(2_000_000);
    let layout = Layout::from_size_align(SIZE, ALIGN.load(Relaxed)).expect("layout");
    let pass = move || {
        let mut arr = vec![std::ptr::null_mut::<u8>(); 1_600];
        let mut sum = 0u64;
        for n in [25, 100, 400, 1_600] {
            for _ in 0..(iters / n).max(1) {
                for slot in arr.iter_mut().take(n) {
                    // SAFETY: a non-zero-size layout.
                    let p = unsafe { alloc(layout) };
                    if p.is_null() {
                        handle_alloc_error(layout);
                    }
                    for g in 0..SIZE {
                        // SAFETY: `g < SIZE`, inside the fresh block.
                        unsafe { p.add(g).write(g as u8) };
                    }
                    *slot = p;
                }
                let free = |p: *mut u8| {
                    // SAFETY: a live block of `layout`, freed once.
                    let last = unsafe { p.add(SIZE - 1).read() };
                    // SAFETY: as above.
                    unsafe { dealloc(p, layout) };
                    u64::from(last)
                };
                for &p in &arr[..n / 2] {
                    sum = sum.wrapping_add(free(p));
                }
                for &p in arr[n / 2..n].iter().rev() {
                    sum = sum.wrapping_add(free(p));
                }
            }
        }
        sum
    };
    let mut sum = pass();
    sum = sum.wrapping_add(pass());
    sum = sum.wrapping_add(std::thread::spawn(pass).join().unwrap());
    sum.wrapping_add(pass())
}

/// The larson benchmark's shape (mimalloc-bench's `larson 5 8 1000 5000
/// 100 4141 2`), by operation count instead of by time: two chains, each an
/// array of 5 000 blocks of 16 B to 1 KiB allocated by the main thread;
/// a thread of each chain replaces 500 000 random blocks, then hands the
/// array to a fresh thread and exits, so each generation frees what the
/// previous (exited) thread allocated: frees into abandoned spans, and
/// their adoption.
pub fn larson2() -> u64 {
    let (chains, slots, per_thread, generations) = (2, 5_000, scaled(500_000), 12);
    let size = |rng: &mut Rng| (16 + rng.below(1_000 - 16)) & !7;
    let starts: Vec<(Vec<Block>, Rng)> = (0..chains)
        .map(|c| {
            let mut rng = Rng::new(4141 + c as u64);
            let set = (0..slots).map(|_| Block::new(size(&mut rng), rng.tag())).collect();
            (set, rng)
        })
        .collect();
    let drivers: Vec<_> = starts
        .into_iter()
        .map(|(set, rng)| {
            std::thread::spawn(move || {
                let mut state = (set, rng, 0u64);
                for _ in 0..generations {
                    state = std::thread::spawn(move || {
                        let (mut set, mut rng, mut sum) = state;
                        for _ in 0..per_thread {
                            let i = rng.below(slots);
                            let fresh = Block::new(size(&mut rng), rng.tag());
                            sum = sum.wrapping_add(std::mem::replace(&mut set[i], fresh).free());
                        }
                        (set, rng, sum)
                    })
                    .join()
                    .unwrap();
                }
                let (set, _, sum) = state;
                set.into_iter().fold(sum, |s, b| s.wrapping_add(b.free()))
            })
        })
        .collect();
    drivers.into_iter().fold(0u64, |s, d| s.wrapping_add(d.join().unwrap()))
}

/// glibc's `bench-malloc-thread` pattern (mimalloc-bench's `glibc-thread
/// 2`), by operation count: two threads, each with its own working set of
/// 1 024 blocks of 4 B to 32 KiB (inverse-square distribution, from a
/// table of 8 000 sizes), replacing a random one each step and filling the
/// new block byte by byte. No cross-thread frees.
pub fn thread2() -> u64 {
    let steps = scaled(4_000_000);
    let mut rng = Rng::new(88);
    let sizes: Arc<Vec<usize>> = Arc::new(
        (0..8_000)
            .map(|_| {
                // Inverse square on [4, 32768]: 1 / (1/4 - r (1/4 - 1/32768)).
                let r = rng.below(1 << 24) as f64 / (1u64 << 24) as f64;
                ((1.0 / (0.25 - r * (0.25 - 1.0 / 32_768.0))) as usize).clamp(16, 32_768)
            })
            .collect(),
    );
    let offsets: Arc<Vec<usize>> = Arc::new((0..4_096).map(|_| rng.below(1_024)).collect());
    let workers: Vec<_> = (0..2)
        .map(|t| {
            let (sizes, offsets) = (sizes.clone(), offsets.clone());
            std::thread::spawn(move || {
                let mut set: Vec<Option<Block>> = (0..1_024).map(|_| None).collect();
                let (mut si, mut oi, mut sum) = (t * 100, t * 100, 0u64);
                for _ in 0..steps {
                    let (i, size) = (offsets[oi], sizes[si]);
                    oi = (oi + 1) % offsets.len();
                    si = (si + 1) % sizes.len();
                    if let Some(old) = set[i].take() {
                        sum = sum.wrapping_add(old.free());
                    }
                    let mut b = Block::new(size, si as u64 | 1);
                    b.fill();
                    set[i] = Some(b);
                }
                set.into_iter().flatten().fold(sum, |s, b| s.wrapping_add(b.free()))
            })
        })
        .collect();
    workers.into_iter().fold(0u64, |s, w| s.wrapping_add(w.join().unwrap()))
}

/// A timed workload: name and function.
pub type Workload = (&'static str, fn() -> u64);

/// The timed workloads, in the order the driver runs them.
pub const WORKLOADS: &[Workload] = &[
    ("hot", hot),
    ("churn", churn),
    ("larson", larson),
    ("prodcons", prodcons),
    ("batch_lifo", batch_lifo),
    ("batch_fifo", batch_fifo),
    ("large", large),
    ("threads", threads),
    ("simple", simple),
    ("larson2", larson2),
    ("thread2", thread2),
];

/// Resident set size of this process in bytes (`/proc/self/statm`).
pub fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("read /proc/self/statm");
    let pages: usize = statm.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("parse statm");
    pages * PAGE
}

/// What the RSS lifecycle measured, in bytes and seconds.
#[derive(Debug, Clone, Copy)]
pub struct Lifecycle {
    /// RSS before allocating.
    pub baseline: usize,
    /// RSS with the whole 1 GiB live.
    pub peak: usize,
    /// RSS after freeing every other block.
    pub half: usize,
    /// RSS right after freeing everything.
    pub all: usize,
    /// RSS after 1 s of idleness.
    pub idle: usize,
    /// When RSS first came within 64 MiB of the baseline after the last
    /// free (`None`: not within the second).
    pub settle: Option<Duration>,
    /// Time of the allocation and free phases (idle excluded).
    pub secs: f64,
    /// Sum of the tags read back.
    pub check: u64,
}

/// The RSS lifecycle: allocate 1 GiB in blocks of 64 B to 64 KiB
/// (log-uniform, every page touched), free every other block, free the
/// rest, then stay idle for one second, sampling RSS every 10 ms.
pub fn lifecycle() -> Lifecycle {
    let target = 1usize << 30;
    let mut rng = Rng::new(7);
    let mut sizes = Vec::new();
    let mut total = 0;
    while total < target {
        let s = rng.log_size(64, 64 * KIB);
        total += s;
        sizes.push(s);
    }
    let mut blocks: Vec<Option<Block>> = Vec::with_capacity(sizes.len());
    let baseline = rss_bytes();
    let start = Instant::now();
    for &s in &sizes {
        let mut b = Block::new(s, rng.tag());
        b.touch(0);
        blocks.push(Some(b));
    }
    let mut secs = start.elapsed().as_secs_f64();
    let peak = rss_bytes();
    let mut check = 0u64;
    let mut free_where = |blocks: &mut Vec<Option<Block>>, odd: bool| {
        let start = Instant::now();
        for (i, slot) in blocks.iter_mut().enumerate() {
            if (i % 2 == 1) == odd {
                check = check.wrapping_add(slot.take().expect("live block").free());
            }
        }
        secs += start.elapsed().as_secs_f64();
    };
    free_where(&mut blocks, true);
    let half = rss_bytes();
    free_where(&mut blocks, false);
    let freed_at = Instant::now();
    let all = rss_bytes();
    let mut settle = None;
    loop {
        let waited = freed_at.elapsed();
        if settle.is_none() && rss_bytes() <= baseline + 64 * MIB {
            settle = Some(waited);
        }
        if waited >= Duration::from_secs(1) {
            break;
        }
        std::thread::sleep(Duration::from_millis(10).min(Duration::from_secs(1) - waited));
    }
    let idle = rss_bytes();
    drop(blocks);
    Lifecycle { baseline, peak, half, all, idle, settle, secs, check }
}

/// An allocator under test: its name and, optionally, a line of its own
/// statistics printed after the RSS lifecycle.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    /// Name in the output (`system`, `mimalloc`, `jemalloc`, `discardable`).
    pub name: &'static str,
    /// Extra statistics, if the allocator has any.
    pub stats: Option<fn() -> String>,
}

fn mib(bytes: usize) -> f64 {
    bytes as f64 / MIB as f64
}

/// The allocator binaries' entry point: runs the workloads named in the
/// arguments (`all` for every timed one, `rss` for the lifecycle, `list` to
/// list the names) and prints one line each.
pub fn main(peer: Peer) {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(align) = std::env::var("ALLOC_BENCH_ALIGN").ok().and_then(|s| s.parse::<usize>().ok()) {
        assert!(align.is_power_of_two() && align <= 4096, "ALLOC_BENCH_ALIGN must be a power of two <= 4096");
        ALIGN.store(align, Relaxed);
    }
    if let Some(scale) = std::env::var("ALLOC_BENCH_SCALE").ok().and_then(|s| s.parse::<f64>().ok()) {
        set_scale(scale);
    }
    if args.is_empty() {
        eprintln!("usage: {} (all | rss | list | WORKLOAD...)", peer.name);
        std::process::exit(2);
    }
    for arg in &args {
        match arg.as_str() {
            "list" => {
                for (name, _) in WORKLOADS {
                    println!("{name}");
                }
                println!("rss");
            }
            "rss" => {
                let l = lifecycle();
                let settle = l.settle.map_or("none".to_string(), |d| d.as_millis().to_string());
                println!("result alloc={} workload=rss_lifecycle secs={:.9} check={:016x}", peer.name, l.secs, l.check);
                println!(
                    "rss alloc={} baseline={:.1} peak={:.1} half={:.1} all={:.1} idle={:.1} settle_ms={settle}",
                    peer.name,
                    mib(l.baseline),
                    mib(l.peak),
                    mib(l.half),
                    mib(l.all),
                    mib(l.idle)
                );
                if let Some(stats) = peer.stats {
                    println!("stats alloc={} {}", peer.name, stats());
                }
            }
            name => {
                let list: Vec<&Workload> = if name == "all" {
                    WORKLOADS.iter().collect()
                } else {
                    match WORKLOADS.iter().find(|(n, _)| *n == name) {
                        Some(w) => vec![w],
                        None => {
                            eprintln!("unknown workload {name}");
                            std::process::exit(2);
                        }
                    }
                };
                for (name, f) in list {
                    let start = Instant::now();
                    let check = black_box(f());
                    let secs = start.elapsed().as_secs_f64();
                    println!("result alloc={} workload={name} secs={secs:.9} check={check:016x}", peer.name);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_stay_in_range() {
        let mut rng = Rng::new(9);
        for _ in 0..100_000 {
            let s = rng.log_size(16, KIB);
            assert!((16..KIB).contains(&s) && s & 7 == 0, "{s}");
            let m = rng.mixed_size();
            assert!((16..64 * KIB).contains(&m), "{m}");
            assert!(rng.below(7) < 7);
        }
    }

    #[test]
    fn workloads_are_deterministic_and_check_their_data() {
        set_scale(0.002);
        for (name, f) in WORKLOADS {
            assert_eq!(f(), f(), "{name}");
        }
    }

    #[test]
    fn grow_keeps_contents() {
        let mut b = Block::new(64 * KIB, 0xABCD);
        b.touch(0);
        b.grow(200 * KIB);
        b.touch(64 * KIB);
        assert_eq!(b.free(), 0xABCD);
    }
}
