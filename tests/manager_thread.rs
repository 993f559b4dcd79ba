//! The manager thread ("discardable-manager") lives while the manager or any of its handles lives,
//! and exits once all are dropped.
//!
//! Threads are found by name in `/proc/self/task/*/comm` (truncated by the kernel to 15 bytes), so
//! this binary holds a single test: no other manager starts while it counts.

use std::thread;
use std::time::{Duration, Instant};

use discardable::{Discardable, Manager};

#[path = "support/threads.rs"]
mod threads;
use threads::manager_threads;

/// Starts a manager and returns it with the id of its new thread.
fn start() -> (Manager, u64) {
    let before = manager_threads();
    let m = Manager::builder().limit(1 << 20).start().unwrap();
    // The new thread names itself once it runs: wait for the name to appear.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let new: Vec<_> = manager_threads().difference(&before).copied().collect();
        if !new.is_empty() || Instant::now() >= deadline {
            assert_eq!(new.len(), 1, "exactly one manager thread per manager: {new:?}");
            return (m, new[0]);
        }
        thread::sleep(Duration::from_millis(5));
    }
}

fn alive(tid: u64) -> bool {
    manager_threads().contains(&tid)
}

/// How many times thread `tid` of this process has been scheduled in
/// (`/proc/self/task/<tid>/schedstat`, third field), or `None` once it is
/// gone.
fn runs(tid: u64) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat")).ok()?;
    stat.split_whitespace().nth(2)?.parse().ok()
}

/// Waits until the manager thread `tid` has woken up at least twice more
/// (its idle polls come at least once a second), so that a thread bound to
/// exit would have had its chance; `true` if it is still alive then.
fn survives_two_wakeups(tid: u64) -> bool {
    let Some(start) = runs(tid) else { return false };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match runs(tid) {
            None => return false,
            Some(n) if n >= start + 2 => return alive(tid),
            Some(_) if Instant::now() >= deadline => panic!("the manager thread did not wake up in 10 s"),
            Some(_) => thread::sleep(Duration::from_millis(10)),
        }
    }
}

fn exits_within(tid: u64, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if !alive(tid) {
            return true;
        }
        thread::sleep(Duration::from_millis(10));
    }
    false
}

#[test]
fn manager_thread_lives_while_handles_live_and_exits_after() {
    assert!(manager_threads().is_empty(), "no manager yet");

    // A manager without handles: dropping it ends the thread.
    let (m, tid) = start();
    assert!(alive(tid));
    drop(m);
    assert!(exits_within(tid, Duration::from_secs(10)), "manager thread survived its manager");

    // A manager whose handles outlive it: the thread stays until the last handle goes.
    let (m, tid) = start();
    let clone = m.clone();
    let small = Discardable::new_in(7u32, &m);
    let large = Discardable::zeroed_in(1 << 16, &clone);
    drop(m);
    drop(clone);
    assert!(survives_two_wakeups(tid), "manager thread exited while handles live");
    assert_eq!(*small.upgrade().unwrap(), 7);
    drop(small);
    assert!(survives_two_wakeups(tid), "manager thread exited while a handle lives");
    assert!(large.discard(), "a handle works with no manager left");
    drop(large);
    assert!(exits_within(tid, Duration::from_secs(10)), "manager thread survived its last handle");
    assert!(manager_threads().is_empty());
}
