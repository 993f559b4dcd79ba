//! A thread's way to its heap: the TLS pointer, the pool the heap structs
//! come from, the fallback heap for threads that have none (exiting
//! threads), thread exit, and the fork handlers. [`alloc`] and [`free`] are
//! the allocator's entry points into the thread heaps (`heap.rs`).
//!
//! Thread exit is seen by a pthread key destructor, registered once, which
//! abandons the heap (`Heap::abandon`) and returns its struct to the pool.
//! Heap structs are never unmapped, so a remote freer that still reads a
//! stale owner id at worst raises a flag nobody reads.
//!
//! - The fallback heap is touched only under `FALLBACK_LOCK` (heap INV-4).
//! - Lock order: `FALLBACK_LOCK` → the abandoned set's lock → `POOL_LOCK` →
//!   the page heap's lock. The fork handlers take them in this order.
//!
//! Must never: allocate through the Rust heap, take a parking_lot lock, pin
//! an epoch, or panic (internal failures abort with a static message).

use core::cell::{Cell, UnsafeCell};
use core::ffi::c_void;
use core::ptr;
use core::sync::atomic::{AtomicU8, AtomicUsize, Ordering::*};

use super::abandoned;
use super::heap::{self, Heap};
use super::span::Span;
use crate::os;
use crate::page_heap;
use crate::sync::RawLock;

thread_local! {
    /// Set once the thread's heap was abandoned at exit.
    static DEAD: Cell<bool> = const { Cell::new(false) };
}

/// This thread's heap pointer: null before the first allocation and after
/// exit.
///
/// On x86-64 Linux it is an initial-exec TLS slot of our own, read with one
/// `fs`-relative load (its offset from the thread pointer is a GOT entry
/// fixed at load time, or a constant once linked into an executable). A
/// Rust `thread_local!` in the `LD_PRELOAD` library (a shared object, so
/// general-dynamic TLS) costs a `__tls_get_addr` call on every `malloc` and
/// `free`: about a tenth of glibc-simple's time. The price is the static
/// TLS block: a library with this slot loaded by `dlopen` takes 8 bytes of
/// glibc's static TLS surplus.
#[cfg(all(target_arch = "x86_64", target_os = "linux", not(loom), not(miri)))]
mod slot {
    use super::Heap;

    /// `$pre`, the slot's symbol, `$post`: the symbol carries the crate's
    /// version, so two versions of this crate linked into one binary each
    /// have their own slot instead of a duplicate symbol.
    macro_rules! with_slot {
        ($pre:literal, $post:literal) => {
            concat!(
                $pre,
                "discardable_thread_heap_",
                env!("CARGO_PKG_VERSION_MAJOR"),
                "_",
                env!("CARGO_PKG_VERSION_MINOR"),
                "_",
                env!("CARGO_PKG_VERSION_PATCH"),
                $post
            )
        };
    }

    core::arch::global_asm!(
        ".pushsection .tbss,\"awT\",@nobits",
        ".p2align 3",
        with_slot!(".globl ", ""),
        with_slot!(".hidden ", ""),
        with_slot!(".type ", ",@object"),
        with_slot!(".size ", ",8"),
        with_slot!("", ":"),
        ".zero 8",
        ".popsection",
    );

    /// The slot's value.
    #[inline(always)]
    pub(super) fn get() -> *mut Heap {
        let heap: *mut Heap;
        // SAFETY: reads the calling thread's 8-byte `.tbss` slot defined
        // above (zero-initialised for every thread: null), through its
        // thread-pointer offset; no other memory is touched.
        unsafe {
            core::arch::asm!(
                with_slot!("mov {h}, qword ptr [rip + ", "@GOTTPOFF]"),
                "mov {h}, qword ptr fs:[{h}]",
                h = out(reg) heap,
                options(nostack, preserves_flags, readonly, pure),
            )
        };
        heap
    }

    /// Sets the slot.
    #[inline]
    pub(super) fn set(heap: *mut Heap) {
        // SAFETY: writes the calling thread's own slot (as in `get`); `t`
        // is a register distinct from `h` (`out`, not `lateout`).
        unsafe {
            core::arch::asm!(
                with_slot!("mov {t}, qword ptr [rip + ", "@GOTTPOFF]"),
                "mov qword ptr fs:[{t}], {h}",
                t = out(reg) _,
                h = in(reg) heap,
                options(nostack, preserves_flags),
            )
        };
    }
}

/// Elsewhere (and under loom and Miri) the slot is a destructor-free
/// `thread_local!`.
#[cfg(not(all(target_arch = "x86_64", target_os = "linux", not(loom), not(miri))))]
mod slot {
    use super::Heap;
    use core::cell::Cell;
    use core::ptr;

    thread_local! {
        static HEAP: Cell<*mut Heap> = const { Cell::new(ptr::null_mut()) };
    }

    /// The slot's value (null once the thread's TLS is gone).
    #[inline(always)]
    pub(super) fn get() -> *mut Heap {
        HEAP.try_with(Cell::get).unwrap_or(ptr::null_mut())
    }

    /// Sets the slot (a no-op once the thread's TLS is gone).
    #[inline]
    pub(super) fn set(heap: *mut Heap) {
        let _ = HEAP.try_with(|h| h.set(heap));
    }
}

struct Global<T>(UnsafeCell<T>);
// SAFETY: every `Global` is only accessed under its paired `RawLock`.
unsafe impl<T> Sync for Global<T> {}

static POOL_LOCK: RawLock = RawLock::new();
/// (free list head, bump pointer, bump end) of heap structs.
static POOL: Global<(*mut Heap, usize, usize)> = Global(UnsafeCell::new((ptr::null_mut(), 0, 0)));

static FALLBACK_LOCK: RawLock = RawLock::new();
static FALLBACK: Global<*mut Heap> = Global(UnsafeCell::new(ptr::null_mut()));

/// 0: not initialised, 1: initialising, 2: ready.
static INIT: AtomicU8 = AtomicU8::new(0);
static KEY: AtomicUsize = AtomicUsize::new(0);

/// The calling thread's heap, or null.
#[inline(always)]
fn this_heap() -> *mut Heap {
    slot::get()
}

/// Allocates a block of `class`.
///
/// # Safety
///
/// `class < CLASSES` (a class from `size_class.rs`).
#[inline(always)]
pub(crate) unsafe fn alloc(class: usize) -> *mut u8 {
    let heap = this_heap();
    if heap.is_null() {
        // SAFETY: forwarded from the caller.
        return unsafe { alloc_without_heap(class) };
    }
    // SAFETY: `heap` is this thread's live heap (heap INV-4); `class` is in
    // range (caller).
    unsafe { Heap::alloc(heap, class) }
}

/// Frees `ptr`, a block of the class span `span`.
///
/// # Safety
///
/// `ptr` must be a live block handed out from `span`.
#[inline(always)]
pub(crate) unsafe fn free(span: *mut Span, ptr: *mut u8) {
    // SAFETY: caller.
    unsafe { heap::free_from(this_heap(), span, ptr) }
}

/// Allocation on a thread without a heap: set one up, or use the fallback
/// heap if the thread is exiting.
///
/// # Safety
///
/// `class < CLASSES`.
#[cold]
unsafe fn alloc_without_heap(class: usize) -> *mut u8 {
    if DEAD.try_with(Cell::get).unwrap_or(true) {
        // SAFETY: forwarded from the caller.
        return unsafe { alloc_fallback(class) };
    }
    ensure_init();
    let heap = pool_take();
    if heap.is_null() {
        return ptr::null_mut();
    }
    slot::set(heap);
    if slot::get() != heap {
        // This thread's TLS is gone (the `thread_local!` slot only).
        pool_give(heap);
        // SAFETY: forwarded from the caller.
        return unsafe { alloc_fallback(class) };
    }
    // Arm the exit destructor. This may allocate inside libc; the heap is
    // already installed, so such a nested call is served normally.
    os::key_set(KEY.load(Acquire) as libc::pthread_key_t, heap.cast());
    // SAFETY: forwarded from the caller.
    unsafe { alloc(class) }
}

/// Allocation from the fallback heap, under its lock.
///
/// # Safety
///
/// `class < CLASSES`.
#[cold]
unsafe fn alloc_fallback(class: usize) -> *mut u8 {
    let _locked = FALLBACK_LOCK.lock();
    // SAFETY: `FALLBACK` is only touched under `FALLBACK_LOCK` (heap INV-4).
    let slot = unsafe { &mut *FALLBACK.0.get() };
    if slot.is_null() {
        *slot = pool_take();
        if slot.is_null() {
            return ptr::null_mut();
        }
    }
    // SAFETY: the fallback heap is live and we hold its lock (heap INV-4);
    // `class` is in range (caller).
    unsafe { Heap::alloc(*slot, class) }
}

/// Creates the pthread key and the fork handlers once.
fn ensure_init() {
    loop {
        match INIT.compare_exchange(0, 1, Acquire, Acquire) {
            Ok(_) => {
                let Some(key) = os::key_create(thread_exit) else {
                    os::abort_with("discardable: out of pthread keys\n");
                };
                KEY.store(key as usize, Relaxed);
                if !os::at_fork(fork_prepare, fork_parent, fork_child) {
                    os::abort_with("discardable: pthread_atfork failed\n");
                }
                INIT.store(2, Release);
                return;
            }
            Err(2) => return,
            Err(_) => std::thread::yield_now(),
        }
    }
}

/// The pthread key destructor: the thread is exiting.
unsafe extern "C" fn thread_exit(value: *mut c_void) {
    let heap = value.cast::<Heap>();
    slot::set(ptr::null_mut());
    let _ = DEAD.try_with(|d| d.set(true));
    if !heap.is_null() {
        // SAFETY: the heap was this thread's and the thread is exiting, so
        // nothing else uses it (heap INV-4).
        unsafe { Heap::abandon(heap, abandoned::global()) };
        pool_give(heap);
    }
}

unsafe extern "C" fn fork_prepare() {
    FALLBACK_LOCK.lock_for_fork();
    abandoned::global().lock_for_fork();
    POOL_LOCK.lock_for_fork();
    page_heap::global().lock_for_fork();
}

unsafe extern "C" fn fork_parent() {
    // SAFETY: `fork_prepare` took each lock once, in this thread.
    unsafe {
        page_heap::global().unlock_after_fork();
        POOL_LOCK.force_unlock();
        abandoned::global().unlock_after_fork();
        FALLBACK_LOCK.force_unlock();
    }
}

unsafe extern "C" fn fork_child() {
    // SAFETY: as in `fork_parent`; the child has only this thread.
    unsafe { fork_parent() };
    super::purge::after_fork_in_child();
}

/// Takes a fresh heap from the pool (null if the OS refuses memory).
fn pool_take() -> *mut Heap {
    let _locked = POOL_LOCK.lock();
    // SAFETY: `POOL` is only touched under `POOL_LOCK`.
    let pool = unsafe { &mut *POOL.0.get() };
    let heap = if !pool.0.is_null() {
        let heap = pool.0;
        // SAFETY: heaps on the free list are pooled and unused.
        pool.0 = unsafe { (*heap).pool_next };
        heap
    } else {
        let size = core::mem::size_of::<Heap>();
        if pool.1 + size > pool.2 {
            let Ok(chunk) = page_heap::global().alloc_span(16, true) else { return ptr::null_mut() };
            pool.1 = chunk.as_ptr() as usize;
            pool.2 = pool.1 + 16 * page_heap::global().page_size();
        }
        let heap = pool.1 as *mut Heap;
        pool.1 += size.next_multiple_of(64);
        heap
    };
    // SAFETY: `heap` points to pooled memory sized for a `Heap` that only
    // we use now.
    unsafe { heap.write(Heap::new()) };
    heap
}

/// Returns an abandoned heap to the pool.
fn pool_give(heap: *mut Heap) {
    let _locked = POOL_LOCK.lock();
    // SAFETY: `POOL` under its lock; the heap is abandoned and unused.
    unsafe {
        let pool = &mut *POOL.0.get();
        (*heap).pool_next = pool.0;
        pool.0 = heap;
    }
}
