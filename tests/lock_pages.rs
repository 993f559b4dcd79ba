//! `lock_pages(true)`: discardable pages are locked in memory (`VmLck` in
//! `/proc/self/status` rises), unlocked before they are discarded, and
//! refusals are reported in `Stats` rather than failing.

use discardable::{Discardable, Manager};

fn vm_lck() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmLck:")).expect("VmLck line");
    line.split_whitespace().nth(1).unwrap().parse::<usize>().unwrap() * 1024
}

#[test]
fn pages_are_locked_then_unlocked_before_discard() {
    let m = Manager::builder().limit(1 << 30).lock_pages(true).start().unwrap();
    let before = vm_lck();
    let big: Vec<Discardable<[u8]>> = (0..16).map(|i| Discardable::from_slice_in(&[i as u8; 1 << 20], &m)).collect();
    let small: Vec<Discardable<u64>> = (0..1000).map(|i| Discardable::new_in(i, &m)).collect();
    let s = m.stats();
    if s.lock_refusals > 0 {
        // Without CAP_IPC_LOCK and with a small RLIMIT_MEMLOCK the OS refuses:
        // reported, never an error, and the data is still there.
        assert!(big[3].upgrade().unwrap().iter().all(|&b| b == 3));
        assert!(std::env::var_os("CI").is_none(), "CI runs as root: mlock must succeed ({s:?})");
        eprintln!("lock_pages: {} refusals (RLIMIT_MEMLOCK); skipping the VmLck checks", s.lock_refusals);
        return;
    }
    assert!(s.locked_bytes >= 16 << 20, "{s:?}");
    let locked = vm_lck() - before;
    assert!(locked >= 16 << 20, "VmLck rose by only {locked} bytes");
    // Discard: pages must be unlocked first (MADV_DONTNEED fails on locked
    // pages), so VmLck falls with them.
    assert_eq!(m.reclaim(usize::MAX), s.discardable_bytes);
    assert!(big.iter().all(Discardable::is_discarded) && small.iter().all(Discardable::is_discarded));
    let after = m.stats();
    assert_eq!(after.locked_bytes, 0, "{after:?}");
    assert!(vm_lck() <= before + (64 << 10), "VmLck did not fall: {} -> {}", before, vm_lck());
}
