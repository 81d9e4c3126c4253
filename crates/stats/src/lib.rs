//! Umbrella crate.
