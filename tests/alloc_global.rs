//! `DiscardAlloc` installed as this test binary's global allocator: churn
//! across threads, cross-thread frees, threads that exit while their
//! allocations live on, alignment, realloc, and memory going back.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::mpsc;

use discardable::DiscardAlloc;

#[global_allocator]
static A: DiscardAlloc = DiscardAlloc::new();

fn tag(v: &mut [u8], t: u8) {
    v.fill(t);
}

/// Whether every 61st byte (and the last) of `v` is `t`: sampled, so the
/// debug build stays fast, yet an overlapping block would still show.
fn tagged(v: &[u8], t: u8) -> bool {
    v.iter().step_by(61).all(|&b| b == t) && v.last().is_none_or(|&b| b == t)
}

#[test]
fn many_sizes_hold_their_bytes() {
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    for i in 0..20_000usize {
        let size = [1, 7, 8, 24, 100, 129, 1000, 4096, 5000, 70_000, 300_000][i % 11];
        let mut v = vec![0u8; size];
        tag(&mut v, i as u8);
        blocks.push(v);
    }
    for (i, v) in blocks.iter().enumerate() {
        assert!(tagged(v, i as u8), "block {i} was overwritten");
    }
    blocks.retain(|v| v.len() % 2 == 0);
    for v in &blocks {
        assert!(tagged(v, v[0]));
    }
}

#[test]
fn alignments_are_honoured() {
    for align in [1usize, 2, 4, 8, 16, 32, 64, 128, 256, 4096, 1 << 16, 1 << 21] {
        for size in [1usize, 3, 48, 100, 1000, 100_000] {
            let layout = Layout::from_size_align(size, align).unwrap();
            // SAFETY: non-zero size; freed below with the same layout.
            unsafe {
                let p = A.alloc(layout);
                assert!(!p.is_null());
                assert_eq!(p as usize % align, 0, "size {size} align {align}");
                p.write_bytes(0xab, size);
                A.dealloc(p, layout);
            }
        }
    }
}

#[test]
fn realloc_grows_and_shrinks_keeping_bytes() {
    let mut v: Vec<u32> = Vec::new();
    for i in 0..2_000_000u32 {
        v.push(i);
    }
    assert!(v.iter().enumerate().all(|(i, &x)| x == i as u32));
    v.truncate(10);
    v.shrink_to_fit();
    assert_eq!(v, (0..10).collect::<Vec<_>>());
}

#[test]
fn cross_thread_frees_and_exited_threads() {
    let (tx, rx) = mpsc::channel::<Vec<Box<[u64; 8]>>>();
    let producers: Vec<_> = (0..4)
        .map(|t| {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for round in 0..50u64 {
                    let batch: Vec<Box<[u64; 8]>> =
                        (0..200).map(|i| Box::new([t * 1_000_000 + round * 1000 + i; 8])).collect();
                    tx.send(batch).unwrap();
                }
            })
        })
        .collect();
    drop(tx);
    for p in producers {
        p.join().unwrap(); // the producers exit while their blocks live on
    }
    let mut n = 0;
    for batch in rx {
        for b in batch {
            assert!(b.iter().all(|&x| x == b[0]));
            n += 1;
        }
    }
    assert_eq!(n, 4 * 50 * 200);
    // Memory from exited threads is reused: a new thread allocating the same
    // class must not grow the mapping without bound.
    let before = DiscardAlloc::stats().in_use;
    std::thread::spawn(|| {
        let v: Vec<Box<[u64; 8]>> = (0..10_000).map(|i| Box::new([i; 8])).collect();
        drop(v);
    })
    .join()
    .unwrap();
    let after = DiscardAlloc::stats().in_use;
    assert!(after <= before + (4 << 20), "in_use grew from {before} to {after}");
}

#[test]
fn freed_memory_goes_back_to_the_os() {
    let blocks: Vec<Vec<u8>> = (0..512).map(|i| vec![i as u8; 256 << 10]).collect();
    let held = DiscardAlloc::stats().in_use;
    assert!(held >= 128 << 20);
    drop(blocks);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let s = DiscardAlloc::stats();
        if s.retained <= 8 << 20 && s.in_use + (64 << 20) < held {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "memory not given back: {s:?} (held {held})");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn fork_while_other_threads_allocate() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let stop = Arc::new(AtomicBool::new(false));
    let churners: Vec<_> = (0..2)
        .map(|t| {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut keep: Vec<Vec<u8>> = Vec::new();
                let mut i = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    keep.push(vec![t as u8; 1 + (i * 7919) % 100_000]);
                    if keep.len() > 64 {
                        keep.swap_remove(i % 64);
                    }
                    i += 1;
                }
            })
        })
        .collect();
    for _ in 0..20 {
        // SAFETY: the child only allocates, frees and calls `_exit`; it
        // never returns into the test harness.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            let v: Vec<Vec<u8>> = (0..300).map(|i| vec![i as u8; 1 + i * 37]).collect();
            let ok = v.iter().enumerate().all(|(i, b)| tagged(b, i as u8));
            drop(v);
            let big = vec![1u8; 8 << 20];
            // SAFETY: `_exit` ends the child without running the parent's
            // atexit handlers or test harness.
            unsafe { libc::_exit(if ok && big[12345] == 1 { 0 } else { 3 }) };
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let mut status = 0;
        loop {
            // SAFETY: `pid` is our child; `status` is a valid out-pointer.
            let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
            if r == pid {
                break;
            }
            if std::time::Instant::now() > deadline {
                // SAFETY: `pid` is our child.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                panic!("forked child deadlocked in the allocator");
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "child failed: {status}");
    }
    stop.store(true, Ordering::Relaxed);
    for c in churners {
        c.join().unwrap();
    }
}
