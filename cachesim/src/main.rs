//! `cargo run -p linemap-cachesim --release -- <trace files or dirs...> [capacities...] [--seeds N]`
//!
//! Replays every trace through exact LRU, Bélády OPT, ring CLOCK and the
//! table-CLOCK candidates, and prints Markdown tables of request hit ratios
//! (%) per capacity, with each policy's difference from LRU in points.
//! Table-CLOCK variants are run with `N` hash seeds (default 1).

use linemap_cachesim::oracle::{belady_hits, next_use, Admission, Lru};
use linemap_cachesim::policies::{Counter, RingClock, TableClock, TableConfig};
use linemap_cachesim::{hits, pct, reference, trace};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// One simulated policy.
#[derive(Clone, Copy, Debug)]
enum Sim {
    Lru,
    Opt(Admission),
    Ring(Counter),
    Table(TableConfig),
}

/// Outcome of one replay.
#[derive(Clone, Copy, Debug, Default)]
struct Outcome {
    hits: u64,
    /// Table CLOCK only: mean and max buckets probed per insert.
    probe: Option<(f64, u64)>,
}

impl Sim {
    fn run(self, keys: &[u64], next: &[u64], cap: usize) -> Outcome {
        let (hits, probe) = match self {
            Sim::Lru => (hits(&mut Lru::new(cap), keys), None),
            Sim::Opt(a) => (belady_hits(keys, next, cap, a), None),
            Sim::Ring(c) => (hits(&mut RingClock::new(cap, c), keys), None),
            Sim::Table(cfg) => {
                let mut t = TableClock::new(cap, cfg);
                (hits(&mut t, keys), Some(t.probe_stats()))
            }
        };
        Outcome { hits, probe }
    }
}

fn counter_label(c: Counter) -> String {
    let bits = if c.max == 1 { "1-bit" } else { "2-bit" };
    format!("{bits}{}", if c.insert > 0 { " set" } else { "" })
}

fn table_label(cfg: &TableConfig) -> String {
    let mut s = format!("table {}", counter_label(cfg.counter));
    if cfg.hand_aware {
        s.push_str(" hand-aware");
    }
    if cfg.max_load != 0.7 {
        s.push_str(&format!(" L{}", cfg.max_load));
    }
    s.push_str(&format!(" b{}", cfg.batch));
    s
}

/// A column: one policy, replicated over hash seeds for table variants.
struct Group {
    label: String,
    sims: Vec<Sim>,
}

fn groups(seeds: u64) -> Vec<Group> {
    let mut g = vec![
        Group {
            label: "LRU".into(),
            sims: vec![Sim::Lru],
        },
        Group {
            label: "OPT".into(),
            sims: vec![Sim::Opt(Admission::Always)],
        },
        Group {
            label: "OPT bypass-never".into(),
            sims: vec![Sim::Opt(Admission::BypassNever)],
        },
        Group {
            label: "OPT bypass-farthest".into(),
            sims: vec![Sim::Opt(Admission::BypassFarthest)],
        },
    ];
    for c in [
        Counter::BIT,
        Counter::BIT_SET,
        Counter::TWO_BIT,
        Counter::TWO_BIT_SET,
    ] {
        g.push(Group {
            label: format!("ring {}", counter_label(c)),
            sims: vec![Sim::Ring(c)],
        });
    }
    let mut table = |counter: Counter, batch: usize, load: f64, hand_aware: bool| {
        let mut cfg = TableConfig::new(counter, batch);
        cfg.max_load = load;
        cfg.hand_aware = hand_aware;
        g.push(Group {
            label: table_label(&cfg),
            sims: (0..seeds)
                .map(|seed| Sim::Table(TableConfig { seed, ..cfg }))
                .collect(),
        });
    };
    for c in [
        Counter::BIT,
        Counter::BIT_SET,
        Counter::TWO_BIT,
        Counter::TWO_BIT_SET,
    ] {
        for batch in [1, 8] {
            table(c, batch, 0.7, false);
        }
    }
    for c in [Counter::BIT, Counter::TWO_BIT] {
        for batch in [1, 8] {
            table(c, batch, 0.7, true);
        }
    }
    table(Counter::BIT, 1, 0.5, false);
    table(Counter::BIT, 8, 0.5, false);
    table(Counter::BIT, 1, 0.5, true);
    table(Counter::BIT, 8, 0.5, true);
    g
}

// Column indices into `groups()`.
const LRU: usize = 0;
const OPT: usize = 1;
const FIRST_CLOCK: usize = 4;

struct Args {
    paths: Vec<PathBuf>,
    caps: Vec<usize>,
    seeds: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut paths = Vec::new();
    let mut caps = Vec::new();
    let mut seeds = 1;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        if a == "--seeds" {
            let v = it.next().ok_or("--seeds needs a value")?;
            seeds = v.parse().map_err(|_| format!("bad --seeds {v}"))?;
            if seeds == 0 {
                return Err("--seeds must be at least 1".into());
            }
        } else if a == "-h" || a == "--help" {
            return Err(String::new());
        } else if let Ok(c) = a.replace([',', '_'], "").parse::<usize>() {
            if c == 0 {
                return Err("capacity must be positive".into());
            }
            caps.push(c);
        } else {
            paths.push(PathBuf::from(a));
        }
    }
    if paths.is_empty() {
        paths.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/traces"));
    }
    Ok(Args { paths, caps, seeds })
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("error: {e}");
            }
            eprintln!(
                "usage: linemap-cachesim <trace files or directories...> [capacities...] [--seeds N]"
            );
            std::process::exit(2);
        }
    };
    let mut files = Vec::new();
    for p in &args.paths {
        match trace::list_traces(p) {
            Ok(f) if !f.is_empty() => files.extend(f),
            Ok(_) => {
                eprintln!("no trace files in {}", p.display());
                std::process::exit(1);
            }
            Err(e) => {
                eprintln!("{}: {e}", p.display());
                std::process::exit(1);
            }
        }
    }
    let mut summary = Vec::new();
    for f in files {
        if let Err(e) = replay(&f, &args, &mut summary) {
            eprintln!("{}: {e}", f.display());
            std::process::exit(1);
        }
    }
    print_summary(&summary);
}

/// Worst (most negative) difference from LRU of one policy on one trace.
struct Worst {
    trace: String,
    label: String,
    delta: f64,
    cap: usize,
}

fn fmt_delta(d: f64) -> String {
    format!("{d:+.2}")
}

/// Hit ratios of one group at one capacity: (mean, min, max) over seeds.
fn stats(v: &[f64]) -> (f64, f64, f64) {
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    let min = v.iter().cloned().fold(f64::INFINITY, f64::min);
    let max = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    (mean, min, max)
}

fn replay(path: &Path, args: &Args, summary: &mut Vec<Worst>) -> std::io::Result<()> {
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let refs = reference::lookup(&name);
    let t0 = Instant::now();
    let keys = trace::read_trace(path)?;
    let distinct = trace::distinct(&keys);
    let caps: Vec<usize> = if !args.caps.is_empty() {
        args.caps.clone()
    } else if let Some(r) = refs {
        r.sizes.to_vec()
    } else {
        vec![(distinct / 100).max(1), (distinct / 10).max(1)]
    };
    println!("## {name}\n");
    println!(
        "{} requests, {} distinct keys (read in {:.1}s)\n",
        keys.len(),
        distinct,
        t0.elapsed().as_secs_f64()
    );
    if let Some(r) = refs {
        if r.requests != keys.len() || r.distinct != distinct {
            println!(
                "**WARNING**: README says {} requests, {} distinct keys\n",
                r.requests, r.distinct
            );
        }
    }
    let next = next_use(&keys);
    let groups = groups(args.seeds);

    // Run every (capacity, group, seed) on all cores, longest jobs first.
    let mut jobs: Vec<(usize, usize, usize)> = Vec::new();
    for c in (0..caps.len()).rev() {
        for (g, grp) in groups.iter().enumerate() {
            for s in 0..grp.sims.len() {
                jobs.push((c, g, s));
            }
        }
    }
    let results: Mutex<Vec<Vec<Vec<Outcome>>>> = Mutex::new(
        (0..caps.len())
            .map(|_| {
                groups
                    .iter()
                    .map(|g| vec![Outcome::default(); g.sims.len()])
                    .collect()
            })
            .collect(),
    );
    let next_job = AtomicUsize::new(0);
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let t1 = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let j = next_job.fetch_add(1, Ordering::Relaxed);
                let Some(&(c, g, k)) = jobs.get(j) else { break };
                let out = groups[g].sims[k].run(&keys, &next, caps[c]);
                results.lock().unwrap()[c][g][k] = out;
            });
        }
    });
    let results = results.into_inner().unwrap();
    let n = keys.len();
    let ratios =
        |c: usize, g: usize| -> Vec<f64> { results[c][g].iter().map(|o| pct(o.hits, n)).collect() };
    let mean = |c: usize, g: usize| stats(&ratios(c, g)).0;
    let find = |label: &str| {
        groups
            .iter()
            .position(|g| g.label == label)
            .expect("known label")
    };

    // Bug check: no online (always-admitting) policy may beat OPT.
    for c in 0..caps.len() {
        let opt = results[c][OPT][0].hits;
        for (g, grp) in groups.iter().enumerate() {
            for (k, sim) in grp.sims.iter().enumerate() {
                if !matches!(sim, Sim::Opt(_)) && results[c][g][k].hits > opt {
                    println!(
                        "**WARNING (bug)**: {} @ {} = {:.2} exceeds OPT {:.2}\n",
                        grp.label,
                        caps[c],
                        pct(results[c][g][k].hits, n),
                        mean(c, OPT)
                    );
                }
            }
        }
    }

    // Main table.
    let main_cols: Vec<usize> = [
        "ring 1-bit",
        "table 1-bit b1",
        "table 1-bit b8",
        "table 2-bit b1",
        "table 1-bit hand-aware b1",
    ]
    .iter()
    .map(|l| find(l))
    .collect();
    let seed_note = if args.seeds > 1 {
        format!("; table columns: mean over {} hash seeds", args.seeds)
    } else {
        String::new()
    };
    println!(
        "Hit ratio % (difference from LRU in points{seed_note}). Counters are 0 on insert; \
         table load <= 0.7; bN = hand batch of N slots:\n"
    );
    print!("| capacity | LRU | OPT |");
    for &g in &main_cols {
        print!(" {} |", groups[g].label);
    }
    println!();
    println!("|---:|---:|---:|{}", "---:|".repeat(main_cols.len()));
    for (c, &cap) in caps.iter().enumerate() {
        let lru = mean(c, LRU);
        print!("| {cap} | {lru:.2} | {:.2} |", mean(c, OPT));
        for &g in &main_cols {
            let v = mean(c, g);
            print!(" {v:.2} ({}) |", fmt_delta(v - lru));
        }
        println!();
    }
    println!();

    // Calibration against the README (libCacheSim).
    if let Some(r) = refs {
        println!("Calibration against the README (libCacheSim):\n");
        println!(
            "| capacity | LRU ours / README | OPT always-admit | OPT bypass-never | \
             OPT bypass-farthest | OPT README | ring 1-bit | ring 1-bit set | CLOCK 1-bit README | \
             ring 2-bit | ring 2-bit set | CLOCK 2-bit README |"
        );
        println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        for (c, &cap) in caps.iter().enumerate() {
            let Some(i) = r.index(cap) else { continue };
            println!(
                "| {cap} | {:.2} / {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
                mean(c, LRU),
                r.lru[i],
                mean(c, OPT),
                mean(c, 2),
                mean(c, 3),
                r.opt[i],
                mean(c, find("ring 1-bit")),
                mean(c, find("ring 1-bit set")),
                r.clock1[i],
                mean(c, find("ring 2-bit")),
                mean(c, find("ring 2-bit set")),
                r.clock2[i],
            );
        }
        println!();
    }

    // All CLOCK variants as differences from LRU.
    let clock_cols = FIRST_CLOCK..groups.len();
    println!(
        "All CLOCK variants, difference from LRU in points{}. `set` = counter 1 on insert; \
         `hand-aware` = +1 on insert when placed in the half the hand reaches next; \
         `L0.5` = table load <= 0.5:\n",
        if args.seeds > 1 {
            " (table: mean over seeds, [min, max])"
        } else {
            ""
        }
    );
    print!("| capacity |");
    for g in clock_cols.clone() {
        print!(" {} |", groups[g].label);
    }
    println!();
    println!("|---:|{}", "---:|".repeat(clock_cols.len()));
    for (c, &cap) in caps.iter().enumerate() {
        let lru = mean(c, LRU);
        print!("| {cap} |");
        for g in clock_cols.clone() {
            let (m, lo, hi) = stats(&ratios(c, g));
            if groups[g].sims.len() > 1 {
                print!(
                    " {} [{}, {}] |",
                    fmt_delta(m - lru),
                    fmt_delta(lo - lru),
                    fmt_delta(hi - lru)
                );
            } else {
                print!(" {} |", fmt_delta(m - lru));
            }
        }
        println!();
    }
    println!();

    // Probe lengths of the table variants (seed 0).
    let table_cols: Vec<usize> = clock_cols
        .clone()
        .filter(|&g| matches!(groups[g].sims[0], Sim::Table(_)))
        .filter(|&g| groups[g].label.contains(" b1"))
        .collect();
    println!("Table CLOCK inserts: buckets probed to find a free slot, mean / max (seed 0):\n");
    print!("| capacity | load |");
    for &g in &table_cols {
        print!(" {} |", groups[g].label);
    }
    println!();
    println!("|---:|---:|{}", "---:|".repeat(table_cols.len()));
    for (c, &cap) in caps.iter().enumerate() {
        let b = TableClock::new(cap, TableConfig::new(Counter::BIT, 1)).buckets();
        print!(
            "| {cap} | {:.3} |",
            cap as f64 / (b * linemap_cachesim::policies::WAYS) as f64
        );
        for &g in &table_cols {
            let (m, mx) = results[c][g][0].probe.unwrap_or_default();
            print!(" {m:.2} / {mx} |");
        }
        println!();
    }
    println!();
    println!(
        "(simulated {} runs in {:.1}s)\n",
        jobs.len(),
        t1.elapsed().as_secs_f64()
    );

    // Worst differences for the summary (table columns: worst seed).
    for g in clock_cols {
        let mut worst = Worst {
            trace: name.clone(),
            label: groups[g].label.clone(),
            delta: f64::INFINITY,
            cap: 0,
        };
        for (c, &cap) in caps.iter().enumerate() {
            let d = stats(&ratios(c, g)).1 - mean(c, LRU);
            if d < worst.delta {
                worst.delta = d;
                worst.cap = cap;
            }
        }
        summary.push(worst);
    }
    Ok(())
}

fn print_summary(summary: &[Worst]) {
    let mut labels: Vec<&str> = Vec::new();
    let mut traces: Vec<&str> = Vec::new();
    for w in summary {
        if !labels.contains(&w.label.as_str()) {
            labels.push(&w.label);
        }
        if !traces.contains(&w.trace.as_str()) {
            traces.push(&w.trace);
        }
    }
    println!("## Summary: worst difference from LRU (points) over all capacities\n");
    println!("Target: no worse than -0.50 at every capacity of every trace (worst seed).\n");
    print!("| policy |");
    for t in &traces {
        print!(" {t} |");
    }
    println!(" worst | meets target |");
    println!("|---|{}---:|---|", "---:|".repeat(traces.len()));
    for l in labels {
        print!("| {l} |");
        let mut worst = f64::INFINITY;
        for t in &traces {
            match summary.iter().find(|w| w.label == l && w.trace == *t) {
                Some(w) => {
                    worst = worst.min(w.delta);
                    print!(" {} @ {} |", fmt_delta(w.delta), w.cap);
                }
                None => print!(" |"),
            }
        }
        let ok = if worst >= -0.5 { "yes" } else { "no" };
        println!(" {} | {ok} |", fmt_delta(worst));
    }
    println!();
}
