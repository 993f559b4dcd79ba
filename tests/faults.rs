//! Fault injection in the `os` layer (run with `RUSTFLAGS="--cfg discardable_fault_injection"`):
//! failing `mmap`, `madvise` and file reads give typed errors, null from
//! the allocator, reports in `signals()`, never a panic, and never lose
//! strong data or live discardable data.
#![cfg(discardable_fault_injection)]

use std::alloc::{GlobalAlloc, Layout};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use discardable::__faults::{self, Fault};
use discardable::{DiscardAlloc, Discardable, Error, Manager, ReclaimMode};

/// Faults are process-wide: one test at a time.
static SERIAL: Mutex<()> = Mutex::new(());

#[test]
fn mmap_failure_is_a_typed_error_or_null() {
    let _serial = SERIAL.lock().unwrap();
    let strong: Vec<u64> = (0..100_000).collect();
    let m = Manager::builder().limit(1 << 30).start().unwrap();
    let keep = Discardable::from_slice_in(&[7u8; 100_000], &m);

    __faults::fail_next(Fault::Map, 8);
    match Discardable::<[u8]>::try_zeroed_in(64 << 20, &m) {
        Err(Error::Os(e)) => assert_eq!(e.errno, libc::ENOMEM, "{e}"),
        other => panic!("expected an OS error, got {other:?}"),
    }
    let a = DiscardAlloc::new();
    let layout = Layout::from_size_align(48 << 20, 4096).unwrap();
    // SAFETY: a valid non-zero layout; a null result is the expected failure.
    let p = unsafe { a.alloc(layout) };
    assert!(p.is_null(), "the allocator returns null when the OS refuses");
    __faults::reset();

    // SAFETY: as above; freed with the same layout.
    unsafe {
        let p = a.alloc(layout);
        assert!(!p.is_null());
        a.dealloc(p, layout);
    }
    assert!(Discardable::<[u8]>::try_zeroed_in(64 << 20, &m).is_ok());
    assert!(strong.iter().enumerate().all(|(i, &x)| x == i as u64), "strong data intact");
    assert!(keep.upgrade().unwrap().iter().all(|&b| b == 7), "live discardable data intact");
}

#[test]
fn madvise_failure_still_discards_and_keeps_zeroing_honest() {
    let _serial = SERIAL.lock().unwrap();
    let m = Manager::builder().limit(1 << 30).start().unwrap();
    let victims: Vec<Discardable<[u8]>> = (0..8).map(|i| Discardable::from_slice_in(&[i as u8; 1 << 16], &m)).collect();
    let pinned = Discardable::from_slice_in(&[9u8; 1 << 16], &m);
    let guard = pinned.upgrade().unwrap();

    __faults::fail_next(Fault::Advise, 1000);
    let freed = m.reclaim(usize::MAX);
    assert_eq!(freed, 8 << 16, "discarding does not depend on madvise succeeding");
    assert!(victims.iter().all(Discardable::is_discarded));
    // Pages that could not be released are reused: zeroed memory must still
    // read as zero.
    let fresh = Discardable::<[u8]>::zeroed_in(8 << 16, &m);
    __faults::reset();
    assert!(fresh.upgrade().unwrap().iter().all(|&b| b == 0), "zeroed_in returned stale bytes");
    assert!(guard.iter().all(|&b| b == 9), "a pinned allocation survived untouched");
}

#[test]
fn failed_lazy_offers_put_every_page_back() {
    let _serial = SERIAL.lock().unwrap();
    let m = Manager::builder()
        .limit(1 << 30)
        .reclaim_mode(ReclaimMode::Lazy)
        .lazy_delay(Duration::from_millis(5))
        .start()
        .unwrap();
    let hits_before = __faults::hits(Fault::Advise);
    __faults::fail_next(Fault::Advise, usize::MAX);
    let handles: Vec<Discardable<[u64]>> =
        (0..8u64).map(|i| Discardable::from_slice_in(&vec![i * 3 + 1; 8192], &m)).collect();
    // The manager tries, and fails, to offer every span: wait until the
    // injected `madvise` failures were hit (each span at least once), not
    // for wall time.
    let deadline = Instant::now() + Duration::from_secs(10);
    while __faults::hits(Fault::Advise) - hits_before < 8 {
        assert!(Instant::now() < deadline, "no offer was tried: {:?}", m.stats());
        std::thread::sleep(Duration::from_millis(1));
    }
    let s = m.stats();
    assert_eq!((s.offers, s.revivals, s.kernel_discards), (0, 0, 0), "{s:?}");
    for (i, h) in handles.iter().enumerate() {
        let v = h.upgrade().expect("a failed offer leaves the allocation alive");
        assert!(v.iter().all(|&x| x == i as u64 * 3 + 1), "allocation {i} corrupted by a failed offer");
    }
    __faults::reset();
    // The offers succeed once `madvise` does, and revive intact.
    let deadline = Instant::now() + Duration::from_secs(10);
    while m.stats().offers < 8 {
        assert!(Instant::now() < deadline, "no offers after the faults: {:?}", m.stats());
        std::thread::sleep(Duration::from_millis(5));
    }
    for (i, h) in handles.iter().enumerate() {
        let v = h.upgrade().expect("nothing took the pages");
        assert!(v.iter().all(|&x| x == i as u64 * 3 + 1), "allocation {i} corrupted by its offer");
    }
    assert_eq!(m.stats().kernel_discards, 0);
}

#[test]
fn unreadable_pressure_files_are_reported_not_fatal() {
    let _serial = SERIAL.lock().unwrap();
    __faults::fail_next(Fault::Read, 10_000);
    let m = Manager::builder().limit(1 << 20).start().expect("missing signals never stop a manager");
    let reports = m.signals();
    __faults::reset();
    assert!(reports.iter().any(|r| r.error.is_some()), "unreadable files are reported: {reports:?}");
    // The manager still enforces its own limit.
    let handles: Vec<Discardable<[u8]>> = (0..64).map(|_| Discardable::from_slice_in(&[1u8; 65536], &m)).collect();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while m.stats().discardable_bytes > m.stats().limit {
        assert!(std::time::Instant::now() < deadline, "limit not enforced: {:?}", m.stats());
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    drop(handles);
}
