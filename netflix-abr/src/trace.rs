//! Network traces: throughput over time, as Mahimahi-style "cooked" text files.
//!
//! A trace file has one sample per line: a timestamp in seconds and the throughput in
//! Mbit/s that holds *up to* that timestamp, separated by whitespace (further columns are
//! ignored). This is the format of the Pensieve, Oboe and Puffer-derived trace sets: the
//! interval `(time[i-1], time[i]]` runs at `throughput[i]`, so the first sample's throughput
//! is never used.
//!
//! # Example
//!
//! ```
//! use netflix_abr::trace::Trace;
//!
//! let t = Trace::parse("flat", "0.0 5.0\n1.0 5.0\n2.0 2.5\n")?;
//! assert_eq!(t.len(), 3);
//! assert_eq!(t.duration_s(), 2.0);
//! // One second at 5 Mbit/s and one at 2.5 Mbit/s.
//! assert_eq!(t.mean_mbps(), 3.75);
//! assert!(Trace::parse("bad", "0.0 1.0\nzero 1.0\n").unwrap_err().is_parse());
//! # Ok::<(), netflix_abr::Error>(())
//! ```

use crate::error::{Error, Result};
use std::fs;
use std::path::Path;

/// A network trace: monotone timestamps (seconds) and the throughput (Mbit/s) that holds up
/// to each timestamp.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(try_from = "TraceParts"))]
pub struct Trace {
    name: String,
    time_s: Vec<f64>,
    mbps: Vec<f64>,
}

/// A trace as serialized, validated by [`Trace::new`] when deserialized.
#[cfg(feature = "serde")]
#[derive(serde::Deserialize)]
struct TraceParts {
    name: String,
    time_s: Vec<f64>,
    mbps: Vec<f64>,
}

#[cfg(feature = "serde")]
impl TryFrom<TraceParts> for Trace {
    type Error = Error;

    fn try_from(p: TraceParts) -> Result<Self> {
        Trace::new(p.name, p.time_s, p.mbps)
    }
}

impl Trace {
    /// Builds a trace from its samples.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Invalid`](crate::ErrorKind::Invalid) when the two lists differ in length,
    /// hold fewer than two samples, hold a value that is not finite, a negative throughput or
    /// a timestamp that goes backwards, or when no interval carries any data (a download
    /// over such a trace would never finish).
    pub fn new(name: impl Into<String>, time_s: Vec<f64>, mbps: Vec<f64>) -> Result<Self> {
        let name = name.into();
        let bad = |reason: String| Error::invalid("trace", format!("{name}: {reason}"));
        if time_s.len() != mbps.len() {
            return Err(bad(format!(
                "{} timestamps but {} throughputs",
                time_s.len(),
                mbps.len()
            )));
        }
        if time_s.len() < 2 {
            return Err(bad(format!(
                "{} sample(s); a trace needs at least two",
                time_s.len()
            )));
        }
        for (i, (&t, &b)) in time_s.iter().zip(&mbps).enumerate() {
            if !t.is_finite() || !b.is_finite() {
                return Err(bad(format!("sample {} is not a finite number", i + 1)));
            }
            if b < 0.0 {
                return Err(bad(format!("sample {} has negative throughput {b}", i + 1)));
            }
            if i > 0 && t < time_s[i - 1] {
                return Err(bad(format!(
                    "timestamp {t} of sample {} is before the previous one",
                    i + 1
                )));
            }
        }
        let carries = (1..time_s.len()).any(|i| mbps[i] > 0.0 && time_s[i] > time_s[i - 1]);
        if !carries {
            return Err(bad(
                "no interval has positive throughput and duration".into()
            ));
        }
        Ok(Self { name, time_s, mbps })
    }

    /// Parses the text of a trace file. Blank lines are skipped.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Parse`](crate::ErrorKind::Parse) with the line number when a line does
    /// not start with two numbers, and the errors of [`Trace::new`].
    pub fn parse(name: impl Into<String>, text: &str) -> Result<Self> {
        let name = name.into();
        let mut time_s = Vec::new();
        let mut mbps = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let mut fields = line.split_whitespace();
            let Some(first) = fields.next() else { continue };
            let num = |field: Option<&str>, what: &str| -> Result<f64> {
                let field = field.ok_or_else(|| {
                    Error::parse("trace", Some(i + 1), format!("{name}: no {what}"))
                })?;
                field.parse::<f64>().map_err(|_| {
                    Error::parse(
                        "trace",
                        Some(i + 1),
                        format!("{name}: {what} {field:?} is not a number"),
                    )
                })
            };
            time_s.push(num(Some(first), "timestamp")?);
            mbps.push(num(fields.next(), "throughput")?);
        }
        Self::new(name, time_s, mbps)
    }

    /// Reads a trace file; the trace is named after the file.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Io`](crate::ErrorKind::Io) when the file cannot be read, and the errors
    /// of [`Trace::parse`].
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = fs::read(path).map_err(|e| Error::io(path, e))?;
        let text = String::from_utf8_lossy(&bytes);
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        Self::parse(name, &text)
    }

    /// Reads every file of a directory, in sorted (byte-wise) file-name order. Hidden files
    /// (names starting with `.`) and subdirectories are skipped.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Io`](crate::ErrorKind::Io) when the directory cannot be listed,
    /// [`ErrorKind::Invalid`](crate::ErrorKind::Invalid) when it holds no trace, and the
    /// first error of [`Trace::load`].
    pub fn load_dir(dir: impl AsRef<Path>) -> Result<Vec<Self>> {
        let dir = dir.as_ref();
        let mut paths = Vec::new();
        for entry in fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
            let entry = entry.map_err(|e| Error::io(dir, e))?;
            let path = entry.path();
            let hidden = entry.file_name().as_encoded_bytes().first() == Some(&b'.');
            if !hidden && path.is_file() {
                paths.push((entry.file_name(), path));
            }
        }
        paths.sort_by(|a, b| a.0.as_encoded_bytes().cmp(b.0.as_encoded_bytes()));
        if paths.is_empty() {
            return Err(Error::invalid(
                "trace directory",
                format!("{} holds no trace file", dir.display()),
            ));
        }
        paths.into_iter().map(|(_, p)| Self::load(p)).collect()
    }

    /// The trace's name (its file name when loaded from a file).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The timestamps in seconds.
    pub fn time_s(&self) -> &[f64] {
        &self.time_s
    }

    /// The throughput in Mbit/s that holds up to each timestamp.
    pub fn mbps(&self) -> &[f64] {
        &self.mbps
    }

    /// The number of samples.
    pub fn len(&self) -> usize {
        self.time_s.len()
    }

    /// Always `false`: a trace has at least two samples.
    pub fn is_empty(&self) -> bool {
        self.time_s.is_empty()
    }

    /// Seconds from the first to the last timestamp.
    pub fn duration_s(&self) -> f64 {
        self.time_s[self.len() - 1] - self.time_s[0]
    }

    /// The time-weighted mean throughput in Mbit/s.
    pub fn mean_mbps(&self) -> f64 {
        let mut megabits = 0.0;
        for i in 1..self.len() {
            megabits += self.mbps[i] * (self.time_s[i] - self.time_s[i - 1]);
        }
        megabits / self.duration_s()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_would_hang_a_download() {
        assert!(
            Trace::parse("z", "0 0\n1 0\n2 0\n")
                .unwrap_err()
                .is_invalid()
        );
        assert!(Trace::parse("z", "0 5\n0 5\n").unwrap_err().is_invalid());
        assert!(Trace::parse("one", "0 5\n").unwrap_err().is_invalid());
        assert!(
            Trace::parse("back", "0 5\n2 5\n1 5\n")
                .unwrap_err()
                .is_invalid()
        );
        assert!(Trace::parse("neg", "0 5\n1 -5\n").unwrap_err().is_invalid());
        assert!(
            Trace::parse("nan", "0 5\n1 NaN\n")
                .unwrap_err()
                .is_invalid()
        );
        let e = Trace::parse("short", "0 5\n1\n").unwrap_err();
        assert!(e.is_parse());
        assert!(e.to_string().contains("line 2"), "{e}");
    }

    #[cfg(feature = "serde")]
    #[test]
    fn deserializing_validates() {
        let t = Trace::parse("x", "0 1\n1 2\n").unwrap();
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(serde_json::from_str::<Trace>(&json).unwrap(), t);
        let bad = r#"{"name":"z","time_s":[0.0,1.0],"mbps":[0.0,0.0]}"#;
        let e = serde_json::from_str::<Trace>(bad).unwrap_err();
        assert!(e.to_string().contains("no interval"), "{e}");
        let v = crate::video::Video::envivio();
        let json = serde_json::to_string(&v).unwrap();
        assert_eq!(
            serde_json::from_str::<crate::video::Video>(&json).unwrap(),
            v
        );
        let bad = json.replace("\"chunks\":48", "\"chunks\":480");
        assert!(serde_json::from_str::<crate::video::Video>(&bad).is_err());
    }

    #[test]
    fn extra_columns_and_blank_lines_are_ignored() {
        let t = Trace::parse("x", "0 1 extra\n\n1.5 2e0\n").unwrap();
        assert_eq!(t.time_s(), [0.0, 1.5]);
        assert_eq!(t.mbps(), [1.0, 2.0]);
    }
}
