//! `discardable-top --once` and `--json` checked against the registry:
//! a manager of this process joins a group with weight 2 and holds 8 MiB;
//! the binary's row for this pid must show what `group_members` reads.

use std::process::Command;
use std::time::{Duration, Instant};

use discardable::{group_members, Discardable, Manager};

#[test]
fn once_and_json_match_the_registry() {
    let name = format!("top-test-{}", std::process::id());
    let m = Manager::builder().limit(64 << 20).group(&name).weight(2).start().unwrap();
    let held: Vec<Discardable<[u8]>> = (0..8).map(|_| Discardable::zeroed_in(1 << 20, &m)).collect();
    // Wait for a heartbeat that published the 8 MiB (at most 1 s away).
    let deadline = Instant::now() + Duration::from_secs(10);
    let me = loop {
        let members = group_members(&name).unwrap();
        if let Some(me) = members.into_iter().find(|x| x.pid == std::process::id() && x.held == 8 << 20) {
            break me;
        }
        assert!(Instant::now() < deadline, "never published");
        std::thread::sleep(Duration::from_millis(20));
    };
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_discardable-top")).args(args).arg(&name).output().unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };

    let json = run(&["--json"]);
    let row = format!(
        "{{\"slot\":{},\"pid\":{},\"weight\":2,\"held\":{},\"share\":{},\"demand\":{},\"pinned\":{},\"reclaims\":{},",
        me.slot,
        me.pid,
        8 << 20,
        me.share,
        me.demand,
        me.pinned,
        me.reclaims
    );
    assert!(json.contains(&row), "{json}\nmissing {row}");
    assert!(json.starts_with(&format!("{{\"groups\":[{{\"name\":\"{name}\",\"members\":[")), "{json}");

    let table = run(&["--once"]);
    assert!(table.contains(&format!("group {name}: 1 members, 8.0 MiB held")), "{table}");
    let line = table.lines().find(|l| l.split_whitespace().next() == Some(&me.pid.to_string())).expect("our row");
    let cols: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(&cols[..3], [me.pid.to_string().as_str(), "2", "8.0"], "{table}");

    // Our slot is given up once the manager and its handles are gone (its
    // thread then ends at its next wake-up, within a heartbeat).
    drop(held);
    drop(m);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !run(&["--once"]).contains(": 0 members") {
        assert!(Instant::now() < deadline, "the slot was not given up");
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = std::fs::remove_file(format!("/dev/shm/discardable-group-{name}"));
    // A group with no registry is an error row, not a crash.
    let missing = run(&["--once"]);
    assert!(
        missing.starts_with(&format!("group {name}: group registry ")) && missing.contains("no registry file"),
        "{missing}"
    );
    assert!(run(&["--json"]).contains("\"error\":"), "an error object");
}
