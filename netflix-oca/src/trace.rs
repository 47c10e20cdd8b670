//! Cache traces: reading them and replaying them through a policy.
//!
//! Two formats:
//! - [`TraceFormat::Adapt`]: text, one request a line, `time object_id size` (whitespace
//!   separated; as the AdaptSize and Caffeine simulators ship their CDN traces).
//! - [`TraceFormat::OracleGeneral`]: libCacheSim's binary format, 24-byte little-endian
//!   records: `u32` time, `u64` object id, `u32` size, `i64` next access.
//!
//! Either may be xz-compressed (recognised by its magic bytes, with the `xz` feature).
//!
//! # Example
//!
//! ```
//! use netflix_oca::policy::PolicyKind;
//! use netflix_oca::trace::{self, Capacity, TraceFormat};
//!
//! let text = "1 10 500\n2 11 700\n3 10 500\n4 12 100\n5 10 500\n";
//! let requests = trace::parse(text.as_bytes(), TraceFormat::Adapt)?;
//! let capacity = Capacity::Objects.of(&requests, 0.7); // 70% of 3 objects: 2
//! let stats = trace::replay(&requests, PolicyKind::Lru, capacity, Capacity::Objects);
//! assert_eq!(stats.requests, 5);
//! assert_eq!(stats.hits, 2);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::policy::{Belady, KeyHasher, PolicyKind};
use std::collections::HashMap;
use std::fmt;
use std::io::Read;
use std::path::Path;
use std::str::FromStr;

/// One request of a trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// The trace's timestamp (its unit is the trace's own).
    pub time: u64,
    /// The object asked for.
    pub id: u64,
    /// The object's size in bytes.
    pub size: u64,
}

/// A trace's file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TraceFormat {
    /// Text lines `time object_id size`.
    Adapt,
    /// libCacheSim's `oracleGeneral` binary records.
    OracleGeneral,
}

impl FromStr for TraceFormat {
    type Err = TraceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "adapt" => Ok(TraceFormat::Adapt),
            "oracle-general" | "oraclegeneral" | "oracle_general" => Ok(TraceFormat::OracleGeneral),
            _ => Err(TraceError::UnknownFormat(s.to_string())),
        }
    }
}

/// What can go wrong reading a trace.
#[derive(Debug)]
#[non_exhaustive]
pub enum TraceError {
    /// The file could not be read.
    Io(std::io::Error),
    /// A text line is not `time object_id size`.
    Parse {
        /// The line number, from 1.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// A binary trace's length is not a whole number of 24-byte records.
    Truncated {
        /// The length in bytes.
        len: usize,
    },
    /// The xz stream is corrupt (or the `xz` feature is off).
    Compressed(String),
    /// No requests at all.
    Empty,
    /// The format name is not `adapt` or `oracle-general`.
    UnknownFormat(String),
}

impl fmt::Display for TraceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TraceError::Io(_) => f.write_str("cannot read the trace"),
            TraceError::Parse { line, reason } => write!(f, "trace line {line}: {reason}"),
            TraceError::Truncated { len } => write!(
                f,
                "an oracle-general trace is 24-byte records, but this one is {len} bytes"
            ),
            TraceError::Compressed(e) => write!(f, "cannot decompress the trace: {e}"),
            TraceError::Empty => f.write_str("the trace has no requests"),
            TraceError::UnknownFormat(s) => {
                write!(
                    f,
                    "unknown trace format {s:?}: expected adapt or oracle-general"
                )
            }
        }
    }
}

impl std::error::Error for TraceError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TraceError::Io(e) => Some(e),
            _ => None,
        }
    }
}

const XZ_MAGIC: [u8; 6] = [0xfd, b'7', b'z', b'X', b'Z', 0];

/// Reads a whole trace file, decompressing it first if it is xz.
///
/// # Errors
///
/// [`TraceError::Io`] when the file cannot be read, and the errors of [`parse`].
pub fn read(path: impl AsRef<Path>, format: TraceFormat) -> Result<Vec<Request>, TraceError> {
    let mut bytes = Vec::new();
    std::fs::File::open(path.as_ref())
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(TraceError::Io)?;
    parse(&bytes, format)
}

/// Parses a trace held in memory (xz-compressed or not).
///
/// # Errors
///
/// [`TraceError::Parse`] for a malformed text line, [`TraceError::Truncated`] for a
/// binary trace cut mid-record, [`TraceError::Compressed`] for a corrupt xz stream and
/// [`TraceError::Empty`] when there is no request.
pub fn parse(bytes: &[u8], format: TraceFormat) -> Result<Vec<Request>, TraceError> {
    if bytes.starts_with(&XZ_MAGIC) {
        let plain = decompress_xz(bytes)?;
        return parse(&plain, format);
    }
    let requests = match format {
        TraceFormat::Adapt => parse_adapt(bytes)?,
        TraceFormat::OracleGeneral => parse_oracle_general(bytes)?,
    };
    if requests.is_empty() {
        return Err(TraceError::Empty);
    }
    Ok(requests)
}

#[cfg(feature = "xz")]
fn decompress_xz(bytes: &[u8]) -> Result<Vec<u8>, TraceError> {
    let mut out = Vec::new();
    lzma_rs::xz_decompress(&mut &bytes[..], &mut out)
        .map_err(|e| TraceError::Compressed(e.to_string()))?;
    Ok(out)
}

#[cfg(not(feature = "xz"))]
fn decompress_xz(_: &[u8]) -> Result<Vec<u8>, TraceError> {
    Err(TraceError::Compressed(
        "xz support is off: enable netflix-oca's `xz` feature".into(),
    ))
}

fn parse_adapt(bytes: &[u8]) -> Result<Vec<Request>, TraceError> {
    let text = std::str::from_utf8(bytes).map_err(|e| TraceError::Parse {
        line: 1 + bytes[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count(),
        reason: "not UTF-8 text".into(),
    })?;
    let mut out = Vec::with_capacity(text.len() / 16);
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |reason: String| TraceError::Parse {
            line: n + 1,
            reason,
        };
        let mut fields = line.split_whitespace();
        let mut next = |what: &str| -> Result<u64, TraceError> {
            let f = fields
                .next()
                .ok_or_else(|| bad(format!("missing the {what}")))?;
            f.parse::<u64>()
                .or_else(|_| f.parse::<f64>().map(|v| v as u64).map_err(|_| ()))
                .map_err(|()| bad(format!("the {what} {f:?} is not a number")))
        };
        let time = next("time")?;
        let id = next("object id")?;
        let size = next("size")?;
        out.push(Request { time, id, size });
    }
    Ok(out)
}

fn parse_oracle_general(bytes: &[u8]) -> Result<Vec<Request>, TraceError> {
    if bytes.len() % 24 != 0 {
        return Err(TraceError::Truncated { len: bytes.len() });
    }
    Ok(bytes
        .chunks_exact(24)
        .map(|r| Request {
            time: u64::from(u32::from_le_bytes(r[0..4].try_into().expect("4 bytes"))),
            id: u64::from_le_bytes(r[4..12].try_into().expect("8 bytes")),
            size: u64::from(u32::from_le_bytes(r[12..16].try_into().expect("4 bytes"))),
        })
        .collect())
}

/// For each request of a key sequence, the position of the next request for the same key,
/// or `u64::MAX` if there is none (what [`Belady`] needs).
pub fn next_uses(keys: impl DoubleEndedIterator<Item = u64> + ExactSizeIterator) -> Vec<u64> {
    let n = keys.len();
    let mut next = vec![u64::MAX; n];
    let mut seen: HashMap<u64, u64, KeyHasher> = HashMap::default();
    for (i, k) in keys.enumerate().rev() {
        if let Some(j) = seen.insert(k, i as u64) {
            next[i] = j;
        }
    }
    next
}

/// How a cache's capacity is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capacity {
    /// Every object weighs 1.
    Objects,
    /// Objects weigh their size in bytes.
    Bytes,
}

impl Capacity {
    /// `fraction` of the trace's unique objects (or of their unique bytes), at least 1.
    pub fn of(self, requests: &[Request], fraction: f64) -> u64 {
        let mut sizes: HashMap<u64, u64, KeyHasher> = HashMap::default();
        for r in requests {
            sizes.insert(r.id, r.size);
        }
        let total = match self {
            Capacity::Objects => sizes.len() as u64,
            Capacity::Bytes => sizes.values().sum(),
        };
        ((total as f64 * fraction).round() as u64).max(1)
    }

    fn weight(self, r: &Request) -> u64 {
        match self {
            Capacity::Objects => 1,
            Capacity::Bytes => r.size,
        }
    }
}

/// What a replay measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReplayStats {
    /// Requests replayed.
    pub requests: u64,
    /// Requests that hit.
    pub hits: u64,
    /// Bytes requested.
    pub bytes: u64,
    /// Bytes served from the cache.
    pub hit_bytes: u64,
}

impl ReplayStats {
    /// Misses over requests.
    pub fn miss_ratio(&self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            (self.requests - self.hits) as f64 / self.requests as f64
        }
    }

    /// Missed bytes over requested bytes.
    pub fn byte_miss_ratio(&self) -> f64 {
        if self.bytes == 0 {
            0.0
        } else {
            (self.bytes - self.hit_bytes) as f64 / self.bytes as f64
        }
    }

    fn count(&mut self, r: &Request, hit: bool) {
        self.requests += 1;
        self.bytes += r.size;
        if hit {
            self.hits += 1;
            self.hit_bytes += r.size;
        }
    }
}

/// Replays `requests` through a cache of `capacity` (counted as `unit` says) run by
/// `policy`: a request hits if the object is cached, and a miss offers it to the policy.
/// [`PolicyKind::Belady`] is replayed with the trace's future.
pub fn replay(
    requests: &[Request],
    policy: PolicyKind,
    capacity: u64,
    unit: Capacity,
) -> ReplayStats {
    let mut stats = ReplayStats::default();
    match policy.try_build(capacity) {
        Some(mut p) => {
            let mut evicted = Vec::new();
            for r in requests {
                let hit = p.get(r.id);
                if !hit {
                    evicted.clear();
                    p.insert(r.id, unit.weight(r), &mut evicted);
                }
                stats.count(r, hit);
            }
        }
        None => {
            let next = next_uses(requests.iter().map(|r| r.id));
            let mut min = Belady::new(capacity);
            for (r, n) in requests.iter().zip(next) {
                let hit = min.access(r.id, unit.weight(r), n);
                stats.count(r, hit);
            }
        }
    }
    stats
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adapt_lines_parse() {
        let t = parse(b"# comment\n1 7 100\n\n2 8 2.5e3\n", TraceFormat::Adapt).unwrap();
        assert_eq!(
            t,
            [
                Request {
                    time: 1,
                    id: 7,
                    size: 100
                },
                Request {
                    time: 2,
                    id: 8,
                    size: 2500
                }
            ]
        );
    }

    #[test]
    fn bad_input_is_a_typed_error() {
        assert!(matches!(
            parse(b"1 7\n", TraceFormat::Adapt),
            Err(TraceError::Parse { line: 1, .. })
        ));
        assert!(matches!(
            parse(b"1 x 3\n", TraceFormat::Adapt),
            Err(TraceError::Parse { line: 1, .. })
        ));
        assert!(matches!(
            parse(&[0u8; 25], TraceFormat::OracleGeneral),
            Err(TraceError::Truncated { len: 25 })
        ));
        assert!(matches!(
            parse(b"", TraceFormat::Adapt),
            Err(TraceError::Empty)
        ));
        let mut junk = XZ_MAGIC.to_vec();
        junk.extend_from_slice(b"not really xz");
        assert!(matches!(
            parse(&junk, TraceFormat::Adapt),
            Err(TraceError::Compressed(_))
        ));
        assert!("csv".parse::<TraceFormat>().is_err());
    }

    #[test]
    fn oracle_general_records_parse() {
        let mut b = Vec::new();
        for (t, id, size, next) in [(1u32, 42u64, 4096u32, 1i64), (2, 42, 4096, -1)] {
            b.extend_from_slice(&t.to_le_bytes());
            b.extend_from_slice(&id.to_le_bytes());
            b.extend_from_slice(&size.to_le_bytes());
            b.extend_from_slice(&next.to_le_bytes());
        }
        let t = parse(&b, TraceFormat::OracleGeneral).unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(
            t[1],
            Request {
                time: 2,
                id: 42,
                size: 4096
            }
        );
        let s = replay(&t, PolicyKind::Lru, 1, Capacity::Objects);
        assert_eq!((s.hits, s.hit_bytes), (1, 4096));
    }

    #[test]
    fn next_uses_point_forward() {
        assert_eq!(
            next_uses([5u64, 6, 5, 5].into_iter()),
            [2, u64::MAX, 3, u64::MAX]
        );
    }

    #[test]
    fn capacity_counts_unique_objects_or_bytes() {
        let t = parse(b"1 1 10\n2 2 30\n3 1 10\n", TraceFormat::Adapt).unwrap();
        assert_eq!(Capacity::Objects.of(&t, 0.5), 1);
        assert_eq!(Capacity::Bytes.of(&t, 0.5), 20);
    }
}
