//! Loom models of linemap's concurrency protocols.
//!
//! The models live in `tests/` and only compile under `--cfg loom`; see
//! `docs/verification.md` for the command and what each model proves. This library holds
//! what they share: a deterministic hasher (loom replays every execution and needs the same
//! hashes each time, which foldhash's random seeds would break), a value type that counts its
//! drops, helpers to force epoch collections, and the knob guard of the "teeth" models.

#[cfg(loom)]
mod support;
#[cfg(loom)]
pub use support::*;
pub mod cache_support;
#[cfg(loom)]
pub mod models;
