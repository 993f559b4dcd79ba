//! Facades for the crate's verification: loom models and fuzz targets.
//!
//! Owns: nothing of the crate's logic; each facade re-exports or wraps
//! shipped internals so that `loom-tests/` and `fuzz/` drive the code users
//! run. Lower layers reach the loom page source here (`testing::loom::pages`),
//! never through the crate root.
//!
//! Must never: be built into a normal build (each module is behind its
//! cfg).

#[cfg(loom)]
pub mod loom;

#[cfg(fuzzing)]
pub mod fuzz;
