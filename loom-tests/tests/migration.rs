//! Loom model 5: a resize migration racing a get, a remove, a replace and an insert.
//!
//! The write races explore ~185 000 executions each at preemption bound 3 (minutes of CPU
//! apiece): CI runs the remove race (the freeze protocol against a writer) at bound 3 and caps
//! the replace and insert races at bound 2; `LINEMAP_LOOM_FULL=1 bash .ci/loom` runs every
//! model at the full bound (see docs/verification.md).
#![cfg(loom)]

use linemap_loom_tests::{model, model_capped, models};

/// The preemption bound of the migration write races in CI.
const WRITE_RACE_BOUND: usize = 2;

#[test]
fn migration_vs_get() {
    model(models::migration_vs_get);
}

#[test]
fn migration_vs_remove() {
    model(models::migration_vs_remove);
}

#[test]
fn migration_vs_replace() {
    model_capped(WRITE_RACE_BOUND, models::migration_vs_replace);
}

#[test]
fn migration_vs_insert() {
    model_capped(WRITE_RACE_BOUND, models::migration_vs_insert);
}
