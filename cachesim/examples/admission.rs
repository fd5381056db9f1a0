//! Admission/eviction candidates for issue 4 on the shared traces and on the
//! benchmark's zipf streams, next to exact LRU, Bélády OPT, linemap's current
//! CLOCK and the real `quick_cache` (and optionally `moka`).
//!
//! ```text
//! cargo run --release -p linemap-cachesim --example admission -- \
//!     [trace files or directories...] [--no-traces] [--no-zipf] [--moka] [--ops N]
//!     [--s3 SPEC]... [--no-peer] [--zipf S,...] [--caps N,...]
//! ```
//!
//! * Traces default to `../shared/traces` beside the repository; capacities
//!   are the README's sizes (else 1 % and 10 % of the distinct keys).
//! * Zipf: s = 0.9 and 1.1 over 1,000,000 keys, capacities 1 % and 10 %;
//!   thread 0's warm-up stream then its timed stream of `benches/cache.rs`
//!   (`--ops` requests each, default 2,000,000); hit ratio on the timed half.
//! * Models are sequential (`linemap_cachesim::policies`); `quick_cache`
//!   (and `moka` with `--moka`, `run_pending_tasks` after each load) are the
//!   real caches, one thread, requests issued as `get_or_insert_with`.
//!
//! * `--s3 SPEC` (repeatable): instead of the default candidates, run
//!   S3-FIFO configurations, SPEC = comma-separated `small=F`, `ghost=F`,
//!   `t=N` (promotion threshold), `f=N` (counter maximum), `sweep=N`,
//!   `adaptive`, `fixed`, `table` (fingerprint-table ghosts) (defaults:
//!   the paper's design). `--no-peer`: skip
//!   quick_cache. `--zipf 0.9,1.1` and `--caps 1,10` (percent of the keys)
//!   select the zipf configurations; `--thread T` uses the benchmark's thread
//!   `T` streams instead of thread 0's (another draw of the same law).
//!
//! Every candidate cell below LRU − 0.5 points is marked ❌; above OPT, BUG.

use linemap_cachesim::oracle::{belady_hits_from, next_use, Admission, Lru};
use linemap_cachesim::policies::{
    Counter, GhostClock, RingClock, S3Fifo, S3FifoConfig, TinyLfuClock, TinyLfuConfig,
};
use linemap_cachesim::replay::{replay, Mode, MokaStrict, LINEMAP_MAX_SWEEP as SWEEP};
use linemap_cachesim::zipf::Workload;
use linemap_cachesim::{pct, reference, trace, Policy};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// A column.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Col {
    Lru,
    Opt,
    Clock(Counter),
    Ghost(Counter, u8),
    S3(S3FifoConfig),
    Tlfu(TinyLfuConfig),
    QuickCache,
    Moka,
}

impl Col {
    fn label(self) -> String {
        match self {
            Col::Lru => "LRU".into(),
            Col::Opt => "OPT".into(),
            Col::Clock(c) if c == Counter::BIT => "CLOCK (linemap)".into(),
            Col::Clock(_) => "CLOCK 2-bit".into(),
            Col::Ghost(c, _) if c.max == 1 => "ghost CLOCK".into(),
            Col::Ghost(_, _) => "ghost CLOCK 2-bit".into(),
            Col::S3(c) => {
                let mut l = String::from("S3-FIFO");
                if c.adaptive {
                    l.push_str(" adaptive");
                }
                if c.fixed {
                    l.push_str(" fixed rings");
                }
                if c.small != 0.1 {
                    l.push_str(&format!(" small {}%", c.small * 100.0));
                }
                if c.ghost != 0.9 {
                    l.push_str(&format!(" ghost {}x", c.ghost));
                }
                if c.threshold != 1 {
                    l.push_str(&format!(" t{}", c.threshold));
                }
                if c.max_freq != 3 {
                    l.push_str(&format!(" f{}", c.max_freq));
                }
                if c.table_ghost {
                    l.push_str(" table ghost");
                }
                if c.max_sweep != usize::MAX {
                    l.push_str(" (sweep 64)");
                }
                l
            }
            Col::Tlfu(c) => format!(
                "{}TinyLFU {}x{}",
                if c.window > 0.0 {
                    format!("W{}%-", c.window * 100.0)
                } else {
                    String::new()
                },
                c.width,
                if c.doorkeeper { "+door" } else { "" }
            ),
            Col::QuickCache => "quick_cache".into(),
            Col::Moka => "moka".into(),
        }
    }

    fn is_candidate(self) -> bool {
        !matches!(self, Col::Lru | Col::Opt | Col::QuickCache | Col::Moka)
    }

    fn model(self, cap: usize) -> Option<Box<dyn Policy>> {
        Some(match self {
            Col::Lru => Box::new(Lru::new(cap)),
            Col::Clock(c) => Box::new(RingClock::with_max_sweep(cap, c, SWEEP)),
            Col::Ghost(c, g) => Box::new(GhostClock::new(cap, c, g, 1.0, SWEEP)),
            Col::S3(c) => Box::new(S3Fifo::new(cap, c)),
            Col::Tlfu(c) => Box::new(TinyLfuClock::new(cap, c)),
            Col::Opt | Col::QuickCache | Col::Moka => return None,
        })
    }

    /// Hits on `reqs[from..]` after replaying `reqs[..from]`.
    fn run(self, cap: usize, reqs: &[u64], next: &[u64], from: usize) -> u64 {
        if let Some(mut p) = self.model(cap) {
            let mut h = 0;
            for (i, &k) in reqs.iter().enumerate() {
                let hit = p.access(k);
                assert!(p.len() <= cap, "{} exceeds its capacity", self.label());
                h += u64::from(hit && i >= from);
            }
            return h;
        }
        match self {
            Col::Opt => belady_hits_from(reqs, next, cap, Admission::Always, from),
            Col::QuickCache => {
                let c = quick_cache::sync::Cache::new(cap);
                replay(&c, &reqs[..from], 1, Mode::Load);
                replay(&c, &reqs[from..], 1, Mode::Load).hits
            }
            Col::Moka => {
                let c = MokaStrict(moka::sync::Cache::new(cap as u64));
                replay(&c, &reqs[..from], 1, Mode::Load);
                replay(&c, &reqs[from..], 1, Mode::Load).hits
            }
            _ => unreachable!(),
        }
    }
}

fn columns(moka: bool) -> Vec<Col> {
    let tl = |window: f64, width: f64, doorkeeper: bool| {
        Col::Tlfu(TinyLfuConfig {
            window,
            width,
            sample: 10,
            doorkeeper,
            max_sweep: SWEEP,
        })
    };
    let mut v = vec![
        Col::Lru,
        Col::Opt,
        Col::Clock(Counter::BIT),
        Col::Clock(Counter::TWO_BIT),
        Col::Ghost(Counter::BIT, 1),
        Col::Ghost(Counter::TWO_BIT, 3),
        Col::S3(S3FifoConfig::PAPER),
        Col::S3(S3FifoConfig {
            max_sweep: SWEEP,
            adaptive: true,
            ..S3FifoConfig::PAPER
        }),
        Col::S3(S3FifoConfig {
            max_sweep: SWEEP,
            adaptive: true,
            ghost: 2.0,
            ..S3FifoConfig::PAPER
        }),
        tl(0.0, 16.0, false),
        tl(0.01, 16.0, false),
        tl(0.01, 4.0, true),
        Col::QuickCache,
    ];
    if moka {
        v.push(Col::Moka);
    }
    v
}

struct Args {
    paths: Vec<PathBuf>,
    traces: bool,
    zipf: bool,
    moka: bool,
    ops: usize,
    s3: Vec<S3FifoConfig>,
    peer: bool,
    exponents: Vec<f64>,
    caps_pct: Vec<usize>,
    thread: u64,
}

fn parse_s3(spec: &str) -> Result<S3FifoConfig, String> {
    let mut c = S3FifoConfig::PAPER;
    for part in spec.split(',').filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        let bad = || format!("bad --s3 part {part}");
        match k {
            "small" => c.small = v.parse().map_err(|_| bad())?,
            "ghost" => c.ghost = v.parse().map_err(|_| bad())?,
            "t" => c.threshold = v.parse().map_err(|_| bad())?,
            "f" => c.max_freq = v.parse().map_err(|_| bad())?,
            "sweep" => c.max_sweep = v.parse().map_err(|_| bad())?,
            "adaptive" => c.adaptive = true,
            "fixed" => c.fixed = true,
            "table" => c.table_ghost = true,
            _ => return Err(bad()),
        }
    }
    Ok(c)
}

fn list<T: std::str::FromStr>(v: Option<String>, what: &str) -> Result<Vec<T>, String> {
    let v = v.ok_or(format!("{what} needs a value"))?;
    v.split(',')
        .map(|x| x.parse().map_err(|_| format!("bad {what} {v}")))
        .collect()
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        paths: Vec::new(),
        traces: true,
        zipf: true,
        moka: false,
        ops: 2_000_000,
        s3: Vec::new(),
        peer: true,
        exponents: vec![0.9, 1.1],
        caps_pct: vec![1, 10],
        thread: 0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--no-traces" => a.traces = false,
            "--no-zipf" => a.zipf = false,
            "--moka" => a.moka = true,
            "--no-peer" => a.peer = false,
            "--s3" => {
                a.s3.push(parse_s3(&it.next().ok_or("--s3 needs a value")?)?)
            }
            "--zipf" => a.exponents = list(it.next(), "--zipf")?,
            "--caps" => a.caps_pct = list(it.next(), "--caps")?,
            "--thread" => {
                let v = it.next().ok_or("--thread needs a value")?;
                a.thread = v.parse().map_err(|_| format!("bad --thread {v}"))?;
            }
            "--ops" => {
                let v = it.next().ok_or("--ops needs a value")?;
                a.ops = v
                    .replace([',', '_'], "")
                    .parse()
                    .map_err(|_| format!("bad --ops {v}"))?;
            }
            "-h" | "--help" => return Err(String::new()),
            _ => a.paths.push(PathBuf::from(arg)),
        }
    }
    if a.paths.is_empty() {
        a.paths
            .push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/traces"));
    }
    Ok(a)
}

/// Worst difference from LRU per candidate over the traces.
#[derive(Clone, Debug)]
struct Worst {
    delta: f64,
    at: String,
}

/// Runs every column at every capacity on 2 worker threads; returns hits
/// indexed [capacity][column].
fn run_all(cols: &[Col], caps: &[usize], reqs: &[u64], from: usize) -> Vec<Vec<u64>> {
    let next = next_use(reqs);
    let jobs: Vec<(usize, usize)> = (0..caps.len())
        .rev()
        .flat_map(|c| (0..cols.len()).map(move |k| (c, k)))
        .collect();
    let out = Mutex::new(vec![vec![0u64; cols.len()]; caps.len()]);
    let next_job = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| loop {
                let j = next_job.fetch_add(1, Ordering::Relaxed);
                let Some(&(c, k)) = jobs.get(j) else { break };
                let h = cols[k].run(caps[c], reqs, &next, from);
                out.lock().unwrap()[c][k] = h;
            });
        }
    });
    out.into_inner().unwrap()
}

/// Prints one workload's table; updates `worst` for candidates.
fn table(
    cols: &[Col],
    caps: &[usize],
    hits: &[Vec<u64>],
    n: usize,
    name: &str,
    worst: &mut [Option<Worst>],
) {
    print!("| capacity |");
    for c in cols {
        print!(" {} |", c.label());
    }
    println!();
    println!("|---:|{}", "---:|".repeat(cols.len()));
    for (ci, &cap) in caps.iter().enumerate() {
        let h = &hits[ci];
        let lru = pct(h[0], n);
        let opt = h[1];
        print!("| {cap} |");
        for (k, col) in cols.iter().enumerate() {
            let p = pct(h[k], n);
            let bug = if h[k] > opt { " BUG>OPT" } else { "" };
            if col.is_candidate() || matches!(col, Col::QuickCache | Col::Moka) {
                let d = p - lru;
                let flag = if d < -0.5 { " ❌" } else { "" };
                print!(" {p:.2} ({d:+.2}){flag}{bug} |");
                if col.is_candidate() {
                    let w = &mut worst[k];
                    if w.as_ref().is_none_or(|w| d < w.delta) {
                        *w = Some(Worst {
                            delta: d,
                            at: format!("{name} @ {cap}"),
                        });
                    }
                }
            } else {
                print!(" {p:.2}{bug} |");
            }
        }
        println!();
    }
    println!();
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("error: {e}");
            }
            eprintln!("usage: admission [traces...] [--no-traces] [--no-zipf] [--moka] [--ops N]");
            std::process::exit(2);
        }
    };
    let t0 = Instant::now();
    let pick = |moka: bool| -> Vec<Col> {
        let mut c = if args.s3.is_empty() {
            columns(moka)
        } else {
            let mut c = vec![Col::Lru, Col::Opt, Col::Clock(Counter::BIT)];
            c.extend(args.s3.iter().map(|&s| Col::S3(s)));
            c.push(Col::QuickCache);
            c
        };
        if !args.peer {
            c.retain(|c| !matches!(c, Col::QuickCache | Col::Moka));
        }
        c
    };
    let mut cols = pick(false);
    let mut worst: Vec<Option<Worst>> = vec![None; cols.len() + 1];
    println!("Request hit ratio % (difference from exact LRU in points); ❌ = below LRU − 0.5.\n");
    if args.traces {
        let mut files = Vec::new();
        for p in &args.paths {
            match trace::list_traces(p) {
                Ok(f) => files.extend(f),
                Err(e) => {
                    eprintln!("{}: {e}", p.display());
                    std::process::exit(1);
                }
            }
        }
        for f in &files {
            let name = f.file_name().unwrap().to_string_lossy().into_owned();
            let keys = match trace::read_trace(f) {
                Ok(k) => k,
                Err(e) => {
                    eprintln!("{}: {e}", f.display());
                    std::process::exit(1);
                }
            };
            let distinct = trace::distinct(&keys);
            let caps: Vec<usize> = match reference::lookup(&name) {
                Some(r) => r.sizes.to_vec(),
                None => vec![(distinct / 100).max(1), (distinct / 10).max(1)],
            };
            let t = Instant::now();
            let hits = run_all(&cols, &caps, &keys, 0);
            println!(
                "### {name}\n\n{} requests, {distinct} distinct keys\n",
                keys.len()
            );
            table(&cols, &caps, &hits, keys.len(), &name, &mut worst);
            eprintln!("{name}: {:.1}s", t.elapsed().as_secs_f64());
        }
        println!("### Worst difference from LRU over every trace and size\n");
        println!("| candidate | worst − LRU | at | meets (a) |");
        println!("|---|---:|---|---|");
        for (k, c) in cols.iter().enumerate() {
            if let Some(w) = &worst[k] {
                let ok = if w.delta >= -0.5 { "yes" } else { "**no**" };
                println!("| {} | {:+.2} | {} | {ok} |", c.label(), w.delta, w.at);
            }
        }
        println!();
    }
    if args.zipf {
        if args.moka {
            cols = pick(true);
        }
        for &s in &args.exponents {
            let t = Instant::now();
            let w = Workload::bench_thread(s, 1_000_000, args.ops, args.thread);
            let caps: Vec<usize> = args.caps_pct.iter().map(|p| p * 10_000).collect();
            let hits = run_all(&cols, &caps, &w.requests, w.measured_from);
            println!(
                "### zipf s = {s}, {} keys, {} warm-up + {} measured requests (thread {}'s streams)\n",
                w.keys,
                w.measured_from,
                w.measured(),
                args.thread
            );
            let mut scratch = vec![None; cols.len()];
            table(&cols, &caps, &hits, w.measured(), "zipf", &mut scratch);
            eprintln!("zipf {s}: {:.1}s", t.elapsed().as_secs_f64());
        }
    }
    eprintln!("total {:.1}s", t0.elapsed().as_secs_f64());
}
