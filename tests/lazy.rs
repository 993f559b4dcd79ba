//! Lazy reclaim mode end to end: the manager thread offers cold spans to
//! the kernel with `MADV_FREE` within the lazy delay, never while pinned,
//! and re-pinning brings them back intact.

use std::time::{Duration, Instant};

use discardable::{Discardable, Manager, ReclaimMode};

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn cold_spans_are_offered_and_revived_intact() {
    let m = Manager::builder()
        .limit(1 << 30)
        .reclaim_mode(ReclaimMode::Lazy)
        .lazy_delay(Duration::from_millis(20))
        .start()
        .unwrap();
    let handles: Vec<Discardable<[u64]>> =
        (0..32u64).map(|i| Discardable::from_slice_in(&vec![i * 7; 8192], &m)).collect();
    let hot = Discardable::from_slice_in(&[9u64; 8192], &m);
    let pin = hot.upgrade().unwrap();
    wait_until("32 offers", || m.stats().offers >= 32);
    assert_eq!(pin[100], 9, "a pinned allocation is never offered");
    assert!(!hot.is_discarded());
    for (i, h) in handles.iter().enumerate() {
        let v = h.upgrade().expect("nothing took the pages, so they come back");
        assert!(v.iter().all(|&x| x == i as u64 * 7), "allocation {i} corrupted by its offer");
    }
    let s = m.stats();
    assert!(s.revivals >= 32, "{s:?}");
    assert_eq!(s.kernel_discards, 0);
    assert_eq!(s.discardable_bytes, 33 * 65536, "offered pages still count");
    drop(pin);
    // Offered again once cold, then dropped while offered.
    wait_until("re-offers", || m.stats().offers >= 65);
    drop(handles);
    assert_eq!(m.stats().discardable_bytes, 65536);
}

/// A `T` with padding at the start of every page (a `u8` then seven bytes
/// of padding, then a `u64`): lazy mode saves and restores each page's
/// first word as possibly uninitialised bytes, never as an integer, and the
/// values come back intact through offers and revivals. (The reads it once
/// made as `AtomicU64` were undefined behaviour only a sanitizer of
/// uninitialised memory sees; this test pins the round trip down.)
#[test]
fn padded_values_survive_offers_and_revivals() {
    #[derive(Clone, Copy, Debug, PartialEq)]
    #[repr(C)]
    struct Padded {
        tag: u8,
        value: u64,
    }
    static_assertions::const_assert_eq!(core::mem::size_of::<Padded>(), 16);
    let m = Manager::builder()
        .limit(1 << 30)
        .reclaim_mode(ReclaimMode::Lazy)
        .lazy_delay(Duration::from_millis(20))
        .start()
        .unwrap();
    let items: Vec<Padded> = (0..4096u64).map(|i| Padded { tag: i as u8, value: i * 31 }).collect();
    let one = Discardable::new_in([Padded { tag: 7, value: 77 }; 512], &m);
    let many = Discardable::from_slice_in(&items, &m);
    for round in 1..=2 {
        wait_until("the padded spans offered", || m.stats().offers >= 2 * round);
        let v = many.upgrade().expect("nothing took the pages");
        assert_eq!(&v[..], &items[..], "round {round}: a padded slice corrupted by its offer");
        drop(v);
        let v = one.upgrade().expect("nothing took the pages");
        assert!(v.iter().all(|p| *p == Padded { tag: 7, value: 77 }), "round {round}: a padded array corrupted");
    }
    assert!(m.stats().revivals >= 4, "{:?}", m.stats());
}
