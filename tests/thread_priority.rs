//! The manager thread gets the scheduling priority its builder asks for
//! (`ManagerBuilder::priority`), reports it in `Stats::thread_priority`,
//! and the kernel agrees (`/proc/self/task/<tid>/stat`).
//!
//! Raising a priority needs `CAP_SYS_NICE` (root): without it the test
//! says so and checks only the fallback, except under `CI=true`, where the
//! machine is root and the test fails instead. One test in this binary, so
//! no other manager thread starts while it looks for new ones.

use std::time::{Duration, Instant};

use discardable::{Manager, ThreadPriority};

#[path = "support/threads.rs"]
mod threads;
use threads::manager_threads;

/// (nice, scheduling policy) of thread `tid`, from fields 19 and 41 of its
/// `stat` (counted after the parenthesised name, which may hold spaces).
fn scheduling(tid: u64) -> (i64, u32) {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).expect("stat");
    let fields: Vec<&str> = stat[stat.rfind(')').expect("comm") + 2..].split(' ').collect();
    // `fields[0]` is field 3 (state).
    (fields[19 - 3].parse().expect("nice"), fields[41 - 3].parse().expect("policy"))
}

/// Starts a manager asking for `priority`; returns it, the priority it
/// reports, and its thread's (nice, policy).
fn start(priority: ThreadPriority) -> (Manager, ThreadPriority, (i64, u32)) {
    let before = manager_threads();
    let m = Manager::builder().limit(1 << 20).priority(priority).start().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let new: Vec<u64> = manager_threads().difference(&before).copied().collect();
        if let (Some(got), [tid]) = (m.stats().thread_priority, new.as_slice()) {
            let sched = scheduling(*tid);
            return (m, got, sched);
        }
        assert!(Instant::now() < deadline, "the manager thread never reported its priority: {new:?}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn the_manager_thread_gets_the_priority_it_asks_for() {
    // SAFETY: `geteuid` has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI runs as root: raising the manager thread's priority must be tested there"
        );
        eprintln!("not root: raising a priority needs CAP_SYS_NICE; checking only the fallback");
    }
    let (_normal, got, (nice, policy)) = start(ThreadPriority::Normal);
    assert_eq!(got, ThreadPriority::Normal);
    assert_eq!(policy, libc::SCHED_OTHER as u32, "a normal manager thread is not SCHED_OTHER");

    let (_raised, got, (raised_nice, policy)) = start(ThreadPriority::Raised);
    assert_eq!(policy, libc::SCHED_OTHER as u32);
    if root {
        assert_eq!(got, ThreadPriority::Raised);
        assert_eq!(raised_nice, -10, "a raised manager thread is not at nice -10");
    } else {
        assert!(matches!(got, ThreadPriority::Raised | ThreadPriority::Normal));
        assert!(raised_nice <= nice);
    }

    let (_realtime, got, (_, policy)) = start(ThreadPriority::Realtime);
    if root {
        assert_eq!(got, ThreadPriority::Realtime);
        assert_eq!(policy, libc::SCHED_RR as u32, "a real-time manager thread is not SCHED_RR");
    } else if got != ThreadPriority::Realtime {
        assert_ne!(policy, libc::SCHED_RR as u32, "the thread is SCHED_RR but reports {got:?}");
    }
}
