//! Publishing a packaged title to an origin store.
//!
//! Order matters to the players and caches that read the origin while it is written:
//! every segment and initialization segment first, then the media playlists, then the
//! multivariant playlist and the MPD, and last `inventory.json`, which lists every file
//! with its size and sha256. A manifest therefore never names a segment that is not there
//! yet. Publishing again is idempotent: a file whose bytes are already in the store is
//! not written again.

use crate::error::{Error, Result};
use crate::journal::{hex, sha256_file, write_atomic};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::future::Future;
use std::path::{Path, PathBuf};

/// What happened to one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Put {
    /// The store did not have these bytes: they were written.
    Written,
    /// The store already had exactly these bytes.
    Unchanged,
}

/// Where published titles go: a local directory ([`LocalDir`]), or an object store
/// behind this trait.
pub trait OriginStore: Send + Sync {
    /// Stores `bytes` under `key` (a relative path with `/` separators), whose sha256 is
    /// `sha256` (hex). Must be atomic per key: readers see the old bytes or the new.
    fn put(
        &self,
        key: &str,
        bytes: Vec<u8>,
        sha256: &str,
    ) -> impl Future<Output = Result<Put>> + Send;
}

/// A directory as the origin.
#[derive(Debug, Clone)]
pub struct LocalDir {
    root: PathBuf,
}

impl LocalDir {
    /// A store rooted at `root` (created when needed).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }
}

impl OriginStore for LocalDir {
    async fn put(&self, key: &str, bytes: Vec<u8>, sha256: &str) -> Result<Put> {
        if key
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
        {
            return Err(Error::Config(format!("bad store key `{key}`")));
        }
        let path = self.root.join(key);
        let sha = sha256.to_string();
        tokio::task::spawn_blocking(move || {
            if sha256_file(&path).is_ok_and(|h| h == sha) {
                return Ok(Put::Unchanged);
            }
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(|e| Error::io("creating", parent, e))?;
            }
            write_atomic(&path, &bytes)?;
            Ok(Put::Written)
        })
        .await
        .map_err(|e| Error::step("publish", e.to_string()))?
    }
}

/// One file in the inventory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryEntry {
    /// Its key in the store.
    pub path: String,
    /// Bytes.
    pub size: u64,
    /// sha256, hex.
    pub sha256: String,
}

/// The result of a publish.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Published {
    /// Every file, in the order it was published (the inventory itself last, not listed).
    pub inventory: Vec<InventoryEntry>,
    /// How many files were written.
    pub written: usize,
    /// How many were already there.
    pub unchanged: usize,
}

/// Which publishing wave a file belongs to: media, media playlists, top-level manifests.
fn wave(key: &str) -> u8 {
    let top = !key.contains('/');
    if key.ends_with(".m3u8") || key.ends_with(".mpd") {
        if top { 2 } else { 1 }
    } else {
        0
    }
}

/// Publishes every file under `dir` to `store`, segments first and manifests last, then
/// writes `inventory.json`.
///
/// # Errors
///
/// When a file cannot be read or the store fails; files published before the failure
/// stay, and publishing again completes the job.
pub async fn publish<S: OriginStore>(dir: &Path, store: &S) -> Result<Published> {
    let mut keys = Vec::new();
    collect(dir, dir, &mut keys)?;
    keys.sort_by(|a, b| (wave(a), a).cmp(&(wave(b), b)));
    let mut out = Published::default();
    for key in keys {
        let path = dir.join(&key);
        let bytes = tokio::fs::read(&path)
            .await
            .map_err(|e| Error::io("reading", &path, e))?;
        let sha = hex(&Sha256::digest(&bytes));
        let size = bytes.len() as u64;
        match store.put(&key, bytes, &sha).await? {
            Put::Written => out.written += 1,
            Put::Unchanged => out.unchanged += 1,
        }
        out.inventory.push(InventoryEntry {
            path: key,
            size,
            sha256: sha,
        });
    }
    let inv = serde_json::to_vec_pretty(&out.inventory).expect("inventory serializes");
    let sha = hex(&Sha256::digest(&inv));
    match store.put("inventory.json", inv, &sha).await? {
        Put::Written => out.written += 1,
        Put::Unchanged => out.unchanged += 1,
    }
    tracing::info!(
        written = out.written,
        unchanged = out.unchanged,
        "published"
    );
    Ok(out)
}

fn collect(root: &Path, dir: &Path, keys: &mut Vec<String>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io("listing", dir, e))?;
    for e in entries {
        let e = e.map_err(|e| Error::io("listing", dir, e))?;
        let p = e.path();
        if p.is_dir() {
            collect(root, &p, keys)?;
        } else if let Ok(rel) = p.strip_prefix(root) {
            let key: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            keys.push(key.join("/"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_go_last() {
        let mut k = vec![
            "master.m3u8".to_string(),
            "v0/index.m3u8".into(),
            "v0/seg-00001.m4s".into(),
            "manifest.mpd".into(),
            "v0/init.mp4".into(),
        ];
        k.sort_by(|a, b| (wave(a), a).cmp(&(wave(b), b)));
        assert_eq!(
            k,
            [
                "v0/init.mp4",
                "v0/seg-00001.m4s",
                "v0/index.m3u8",
                "manifest.mpd",
                "master.m3u8"
            ]
        );
    }
}
