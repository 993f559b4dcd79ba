//! Owned guards outliving their handles (src/handle/state.rs INV-8).
#![cfg(loom)]

#[test]
fn owner_drops_while_an_owned_guard_unpins() {
    loom_tests::orphan::owner_drops_while_an_owned_guard_unpins();
}
