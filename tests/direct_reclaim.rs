//! One budget: with `DiscardAlloc` as the global allocator and a process
//! limit on the global manager, growing strong memory makes discardable
//! memory yield, both asynchronously and by direct reclaim when the
//! allocator maps memory past the limit. Strong allocations never fail.

use std::time::{Duration, Instant};

use discardable::{DiscardAlloc, Discardable, Manager};

#[global_allocator]
static A: DiscardAlloc = DiscardAlloc::new();

#[test]
fn strong_growth_pushes_discardable_out() {
    const LIMIT: usize = 256 << 20;
    let m: &'static Manager = Manager::builder().limit(1 << 40).process_limit(LIMIT).install_global().unwrap();
    // Fill discardable memory to ~160 MiB, well under the process limit.
    let cache: Vec<Discardable<[u8]>> = (0..160).map(|i| Discardable::from_slice_in(&[i as u8; 1 << 20], m)).collect();
    assert!(m.stats().discardable_bytes >= 160 << 20);
    assert_eq!(m.stats().discarded_count, 0, "nothing to shed yet");

    // Grow strong memory by ~120 MiB: strong + discardable would be ~280 MiB,
    // over the process limit's high watermark (97 %); reclaim stops under
    // its low one (95 %).
    let mut strong: Vec<Vec<u8>> = Vec::new();
    for i in 0..120 {
        strong.push(vec![i as u8; 1 << 20]);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = m.stats();
        if s.strong_bytes + s.discardable_bytes <= LIMIT {
            break;
        }
        assert!(Instant::now() < deadline, "the process limit was not enforced: {s:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
    let s = m.stats();
    assert!(s.strong_bytes >= 120 << 20, "strong bytes are counted: {s:?}");
    assert!(s.discarded_count > 0 && s.direct_reclaims > 0, "discardable memory yielded, by direct reclaim too: {s:?}");
    assert!(
        strong.iter().enumerate().all(|(i, v)| v.iter().step_by(4096).all(|&b| b == i as u8)),
        "strong data intact"
    );
    let survivors = cache.iter().filter(|d| !d.is_discarded()).count();
    eprintln!("direct reclaim: {survivors}/160 survivors, {s:?}");
    assert!(survivors > 0, "only what had to go went");
    for (i, d) in cache.iter().enumerate() {
        if let Some(bytes) = d.upgrade() {
            assert!(bytes.iter().step_by(997).all(|&b| b == i as u8), "survivor {i} intact");
        }
    }
}
