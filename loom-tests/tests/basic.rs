//! Loom models 1–4: single-key races on a one-bucket table (see `src/models.rs`).
#![cfg(loom)]

use linemap_loom_tests::{model, models};

#[test]
fn insert_vs_get() {
    model(models::insert_vs_get);
}

#[test]
fn insert_vs_insert() {
    model(models::insert_vs_insert);
}

#[test]
fn insert_vs_remove() {
    model(models::insert_vs_remove);
}

#[test]
fn replace_vs_remove() {
    model(models::replace_vs_remove);
}

#[test]
fn remove_vs_get() {
    model(models::remove_vs_get);
}
