//! Cross-crate integration and conformance runs of `stats`.
//!
//! The tests live in `tests/`; this library holds what they share: deliberately broken stores
//! that show the conformance suite catches the faults it is meant to catch.

pub mod broken;
