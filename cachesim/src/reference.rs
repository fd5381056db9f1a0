//! Reference hit ratios (%) from `shared/traces/README.md` (libCacheSim
//! replay, capacity in entries): the Bélády, LRU, CLOCK 1-bit and CLOCK
//! 2-bit rows, and the capacities each table uses.

/// Published numbers for one trace.
#[derive(Debug)]
pub struct TraceRef {
    /// Substring identifying the trace file name.
    pub name: &'static str,
    /// Request count stated by the README.
    pub requests: usize,
    /// Distinct keys stated by the README.
    pub distinct: usize,
    /// Capacities (entries) of the README table.
    pub sizes: &'static [usize],
    /// Bélády (OPT) row.
    pub opt: &'static [f64],
    /// LRU row.
    pub lru: &'static [f64],
    /// CLOCK 1-bit row.
    pub clock1: &'static [f64],
    /// CLOCK 2-bit row.
    pub clock2: &'static [f64],
}

/// All traces in `shared/traces`.
pub const TRACES: &[TraceRef] = &[
    TraceRef {
        name: "arc-OLTP",
        requests: 914_145,
        distinct: 186_880,
        sizes: &[250, 500, 750, 1_000, 1_500, 2_000, 5_000, 10_000, 15_000],
        opt: &[
            38.43, 46.42, 50.66, 53.61, 57.62, 60.40, 68.27, 73.02, 75.14,
        ],
        lru: &[
            16.47, 23.45, 28.28, 32.83, 38.70, 42.47, 53.65, 60.70, 64.63,
        ],
        clock1: &[
            16.88, 24.08, 28.84, 33.27, 39.27, 43.03, 53.83, 60.98, 64.77,
        ],
        clock2: &[
            17.44, 25.17, 29.94, 34.07, 40.16, 43.94, 54.40, 61.65, 65.36,
        ],
    },
    TraceRef {
        name: "arc-P3",
        requests: 3_912_296,
        distinct: 762_543,
        sizes: &[20_000, 32_768, 160_000],
        opt: &[21.95, 32.25, 70.83],
        lru: &[2.28, 3.57, 51.58],
        clock1: &[2.32, 3.74, 52.55],
        clock2: &[2.32, 3.78, 53.44],
    },
    TraceRef {
        name: "cache2k-orm-busy",
        requests: 5_000_000,
        distinct: 76_349,
        sizes: &[1_000, 2_500, 5_000, 10_000, 25_000, 50_000],
        opt: &[84.14, 88.24, 91.40, 94.41, 97.27, 98.46],
        lru: &[78.78, 82.19, 85.46, 89.49, 94.79, 97.72],
        clock1: &[78.58, 82.22, 85.35, 89.34, 94.69, 97.77],
        clock2: &[78.30, 82.66, 85.73, 89.44, 94.90, 97.90],
    },
    TraceRef {
        name: "cache2k-web12",
        requests: 95_607,
        distinct: 13_756,
        sizes: &[300, 1_200, 3_000, 6_000],
        opt: &[66.83, 79.12, 84.24, 85.61],
        lru: &[49.01, 66.85, 76.48, 82.07],
        clock1: &[49.77, 67.61, 76.83, 82.29],
        clock2: &[51.16, 69.05, 77.55, 82.59],
    },
    TraceRef {
        name: "scarab-recs",
        requests: 1_245_184,
        distinct: 258_368,
        sizes: &[
            1_000, 5_000, 10_000, 25_000, 50_000, 75_000, 100_000, 125_000,
        ],
        opt: &[44.91, 59.72, 66.57, 74.79, 78.63, 79.25, 79.25, 79.25],
        lru: &[26.96, 41.20, 48.65, 60.13, 69.15, 73.51, 75.91, 77.27],
        clock1: &[27.67, 41.97, 49.18, 60.41, 69.37, 73.60, 75.94, 77.29],
        clock2: &[28.48, 42.93, 49.79, 60.90, 69.64, 73.75, 76.03, 77.35],
    },
    TraceRef {
        name: "lirs-glimpse",
        requests: 6_015,
        distinct: 2_529,
        sizes: &[250, 500, 750, 1_000, 1_250, 1_500, 1_750, 2_000],
        opt: &[17.64, 34.26, 46.10, 53.13, 57.29, 57.96, 57.96, 57.96],
        lru: &[0.91, 0.95, 1.15, 11.21, 21.25, 36.56, 45.04, 57.41],
        clock1: &[0.91, 1.18, 1.31, 11.31, 31.26, 36.53, 55.06, 57.41],
        clock2: &[1.03, 1.26, 1.41, 11.39, 31.34, 46.58, 55.06, 57.41],
    },
];

/// The reference entry whose name the file name contains.
pub fn lookup(file_name: &str) -> Option<&'static TraceRef> {
    TRACES.iter().find(|t| file_name.contains(t.name))
}

impl TraceRef {
    /// Index of `capacity` in [`TraceRef::sizes`].
    pub fn index(&self, capacity: usize) -> Option<usize> {
        self.sizes.iter().position(|&s| s == capacity)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_complete() {
        for t in TRACES {
            let n = t.sizes.len();
            for row in [t.opt, t.lru, t.clock1, t.clock2] {
                assert_eq!(row.len(), n, "{}", t.name);
            }
            for i in 0..n {
                assert!(t.opt[i] >= t.lru[i], "{} @ {}", t.name, t.sizes[i]);
            }
        }
        assert_eq!(lookup("lirs-glimpse.trace.gz").unwrap().sizes.len(), 8);
        assert!(lookup("README.md").is_none());
    }
}
