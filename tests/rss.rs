//! After `reclaim`, with many allocations of 64 KiB to 1 MiB, RSS falls by the discarded bytes.
//!
//! About 256 MiB in allocations of random sizes between 64 KiB and 1 MiB, every page touched, on a
//! dedicated manager whose limit is far above that (so its thread never discards). RSS is read from
//! `/proc/self/statm` before and after reclaiming half, then the rest; each drop must be at least
//! 90 % of the bytes `reclaim` returned. This binary holds a single test so nothing else allocates
//! while it measures.

use discardable::{Discardable, Manager, Policy};

const TOTAL: usize = 256 << 20;

fn page() -> usize {
    // SAFETY: `sysconf` has no preconditions; `_SC_PAGESIZE` is always supported on Linux.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(page).expect("page size")
}

/// Resident set size in bytes.
fn rss() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let resident: usize = statm.split_whitespace().nth(1).expect("resident field").parse().expect("a number");
    resident * page()
}

#[test]
fn rss_falls_by_the_reclaimed_bytes() {
    let m = Manager::builder().policy(Policy::Fifo).limit(4 * TOTAL).start().unwrap();
    // One source buffer, reused for every allocation (its pages stay resident throughout).
    let source: Vec<u8> = (0..1usize << 20).map(|i| (i * 7 + 1) as u8).collect();
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    let mut handles = Vec::new();
    let mut total = 0;
    while total < TOTAL {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let size = (64 << 10) + (x as usize % ((1 << 20) - (64 << 10) + 1));
        let d = if handles.len() % 2 == 0 {
            Discardable::from_slice_in(&source[..size], &m)
        } else {
            let mut d = Discardable::zeroed_in(size, &m);
            d.fill(0..size, 0x5A).unwrap();
            d
        };
        total += d.cost();
        handles.push(d);
    }
    let s = m.stats();
    assert_eq!(s.discardable_bytes, total);
    assert_eq!(s.discarded_count, 0, "the limit is far above the total: nothing discarded yet");

    let before = rss();
    assert!(before >= total, "every page was touched: RSS {before} < {total}");
    let half = m.reclaim(total / 2);
    assert!(half >= total / 2 && half < total, "reclaim(total / 2) freed {half} of {total}");
    let middle = rss();
    let rest = m.reclaim(usize::MAX);
    let after = rss();
    assert_eq!(half + rest, total, "everything unpinned was reclaimed");
    assert!(handles.iter().all(Discardable::is_discarded));
    assert_eq!(m.stats().discardable_bytes, 0);

    let mib = |b: usize| b as f64 / f64::from(1 << 20);
    eprintln!(
        "rss: {:.1} MiB -> {:.1} MiB (reclaimed {:.1} MiB) -> {:.1} MiB (reclaimed {:.1} MiB)",
        mib(before),
        mib(middle),
        mib(half),
        mib(after),
        mib(rest)
    );
    let first_drop = before.saturating_sub(middle);
    let second_drop = middle.saturating_sub(after);
    assert!(first_drop >= half / 10 * 9, "RSS fell {} MiB for {} MiB reclaimed", mib(first_drop), mib(half));
    assert!(second_drop >= rest / 10 * 9, "RSS fell {} MiB for {} MiB reclaimed", mib(second_drop), mib(rest));
    drop(handles);
}
