//! A value removed through a pinned handle stays alive until the handle is dropped, however
//! hard another thread drives reclamation.
//!
//! This file holds one test so that no other test shares its process: the test holds a guard
//! on purpose while another thread drives reclamation, and a held guard keeps crossbeam-epoch
//! from advancing for every thread of the process. In `tests/drops.rs` it held back the tests
//! that wait for their removed values to be freed; on a loaded machine (the helper thread
//! descheduled while the guard was held) one of them gave up waiting, 5 times in 40 runs.

mod common;

use common::{reclaim_until, Tracked, Tracker};
use linemap::HashMap;

#[test]
fn removed_values_stay_alive_while_pinned() {
    let t = Tracker::new();
    let map: HashMap<Tracked, Tracked> = HashMap::new();
    map.insert(Tracked::new(&t, 1), Tracked::new(&t, 10));
    let m = map.pin();
    let v = m.remove(&Tracked::new(&t, 1)).expect("present");
    let id = v.id;
    // Another thread drives reclamation hard; our guard must keep the value alive.
    let freed = std::thread::scope(|s| {
        s.spawn(|| reclaim_until_bounded(300, || !t.is_alive(id)))
            .join()
            .unwrap()
    });
    assert!(
        !freed,
        "value freed while a handle that returned it is pinned"
    );
    assert_eq!(v.val, 10);
    assert!(t.is_alive(id));
    drop(m);
    t.assert_all_dropped();
}

/// `reclaim_until` with fewer rounds, for checks that must *not* succeed.
fn reclaim_until_bounded(rounds: usize, mut done: impl FnMut() -> bool) -> bool {
    let mut n = 0;
    reclaim_until(|| {
        n += 1;
        done() || n > rounds
    }) && done()
}
