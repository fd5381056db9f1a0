//! Issue 4's hit-ratio target for `linemap::Cache`: replaying the shared
//! traces at the capacities of their README tables, on 1 thread and on 2
//! threads (one shared request index, see `linemap_cachesim::replay`), the
//! request hit ratio is at least exact LRU minus 0.5 points and at most
//! Bélády's optimum (more would be a bug). LRU and OPT are computed here by
//! the oracles of `linemap_cachesim::oracle` on the same requests.
//!
//! What is asserted, per capacity:
//!
//! * 1 thread, `get` + `insert` on a miss ([`Mode::GetInsert`]): deterministic.
//! * 2 threads through `get_or_insert_with` ([`Mode::Load`]): the cache-aside
//!   call a service uses. A request is a miss iff it ran the loader, so a
//!   request that arrives while another thread loads its key is served by
//!   that load, as it would be from the cache in a sequential replay; what
//!   is left is what concurrency costs *the cache* (its eviction queues, hand and
//!   table under two threads).
//! * 2 threads, `get` + `insert` ([`Mode::GetInsert`]): printed, not
//!   asserted. Here two clients that ask for one absent key at the same
//!   moment both miss, a race in the *client* that no cache can prevent and
//!   whose rate grows with the time between a `get` miss and the `insert`
//!   that follows it and with how the two threads happen to be scheduled
//!   (on a quiet 2-core machine in debug, web12 @ 300: about 2 points below
//!   the 1-thread replay; on a loaded one the threads rarely overlap and the
//!   loss vanishes). docs/cache-benchmarks.md compares that loss with
//!   quick_cache's and moka's.
//!
//! The traces are not part of the crate. They are looked for in
//! `$LINEMAP_TRACES`, else in `../shared/traces` beside the repository (that
//! is `cachesim/../../shared/traces`); when absent the test prints a message
//! and passes.
//!
//! Two extents:
//!
//! * **default** (what `cargo test --workspace` runs, in debug): the two
//!   small traces (`lirs-glimpse`, `cache2k-web12`) in full at every README
//!   size, plus the first `PREFIX` (200,000) requests of every other trace at
//!   the two smallest sizes of its README table (LRU and OPT recomputed on
//!   that prefix). This keeps the debug run to about 30 s of CPU. Larger
//!   sizes are left to the full sweep on purpose: on a prefix a large cache
//!   is still warming up, and there even exact ring CLOCK (libCacheSim's
//!   CLOCK) can trail LRU by more than the tolerance — e.g. orm-busy's first
//!   200,000 requests at 10,000 entries: CLOCK 86.54, LRU 87.13 — which says
//!   nothing about the full-trace target.
//! * **full sweep**: with `LINEMAP_FULL_SWEEP=1`, every trace in full at every
//!   README size. Run it in release:
//!   `LINEMAP_FULL_SWEEP=1 cargo test --release -p linemap-cachesim --test hit_ratio -- --nocapture`
//!   (about a minute of CPU), or use the `replay` example, which also prints
//!   `quick_cache` and `moka`.

use linemap_cachesim::oracle::{belady_hits, next_use, Admission, Lru};
use linemap_cachesim::replay::{check_target, Impl, Mode};
use linemap_cachesim::{hits, pct, reference, trace};
use std::io::Write;
use std::path::PathBuf;

/// Traces replayed in full even in the default extent.
const SMALL: &[&str] = &["lirs-glimpse", "cache2k-web12"];
/// Requests of the other traces replayed in the default extent.
const PREFIX: usize = 200_000;
/// README sizes (the smallest) replayed on a prefix in the default extent.
const PREFIX_SIZES: usize = 2;

/// 2-thread replays per capacity until both threads performed at least 10 %
/// of the requests (on a busy machine one thread can replay a small trace
/// alone); every attempt is checked.
const ATTEMPTS: usize = 5;

/// Written to stderr directly so that the harness does not capture it.
fn say(msg: &str) {
    let _ = std::io::stderr().write_all(format!("{msg}\n").as_bytes());
}

fn traces_dir() -> Option<PathBuf> {
    let dir = match std::env::var_os("LINEMAP_TRACES") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/traces"),
    };
    if dir.is_dir() {
        Some(dir)
    } else {
        say(&format!(
            "skipped: no trace directory at {} (set LINEMAP_TRACES)",
            dir.display()
        ));
        None
    }
}

fn full_sweep() -> bool {
    std::env::var("LINEMAP_FULL_SWEEP").is_ok_and(|v| !v.is_empty() && v != "0")
}

#[test]
fn linemap_hit_ratio_within_lru_and_opt() {
    let Some(dir) = traces_dir() else { return };
    let full = full_sweep();
    let files = trace::list_traces(&dir).expect("trace directory reads");
    let mut checked = 0;
    let mut failures = Vec::new();
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let Some(r) = reference::lookup(&name) else {
            say(&format!("{name}: not in the README tables, not replayed"));
            continue;
        };
        let mut keys = trace::read_trace(&path).expect("trace reads");
        let whole = full || SMALL.contains(&r.name);
        let sizes: Vec<usize> = if whole {
            r.sizes.to_vec()
        } else {
            keys.truncate(PREFIX);
            r.sizes.iter().copied().take(PREFIX_SIZES).collect()
        };
        let n = keys.len();
        let next = next_use(&keys);
        for cap in sizes {
            let lru = hits(&mut Lru::new(cap), &keys);
            let opt = belady_hits(&keys, &next, cap, Admission::Always);
            let one = Impl::Linemap.replay(cap, &keys, 1, Mode::GetInsert);
            let one_hits = one.hits;
            let two = Impl::Linemap.replay_shared(cap, &keys, 2, Mode::Load, ATTEMPTS);
            let runs = std::iter::once((one, "1T get+insert"))
                .chain(two.into_iter().map(|r| (r, "2T get_or_insert_with")));
            for (got, how) in runs {
                let verdict = check_target(got.hits, lru, opt, n);
                say(&format!(
                    "{name} ({n} requests) @ {cap}, {how}: linemap {:.2}, LRU {:.2}, OPT {:.2}, \
                     thread shares {:?}: {}",
                    pct(got.hits, n),
                    pct(lru, n),
                    pct(opt, n),
                    got.shares,
                    verdict.as_deref().unwrap_or("ok")
                ));
                if let Some(v) = verdict {
                    failures.push(format!("{name} ({n} requests) @ {cap}, {how}: {v}"));
                }
                checked += 1;
            }
            // Reported only (see the module documentation): the client race
            // of get + insert on two threads. Above OPT would still be a bug.
            let racy = Impl::Linemap.replay(cap, &keys, 2, Mode::GetInsert);
            say(&format!(
                "{name} ({n} requests) @ {cap}, 2T get+insert (reported, not asserted): \
                 linemap {:.2} ({:+.2} vs 1T), thread shares {:?}",
                pct(racy.hits, n),
                pct(racy.hits, n) - pct(one_hits, n),
                racy.shares,
            ));
            if racy.hits > opt {
                failures.push(format!(
                    "{name} ({n} requests) @ {cap}, 2T get+insert: {} hits > OPT {opt}",
                    racy.hits
                ));
            }
        }
    }
    say(&format!(
        "{checked} replays checked ({})",
        if full {
            "full sweep"
        } else {
            "default extent; LINEMAP_FULL_SWEEP=1 for every trace in full"
        }
    ));
    assert!(
        failures.is_empty(),
        "linemap::Cache misses the hit-ratio target:\n{}",
        failures.join("\n")
    );
}
