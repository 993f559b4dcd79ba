//! Behaviour of `Manager`: the limit enforced asynchronously, pins, `reclaim` (cost and policy
//! order), `Discardable::discard`, exact statistics, handles outliving their managers, guards
//! across threads, and zero-sized handles.
//!
//! Each test starts its own manager, so tests running in parallel do not see each other's
//! allocations. Where the background thread must stay out of the way the limit is far above what
//! the test allocates (it only wakes when an allocation crosses the limit).

use std::cell::Cell;
use std::cmp::Ordering;
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use discardable::{AccessError, Discardable, Error, Manager, Pinned, Policy, Stats};

const BIG_LIMIT: usize = 1 << 30;
const DEADLINE: Duration = Duration::from_secs(10);

fn page() -> usize {
    // SAFETY: `sysconf` has no preconditions; `_SC_PAGESIZE` is always supported on Linux.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(page).expect("page size")
}

fn quiet(policy: Policy) -> Manager {
    Manager::builder().policy(policy).limit(BIG_LIMIT).start().expect("manager starts")
}

/// Bytes whose value depends on `seed` and the position.
fn pattern(seed: u8, n: usize) -> Vec<u8> {
    (0..n).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

/// Polls `cond` every 5 ms until it holds or the deadline passes; returns whether it held.
fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// Room for one pinned allocation and its retries. An allocation that takes the arena over its
/// limit wakes the manager thread, which may discard it before its creator pins it (when every
/// other allocation is pinned, it is the only candidate, and on a loaded machine the woken thread
/// often preempts the creator). The helper then sleeps a little and tries again in the next cell,
/// for up to the deadline. Cells are only borrowed shared, so the guard can be returned.
struct Attempts(Vec<OnceLock<Discardable<[u8]>>>);

impl Attempts {
    fn new() -> Self {
        Self((0..4096).map(|_| OnceLock::new()).collect())
    }

    /// Creates a handle holding `bytes` and pins it.
    fn pin<'a>(&'a self, bytes: &[u8], m: &Manager) -> Pinned<'a, [u8]> {
        let deadline = Instant::now() + DEADLINE;
        for (i, cell) in self.0.iter().enumerate() {
            if let Some(g) = cell.get_or_init(|| Discardable::from_slice_in(bytes, m)).upgrade() {
                return g;
            }
            if Instant::now() >= deadline {
                break;
            }
            thread::sleep(Duration::from_micros(100 << (i % 6)));
        }
        panic!("could not pin a fresh allocation before the deadline ({DEADLINE:?})");
    }

    /// The handle the last `pin` pinned.
    fn handle(&self) -> &Discardable<[u8]> {
        self.0.iter().rev().find_map(OnceLock::get).expect("pinned once")
    }

    /// How many handles were created (failed attempts are discarded but still live).
    fn created(&self) -> usize {
        self.0.iter().filter(|c| c.get().is_some()).count()
    }
}

#[test]
fn zero_limit_is_rejected() {
    assert!(matches!(Manager::builder().limit(0).start(), Err(Error::ZeroLimit)));
    assert!(matches!(Manager::builder().policy(Policy::Lru).limit(0).start(), Err(Error::ZeroLimit)));
    let m = Manager::builder().limit(1).start().expect("a one-byte limit is valid");
    assert_eq!(m.stats().limit, 1);
}

#[test]
fn fresh_manager_reports_empty_stats() {
    for policy in [Policy::Lru, Policy::Clock, Policy::Fifo, Policy::S3Fifo] {
        let m = Manager::builder().policy(policy).limit(12345 * 4096).start().unwrap();
        let s = m.stats();
        assert_eq!(s.limit, 12345 * 4096);
        let fields = (s.discardable_bytes, s.pinned_bytes, s.discarded_count, s.discarded_bytes, s.over_limit_bytes);
        assert_eq!(fields, (0, 0, 0, 0, 0), "{policy:?}");
        assert_eq!(s.allocations, 0);
        let copy: Stats = s;
        assert_eq!(copy, m.stats(), "Stats is Copy + Eq");
        assert_eq!(m.reclaim(usize::MAX), 0);
        assert!(format!("{m:?}").contains("Manager"));
    }
}

#[test]
fn costs_and_discardable_bytes_are_exact() {
    let m = quiet(Policy::Clock);
    let page = page();
    #[derive(Clone, Copy)]
    #[repr(align(64))]
    struct Aligned(#[allow(dead_code)] [u8; 64]);

    let mut handles = Vec::new();
    let mut expect_bytes = 0;
    let mut check = |d: Discardable<[u8]>, want: usize, what: &str| {
        assert_eq!(d.cost(), want, "{what}");
        expect_bytes += want;
        handles.push(d);
    };
    // Exact slot sizes at class edges, and whole pages above 2 KiB.
    check(Discardable::zeroed_in(1, &m), 16, "1 byte");
    check(Discardable::zeroed_in(16, &m), 16, "16 bytes");
    check(Discardable::zeroed_in(17, &m), 32, "17 bytes");
    check(Discardable::zeroed_in(128, &m), 128, "128 bytes");
    check(Discardable::from_slice_in(&[1u8; 2048], &m), 2048, "2048 bytes");
    check(Discardable::from_slice_in(&[1u8; 2049], &m), page, "2049 bytes");
    check(Discardable::zeroed_in(page, &m), page, "one page");
    check(Discardable::zeroed_in(page + 1, &m), 2 * page, "one page and a byte");
    check(Discardable::zeroed_in(10 * page - 1, &m), 10 * page, "ten pages");
    check(Discardable::zeroed_in(0, &m), 0, "empty");
    // Every small size: a multiple of 16, no smaller than asked, at most 25 % waste above 64.
    for size in (1..=2048).step_by(13) {
        let d = Discardable::zeroed_in(size, &m);
        let cost = d.cost();
        assert!(cost >= size && cost % 16 == 0 && cost <= 2048, "size {size} costs {cost}");
        if size > 64 {
            assert!((cost - size) * 4 <= cost, "size {size} costs {cost}: over 25 % waste");
        } else {
            assert!(cost - size < 16, "size {size} costs {cost}");
        }
        check(d, cost, "small");
    }
    let typed = [
        (Discardable::new_in(7u64, &m).cost(), 16),
        (Discardable::new_in([0u64; 3], &m).cost(), 32),
        (Discardable::new_in(Aligned([0; 64]), &m).cost(), page),
        (Discardable::new_in((), &m).cost(), 0),
    ];
    for (i, (cost, want)) in typed.into_iter().enumerate() {
        assert_eq!(cost, want, "typed handle {i}");
    }
    // The typed handles were dropped at once; only the byte handles remain.
    let s = m.stats();
    assert_eq!(s.allocations, handles.len());
    assert_eq!(s.discardable_bytes, expect_bytes);
    assert_eq!((s.discarded_count, s.discarded_bytes), (0, 0));

    // Dropping every other handle subtracts exactly their cost.
    let mut kept = Vec::new();
    let mut kept_bytes = 0;
    for (i, d) in handles.into_iter().enumerate() {
        if i % 2 == 0 {
            kept_bytes += d.cost();
            kept.push(d);
        }
    }
    assert_eq!(m.stats().discardable_bytes, kept_bytes);
    assert_eq!(m.stats().allocations, kept.len());
    drop(kept);
    assert_eq!(m.stats().discardable_bytes, 0);
    assert_eq!(m.stats().allocations, 0);
    assert_eq!(m.stats().discarded_count, 0, "dropping is not discarding");
}

#[test]
fn discard_semantics() {
    let m = quiet(Policy::Clock);
    let page = page();
    let mut d = Discardable::from_slice_in(&pattern(3, 3 * page), &m);
    let small = Discardable::new_in([5u32; 10], &m);
    let cost = d.cost();
    assert_eq!(cost, 3 * page);
    let before = m.stats();

    {
        let guard = d.upgrade().unwrap();
        assert!(!d.discard(), "a shared pin prevents discard");
        assert_eq!(guard[7], pattern(3, 8)[7]);
    }
    {
        let mut guard = d.upgrade_mut().unwrap();
        guard[0] = 0xAB;
    }
    assert!(!d.is_discarded());
    assert_eq!(d.compare_at(0, &[0xAB]), Ok(Ordering::Equal), "writes through PinnedMut persist");
    assert_eq!(m.stats(), before, "pins change no counters");

    assert!(d.discard());
    assert!(d.is_discarded());
    assert!(d.upgrade().is_none() && d.upgrade_mut().is_none());
    assert!(!d.discard(), "discarded once only");
    assert_eq!(d.len(), 3 * page, "the length survives");
    assert_eq!(d.cost(), cost);
    assert_eq!(d.read_at(0, &mut [0; 4]), Err(AccessError::Discarded));
    let dbg = format!("{d:?}");
    assert!(dbg.contains("discarded: true"), "{dbg}");

    let s = m.stats();
    assert_eq!(s.discarded_count, 1);
    assert_eq!(s.discarded_bytes, cost as u64);
    assert_eq!(s.discardable_bytes, before.discardable_bytes - cost);
    assert_eq!(s.allocations, 2, "a discarded handle is still a live handle");
    assert_eq!(m.reclaim(cost), 16 * 3, "reclaim does not count a discarded allocation again");
    assert!(small.is_discarded());
    assert_eq!(m.stats().discarded_count, 2);

    drop(d);
    drop(small);
    let s = m.stats();
    assert_eq!((s.allocations, s.discardable_bytes), (0, 0));
    assert_eq!(s.discarded_count, 2, "drops do not discard");
}

#[test]
fn reclaim_returns_cost_and_never_takes_pinned_allocations() {
    let page = page();
    for policy in [Policy::Lru, Policy::Clock, Policy::Fifo, Policy::S3Fifo] {
        let m = quiet(policy);
        let sizes = [40usize, 3000, 5 * page, 100, 2048, 20 * page + 3, 700, page];
        let handles: Vec<_> =
            sizes.iter().enumerate().map(|(i, &n)| Discardable::from_slice_in(&pattern(i as u8, n), &m)).collect();
        let guards: Vec<_> = handles.iter().step_by(3).map(|d| d.upgrade().unwrap()).collect();
        let pinned_cost: usize = handles.iter().step_by(3).map(Discardable::cost).sum();
        let free_cost: usize = handles.iter().map(Discardable::cost).sum::<usize>() - pinned_cost;

        assert_eq!(m.reclaim(usize::MAX), free_cost, "{policy:?}: reclaim returns what it discarded");
        let s = m.stats();
        assert_eq!(s.pinned_bytes, pinned_cost, "{policy:?}");
        assert_eq!(s.discarded_bytes, free_cost as u64, "{policy:?}");
        assert_eq!(s.discarded_count, (sizes.len() - guards.len()) as u64, "{policy:?}");
        assert_eq!(s.discardable_bytes, pinned_cost, "{policy:?}");
        assert_eq!(s.over_limit_bytes, 0, "{policy:?}: under the limit");
        for (i, d) in handles.iter().enumerate() {
            assert_eq!(d.is_discarded(), i % 3 != 0, "{policy:?}: handle {i}");
        }
        for (g, i) in guards.iter().zip((0..sizes.len()).step_by(3)) {
            assert!(g[..] == pattern(i as u8, sizes[i])[..], "{policy:?}: pinned bytes intact");
        }
        assert_eq!(m.reclaim(usize::MAX), 0, "{policy:?}: only pinned allocations left");
        assert_eq!(m.reclaim(0), 0);
        drop(guards);
        assert_eq!(m.reclaim(usize::MAX), pinned_cost, "{policy:?}: unpinned now");
        assert_eq!(m.stats().discardable_bytes, 0);
        assert_eq!(m.stats().pinned_bytes, 0);
    }
}

#[test]
fn reclaim_stops_once_the_target_is_met() {
    let m = quiet(Policy::Fifo);
    let page = page();
    let handles: Vec<_> = (0..10).map(|_| Discardable::zeroed_in(4 * page, &m)).collect();
    assert_eq!(m.reclaim(0), 0);
    assert_eq!(m.reclaim(1), 4 * page, "one allocation is enough for one byte");
    assert_eq!(m.reclaim(4 * page), 4 * page);
    assert_eq!(m.reclaim(4 * page + 1), 8 * page);
    assert_eq!(handles.iter().filter(|d| d.is_discarded()).count(), 4);
    assert_eq!(m.reclaim(usize::MAX), 6 * 4 * page);
}

#[test]
fn fifo_discards_oldest_first_and_ignores_access() {
    let m = quiet(Policy::Fifo);
    let page = page();
    let sizes = [page, 2 * page, 3 * page, 64, 5 * page];
    let d: Vec<_> = sizes.iter().map(|&n| Discardable::zeroed_in(n, &m)).collect();
    let cost: Vec<_> = d.iter().map(Discardable::cost).collect();
    // Accesses do not matter to FIFO.
    drop(d[0].upgrade());
    drop(d[1].upgrade());
    let alive = || d.iter().map(|h| !h.is_discarded()).collect::<Vec<_>>();
    assert_eq!(m.reclaim(1), cost[0]);
    assert_eq!(alive(), [false, true, true, true, true]);
    assert_eq!(m.reclaim(cost[1] + 1), cost[1] + cost[2]);
    assert_eq!(alive(), [false, false, false, true, true]);
    // A pinned oldest is skipped, and is first again once unpinned.
    let g = d[3].upgrade().unwrap();
    assert_eq!(m.reclaim(1), cost[4]);
    assert_eq!(alive(), [false, false, false, true, false]);
    drop(g);
    assert_eq!(m.reclaim(1), cost[3]);
    assert!(alive().iter().all(|a| !a));
}

#[test]
fn lru_discards_least_recently_used_first() {
    let m = quiet(Policy::Lru);
    let page = page();
    // Creation order a, b, c, d; creation is not an access.
    let h: Vec<_> = (0..4).map(|i| Discardable::zeroed_in((i + 1) * page, &m)).collect();
    // Reclaims one byte and returns which handle went.
    let order = |m: &Manager| {
        let before: Vec<bool> = h.iter().map(Discardable::is_discarded).collect();
        let freed = m.reclaim(1);
        let new: Vec<usize> = (0..4).filter(|&i| h[i].is_discarded() && !before[i]).collect();
        assert_eq!(new.len(), 1, "one victim per one-byte reclaim");
        assert_eq!(freed, h[new[0]].cost());
        new[0]
    };
    drop(h[0].upgrade()); // a used: b is now least recent
    assert_eq!(order(&m), 1);
    assert_eq!(h[2].read_at(0, &mut [0u8; 8]), Ok(())); // c used after a: d least recent
    assert_eq!(order(&m), 3);
    assert_eq!(order(&m), 0);
    assert_eq!(order(&m), 2);
    assert_eq!(m.reclaim(usize::MAX), 0);
}

#[test]
fn accessed_allocations_are_not_the_first_victim() {
    let page = page();
    for policy in [Policy::Lru, Policy::Clock, Policy::S3Fifo, Policy::Fifo] {
        let m = quiet(policy);
        let h: Vec<_> = (0..6).map(|_| Discardable::zeroed_in(2 * page, &m)).collect();
        assert_eq!(m.reclaim(0), 0); // the manager sees them, unaccessed
        drop(h[0].upgrade());
        assert_eq!(m.reclaim(1), 2 * page);
        let victim = h.iter().position(Discardable::is_discarded).unwrap();
        let want = if policy == Policy::Fifo { 0 } else { 1 };
        assert_eq!(victim, want, "{policy:?}: first victim");
    }
}

#[test]
fn manager_thread_enforces_the_limit_asynchronously() {
    let page = page();
    let limit = 256 * page;
    let m = Manager::builder().limit(limit).start().unwrap();
    let n = 64;
    let size = 16 * page;
    let handles: Vec<_> = (0..n).map(|i| Discardable::from_slice_in(&pattern(i as u8, size), &m)).collect();
    assert!(
        eventually(|| m.stats().discardable_bytes <= limit),
        "still over the limit after {DEADLINE:?}: {:?}",
        m.stats()
    );
    let s = m.stats();
    let gone = handles.iter().filter(|d| d.is_discarded()).count();
    assert!(gone >= n - limit / size, "{gone} discarded: {s:?}");
    assert_eq!(s.discarded_count, gone as u64);
    assert_eq!(s.discarded_bytes, (gone * size) as u64);
    assert_eq!(s.discardable_bytes, (n - gone) * size);
    assert!(eventually(|| m.stats().over_limit_bytes == 0), "{:?}", m.stats());
    for (i, d) in handles.iter().enumerate() {
        if let Some(p) = d.upgrade() {
            assert!(p[..] == pattern(i as u8, size)[..], "survivor {i} changed");
        }
    }
}

#[test]
fn pins_keep_the_arena_over_its_limit_and_over_limit_bytes_says_by_how_much() {
    let page = page();
    let size = 16 * page;
    let limit = size;
    let m = Manager::builder().limit(limit).start().unwrap();
    let n = 8;
    let slots: Vec<Attempts> = (0..n).map(|_| Attempts::new()).collect();
    let mut guards: Vec<Option<Pinned<'_, [u8]>>> =
        slots.iter().enumerate().map(|(i, a)| Some(a.pin(&pattern(i as u8, size), &m))).collect();
    assert_eq!(m.reclaim(usize::MAX), 0, "everything is pinned");
    let s = m.stats();
    assert_eq!(s.discardable_bytes, n * size);
    assert_eq!(s.pinned_bytes, n * size);
    assert_eq!(s.over_limit_bytes, n * size - limit);
    // The manager thread keeps retrying (wait for three of its passes, not
    // for wall time), and still cannot take anything.
    let passes = m.stats().passes;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while m.stats().passes < passes + 3 {
        assert!(std::time::Instant::now() < deadline, "the manager thread stopped retrying: {:?}", m.stats());
        thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(m.stats().discardable_bytes, n * size);
    assert_eq!(m.stats().over_limit_bytes, n * size - limit);
    for (i, g) in guards.iter().enumerate() {
        assert!(g.as_ref().unwrap()[..] == pattern(i as u8, size)[..], "pinned bytes changed");
    }

    // Unpin half: the manager thread discards them on its own (its retry timer), and the excess
    // left is what the remaining pins hold.
    for g in guards.iter_mut().skip(n / 2) {
        *g = None;
    }
    let unpinned_gone = || slots.iter().skip(n / 2).all(|a| a.handle().is_discarded());
    assert!(eventually(unpinned_gone), "unpinned allocations not discarded: {:?}", m.stats());
    assert!(eventually(|| m.stats().over_limit_bytes == n / 2 * size - limit), "{:?}", m.stats());
    assert!(slots.iter().take(n / 2).all(|a| !a.handle().is_discarded()), "a pinned one was discarded");
    for (i, g) in guards.iter().take(n / 2).enumerate() {
        assert!(g.as_ref().unwrap()[..] == pattern(i as u8, size)[..], "pinned bytes changed");
    }

    drop(guards);
    assert!(eventually(|| m.stats().discardable_bytes <= limit), "{:?}", m.stats());
    assert!(eventually(|| m.stats().over_limit_bytes == 0), "{:?}", m.stats());
}

#[test]
fn handles_keep_working_after_every_manager_clone_is_dropped() {
    let page = page();
    let size = 8 * page;
    let m = Manager::builder().policy(Policy::Fifo).limit(2 * size).start().unwrap();
    let m2 = m.clone();
    let (a, b, c) = (Attempts::new(), Attempts::new(), Attempts::new());
    let ga = a.pin(&pattern(1, size), &m);
    let gb = b.pin(&pattern(2, size), &m2);
    let gc = c.pin(&pattern(3, size), &m);
    assert_eq!(m2.stats(), m.stats(), "clones share one manager");
    assert_eq!(m.stats().allocations, a.created() + b.created() + c.created());
    assert_eq!(m.stats().discardable_bytes, 3 * size);
    assert_eq!(m.reclaim(usize::MAX), 0);
    assert_eq!(m2.stats().over_limit_bytes, size);
    drop(m);
    drop(m2);

    // Pinned bytes and the offset operations still work.
    assert!(ga[..] == pattern(1, size)[..]);
    let mut word = [0u8; 4];
    assert_eq!(b.handle().read_at(100, &mut word), Ok(()));
    assert_eq!(word[..], pattern(2, size)[100..104]);
    drop((ga, gb, gc));
    let mut c = c.0.into_iter().rev().find_map(OnceLock::into_inner).unwrap();
    assert_eq!(c.write_at(0, &[9, 9]), Ok(()));
    assert_eq!(c.compare_at(0, &[9, 9, pattern(3, 3)[2]]), Ok(Ordering::Equal));

    // The manager thread still lives and enforces the limit: once unpinned, one allocation goes
    // (on its retry timer, with no manager left to ask).
    let (a, b) = (a.handle(), b.handle());
    let gone = || [a, b, &c].iter().filter(|d| d.is_discarded()).count();
    assert!(eventually(|| gone() >= 1), "nothing discarded after the managers were dropped");
    assert_eq!(gone(), 1, "exactly the excess is discarded");
    // And handles can still be discarded and dropped by hand.
    let survivor = [a, b, &c].into_iter().find(|d| !d.is_discarded()).unwrap();
    assert!(survivor.discard());
    drop(c);
}

#[test]
fn pinned_guards_can_be_shared_and_sent_across_threads() {
    fn send_sync<T: Send + Sync>(_: &T) {}
    static_assertions::assert_impl_all!(Pinned<'static, [u64]>: Send, Sync);
    static_assertions::assert_impl_all!(Discardable<[u64]>: Send, Sync);
    static_assertions::assert_not_impl_any!(Pinned<'static, Cell<u8>>: Send, Sync);
    static_assertions::assert_impl_all!(Discardable<Cell<u8>>: Send);
    static_assertions::assert_not_impl_any!(Discardable<Cell<u8>>: Sync);

    let m = quiet(Policy::Clock);
    let d = Discardable::from_slice_in(&[1u64, 2, 3, 4], &m);
    let pinned = d.upgrade().unwrap();
    send_sync(&pinned);
    thread::scope(|s| {
        let shared = &pinned;
        let sums: Vec<_> = (0..2).map(|_| s.spawn(move || shared.iter().sum::<u64>())).collect();
        for t in sums {
            assert_eq!(t.join().unwrap(), 10);
        }
        assert!(!d.discard(), "pinned by a guard other threads read");
        // A second guard moved to another thread and dropped there.
        let moved = d.upgrade().unwrap();
        s.spawn(move || assert_eq!(moved[3], 4)).join().unwrap();
    });
    drop(pinned);
    assert!(d.discard(), "both guards are gone");
}

#[test]
fn zero_sized_and_empty_handles_work() {
    let m = quiet(Policy::Clock);
    let unit = Discardable::new_in((), &m);
    let units = Discardable::from_slice_in(&[(); 1000], &m);
    let empty = Discardable::<[u64]>::from_slice_in(&[], &m);
    let mut zeroed = Discardable::zeroed_in(0, &m);
    assert_eq!((unit.cost(), units.cost(), empty.cost(), zeroed.cost()), (0, 0, 0, 0));
    assert_eq!(units.len(), 1000);
    assert!(!units.is_empty() && empty.is_empty() && zeroed.is_empty());
    assert_eq!(*unit.upgrade().unwrap(), ());
    assert_eq!(units.upgrade().unwrap().len(), 1000);
    assert_eq!(empty.upgrade().unwrap().len(), 0);
    assert_eq!(zeroed.read_at(0, &mut []), Ok(()));
    assert_eq!(zeroed.write_at(0, &[]), Ok(()));
    assert_eq!(zeroed.fill(0..0, 1), Ok(()));
    assert_eq!(zeroed.find(0, 0..0), Ok(None));
    assert_eq!(zeroed.compare_at(0, &[]), Ok(Ordering::Equal));
    assert_eq!(zeroed.read_at(1, &mut []), Err(AccessError::OutOfBounds { start: 1, end: 1, len: 0 }));
    assert_eq!(zeroed.read_at(0, &mut [0]), Err(AccessError::OutOfBounds { start: 0, end: 1, len: 0 }));
    let s = m.stats();
    assert_eq!((s.allocations, s.discardable_bytes), (4, 0));

    assert!(unit.discard());
    assert!(unit.upgrade().is_none());
    assert_eq!(m.stats().discarded_count, 1);
    assert_eq!(m.stats().discarded_bytes, 0);
    // `reclaim` takes the rest (they cost nothing, but are unpinned).
    let g = empty.upgrade().unwrap();
    assert_eq!(m.reclaim(usize::MAX), 0);
    assert!(units.is_discarded() && zeroed.is_discarded() && !empty.is_discarded());
    assert_eq!(zeroed.read_at(0, &mut []), Err(AccessError::Discarded));
    drop(g);
    assert_eq!(m.stats().discarded_count, 3);
    drop((unit, units, empty, zeroed));
    assert_eq!(m.stats().allocations, 0);
}

#[test]
fn many_allocations_and_drops_keep_counters_exact() {
    // Enough drops that the manager sweeps garbage headers, mixed with discards.
    let m = quiet(Policy::S3Fifo);
    let mut live = Vec::new();
    let mut discarded = 0u64;
    let mut discarded_bytes = 0u64;
    for i in 0..20_000usize {
        live.push(Discardable::new_in([i as u64; 4], &m));
        if i % 3 == 0 {
            let d = live.swap_remove(i % live.len());
            if i % 2 == 0 && d.discard() {
                discarded += 1;
                discarded_bytes += d.cost() as u64;
            }
        }
    }
    let s = m.stats();
    assert_eq!(s.allocations, live.len());
    assert_eq!(s.discardable_bytes, live.len() * 32);
    assert_eq!((s.discarded_count, s.discarded_bytes), (discarded, discarded_bytes));
    for d in &live {
        let v = d.upgrade().unwrap();
        assert!(v.iter().all(|&x| x == v[0]), "values intact");
    }
    assert_eq!(m.reclaim(usize::MAX), live.len() * 32);
    drop(live);
    assert_eq!(m.stats().allocations, 0);
    assert_eq!(m.stats().discardable_bytes, 0);
}

/// Owners dropping handles while the manager scans: a scan may retire a header between the owner
/// marking it dropped and counting it as garbage, and no counter may wrap (a debug build panics on
/// the overflow).
#[test]
fn drops_racing_manager_scans_keep_counters_consistent() {
    let m = quiet(Policy::Clock);
    let done = std::sync::atomic::AtomicBool::new(false);
    thread::scope(|s| {
        let droppers: Vec<_> = (0..2)
            .map(|t| {
                let m = &m;
                s.spawn(move || {
                    for i in 0..50_000u64 {
                        drop(Discardable::new_in([i, t], m));
                    }
                })
            })
            .collect();
        let scanner = s.spawn(|| {
            let mut scans = 0u64;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                assert_eq!(m.reclaim(0), 0);
                scans += 1;
            }
            scans
        });
        let results: Vec<_> = droppers.into_iter().map(|d| d.join()).collect();
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(scanner.join().unwrap() > 0);
        for r in results {
            if let Err(e) = r {
                std::panic::resume_unwind(e);
            }
        }
    });
    let s = m.stats();
    assert_eq!((s.allocations, s.discardable_bytes, s.discarded_count), (0, 0, 0));
}

/// `reclaim` must account for every allocation it discards, including ones that cost nothing
/// (zero-sized values, empty slices): they become discarded, so they count.
#[test]
fn reclaim_counts_zero_cost_victims() {
    let m = quiet(Policy::Fifo);
    let zsts: Vec<_> = (0..3).map(|_| Discardable::new_in((), &m)).collect();
    assert_eq!(m.reclaim(usize::MAX), 0);
    assert!(zsts.iter().all(Discardable::is_discarded), "reclaim takes unpinned zero-cost allocations");
    let s = m.stats();
    assert_eq!(s.discarded_count, 3, "discarded by reclaim but not counted: {s:?}");
    assert_eq!(s.discarded_bytes, 0);
    // Mixed with a costly victim in the same batch they are counted.
    let mixed = [Discardable::new_in((), &m), Discardable::new_in((), &m)];
    let page = Discardable::zeroed_in(page(), &m);
    assert_eq!(m.reclaim(1), page.cost());
    assert!(mixed.iter().all(Discardable::is_discarded) && page.is_discarded());
    assert_eq!(m.stats().discarded_count, 6);
}

/// A panic that recurs on the manager thread (fault injection: run with `--features
/// --cfg discardable_fault_injection`) is counted each time and backed off; once it stops, the same thread enforces
/// the limit again.
#[cfg(discardable_fault_injection)]
#[test]
fn manager_thread_recovers_from_recurring_panics() {
    let page = page();
    let limit = 64 * page;
    let m = Manager::builder().limit(limit).start().unwrap();
    m.__panic_next_passes(3);
    // Born pinned, so the constructors cannot make room themselves: the
    // manager thread has to, and its first three passes with work panic.
    let fresh: Vec<_> = (0..32).map(|_| Discardable::fill_in(16 * page, &m, |_| ()).unwrap()).collect();
    let handles: Vec<Discardable<[u8]>> = fresh.into_iter().map(discardable::Fresh::into_handle).collect();
    assert!(eventually(|| m.stats().discardable_bytes <= limit), "limit not enforced: {:?}", m.stats());
    assert_eq!(m.stats().manager_panics, 3, "{:?}", m.stats());
    assert!(handles.iter().any(Discardable::is_discarded));
    let kept = m.stats().discardable_bytes;
    assert_eq!(m.reclaim(usize::MAX), kept, "the table lock was released");
}

/// The limit is a bound at any allocation rate: a constructor whose
/// allocation would take the discardable bytes past the limit by more than
/// the slack (1 % of it) makes room itself, so no manager thread has to keep
/// up. Checked after every allocation of a fast loop.
#[test]
fn the_limit_holds_at_any_allocation_rate() {
    let page = page();
    let limit = 1024 * page;
    let slack = limit / 100;
    let m = Manager::builder().limit(limit).start().unwrap();
    let mut ring = std::collections::VecDeque::new();
    let mut worst = 0;
    for i in 0..20_000u32 {
        ring.push_back(Discardable::from_slice_in(&[i as u8; 4096], &m));
        if ring.len() > 4096 {
            ring.pop_front();
        }
        let s = m.stats();
        worst = worst.max(s.discardable_bytes + s.kept_bytes);
    }
    assert!(worst <= limit + slack + page, "held {worst} B against a limit of {limit} B");
    let s = m.stats();
    assert!(s.room_reclaims > 0 || s.limit_reclaims > 0, "nothing reclaimed: {s:?}");
    // Every survivor still holds its own bytes.
    for (i, d) in ring.iter().enumerate() {
        if let Some(g) = d.upgrade() {
            let want = (20_000 - ring.len() + i) as u8;
            assert!(g.iter().all(|&b| b == want), "value {i} corrupted");
        }
    }
}

/// Between the manager's full scans, a victim accessed since the table last
/// looked is not claimed: CLOCK's second chance holds for passes that do not
/// scan (a constructor making room).
#[test]
fn a_pass_without_a_scan_still_spares_what_was_accessed() {
    let page = page();
    let m = Manager::builder().policy(Policy::Clock).limit(2 * page).start().unwrap();
    let older = Discardable::<[u8]>::zeroed_in(page, &m);
    let newer = Discardable::<[u8]>::zeroed_in(page, &m);
    // A full scan now: the table has seen both, neither accessed.
    assert_eq!(m.reclaim(0), 0);
    drop(older.upgrade());
    // Past the limit by a page: the constructor makes room, without a scan.
    let third = Discardable::<[u8]>::zeroed_in(page, &m);
    assert!(!older.is_discarded(), "the accessed allocation was discarded");
    assert!(newer.is_discarded() && !third.is_discarded());
}
