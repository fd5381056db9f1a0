//! Loom model 5: a resize migration racing a get, a remove, a replace and an insert. Each
//! runs its race in both thread assignments and fails unless every outcome was reached.
//!
//! The remove and replace races explore ~200 000 executions each at preemption bound 3
//! (about a minute of CPU apiece); the insert race, two migrators, explores far more, so CI
//! caps it at bound 2; `LINEMAP_LOOM_FULL=1 bash .ci/loom` runs it at the full bound (see
//! docs/verification.md).
#![cfg(loom)]

use linemap_loom_tests::{model_both_ways, models};

/// The preemption bound of the get, remove and replace races.
const BOUND: usize = 3;

/// The preemption bound of the insert race (two migrators) in CI.
const INSERT_RACE_BOUND: usize = 2;

#[test]
fn migration_vs_get() {
    let mut expect = models::PHASES.to_vec();
    expect.extend(models::MIGRATION_VS_GET);
    model_both_ways(BOUND, &expect, models::migration_vs_get);
}

#[test]
fn migration_vs_remove() {
    let mut expect = models::PHASES.to_vec();
    expect.extend(models::MIGRATION_VS_REMOVE);
    model_both_ways(BOUND, &expect, models::migration_vs_remove);
}

#[test]
fn migration_vs_replace() {
    model_both_ways(BOUND, &models::PHASES, models::migration_vs_replace);
}

#[test]
fn migration_vs_insert() {
    // Both inserts find the table full and wait for the migration: neither ends before the
    // new table is current.
    model_both_ways(
        INSERT_RACE_BOUND,
        &models::PHASES[1..],
        models::migration_vs_insert,
    );
}
