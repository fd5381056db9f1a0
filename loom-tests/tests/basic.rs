//! Loom models 1–4: single-key races on a one-bucket table (see `src/models.rs`). Each runs
//! its race in both thread assignments and fails unless every outcome was reached.
#![cfg(loom)]

use linemap_loom_tests::{model_both_ways, models};

/// The preemption bound of these models.
const BOUND: usize = 3;

#[test]
fn insert_vs_get() {
    model_both_ways(BOUND, &models::INSERT_VS_GET, models::insert_vs_get);
}

#[test]
fn insert_vs_insert() {
    model_both_ways(BOUND, &models::INSERT_VS_INSERT, models::insert_vs_insert);
}

#[test]
fn insert_vs_remove() {
    model_both_ways(BOUND, &models::WRITE_VS_REMOVE, models::insert_vs_remove);
}

#[test]
fn replace_vs_remove() {
    model_both_ways(BOUND, &models::WRITE_VS_REMOVE, models::replace_vs_remove);
}

#[test]
fn remove_vs_get() {
    model_both_ways(BOUND, &models::REMOVE_VS_GET, models::remove_vs_get);
}
