//! Memory per entry of linemap and its peers, `u64 -> u64`, measured with a counting global
//! allocator (live bytes = the sum of the `Layout` sizes of live allocations; peak = their
//! maximum). Each map starts from its default constructor (no pre-sizing) with the same
//! fixed-seed foldhash hasher and receives N distinct keys.
//!
//! ```text
//! cargo run --release --example bytes_per_entry [N ...]    # default: 700000 1048576
//! ```
//!
//! Epoch-based maps keep retired tables and entries until reclamation runs, so they are
//! reported several ways: linemap right after the inserts, then after forcing crossbeam-epoch
//! reclamation (a pin/flush loop); papaya with a pin per insert, and with one guard held across
//! all inserts, measured while the guard is held and after it is dropped. The last rows are
//! `linemap::Cache` (capacity N) filled with N keys, then after N more.
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

fn add(n: usize) {
    let live = LIVE.fetch_add(n, Relaxed) + n;
    PEAK.fetch_max(live, Relaxed);
    ALLOCS.fetch_add(1, Relaxed);
}

// SAFETY: forwards every call to the system allocator unchanged; only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            add(layout.size());
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            add(layout.size());
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Relaxed);
            add(new_size);
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

type Hasher = foldhash::fast::FixedState;
fn hasher() -> Hasher {
    Hasher::with_seed(0x5eed_1234_abcd_0042)
}

fn key_of(i: u64) -> u64 {
    let mut z = i.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A measurement window: live bytes and allocations at its start; resets the peak.
struct Window {
    live0: usize,
    allocs0: usize,
    n: usize,
}

impl Window {
    fn start(n: usize) -> Self {
        let live0 = LIVE.load(Relaxed);
        PEAK.store(live0, Relaxed);
        Window {
            live0,
            allocs0: ALLOCS.load(Relaxed),
            n,
        }
    }
    fn live(&self) -> f64 {
        LIVE.load(Relaxed).saturating_sub(self.live0) as f64 / self.n as f64
    }
    fn peak(&self) -> f64 {
        PEAK.load(Relaxed).saturating_sub(self.live0) as f64 / self.n as f64
    }
    fn allocs(&self) -> f64 {
        (ALLOCS.load(Relaxed) - self.allocs0) as f64 / self.n as f64
    }
}

fn row(n: usize, name: &str, w: &Window, note: &str) {
    println!(
        "| {n} | {name} | {:.1} | {:.1} | {:.2} | {note} |",
        w.live(),
        w.peak(),
        w.allocs()
    );
}

/// Drives crossbeam-epoch until everything retired so far has been freed (or we give up).
fn flush_epoch() {
    for _ in 0..1000 {
        let g = crossbeam_epoch::pin();
        g.flush();
        drop(g);
    }
}

/// Drives papaya's collector (seize) until its retired tables are freed.
fn flush_papaya<S>(m: &papaya::HashMap<u64, u64, S>) {
    use papaya::Guard as _;
    for _ in 0..1000 {
        m.guard().flush();
    }
}

fn measure(n: usize) {
    let keys = (0..n as u64).map(key_of);

    {
        let w = Window::start(n);
        let m = std::collections::HashMap::with_hasher(hasher());
        let mut m = m;
        for k in keys.clone() {
            m.insert(k, k);
        }
        row(n, "std HashMap", &w, "");
        drop(m);
    }
    {
        let w = Window::start(n);
        let mut m = hashbrown::HashMap::with_hasher(hasher());
        for k in keys.clone() {
            m.insert(k, k);
        }
        row(n, "hashbrown", &w, "");
        drop(m);
    }
    {
        let w = Window::start(n);
        let m = dashmap::DashMap::with_hasher(hasher());
        for k in keys.clone() {
            m.insert(k, k);
        }
        row(n, "dashmap", &w, "");
        drop(m);
    }
    {
        let w = Window::start(n);
        let m = scc::HashMap::with_hasher(hasher());
        for k in keys.clone() {
            let _ = m.insert_sync(k, k);
        }
        row(n, "scc", &w, "");
        drop(m);
    }
    {
        let w = Window::start(n);
        let m = papaya::HashMap::with_hasher(hasher());
        for k in keys.clone() {
            m.pin().insert(k, k);
        }
        row(n, "papaya", &w, "pin per insert, just after the inserts");
        flush_papaya(&m);
        row(
            n,
            "papaya",
            &w,
            "same map, after forcing reclamation (guard().flush())",
        );
        drop(m);
    }
    {
        let w = Window::start(n);
        let m = papaya::HashMap::with_hasher(hasher());
        let g = m.pin();
        for k in keys.clone() {
            g.insert(k, k);
        }
        row(
            n,
            "papaya",
            &w,
            "one guard held across all inserts, guard still held",
        );
        drop(g);
        row(n, "papaya", &w, "same map, after the guard is dropped");
        flush_papaya(&m);
        row(
            n,
            "papaya",
            &w,
            "same map, after forcing reclamation (guard().flush())",
        );
        drop(m);
    }
    flush_epoch();
    {
        let w = Window::start(n);
        let m = linemap::HashMap::with_capacity_and_hasher(0, hasher());
        for k in keys.clone() {
            m.insert(k, k);
        }
        row(
            n,
            "linemap",
            &w,
            "map.insert per key, just after the inserts",
        );
        flush_epoch();
        row(
            n,
            "linemap",
            &w,
            "same map, after forcing epoch reclamation",
        );
        drop(m);
    }
    flush_epoch();
    {
        let w = Window::start(n);
        let m = linemap::HashMap::with_capacity_and_hasher(0, hasher());
        let h = m.pin();
        for k in keys.clone() {
            h.insert(k, k);
        }
        row(
            n,
            "linemap",
            &w,
            "one pinned handle across all inserts, still held",
        );
        drop(h);
        flush_epoch();
        row(
            n,
            "linemap",
            &w,
            "same map, handle dropped, after forcing reclamation",
        );
        drop(m);
    }
    flush_epoch();
    {
        // linemap::Cache with capacity n: filled with n keys, then n more (every original
        // entry evicted), measured after reclamation. The issue's target: K + V + 32 bytes.
        let w = Window::start(n);
        let c = linemap::Cache::builder(n).hasher(hasher()).build();
        for k in keys.clone() {
            c.insert(k, k);
        }
        flush_epoch();
        row(
            n,
            "linemap Cache",
            &w,
            "capacity n, filled with n keys, reclaimed",
        );
        for k in (n as u64..2 * n as u64).map(key_of) {
            c.insert(k, k);
        }
        flush_epoch();
        row(
            n,
            "linemap Cache",
            &w,
            "same cache after n more keys (n evictions), reclaimed",
        );
        drop(c);
    }
    flush_epoch();
}

fn main() {
    let sizes: Vec<usize> = {
        let v: Vec<usize> = std::env::args()
            .skip(1)
            .map(|a| a.parse().expect("N"))
            .collect();
        if v.is_empty() {
            vec![700_000, 1 << 20]
        } else {
            v
        }
    };
    println!("| entries | map | live B/entry | peak B/entry | allocs/insert | note |");
    println!("|---:|---|---:|---:|---:|---|");
    for n in sizes {
        measure(n);
    }
}
