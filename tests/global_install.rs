//! `ManagerBuilder::install_global` before first use configures `Manager::global`, which
//! `Discardable::new` then uses; a second install fails with `Error::AlreadyStarted`.
//!
//! The global manager is process-wide, so this binary holds a single test.

use discardable::{Discardable, Error, Manager, Policy};

#[test]
fn install_global_configures_the_global_manager_once() {
    let limit = 3 << 20;
    let installed = Manager::builder().policy(Policy::Fifo).limit(limit).install_global().expect("first install");
    assert_eq!(installed.stats().limit, limit);
    assert!(std::ptr::eq(installed, Manager::global()), "global() returns the installed manager");

    let a = Discardable::new([1u8; 100]);
    let b = Discardable::new([2u8; 100]);
    assert_eq!(Manager::global().stats().allocations, 2);
    // FIFO, as configured: the oldest goes first.
    assert_eq!(Manager::global().reclaim(1), a.cost());
    assert!(a.is_discarded() && !b.is_discarded());

    assert!(matches!(Manager::builder().limit(limit).install_global(), Err(Error::AlreadyStarted)));
    assert_eq!(Manager::global().stats().limit, limit);
}
