//! A video as an ABR algorithm sees it: the bitrate of each rung, the chunk duration, and
//! the size in bytes of every chunk of every rung.
//!
//! Real encodes are variable-bitrate: a chunk of the 4300 kbit/s rung may be 1.4 MB or 2.4 MB.
//! A [`Video`] keeps the measured size of each chunk, read from Pensieve-style
//! `video_size_N` files ([`Video::load_video_sizes`]) or from the segment files of a real
//! encode ([`Video::from_segment_dirs`]); [`Video::envivio`] is the built-in test video of
//! the ABR literature.
//!
//! # Example
//!
//! ```
//! use netflix_abr::video::Video;
//!
//! let v = Video::envivio();
//! assert_eq!(v.levels(), 6);
//! assert_eq!(v.chunks(), 48);
//! assert_eq!(v.chunk_s(), 4.0);
//! assert_eq!(v.bitrates_kbps(), [300.0, 750.0, 1200.0, 1850.0, 2850.0, 4300.0]);
//! assert_eq!(v.size(1, 0), Some(450_283));
//!
//! // A constant-bitrate video: every chunk is bitrate × duration.
//! let cbr = Video::constant_bitrate(&[1000.0, 3000.0], 2.0, 10)?;
//! assert_eq!(cbr.size(1, 9), Some(750_000));
//! # Ok::<(), netflix_abr::Error>(())
//! ```

pub(crate) mod envivio;

use crate::error::{Error, Result};
use std::fs;
use std::path::Path;

/// The rungs, chunk duration and per-chunk sizes of one title.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(try_from = "VideoParts"))]
pub struct Video {
    bitrates_kbps: Vec<f64>,
    chunk_s: f64,
    chunks: usize,
    /// `sizes[quality][chunk]`, each at least `chunks` long.
    sizes: Vec<Vec<u64>>,
}

/// A video as serialized, validated by [`Video::new`] when deserialized.
#[cfg(feature = "serde")]
#[derive(serde::Deserialize)]
struct VideoParts {
    bitrates_kbps: Vec<f64>,
    chunk_s: f64,
    chunks: usize,
    sizes: Vec<Vec<u64>>,
}

#[cfg(feature = "serde")]
impl TryFrom<VideoParts> for Video {
    type Error = Error;

    fn try_from(p: VideoParts) -> Result<Self> {
        Video::new(p.bitrates_kbps, p.chunk_s, p.sizes)?.with_chunks(p.chunks)
    }
}

impl Video {
    /// A video from its nominal bitrates (kbit/s, ascending), chunk duration and the byte
    /// sizes of each rung's chunks (`sizes[quality][chunk]`). The video has as many chunks
    /// as the shortest rung.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Invalid`](crate::ErrorKind::Invalid) when there are no rungs, the number
    /// of size lists differs from the number of bitrates, the bitrates are not positive and
    /// strictly ascending, the chunk duration is not positive, a rung has no chunk, or a
    /// chunk is empty.
    pub fn new(bitrates_kbps: Vec<f64>, chunk_s: f64, sizes: Vec<Vec<u64>>) -> Result<Self> {
        let bad = |reason: String| Error::invalid("video", reason);
        if bitrates_kbps.is_empty() {
            return Err(bad("no rungs".into()));
        }
        if sizes.len() != bitrates_kbps.len() {
            return Err(bad(format!(
                "{} bitrates but {} chunk-size lists",
                bitrates_kbps.len(),
                sizes.len()
            )));
        }
        for (i, &b) in bitrates_kbps.iter().enumerate() {
            if !(b.is_finite() && b > 0.0) {
                return Err(bad(format!("bitrate {b} of rung {i} is not positive")));
            }
            if i > 0 && b <= bitrates_kbps[i - 1] {
                return Err(bad(format!(
                    "bitrates must ascend: rung {i} ({b}) after {}",
                    bitrates_kbps[i - 1]
                )));
            }
        }
        if !(chunk_s.is_finite() && chunk_s > 0.0) {
            return Err(bad(format!("chunk duration {chunk_s} is not positive")));
        }
        for (q, rung) in sizes.iter().enumerate() {
            if rung.is_empty() {
                return Err(bad(format!("rung {q} has no chunk")));
            }
            if let Some(c) = rung.iter().position(|&s| s == 0) {
                return Err(bad(format!("chunk {c} of rung {q} is empty")));
            }
        }
        let chunks = sizes.iter().map(Vec::len).min().unwrap_or(0);
        Ok(Self {
            bitrates_kbps,
            chunk_s,
            chunks,
            sizes,
        })
    }

    /// Plays only the first `chunks` chunks. Sizes past them stay readable through
    /// [`size`](Self::size), for algorithms that look ahead (Pensieve's MPC reads one chunk
    /// past the end of its 48-chunk video).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Invalid`](crate::ErrorKind::Invalid) when `chunks` is zero or more than
    /// every rung has.
    pub fn with_chunks(mut self, chunks: usize) -> Result<Self> {
        let have = self.sizes.iter().map(Vec::len).min().unwrap_or(0);
        if chunks == 0 || chunks > have {
            return Err(Error::invalid(
                "video",
                format!("cannot play {chunks} chunks: the rungs have {have}"),
            ));
        }
        self.chunks = chunks;
        Ok(self)
    }

    /// Replaces the nominal bitrates (kbit/s, ascending, one per rung).
    ///
    /// # Errors
    ///
    /// As [`Video::new`].
    pub fn with_bitrates(self, bitrates_kbps: Vec<f64>) -> Result<Self> {
        let chunks = self.chunks;
        Self::new(bitrates_kbps, self.chunk_s, self.sizes)?.with_chunks(chunks)
    }

    /// A constant-bitrate video: every chunk of a rung is `bitrate × chunk_s` bytes.
    ///
    /// # Errors
    ///
    /// As [`Video::new`], and when `chunks` is zero.
    pub fn constant_bitrate(bitrates_kbps: &[f64], chunk_s: f64, chunks: usize) -> Result<Self> {
        let sizes = bitrates_kbps
            .iter()
            .map(|b| vec![(b * 1000.0 / 8.0 * chunk_s).round().max(1.0) as u64; chunks])
            .collect();
        Self::new(bitrates_kbps.to_vec(), chunk_s, sizes)
    }

    /// The "envivio" test video of Pensieve and most ABR research: 6 rungs (300, 750, 1200,
    /// 1850, 2850 and 4300 kbit/s), 48 chunks of 4 s, with its measured VBR chunk sizes.
    pub fn envivio() -> Self {
        Self {
            bitrates_kbps: crate::ladder::Ladder::envivio().bitrates_kbps(),
            chunk_s: 4.0,
            chunks: 48,
            sizes: envivio::ENVIVIO_SIZES.iter().map(|r| r.to_vec()).collect(),
        }
    }

    /// Reads Pensieve-style chunk-size files `video_size_0`, `video_size_1`, … (rung 0 the
    /// lowest; the first whitespace-separated field of each line is a size in bytes) until
    /// the next index is missing.
    ///
    /// The nominal bitrates default to each rung's mean chunk size × 8 / `chunk_s`, to the
    /// bit per second; set the ladder's own with [`with_bitrates`](Self::with_bitrates).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Io`](crate::ErrorKind::Io) when `video_size_0` or a listed file cannot be
    /// read, [`ErrorKind::Parse`](crate::ErrorKind::Parse) for a line that is not a whole
    /// number, and the errors of [`Video::new`].
    pub fn load_video_sizes(dir: impl AsRef<Path>, chunk_s: f64) -> Result<Self> {
        let dir = dir.as_ref();
        let mut sizes = Vec::new();
        loop {
            let path = dir.join(format!("video_size_{}", sizes.len()));
            if !sizes.is_empty() && !path.exists() {
                break;
            }
            let text = fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
            let mut rung = Vec::new();
            for (i, line) in text.lines().enumerate() {
                let Some(field) = line.split_whitespace().next() else {
                    continue;
                };
                let size = field.parse::<u64>().map_err(|_| {
                    Error::parse(
                        "chunk sizes",
                        Some(i + 1),
                        format!("{}: {field:?} is not a byte count", path.display()),
                    )
                })?;
                rung.push(size);
            }
            sizes.push(rung);
        }
        Self::from_sizes(sizes, chunk_s)
    }

    /// Reads the chunk sizes of a real encode: one directory per rung (lowest first), whose
    /// media segments, in sorted file-name order, are the chunks. Initialization segments
    /// (names starting with `init`), playlists and manifests (`.m3u8`, `.mpd`) and hidden
    /// files are skipped.
    ///
    /// The nominal bitrates default as for [`load_video_sizes`](Self::load_video_sizes).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Io`](crate::ErrorKind::Io) when a directory cannot be listed, and the
    /// errors of [`Video::new`] (a directory with no segment is a rung with no chunk).
    pub fn from_segment_dirs<P: AsRef<Path>>(dirs: &[P], chunk_s: f64) -> Result<Self> {
        let mut sizes = Vec::with_capacity(dirs.len());
        for dir in dirs {
            let dir = dir.as_ref();
            let mut segments = Vec::new();
            for entry in fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
                let entry = entry.map_err(|e| Error::io(dir, e))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                let skip = name.starts_with('.')
                    || name.starts_with("init")
                    || name.ends_with(".m3u8")
                    || name.ends_with(".mpd");
                let meta = entry.metadata().map_err(|e| Error::io(&entry.path(), e))?;
                if !skip && meta.is_file() {
                    segments.push((name, meta.len()));
                }
            }
            segments.sort();
            sizes.push(segments.into_iter().map(|(_, len)| len).collect());
        }
        Self::from_sizes(sizes, chunk_s)
    }

    fn from_sizes(sizes: Vec<Vec<u64>>, chunk_s: f64) -> Result<Self> {
        let bitrates = sizes
            .iter()
            .map(|rung| {
                let mean = rung.iter().sum::<u64>() as f64 / rung.len().max(1) as f64;
                // Whole bits per second.
                (mean * 8.0 / chunk_s).round() / 1000.0
            })
            .collect();
        Self::new(bitrates, chunk_s, sizes)
    }

    /// The number of rungs.
    pub fn levels(&self) -> usize {
        self.bitrates_kbps.len()
    }

    /// The nominal bitrate of each rung in kbit/s, ascending.
    pub fn bitrates_kbps(&self) -> &[f64] {
        &self.bitrates_kbps
    }

    /// The nominal bitrate of one rung in kbit/s.
    ///
    /// # Panics
    ///
    /// When `quality` is not below [`levels`](Self::levels).
    pub fn bitrate_kbps(&self, quality: usize) -> f64 {
        self.bitrates_kbps[quality]
    }

    /// Seconds of media per chunk.
    pub fn chunk_s(&self) -> f64 {
        self.chunk_s
    }

    /// The number of chunks played.
    pub fn chunks(&self) -> usize {
        self.chunks
    }

    /// The size in bytes of chunk `chunk` of rung `quality`, or `None` past the known sizes.
    pub fn size(&self, quality: usize, chunk: usize) -> Option<u64> {
        self.sizes.get(quality)?.get(chunk).copied()
    }

    /// The known sizes of one rung's chunks (possibly more than [`chunks`](Self::chunks)).
    pub fn sizes(&self, quality: usize) -> &[u64] {
        self.sizes.get(quality).map_or(&[], Vec::as_slice)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation() {
        assert!(Video::new(vec![], 4.0, vec![]).unwrap_err().is_invalid());
        assert!(
            Video::new(vec![2.0, 1.0], 4.0, vec![vec![1], vec![1]])
                .unwrap_err()
                .is_invalid()
        );
        assert!(
            Video::new(vec![1.0], 0.0, vec![vec![1]])
                .unwrap_err()
                .is_invalid()
        );
        assert!(
            Video::new(vec![1.0], 4.0, vec![vec![0]])
                .unwrap_err()
                .is_invalid()
        );
        assert!(
            Video::new(vec![1.0], 4.0, vec![vec![]])
                .unwrap_err()
                .is_invalid()
        );
        let v = Video::new(vec![1.0, 2.0], 4.0, vec![vec![1, 2, 3], vec![4, 5]]).unwrap();
        assert_eq!(v.chunks(), 2);
        assert!(v.clone().with_chunks(3).unwrap_err().is_invalid());
        assert_eq!(v.with_chunks(1).unwrap().chunks(), 1);
    }

    #[test]
    fn sizes_from_segment_files_and_pensieve_files() {
        let dir = std::env::temp_dir().join(format!("netflix-abr-video-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        for (rung, sizes) in [("low", [100usize, 120, 90]), ("high", [400, 480, 360])] {
            let d = dir.join(rung);
            fs::create_dir_all(&d).unwrap();
            fs::write(d.join("init.mp4"), [0u8; 700]).unwrap();
            fs::write(d.join("index.m3u8"), "#EXTM3U\n").unwrap();
            for (i, n) in sizes.iter().enumerate() {
                fs::write(d.join(format!("seg_{i:03}.m4s")), vec![0u8; *n]).unwrap();
            }
        }
        let v = Video::from_segment_dirs(&[dir.join("low"), dir.join("high")], 2.0).unwrap();
        assert_eq!(v.chunks(), 3);
        assert_eq!(v.sizes(0), [100, 120, 90]);
        assert_eq!(v.sizes(1), [400, 480, 360]);
        // Nominal bitrates from the mean sizes: 103.3 B per 2 s is 413 bit/s.
        assert_eq!(v.bitrates_kbps(), [0.413, 1.653]);

        fs::write(dir.join("video_size_0"), "10\n20\n").unwrap();
        fs::write(dir.join("video_size_1"), "30 extra\n\n40\n").unwrap();
        let v = Video::load_video_sizes(&dir, 4.0).unwrap();
        assert_eq!((v.levels(), v.chunks()), (2, 2));
        assert_eq!(v.sizes(1), [30, 40]);
        fs::write(dir.join("video_size_1"), "30\nforty\n").unwrap();
        let e = Video::load_video_sizes(&dir, 4.0).unwrap_err();
        assert!(e.is_parse() && e.to_string().contains("line 2"), "{e}");
        let e = Video::load_video_sizes(dir.join("missing"), 4.0).unwrap_err();
        assert!(e.is_io());
        let e = Video::from_segment_dirs(&[dir.join("missing")], 4.0).unwrap_err();
        assert!(e.is_io());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn envivio_matches_its_ladder() {
        let v = Video::envivio();
        assert_eq!(v.sizes(5).len(), 49);
        // The mean size of each rung is within 10% of its nominal bitrate.
        for q in 0..6 {
            let mean = v.sizes(q)[..48].iter().sum::<u64>() as f64 / 48.0;
            let kbps = mean * 8.0 / 1000.0 / 4.0;
            let nominal = v.bitrate_kbps(q);
            assert!(
                (kbps / nominal - 1.0).abs() < 0.1,
                "rung {q}: {kbps} vs {nominal}"
            );
        }
    }
}
