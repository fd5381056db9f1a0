//! Loom models of linemap's concurrency protocols.
//!
//! The models live in `tests/` and only compile under `--cfg loom`; see
//! `docs/verification.md` for the command and what each model proves.
