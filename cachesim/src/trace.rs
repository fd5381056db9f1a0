//! Readers for the shared trace formats (see `shared/traces/README.md`).
//!
//! | file name | format |
//! |---|---|
//! | `*.lis.zst` | ARC: zstd text, lines `start n 0 req` expanding to keys `start..start+n` |
//! | `cache2k-*.trace.xz` | xz binary, big-endian `i32` per request |
//! | `scarab-*.trace.xz` | xz binary, big-endian `i64` per request |
//! | `lirs-*.trace.gz` (or any `*.trace.gz`) | gzip text, one decimal key per line, `*` lines skipped |

use std::fs::File;
use std::io::{self, BufRead, Read};
use std::path::Path;

/// Encoding of a trace file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// ARC `.lis` text (zstd-compressed): `start_block n_blocks 0 req_no`.
    ArcLis,
    /// cache2k: big-endian `i32` stream (xz-compressed).
    Cache2k,
    /// Scarab: big-endian `i64` stream (xz-compressed).
    Scarab,
    /// LIRS: text, one key per line, `*` lines are markers (gzip-compressed).
    Lirs,
}

impl Format {
    /// Detects the format from the file name, or `None` if it is not a trace.
    pub fn detect(path: &Path) -> Option<Format> {
        let name = path.file_name()?.to_str()?;
        if name.ends_with(".lis.zst") {
            Some(Format::ArcLis)
        } else if name.ends_with(".trace.xz") && name.starts_with("cache2k") {
            Some(Format::Cache2k)
        } else if name.ends_with(".trace.xz") && name.starts_with("scarab") {
            Some(Format::Scarab)
        } else if name.ends_with(".trace.gz") {
            Some(Format::Lirs)
        } else {
            None
        }
    }
}

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// Reads the whole trace at `path` (format detected from the name) as keys.
pub fn read_trace(path: &Path) -> io::Result<Vec<u64>> {
    let format = Format::detect(path)
        .ok_or_else(|| invalid(format!("unknown trace format: {}", path.display())))?;
    let mut raw = Vec::new();
    File::open(path)?.read_to_end(&mut raw)?;
    let data = decompress(format, &raw)?;
    match format {
        Format::ArcLis => parse_arc(&data[..]),
        Format::Cache2k => parse_be_i32(&data),
        Format::Scarab => parse_be_i64(&data),
        Format::Lirs => parse_lirs(&data[..]),
    }
}

/// Decompresses a whole file's bytes according to its format.
fn decompress(format: Format, raw: &[u8]) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    match format {
        Format::ArcLis => {
            // A .zst file may hold several concatenated frames.
            let mut src = raw;
            while !src.is_empty() {
                let mut dec = ruzstd::decoding::StreamingDecoder::new(&mut src)
                    .map_err(|e| invalid(format!("zstd: {e}")))?;
                dec.read_to_end(&mut out)?;
            }
        }
        Format::Cache2k | Format::Scarab => {
            let mut src = raw;
            lzma_rs::xz_decompress(&mut src, &mut out).map_err(|e| invalid(format!("xz: {e}")))?;
        }
        Format::Lirs => {
            flate2::read::MultiGzDecoder::new(raw).read_to_end(&mut out)?;
        }
    }
    Ok(out)
}

/// Parses ARC `.lis` text: every line `start n 0 req` yields keys `start..start+n`.
pub fn parse_arc<R: BufRead>(input: R) -> io::Result<Vec<u64>> {
    let mut keys = Vec::new();
    for (no, line) in input.lines().enumerate() {
        let line = line?;
        let mut fields = line.split_ascii_whitespace();
        let Some(start) = fields.next() else { continue };
        let bad = || invalid(format!("ARC line {}: {line:?}", no + 1));
        let start: u64 = start.parse().map_err(|_| bad())?;
        let n: u64 = fields.next().ok_or_else(bad)?.parse().map_err(|_| bad())?;
        keys.extend(start..start + n);
    }
    Ok(keys)
}

/// Parses a stream of big-endian `i32` (cache2k); keys are sign-extended.
pub fn parse_be_i32(data: &[u8]) -> io::Result<Vec<u64>> {
    if !data.len().is_multiple_of(4) {
        return Err(invalid("cache2k trace length is not a multiple of 4"));
    }
    Ok(data
        .chunks_exact(4)
        .map(|c| i64::from(i32::from_be_bytes([c[0], c[1], c[2], c[3]])) as u64)
        .collect())
}

/// Parses a stream of big-endian `i64` (scarab).
pub fn parse_be_i64(data: &[u8]) -> io::Result<Vec<u64>> {
    if !data.len().is_multiple_of(8) {
        return Err(invalid("scarab trace length is not a multiple of 8"));
    }
    Ok(data
        .chunks_exact(8)
        .map(|c| i64::from_be_bytes(c.try_into().expect("8 bytes")) as u64)
        .collect())
}

/// Parses LIRS text: one decimal key per line; blank and `*` lines are skipped.
pub fn parse_lirs<R: BufRead>(input: R) -> io::Result<Vec<u64>> {
    let mut keys = Vec::new();
    for (no, line) in input.lines().enumerate() {
        let line = line?;
        let t = line.trim();
        if t.is_empty() || t == "*" {
            continue;
        }
        let key: i64 = t
            .parse()
            .map_err(|_| invalid(format!("LIRS line {}: {line:?}", no + 1)))?;
        keys.push(key as u64);
    }
    Ok(keys)
}

/// Lists the trace files in `path` (a file or a directory), sorted by name.
pub fn list_traces(path: &Path) -> io::Result<Vec<std::path::PathBuf>> {
    if path.is_dir() {
        let mut v: Vec<_> = std::fs::read_dir(path)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && Format::detect(p).is_some())
            .collect();
        v.sort();
        Ok(v)
    } else {
        Ok(vec![path.to_path_buf()])
    }
}

/// Number of distinct keys in a trace.
pub fn distinct(keys: &[u64]) -> usize {
    let mut set =
        std::collections::HashSet::with_capacity_and_hasher(keys.len() / 4, crate::hash::MixState);
    keys.iter().for_each(|&k| {
        set.insert(k);
    });
    set.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_formats() {
        let d = |s: &str| Format::detect(Path::new(s));
        assert_eq!(d("x/arc-OLTP.lis.zst"), Some(Format::ArcLis));
        assert_eq!(d("cache2k-web12.trace.xz"), Some(Format::Cache2k));
        assert_eq!(d("scarab-recs.trace.xz"), Some(Format::Scarab));
        assert_eq!(d("lirs-glimpse.trace.gz"), Some(Format::Lirs));
        assert_eq!(d("README.md"), None);
        assert_eq!(d("cache2k-LICENSE.txt"), None);
    }

    #[test]
    fn arc_lines_expand() {
        let keys = parse_arc(&b"1 1 0 0\n10 3 0 1\n\n7 0 0 2\n"[..]).unwrap();
        assert_eq!(keys, vec![1, 10, 11, 12]);
        assert!(parse_arc(&b"x 1 0 0\n"[..]).is_err());
    }

    #[test]
    fn binary_big_endian() {
        let v = parse_be_i32(&[0, 0, 1, 2, 0xff, 0xff, 0xff, 0xff]).unwrap();
        assert_eq!(v, vec![0x102, u64::MAX]);
        let v = parse_be_i64(&[0, 0, 0, 0, 0, 0, 1, 2]).unwrap();
        assert_eq!(v, vec![0x102]);
        assert!(parse_be_i32(&[0, 0, 1]).is_err());
    }

    #[test]
    fn lirs_skips_markers() {
        let v = parse_lirs(&b"5\n*\n 6 \n\n5\n"[..]).unwrap();
        assert_eq!(v, vec![5, 6, 5]);
    }
}
