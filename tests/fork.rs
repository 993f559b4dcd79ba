//! `fork()` with a live manager: the child keeps working (its manager
//! thread restarted on first use, handles readable, the limit enforced
//! again) and never deadlocks, even while other threads of the parent were
//! creating, pinning and dropping handles at the moment of the fork.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use discardable::{Discardable, Manager};

fn wait_child(pid: libc::pid_t) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut status = 0;
    loop {
        // SAFETY: `pid` is our child; `status` is a valid out-pointer.
        if unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) } == pid {
            return status;
        }
        if Instant::now() > deadline {
            // SAFETY: `pid` is our child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("forked child deadlocked");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The child's checks; returns the exit code.
fn child(m: &Manager, kept: &[Discardable<[u8]>]) -> i32 {
    for (i, d) in kept.iter().enumerate() {
        match d.upgrade() {
            Some(b) if b.iter().all(|&x| x == i as u8) => {}
            Some(_) => return 10,
            None => {} // the parent's manager may have discarded it
        }
    }
    // New handles past the limit: the restarted thread must bring the
    // arena back under it.
    let fresh: Vec<Discardable<[u8]>> = (0..64).map(|i| Discardable::from_slice_in(&[i as u8; 65536], m)).collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    while m.stats().discardable_bytes > m.stats().limit {
        if Instant::now() > deadline {
            return 11;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    if fresh.iter().all(Discardable::is_discarded) {
        return 12; // something should survive under a 1 MiB limit
    }
    if m.reclaim(usize::MAX) == 0 && fresh.iter().any(|d| !d.is_discarded()) {
        return 13;
    }
    0
}

#[test]
fn forked_children_keep_working() {
    let m = Manager::builder().limit(1 << 20).start().unwrap();
    let kept: Vec<Discardable<[u8]>> = (0..8).map(|i| Discardable::from_slice_in(&[i as u8; 4096], &m)).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let busy: Vec<_> = (0..2)
        .map(|t| {
            let (m, stop) = (m.clone(), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let d = Discardable::from_slice_in(&[t as u8; 300], &m);
                    if let Some(g) = d.upgrade() {
                        assert_eq!(g[299], t as u8);
                    }
                    n += 1;
                    if n % 64 == 0 {
                        m.reclaim(4096);
                    }
                }
            })
        })
        .collect();
    for _ in 0..10 {
        // SAFETY: the child runs only the checks above and `_exit`s; it never
        // returns into the test harness.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            let code = child(&m, &kept);
            // SAFETY: ends the child at once, skipping the parent's harness.
            unsafe { libc::_exit(code) };
        }
        let status = wait_child(pid);
        assert!(libc::WIFEXITED(status), "child killed: {status}");
        assert_eq!(libc::WEXITSTATUS(status), 0, "child check failed");
    }
    stop.store(true, Ordering::Relaxed);
    for b in busy {
        b.join().unwrap();
    }
}
