//! "Teeth": each model here weakens one protocol step through a loom-only knob
//! (`linemap::__loom_knobs`) and asserts that loom finds an interleaving that breaks it.
//! The same models pass with the knobs off (`tests/basic.rs`).
#![cfg(loom)]

use linemap_loom_tests::{assert_rejected, knobs, models};

/// Tag publication: with the insert's tag published `Relaxed`, a reader can see the tag and
/// then read the slot word as it was before the insert (EMPTY), which the table's invariant
/// 4 ("a tag is only set on a slot that holds an entry") forbids.
#[test]
fn relaxed_tag_publication_is_rejected() {
    assert_rejected(
        &knobs::RELAXED_TAG_PUBLISH,
        || models::insert_vs_get(false),
        "!raw.is_null()",
    );
}

/// First-EMPTY claim: if `probe_write` skips a LIVE slot whose tag is not yet published, a
/// second insert of the same key claims the next EMPTY slot: the key is in the table twice.
#[test]
fn skipped_pending_entry_check_is_rejected() {
    assert_rejected(
        &knobs::SKIP_PENDING_CHECK,
        || models::insert_vs_insert(false),
        "two inserts not linearizable",
    );
}
