//! The global manager: `Discardable::new` and `from_slice` use it, it starts on first use with the
//! defaults, and `install_global` afterwards fails with `Error::AlreadyStarted`.
//!
//! The global manager is process-wide, so this binary holds a single test; `global_install.rs`
//! covers installing a configuration before first use.

use discardable::{Discardable, Error, Manager};

#[test]
fn first_use_starts_the_global_manager_and_install_then_fails() {
    let global = Manager::global();
    assert!(std::ptr::eq(global, Manager::global()), "one global manager");
    let before = global.stats();
    assert_eq!(before.allocations, 0, "nothing else in this binary allocates");
    assert!(before.limit > 0, "default limit is positive");

    let value = Discardable::new(42u64);
    let slice = Discardable::from_slice(&[1u16, 2, 3]);
    let s = global.stats();
    assert_eq!(s.allocations, 2, "Discardable::new and from_slice use the global manager");
    assert_eq!(s.discardable_bytes, value.cost() + slice.cost());
    assert_eq!(*value.upgrade().unwrap(), 42);
    assert_eq!(&slice.upgrade().unwrap()[..], &[1, 2, 3]);
    assert_eq!(global.reclaim(usize::MAX), value.cost() + slice.cost());
    assert!(value.is_discarded() && slice.is_discarded());

    let err = Manager::builder().limit(1 << 20).install_global().expect_err("already started");
    assert!(matches!(err, Error::AlreadyStarted), "{err:?}");
    assert!(!err.to_string().is_empty());
    let zero = Manager::builder().limit(0).install_global();
    assert!(matches!(zero, Err(Error::ZeroLimit | Error::AlreadyStarted)), "{zero:?}");
    assert_eq!(Manager::global().stats().limit, before.limit, "the failed install changed nothing");
    drop((value, slice));
    assert_eq!(Manager::global().stats().allocations, 0);
}
