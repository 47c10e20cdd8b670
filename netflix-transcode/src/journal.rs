//! The crash-safe journal of finished chunks.
//!
//! A chunk counts as finished only once every rung's output has been validated, renamed
//! from `.part` to its final name, and the journal listing it (with each file's size and
//! sha256) has been written to a temporary file, fsynced, renamed over the old journal and
//! its directory fsynced. A crash at any point leaves either the old journal or the new
//! one, and never lists a file that is not complete on disk. The journal's key is a hash
//! of the input's bytes and every parameter that changes the output, so a resumed run
//! reuses chunks only when they would come out the same.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// One output file of a finished chunk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    /// Its path relative to the work directory.
    pub path: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its sha256, hex.
    pub sha256: String,
}

/// What the journal holds.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Journal {
    /// The hash of the input and the parameters.
    pub key: String,
    /// Finished chunks by index: one file per rung, lowest rung first.
    pub chunks: BTreeMap<usize, Vec<FileRecord>>,
}

const FILE: &str = "journal.json";

impl Journal {
    /// Loads the journal in `dir` if it exists and has `key`; otherwise an empty one with
    /// `key` (and `false`).
    pub(crate) fn load(dir: &Path, key: &str) -> Result<(Self, bool)> {
        let path = dir.join(FILE);
        match std::fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice::<Journal>(&bytes) {
                Ok(j) if j.key == key => Ok((j, true)),
                Ok(_) => {
                    tracing::info!(path = %path.display(), "journal is for other input or settings; starting afresh");
                    Ok((Self::new(key), false))
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "unreadable journal; starting afresh");
                    Ok((Self::new(key), false))
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((Self::new(key), false)),
            Err(e) => Err(Error::io("reading", path, e)),
        }
    }

    fn new(key: &str) -> Self {
        Self {
            key: key.to_string(),
            chunks: BTreeMap::new(),
        }
    }

    /// Writes the journal atomically: temporary file, fsync, rename, fsync of the directory.
    pub(crate) fn save(&self, dir: &Path) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(self).expect("journal serializes");
        write_atomic(&dir.join(FILE), &bytes)
    }

    /// The chunks whose recorded files are all present with the recorded size and hash.
    /// Chunks that fail the check are dropped from the journal.
    pub(crate) fn verified(&mut self, dir: &Path) -> Vec<usize> {
        self.chunks.retain(|&index, files| {
            let ok = files.iter().all(|f| {
                let p = dir.join(&f.path);
                std::fs::metadata(&p).is_ok_and(|m| m.len() == f.size)
                    && sha256_file(&p).is_ok_and(|h| h == f.sha256)
            });
            if !ok {
                tracing::warn!(
                    chunk = index,
                    "journaled chunk's files are missing or changed; re-encoding it"
                );
            }
            ok
        });
        self.chunks.keys().copied().collect()
    }
}

/// Writes `bytes` to `path` so that a crash leaves either the old file or the new one.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = part_path(path);
    let io = |action: &str, e| Error::io(action, path, e);
    {
        let mut f = std::fs::File::create(&tmp).map_err(|e| io("creating", e))?;
        f.write_all(bytes).map_err(|e| io("writing", e))?;
        f.sync_all().map_err(|e| io("syncing", e))?;
    }
    std::fs::rename(&tmp, path).map_err(|e| io("renaming into place", e))?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// fsyncs a directory, so that renames in it survive a crash.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::io("syncing directory", dir, e))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// `name.part` beside `path`.
pub(crate) fn part_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(".part");
    PathBuf::from(s)
}

/// The sha256 of a file, hex.
pub(crate) fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_key_mismatch() {
        let dir = std::env::temp_dir().join(format!("nt-journal-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("a.mp4"), b"hello").unwrap();
        let mut j = Journal::load(&dir, "k1").unwrap().0;
        j.chunks.insert(
            0,
            vec![FileRecord {
                path: "a.mp4".into(),
                size: 5,
                sha256: sha256_file(&dir.join("a.mp4")).unwrap(),
            }],
        );
        j.save(&dir).unwrap();
        let (mut back, resumed) = Journal::load(&dir, "k1").unwrap();
        assert!(resumed);
        assert_eq!(back.verified(&dir), vec![0]);
        // A changed file is not trusted.
        std::fs::write(dir.join("a.mp4"), b"hellO").unwrap();
        assert!(back.verified(&dir).is_empty());
        // Other settings: nothing is reused.
        assert!(!Journal::load(&dir, "k2").unwrap().1);
        // Garbage is not an error: the run starts afresh.
        std::fs::write(dir.join(FILE), b"{not json").unwrap();
        assert!(!Journal::load(&dir, "k1").unwrap().1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
