//! `fork()` with a live manager: the child keeps working (its manager
//! thread restarted on first use, handles readable, the limit enforced
//! again) and never deadlocks, even while other threads of the parent were
//! creating, pinning and dropping handles at the moment of the fork.
//!
//! And with a group member (`a_forked_group_member_claims_its_own_slot`):
//! the child, using the manager after the fork, is listed in the registry
//! under its own pid in a slot of its own, while the parent's slot keeps
//! the parent's pid and figures, and neither the child's use nor its exit
//! (nor its slot's expiry after the lease) takes the parent's slot from it.
#![cfg(not(loom))] // groups do not exist under loom

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use discardable::{group_members, Discardable, Fresh, GroupMember, Manager};

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

/// A pipe: (read end, write end).
fn pipe() -> (File, File) {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid out-pointer to two ints.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: `pipe` just opened `fds[0]`; nothing else owns it.
    let read = unsafe { OwnedFd::from_raw_fd(fds[0]) };
    // SAFETY: as above, for `fds[1]`.
    let write = unsafe { OwnedFd::from_raw_fd(fds[1]) };
    (File::from(read), File::from(write))
}

/// One line from `from` (without its newline), waiting up to 30 s in all;
/// `None` on EOF or timeout.
fn read_line(from: &mut File) -> Option<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut line = Vec::new();
    while !line.ends_with(b"\n") {
        let left = deadline.saturating_duration_since(Instant::now()).as_millis() as i32;
        let mut poll = libc::pollfd { fd: from.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: `poll` is one valid pollfd for the call's duration.
        if left == 0 || unsafe { libc::poll(&mut poll, 1, left) } != 1 {
            return None;
        }
        let mut buf = [0u8; 256];
        match from.read(&mut buf) {
            Ok(0) | Err(_) => return None,
            Ok(n) => line.extend_from_slice(&buf[..n]),
        }
    }
    line.pop();
    String::from_utf8(line).ok()
}

/// The registry's row of process `pid` in group `name` (the one row:
/// `None` when there is none or more than one).
fn row_of(name: &str, pid: u32) -> Option<GroupMember> {
    let rows: Vec<GroupMember> = group_members(name).ok()?.into_iter().filter(|m| m.pid == pid).collect();
    (rows.len() == 1).then(|| rows[0].clone())
}

/// `mib` MiB of discardable memory in `m`, pinned while the guards live
/// (so no reclaim, whatever the host's pressure, changes what is held).
fn pinned(m: &Manager, mib: usize) -> Vec<Fresh<[u8]>> {
    (0..mib).map(|_| Discardable::fill_in(1 << 20, m, |b| b.fill(7)).unwrap()).collect()
}

/// The forked child's checks, using the manager after the fork; `parent`
/// is the parent's row as it was at the fork.
fn group_child(name: &str, m: &Manager, parent: &GroupMember) -> Result<(), String> {
    let me = std::process::id();
    let faults = m.stats().group_faults;
    // 2 MiB more than the 4 inherited: the first use restarts the
    // manager thread, which publishes this process's figures.
    let _mine = pinned(m, 2);
    let deadline = Instant::now() + Duration::from_secs(10);
    let child = loop {
        match row_of(name, me) {
            Some(row) if row.held == 6 << 20 => break row,
            _ if Instant::now() > deadline => {
                return Err(format!(
                    "never listed under pid {me} with 6 MiB: {:?}; {:?}",
                    group_members(name),
                    m.stats()
                ))
            }
            _ => std::thread::sleep(Duration::from_millis(10)),
        }
    };
    let all = group_members(name);
    if child.slot == parent.slot || child.weight != 3 {
        return Err(format!("the child's row {child:?} is not its own: {all:?}"));
    }
    match row_of(name, parent.pid) {
        Some(p) if p.slot == parent.slot && p.weight == 3 && p.held == 4 << 20 => {}
        _ => return Err(format!("the parent's slot was touched: {all:?}")),
    }
    if m.stats().group_faults != faults {
        return Err(format!("faults while claiming: {:?}", m.stats()));
    }
    Ok(())
}

/// The group's registry file, removed when the test ends (also when it
/// fails; a forked child `_exit`s and never removes it).
struct RemoveOnDrop(String);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn a_forked_group_member_claims_its_own_slot() {
    let name = format!("fork-slot-{}", std::process::id());
    let _registry = RemoveOnDrop(format!("/dev/shm/discardable-group-{name}"));
    let m = Manager::builder().limit(64 << 20).group(&name).weight(3).start().unwrap();
    let held = pinned(&m, 4);
    let me = std::process::id();
    let deadline = Instant::now() + Duration::from_secs(10);
    let parent = loop {
        if let Some(row) = row_of(&name, me).filter(|r| r.held == 4 << 20) {
            break row;
        }
        assert!(Instant::now() < deadline, "never published: {:?}", group_members(&name));
        std::thread::sleep(Duration::from_millis(10));
    };
    let ((mut ready_r, mut ready_w), (mut go_r, go_w)) = (pipe(), pipe());
    // SAFETY: the child runs only `group_child`, its replies and `_exit`;
    // it never returns into the test harness.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        drop((ready_r, go_w));
        let result = group_child(&name, &m, &parent);
        let reply = result.as_ref().map_or_else(|e| format!("fail: {e}\n"), |()| "ready\n".to_owned());
        let replied = ready_w.write_all(reply.as_bytes()).is_ok();
        // Wait for the parent's go (or its end), then let everything the
        // child has of the manager go before it exits.
        let _ = go_r.read(&mut [0u8]);
        drop(held);
        drop(m);
        // SAFETY: ends the child at once, skipping the parent's harness.
        unsafe { libc::_exit(if result.is_ok() && replied { 0 } else { 1 }) };
    }
    drop((ready_w, go_r));
    let child_pid = pid as u32;
    let started = Instant::now();

    // While the child lives: two rows, two slots, ours as it was.
    let reply = read_line(&mut ready_r);
    assert_eq!(reply.as_deref(), Some("ready"), "the child's checks");
    let members = group_members(&name).unwrap();
    let child = row_of(&name, child_pid).unwrap_or_else(|| panic!("child {child_pid} not listed: {members:?}"));
    let ours = row_of(&name, me).unwrap_or_else(|| panic!("parent {me} not listed: {members:?}"));
    assert_ne!(child.slot, parent.slot, "{members:?}");
    assert_eq!((child.weight, child.held), (3, 6 << 20), "{members:?}");
    assert_eq!((ours.slot, ours.weight, ours.held), (parent.slot, 3, 4 << 20), "{members:?}");
    drop(go_w);
    let status = wait_child(pid);
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "child: {status}");

    // After its exit: our slot stays ours in every reading while the
    // child's expires (it is not released at exit: the lease reaps it).
    let exited = Instant::now();
    let deadline = exited + Duration::from_millis(4500);
    while row_of(&name, child_pid).is_some() {
        let ours = row_of(&name, me);
        assert!(ours.as_ref().is_some_and(|r| r.slot == parent.slot), "our slot after the child's exit: {ours:?}");
        assert!(Instant::now() < deadline, "the exited child's slot still listed after {:?}", exited.elapsed());
        std::thread::sleep(Duration::from_millis(50));
    }
    let gone = exited.elapsed();
    // Two more passes of ours (a heartbeat each at the most), each
    // publishing into the slot it never lost.
    let passes = m.stats().passes;
    let deadline = Instant::now() + Duration::from_secs(10);
    while m.stats().passes < passes + 2 {
        assert!(Instant::now() < deadline, "no passes: {:?}", m.stats());
        std::thread::sleep(Duration::from_millis(10));
    }
    let ours = row_of(&name, me);
    assert!(ours.as_ref().is_some_and(|r| r.slot == parent.slot && r.held == 4 << 20), "{ours:?}");
    assert_eq!(m.stats().group_faults, 0, "our slot was taken from us at some point");
    eprintln!(
        "forked group member: child {child_pid} in its own slot, gone {gone:.2?} after its exit (lease 3 s); {:.2?} in all",
        started.elapsed()
    );
    drop(held);
    drop(m);
}
