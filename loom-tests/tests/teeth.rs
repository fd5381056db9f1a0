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

/// Set in the child process of [`waiter_without_sleepers_flag_is_rejected`].
const CHILD: &str = "LINEMAP_LOOM_TEETH_CHILD";

/// The `sleepers` flag: if a waiter blocks on a load's condition variable without setting
/// it, `publish` skips the notification and the waiter sleeps forever, which loom reports as
/// a deadlock. Loom's deadlock report panics inside its scheduler and cannot be caught within
/// the execution (the harness of `assert_rejected` would then abort on a double free), so
/// the weakened model runs in a child process of this test binary, and the test asserts that
/// the child failed with loom's deadlock report.
#[test]
fn waiter_without_sleepers_flag_is_rejected() {
    if std::env::var_os(CHILD).is_some() {
        knobs::SKIP_SLEEPERS_FLAG.store(true, std::sync::atomic::Ordering::SeqCst);
        let mut b = loom::model::Builder::new();
        b.preemption_bound = Some(3);
        b.check(two_loads_one_key);
        // Reached only if loom accepted the weakened protocol: the child then passes, and
        // the parent fails.
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "waiter_without_sleepers_flag_is_rejected",
            "--test-threads=1",
            "--nocapture",
        ])
        .env(CHILD, "1")
        .output()
        .expect("run the child test process");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "loom accepted waiters that do not set the sleepers flag (child stderr: {stderr})"
    );
    assert!(
        stderr.contains("deadlock; threads ="),
        "the child failed, but not with loom's deadlock report: {stderr}"
    );
    eprintln!("rejected as expected: loom reported the sleeping waiter's deadlock");
}

/// Two `get_or_insert_with(1, ..)` on a fresh cache (model 3 of `tests/cache.rs`, written
/// with plain loom threads: see [`waiter_without_sleepers_flag_is_rejected`]).
fn two_loads_one_key() {
    use linemap_loom_tests::cache_support::{new_cache, Val};
    let (cache, _log) = new_cache(2, None);
    let c = std::sync::Arc::clone(&cache);
    let t = loom::thread::spawn(move || c.get_or_insert_with(1, || Val::new(100)).id);
    let mine = cache.get_or_insert_with(1, || Val::new(200)).id;
    assert_eq!(t.join().unwrap(), mine);
}
