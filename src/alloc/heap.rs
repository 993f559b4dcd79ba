//! Thread heaps: per-thread lists of class spans, thread exit, abandoned
//! spans and their adoption, and the fallback heap for threads that have
//! none (exiting threads).
//!
//! Fast path (`Heap::alloc`): one TLS load, a load of the class's current
//! span, a list pop and a branch. Frees by the owning thread push onto the
//! span's local list; frees by any other thread (or by a thread without a
//! heap) push onto the span's atomic `thread_free` list (`remote.rs`).
//!
//! Thread exit is seen by a pthread key destructor, registered once, which
//! abandons the heap: fully free spans go back to the page heap, the rest
//! move to the abandoned set (`abandoned.rs`), from which other heaps adopt
//! them and the purge thread frees them once empty.
//!
//! Invariants (with span.rs INV-1..5 and abandoned.rs AB-1..3):
//! - INV-4: a heap's lists are touched only by its thread (or, for the
//!   fallback heap, under `FALLBACK_LOCK`).
//! - Lock order: `FALLBACK_LOCK` → the abandoned set's lock → `POOL_LOCK` →
//!   the page heap's lock. The fork handlers take them in this order.
//!
//! Must never: allocate through the Rust heap, take a parking_lot lock, pin
//! an epoch, or panic (internal failures abort with a static message).

use core::cell::{Cell, UnsafeCell};
use core::ffi::c_void;
use core::ptr;
use core::sync::atomic::{AtomicU8, AtomicUsize, Ordering::*};

use super::abandoned::{self, Abandoned};
#[cfg(not(loom))]
use super::accounting;
use super::remote::{self, now_ns};
#[cfg(not(loom))]
use super::size_class::span_bytes;
use super::size_class::CLASSES;
use super::span::{self, Block, Owner, Span};
use crate::os;
use crate::page_heap;
use crate::sync::RawLock;

/// A thread's heap (INV-4).
#[repr(C)]
pub(crate) struct Heap {
    /// What its spans know of it (span INV-3): first, so that its address
    /// is the heap's, [`Heap::id`].
    owner: Owner,
    /// Per class: the head of the list of spans with (possibly) free
    /// blocks, or the `EMPTY` sentinel.
    current: [*mut Span; CLASSES],
    /// Per class: spans with nothing free when last looked at.
    full: [*mut Span; CLASSES],
    /// Link in the pool's free list.
    pool_next: *mut Heap,
}

thread_local! {
    /// This thread's heap; null before the first allocation and after exit.
    static HEAP: Cell<*mut Heap> = const { Cell::new(ptr::null_mut()) };
    /// Set once the thread's heap was abandoned at exit.
    static DEAD: Cell<bool> = const { Cell::new(false) };
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
    HEAP.try_with(Cell::get).unwrap_or(ptr::null_mut())
}

/// Allocates a block of `class`.
#[inline(always)]
pub(crate) fn alloc(class: usize) -> *mut u8 {
    let heap = this_heap();
    if heap.is_null() {
        return alloc_without_heap(class);
    }
    // SAFETY: `heap` is this thread's live heap (INV-4).
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
    unsafe { free_from(this_heap(), span, ptr) }
}

/// [`free`] by the thread whose heap is `heap` (null: it has none).
///
/// # Safety
///
/// As for [`free`]; `heap` is the calling thread's heap or null.
#[inline(always)]
unsafe fn free_from(heap: *mut Heap, span: *mut Span, ptr: *mut u8) {
    let block = ptr.cast::<Block>();
    // SAFETY: the span outlives its live blocks; `owner == id(heap)` means we
    // own it (INV-3), so its owner-only fields are ours (INV-1).
    unsafe {
        if !heap.is_null() && ptr::eq((*span).owner.load(Relaxed), Heap::id(heap)) {
            (*block).next = (*span).free;
            (*span).free = block;
            (*span).used -= 1;
            if (*span).used == 0 || Span::kind(span, Relaxed) != span::ACTIVE {
                Heap::after_local_free(heap, span);
            }
            return;
        }
        remote::free_remote(span, block);
    }
}

/// Allocation on a thread without a heap: set one up, or use the fallback
/// heap if the thread is exiting.
#[cold]
fn alloc_without_heap(class: usize) -> *mut u8 {
    if DEAD.try_with(Cell::get).unwrap_or(true) {
        return alloc_fallback(class);
    }
    ensure_init();
    let heap = pool_take();
    if heap.is_null() {
        return ptr::null_mut();
    }
    if HEAP.try_with(|h| h.set(heap)).is_err() {
        pool_give(heap);
        return alloc_fallback(class);
    }
    // Arm the exit destructor. This may allocate inside libc; the heap is
    // already installed, so such a nested call is served normally.
    os::key_set(KEY.load(Acquire) as libc::pthread_key_t, heap.cast());
    alloc(class)
}

#[cold]
fn alloc_fallback(class: usize) -> *mut u8 {
    let _locked = FALLBACK_LOCK.lock();
    // SAFETY: `FALLBACK` is only touched under `FALLBACK_LOCK` (INV-4).
    let slot = unsafe { &mut *FALLBACK.0.get() };
    if slot.is_null() {
        *slot = pool_take();
        if slot.is_null() {
            return ptr::null_mut();
        }
    }
    // SAFETY: the fallback heap is live and we hold its lock (INV-4).
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
    let _ = HEAP.try_with(|h| h.set(ptr::null_mut()));
    let _ = DEAD.try_with(|d| d.set(true));
    if !heap.is_null() {
        // SAFETY: the heap was this thread's and the thread is exiting, so
        // nothing else uses it (INV-4).
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
    unsafe {
        heap.write(Heap {
            current: [span::empty(); CLASSES],
            full: [ptr::null_mut(); CLASSES],
            owner: Owner::new(),
            pool_next: ptr::null_mut(),
        })
    };
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

// A span's owner id is its heap's address.
static_assertions::const_assert_eq!(core::mem::offset_of!(Heap, owner), 0);

impl Heap {
    /// The id the heap's spans know it by (span INV-3): the address of its
    /// `owner`, which is the heap's own.
    #[inline(always)]
    pub(crate) fn id(heap: *mut Heap) -> *mut Owner {
        heap.cast()
    }

    /// The fast path: pop a block of `class` from the current span, else
    /// refill.
    ///
    /// # Safety
    ///
    /// The caller owns `heap` (INV-4).
    #[inline(always)]
    unsafe fn alloc(heap: *mut Heap, class: usize) -> *mut u8 {
        // SAFETY: `current` holds a live span of ours or `EMPTY`, whose
        // `free` is null (caller owns `heap`).
        unsafe {
            let span = (*heap).current[class];
            let block = (*span).free;
            if !block.is_null() {
                (*span).free = (*block).next;
                (*span).used += 1;
                return block.cast();
            }
            Heap::alloc_slow(heap, class)
        }
    }

    /// Makes `span` the current span of `class`. The span it displaces is
    /// released if it has become empty, so an empty span never hides behind
    /// the head where nothing would look at it again.
    ///
    /// # Safety
    ///
    /// The caller owns `heap` and `span`, which is on no list.
    unsafe fn push_current(heap: *mut Heap, class: usize, span: *mut Span) {
        // SAFETY: owner of heap and its spans (INV-1, 4).
        unsafe {
            let old = (*heap).current[class];
            if old != span::empty() {
                Span::collect(old);
                if (*old).used == 0 && Span::quiescent(old) {
                    span::unlink(&mut (*heap).current[class], old, span::empty());
                    Span::release(old);
                }
            }
            span::push_front(&mut (*heap).current[class], span, span::empty());
        }
    }

    /// Refills `class` and allocates from it: from the current spans,
    /// else from an adopted abandoned span, else from a fresh one.
    ///
    /// # Safety
    ///
    /// The caller owns `heap` (INV-4).
    #[cold]
    unsafe fn alloc_slow(heap: *mut Heap, class: usize) -> *mut u8 {
        // SAFETY: the caller owns `heap` and thereby its spans (INV-1, 4).
        unsafe {
            if (*heap).owner.full_pending.swap(false, Acquire) {
                Heap::rescue_full(heap);
            }
            loop {
                let span = (*heap).current[class];
                if span == span::empty() {
                    let adopted = abandoned::global().adopt(class, Heap::id(heap));
                    let Some(span) = adopted.or_else(|| new_span(class, heap)) else {
                        return ptr::null_mut();
                    };
                    Heap::push_current(heap, class, span);
                    continue;
                }
                let block = Heap::take_or_park(heap, span);
                if !block.is_null() {
                    return block;
                }
            }
        }
    }

    /// One turn of the refill loop on `span`, the head of `current`: a
    /// block from its free list, its remote frees or its never-used tail;
    /// with none left, it parks the span (`park_full`) and returns null.
    ///
    /// # Safety
    ///
    /// The caller owns `heap`; `span` heads one of its current lists.
    unsafe fn take_or_park(heap: *mut Heap, span: *mut Span) -> *mut u8 {
        // SAFETY: owner of heap and span (INV-1, 4); `free` is not empty
        // once `collect` took a block or `extend` added some.
        unsafe {
            if (*span).free.is_null() && Span::collect(span) == 0 && !Span::extend(span) {
                Heap::park_full(heap, span);
                return ptr::null_mut();
            }
            Span::pop(span)
        }
    }

    /// Moves an exhausted span from `current` to the full list.
    ///
    /// # Safety
    ///
    /// The caller owns `heap`; `span` is the head of `current[class]`.
    unsafe fn park_full(heap: *mut Heap, span: *mut Span) {
        // SAFETY: owner of heap and span (INV-1, 4).
        unsafe {
            let class = (*span).class as usize;
            span::unlink(&mut (*heap).current[class], span, span::empty());
            (*span).parked_used.store((*span).used, Relaxed);
            (*span).parked_at.store(now_ns(), Relaxed);
            // A new epoch: a thief holding an older parked word fails its CAS.
            let epoch = ((*span).state.load(Relaxed) & !span::KIND).wrapping_add(span::KIND + 1);
            // SeqCst store, then re-check `thread_free`: pairs with the
            // pusher's SeqCst CAS then `state` load (span.rs), so a remote
            // free is never stranded on a parked span.
            (*span).state.store(epoch | span::PARKED, SeqCst);
            // Pairs with the fence after the pusher's CAS (span.rs): the
            // store and the load below are ordered by the SeqCst total
            // order, as loom can check.
            crate::sync::fence(SeqCst);
            if (*span).thread_free.load(SeqCst).is_null() {
                span::push_front(&mut (*heap).full[class], span, ptr::null_mut());
            } else if Span::unpark(span) {
                Span::collect(span);
                Heap::push_current(heap, class, span);
            } else if Span::quiescent(span) {
                Span::release(span); // stolen: empty
            } else {
                // Stolen, but the thief is still at it: look again later.
                span::push_front(&mut (*heap).full[class], span, ptr::null_mut());
                (*heap).owner.full_pending.store(true, Relaxed);
            }
        }
    }

    /// Brings full spans that received remote frees back to `current`.
    ///
    /// # Safety
    ///
    /// The caller owns `heap`.
    unsafe fn rescue_full(heap: *mut Heap) {
        // SAFETY: owner of heap and its spans (INV-1, 4).
        unsafe {
            for class in 0..CLASSES {
                let mut span = (*heap).full[class];
                while !span.is_null() {
                    let next = (*span).next;
                    let stolen = Span::kind(span, Acquire) == span::STOLEN;
                    if stolen || !(*span).thread_free.load(Relaxed).is_null() {
                        if stolen || !Span::unpark(span) {
                            // Stolen: empty; release once the thief is done.
                            if Span::quiescent(span) {
                                span::unlink(&mut (*heap).full[class], span, ptr::null_mut());
                                Span::release(span);
                            } else {
                                (*heap).owner.full_pending.store(true, Relaxed);
                            }
                        } else {
                            span::unlink(&mut (*heap).full[class], span, ptr::null_mut());
                            Span::collect(span);
                            if (*span).used == 0 && Span::quiescent(span) {
                                Span::release(span);
                            } else {
                                Heap::push_current(heap, class, span);
                            }
                        }
                    }
                    span = next;
                }
            }
        }
    }

    /// After a local free that emptied a span or hit a full one.
    ///
    /// # Safety
    ///
    /// The caller owns `heap` and `span`.
    #[cold]
    unsafe fn after_local_free(heap: *mut Heap, span: *mut Span) {
        // SAFETY: owner of heap and span (INV-1, 4).
        unsafe {
            let class = (*span).class as usize;
            if Span::kind(span, Relaxed) != span::ACTIVE {
                span::unlink(&mut (*heap).full[class], span, ptr::null_mut());
                // The block just freed was live, so the span cannot have been
                // emptied and stolen (span INV-4).
                let active = Span::unpark(span);
                debug_assert!(active, "a span with a live block was stolen");
                Span::collect(span);
                Heap::push_current(heap, class, span);
            }
            if (*span).used == 0 && (*heap).current[class] != span {
                Span::collect(span);
                if (*span).used == 0 && Span::quiescent(span) {
                    span::unlink(&mut (*heap).current[class], span, span::empty());
                    Span::release(span);
                }
            }
        }
    }

    /// Abandons every span of an exiting thread's heap to `set`.
    ///
    /// # Safety
    ///
    /// The caller owned `heap` and nobody uses it any more.
    unsafe fn abandon(heap: *mut Heap, set: &Abandoned) {
        let mut locked = set.lock();
        // SAFETY: the heap and its spans were ours (caller); each span is
        // handed to the set, and the lists are reset after the walk.
        unsafe {
            for class in 0..CLASSES {
                for list in [(*heap).current[class], (*heap).full[class]] {
                    let mut span = list;
                    while !span.is_null() && span != span::empty() {
                        let next = (*span).next;
                        locked.abandon(span);
                        span = next;
                    }
                }
                (*heap).current[class] = span::empty();
                (*heap).full[class] = ptr::null_mut();
            }
        }
    }
}

/// Maps a fresh span for `class` owned by `heap`.
#[cfg(not(loom))]
fn new_span(class: usize, heap: *mut Heap) -> Option<*mut Span> {
    let bytes = span_bytes(class);
    let heap_pages = page_heap::global();
    let base = heap_pages.alloc_span_aligned(bytes / heap_pages.page_size(), bytes, false).ok()?;
    // SAFETY: `base` is a fresh span of `bytes`, aligned to `bytes`, ours.
    let span = unsafe {
        heap_pages.tag(base, bytes, true);
        accounting::IN_USE.fetch_add(bytes, Relaxed);
        Span::init(base, class, Heap::id(heap))
    };
    super::direct::after_growth();
    Some(span)
}

/// Under loom the page source is empty: the models build their spans up
/// front, so a refill that finds nothing to adopt fails as if the OS
/// refused memory.
#[cfg(loom)]
fn new_span(_class: usize, _heap: *mut Heap) -> Option<*mut Span> {
    None
}

/// The remote-free protocol's entry points for the loom models
/// (`crate::__loom::ClassSpans`): a heap and class spans built in model
/// memory, driven through the shipped functions without TLS.
#[cfg(loom)]
pub(crate) mod model {
    use core::ptr::{self, NonNull};
    use core::sync::atomic::Ordering::*;

    use super::super::abandoned;
    use super::super::size_class::span_bytes;
    use super::super::span::{self, Block, Owner, Span};
    use super::{Heap, CLASSES};

    /// A fresh heap with no spans, in a `Box` the caller frees with
    /// [`drop_heap`].
    pub(crate) fn new_heap() -> *mut Heap {
        Box::into_raw(Box::new(Heap {
            current: [span::empty(); CLASSES],
            full: [ptr::null_mut(); CLASSES],
            owner: Owner::new(),
            pool_next: ptr::null_mut(),
        }))
    }

    /// Frees a heap from [`new_heap`].
    ///
    /// # Safety
    ///
    /// `heap` came from [`new_heap`] and is used no more.
    pub(crate) unsafe fn drop_heap(heap: *mut Heap) {
        // SAFETY: caller.
        drop(unsafe { Box::from_raw(heap) });
    }

    /// A span of class 0 owned by `heap`, in model memory, holding
    /// `capacity` blocks of which `live` are handed out (the first `live`;
    /// the rest are on its free list); not on any list.
    pub(crate) fn new_span(heap: *mut Heap, capacity: u32, live: u32) -> *mut Span {
        let bytes = span_bytes(0);
        let layout = std::alloc::Layout::from_size_align(bytes, bytes).expect("span layout");
        // SAFETY: a non-zero size.
        let base = NonNull::new(unsafe { std::alloc::alloc_zeroed(layout) }).expect("loom model: out of memory");
        // SAFETY: fresh memory of the class's span size and alignment.
        let span = unsafe { Span::init(base, 0, Heap::id(heap)) };
        // SAFETY: the span is ours; `extend` hands out the first `capacity`
        // blocks onto `free`, then we take the first `live` off it.
        unsafe {
            (*span).capacity = capacity;
            Span::extend(span);
            for _ in 0..live {
                let block = (*span).free;
                (*span).free = (*block).next;
                (*span).used += 1;
            }
        }
        span
    }

    /// Frees a span from [`new_span`] (its memory; loom's objects in it
    /// belong to the execution).
    ///
    /// # Safety
    ///
    /// `span` came from [`new_span`] and is used no more.
    pub(crate) unsafe fn drop_span(span: *mut Span) {
        let bytes = span_bytes(0);
        let layout = std::alloc::Layout::from_size_align(bytes, bytes).expect("span layout");
        // SAFETY: allocated in `new_span` with this layout.
        unsafe { std::alloc::dealloc(span.cast(), layout) };
    }

    /// The `i`th block of `span`.
    pub(crate) fn block(span: *mut Span, i: usize) -> *mut Block {
        // SAFETY: in bounds of the span (the model's spans are class 0).
        unsafe { span.cast::<u8>().add(span::HEADER_BYTES + i * (*span).block_size as usize).cast() }
    }

    /// The index of `block` in `span`.
    pub(crate) fn block_index(span: *mut Span, block: *mut Block) -> usize {
        // SAFETY: the span's header is live (model memory).
        let size = unsafe { (*span).block_size } as usize;
        (block as usize - span as usize - span::HEADER_BYTES) / size
    }

    /// Whether `block` lies in `span`.
    pub(crate) fn contains(span: *mut Span, block: *mut Block) -> bool {
        (span as usize..span as usize + span_bytes(0)).contains(&(block as usize))
    }

    /// The span's owner (null while abandoned).
    ///
    /// # Safety
    ///
    /// `span` came from [`new_span`].
    pub(crate) unsafe fn owner(span: *mut Span) -> *mut Heap {
        // SAFETY: caller; an atomic load.
        unsafe { (*span).owner.load(Acquire).cast() }
    }

    /// Makes `span` the head of `heap`'s current list of class 0.
    ///
    /// # Safety
    ///
    /// The caller owns `heap` and `span`, which is on no list.
    pub(crate) unsafe fn make_current(heap: *mut Heap, span: *mut Span) {
        // SAFETY: caller.
        unsafe { super::span::push_front(&mut (*heap).current[0], span, span::empty()) };
    }

    /// `free`'s remote branch (a thread that does not own the span).
    ///
    /// # Safety
    ///
    /// `block` is a live block of `span`, freed once.
    pub(crate) unsafe fn free_remote(span: *mut Span, block: *mut Block) {
        // SAFETY: caller.
        unsafe { super::super::remote::free_remote(span, block) };
    }

    /// `Heap::push_current`: the owner makes `span` current, collecting
    /// the displaced head and releasing it if it is empty and quiescent.
    ///
    /// # Safety
    ///
    /// The caller owns `heap` and `span`, which is on no list.
    pub(crate) unsafe fn push_current(heap: *mut Heap, span: *mut Span) {
        // SAFETY: caller.
        unsafe { Heap::push_current(heap, 0, span) };
    }

    /// One turn of `Heap::alloc_slow`'s loop on `span`, the head of the
    /// current list of class 0 (`Heap::take_or_park`): a block, or null
    /// after parking the span.
    ///
    /// # Safety
    ///
    /// The caller owns `heap`; `span` heads its current list of class 0.
    pub(crate) unsafe fn take_or_park(heap: *mut Heap, span: *mut Span) -> *mut Block {
        // SAFETY: caller.
        unsafe { Heap::take_or_park(heap, span).cast() }
    }

    /// `Heap::alloc_slow` for class 0: rescue, refill from the current
    /// spans, else adopt an abandoned span (the models' page source is
    /// empty, so null when there is none).
    ///
    /// # Safety
    ///
    /// The caller owns `heap`.
    pub(crate) unsafe fn alloc_slow(heap: *mut Heap) -> *mut Block {
        // SAFETY: caller.
        unsafe { Heap::alloc_slow(heap, 0).cast() }
    }

    /// `free` by the thread owning `heap` (null: a thread without one).
    ///
    /// # Safety
    ///
    /// `block` is a live block of `span`, freed once; `heap` is the calling
    /// thread's in the model.
    pub(crate) unsafe fn free_from(heap: *mut Heap, span: *mut Span, block: *mut Block) {
        // SAFETY: caller.
        unsafe { super::free_from(heap, span, block.cast()) };
    }

    /// The thread exit of `heap`'s thread: its spans go to the execution's
    /// abandoned set (`Heap::abandon`).
    ///
    /// # Safety
    ///
    /// The caller owns `heap` and uses it no more (until it allocates
    /// again, as a pooled heap would be reused).
    pub(crate) unsafe fn abandon(heap: *mut Heap) {
        // SAFETY: caller.
        unsafe { Heap::abandon(heap, abandoned::global()) };
    }

    /// The purge timer's sweep of the execution's abandoned set.
    pub(crate) fn sweep() {
        abandoned::global().sweep();
    }

    /// Whether `span` is on the abandoned list of class 0.
    pub(crate) fn abandoned(span: *mut Span) -> bool {
        abandoned::global().listed(0).contains(&span)
    }

    /// The start of `Heap::alloc_slow`: rescue full spans if a remote
    /// free flagged them. Returns whether it did.
    ///
    /// # Safety
    ///
    /// The caller owns `heap`.
    pub(crate) unsafe fn rescue_if_pending(heap: *mut Heap) -> bool {
        // SAFETY: caller.
        unsafe {
            if (*heap).owner.full_pending.swap(false, Acquire) {
                Heap::rescue_full(heap);
                return true;
            }
        }
        false
    }

    /// Whether `span` is on `heap`'s current (`Some(true)`) or full
    /// (`Some(false)`) list of class 0, or on neither.
    ///
    /// # Safety
    ///
    /// The caller owns `heap`.
    pub(crate) unsafe fn listed(heap: *mut Heap, span: *mut Span) -> Option<bool> {
        // SAFETY: caller: the lists are ours.
        unsafe {
            for (head, current) in [((*heap).current[0], true), ((*heap).full[0], false)] {
                let mut s = head;
                while !s.is_null() && s != span::empty() {
                    if s == span {
                        return Some(current);
                    }
                    s = (*s).next;
                }
            }
        }
        None
    }

    /// What a model checks of a span after its threads joined: (kind,
    /// `used`, blocks on `free`, blocks on `thread_free`, `remote_inflight`,
    /// released, discarded).
    ///
    /// # Safety
    ///
    /// `span` came from [`new_span`]; the caller is its owner (remote
    /// freers may still run: their accesses are atomic) or the only thread.
    pub(crate) unsafe fn observe(span: *mut Span) -> (u32, u32, u32, u32, u32, bool, bool) {
        let count = |mut b: *mut Block| {
            let mut n = 0;
            while !b.is_null() {
                n += 1;
                // SAFETY: blocks of a quiescent span's lists.
                b = unsafe { (*b).next };
            }
            n
        };
        // SAFETY: caller; the cells are read through loom.
        unsafe {
            (
                (*span).state.load(Acquire) & span::KIND,
                (*span).used,
                if (*span).discarded.with(|d| *d) { 0 } else { count((*span).free) },
                count((*span).thread_free.load(Acquire)),
                (*span).remote_inflight.load(Acquire),
                (*span).released.with(|r| *r),
                (*span).discarded.with(|d| *d),
            )
        }
    }
}
