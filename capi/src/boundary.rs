//! Where Rust meets C: no panic crosses the boundary, and misuse that C
//! cannot be told about through a return value aborts with a message.
//!
//! Every exported function runs its body inside [`guarded`]: a panic (a bug
//! in this library or the crate: nothing here panics by design) is caught,
//! its message is written to stderr with the function's name, and the
//! process aborts. Unwinding into C frames would be undefined behaviour,
//! and returning a status after a panic would hide a broken invariant. The
//! one panic that is not a bug, the global manager failing to start its
//! thread, is caught where it can happen and becomes `NULL` or
//! `DSC_NO_MEMORY`.
//!
//! Must never: unwind, or allocate on the abort path before the message is
//! out (the message is formatted into stderr directly).

use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Runs `body`, the work of the exported function `name`; a panic in it
/// aborts the process with a message instead of unwinding into C.
#[inline(always)]
pub fn guarded<R>(name: &'static str, body: impl FnOnce() -> R) -> R {
    // AssertUnwindSafe: nothing observes the state a panic leaves, because
    // the process aborts right after.
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(r) => r,
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("a panic");
            die(name, what)
        }
    }
}

/// Writes `discardable: <name>: <what>` to stderr and aborts.
#[cold]
#[inline(never)]
pub fn die(name: &str, what: &str) -> ! {
    // Best effort: a closed stderr must not turn the abort into a panic.
    let _ = writeln!(std::io::stderr(), "discardable: {name}: {what}");
    std::process::abort()
}

/// Runs `body`, which may start the global manager; a panic from that
/// start (the thread could not be spawned) is `None`. Any other panic is
/// treated as [`guarded`] treats it, by the caller's own guard: this only
/// catches the start.
pub fn catch_start<R>(body: impl FnOnce() -> R) -> Option<R> {
    catch_unwind(AssertUnwindSafe(body)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_guarded_body_returns_its_value() {
        assert_eq!(guarded("test", || 41 + 1), 42);
    }

    /// A panic inside an exported function never unwinds into C: the
    /// process aborts (SIGABRT) with the function's name and the message on
    /// stderr. Checked in a child process (this test binary, re-executed).
    #[test]
    fn a_panic_aborts_with_its_message_instead_of_unwinding() {
        const CHILD: &str = "DSC_BOUNDARY_PANIC_CHILD";
        if std::env::var_os(CHILD).is_some() {
            guarded("dsc_test", || panic!("boom"));
            unreachable!("guarded returned after a panic");
        }
        let name = "boundary::tests::a_panic_aborts_with_its_message_instead_of_unwinding";
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", name, "--nocapture", "--test-threads=1"])
            .env(CHILD, "1")
            .output()
            .unwrap();
        use std::os::unix::process::ExitStatusExt;
        const SIGABRT: i32 = 6;
        assert_eq!(out.status.signal(), Some(SIGABRT), "{out:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("discardable: dsc_test: boom"), "{out:?}");
    }

    #[test]
    fn a_failed_start_is_none() {
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let got: Option<()> = catch_start(|| panic!("could not spawn"));
        std::panic::set_hook(hook);
        assert_eq!(got, None);
        assert_eq!(catch_start(|| 7), Some(7));
    }
}
