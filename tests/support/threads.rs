//! Finding the manager threads of this test process by name (shared by the
//! tests that count or inspect them).

use std::collections::BTreeSet;

/// What the kernel keeps of the name "discardable-manager" (15 bytes).
pub const COMM: &str = "discardable-man";

/// Ids of this process's threads named like the manager thread, from
/// `/proc/self/task/*/comm`.
pub fn manager_threads() -> BTreeSet<u64> {
    let mut ids = BTreeSet::new();
    for entry in std::fs::read_dir("/proc/self/task").expect("/proc/self/task") {
        let entry = entry.unwrap();
        let Ok(comm) = std::fs::read_to_string(entry.path().join("comm")) else { continue };
        if comm.trim_end() == COMM {
            ids.insert(entry.file_name().to_string_lossy().parse().unwrap());
        }
    }
    ids
}
