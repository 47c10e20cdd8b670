//! The chunk store: a memory tier and a disk tier of fixed-size chunks, each with its
//! SHA-256, under an eviction policy.
//!
//! Files are cut into chunks of [`StoreConfig::chunk_size`] (1 MiB by default; the last one
//! shorter). A chunk is the unit of caching, filling and checking: it is cached in memory
//! (served without a copy, as `Bytes`) and written behind to disk, and every chunk read
//! back from disk is checked against its SHA-256 before it is served.
//!
//! # The disk tier
//!
//! ```text
//! DIR/index.log          append-only records, each line ending in its own CRC-32
//! DIR/chunks/<key>.chk   one file per chunk, written to a temp file, synced, renamed
//! ```
//!
//! A chunk's data is made durable *before* its index record is appended, so a crash between
//! the two leaves an unindexed file that recovery deletes; a torn last record fails its
//! CRC and is ignored. On open the log is replayed, every indexed file is checked for its
//! size (its contents are checked on every read), and the log is compacted. A chunk whose
//! contents do not match its SHA-256 (a bit flip, a truncation) is deleted and reported as
//! a miss, so the caller refetches it; it is never served. After
//! [`StoreConfig::disk_error_limit`] I/O errors in a row the disk is declared failed and
//! the store carries on with memory alone.
//!
//! Proactively filled chunks are *pinned*: they live outside the eviction policy, and the
//! policy's capacity shrinks by their size, so reactive traffic can never evict them.
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use netflix_oca::store::{ChunkId, ChunkStore, StoreConfig, sha256};
//! use std::sync::Arc;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! let dir = std::env::temp_dir().join(format!("oca-store-doc-{}", std::process::id()));
//! let config = StoreConfig { disk_dir: Some(dir.clone()), ..StoreConfig::default() };
//! let store = Arc::new(ChunkStore::open(config.clone())?);
//! let id = ChunkId::new("title-81/seg-1.m4s", 0);
//! store.write_disk(id, b"chunk bytes", sha256(b"chunk bytes"), false);
//! drop(store);
//!
//! // After a restart the chunk is found on disk, checked against its SHA-256.
//! let store = Arc::new(ChunkStore::open(config)?);
//! assert_eq!(store.get(id).await.unwrap().data, Bytes::from_static(b"chunk bytes"));
//! # std::fs::remove_dir_all(dir)?;
//! # Ok(()) }
//! ```

use crate::policy::{KeyHasher, Policy, PolicyKind};
use bytes::Bytes;
use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fmt;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A chunk's SHA-256.
pub type Sha = [u8; 32];

/// The SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> Sha {
    Sha256::digest(data).into()
}

/// What is known of a file: its length and validators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    /// The path, as requested (`title-81/video/1080p/seg-00042.m4s`).
    pub path: String,
    /// The length in bytes.
    pub len: u64,
    /// The strong entity tag, quoted.
    pub etag: String,
    /// The last modification time.
    pub last_modified: SystemTime,
}

impl ObjectMeta {
    /// The number of chunks of `chunk_size` bytes.
    pub fn chunks(&self, chunk_size: u64) -> u64 {
        self.len.div_ceil(chunk_size)
    }
}

/// Identifies one chunk of one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChunkId {
    /// The hash of the file's path.
    pub file: u64,
    /// The chunk's position in the file, from 0.
    pub index: u64,
}

impl ChunkId {
    /// Chunk `index` of `path`.
    pub fn new(path: &str, index: u64) -> Self {
        Self {
            file: xxhash_rust::xxh3::xxh3_64(path.as_bytes()),
            index,
        }
    }

    /// The 64-bit key the policies see.
    pub fn key(&self) -> u64 {
        xxhash_rust::xxh3::xxh3_64_with_seed(&self.index.to_le_bytes(), self.file)
    }
}

/// The store's settings.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Bytes of chunks held in memory (default 256 MiB).
    pub memory_bytes: u64,
    /// The disk tier's directory; `None` for memory only.
    pub disk_dir: Option<PathBuf>,
    /// Bytes of chunks held on disk (default 4 GiB).
    pub disk_bytes: u64,
    /// The chunk size (default 1 MiB; 1 to 2 MiB suits video segments).
    pub chunk_size: u64,
    /// The eviction policy of both tiers (default [`PolicyKind::Default`]).
    pub policy: PolicyKind,
    /// I/O errors in a row after which the disk is declared failed (default 3).
    pub disk_error_limit: u32,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            memory_bytes: 256 << 20,
            disk_dir: None,
            disk_bytes: 4 << 30,
            chunk_size: 1 << 20,
            policy: PolicyKind::Default,
            disk_error_limit: 3,
        }
    }
}

/// Counters of the store, for health reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Chunks served from memory.
    pub memory_hits: u64,
    /// Chunks served from disk.
    pub disk_hits: u64,
    /// Chunk lookups that found nothing.
    pub misses: u64,
    /// Chunks found corrupt on disk (and dropped).
    pub corrupt: u64,
    /// Disk I/O errors.
    pub disk_errors: u64,
    /// Bytes in memory.
    pub memory_bytes: u64,
    /// Bytes on disk.
    pub disk_bytes: u64,
    /// Bytes pinned by proactive fill.
    pub pinned_bytes: u64,
    /// Whether the disk has been declared failed.
    pub disk_failed: bool,
}

/// Disk operations, behind a trait so that tests can inject I/O errors a real disk will
/// not produce on demand.
pub trait DiskIo: Send + Sync + fmt::Debug + 'static {
    /// Reads a whole file.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// Writes a whole file durably: temp file, fsync, rename.
    fn write_atomic(&self, path: &Path, data: &[u8]) -> io::Result<()>;
    /// Appends a line to a file and syncs it.
    fn append_sync(&self, path: &Path, line: &[u8]) -> io::Result<()>;
    /// Removes a file (a missing file is not an error).
    fn remove(&self, path: &Path) -> io::Result<()>;
}

/// The real file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealDisk;

impl DiskIo for RealDisk {
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        std::fs::read(path)
    }

    fn write_atomic(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        let tmp = path.with_extension("tmp");
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_data()?;
        drop(f);
        std::fs::rename(&tmp, path)
    }

    fn append_sync(&self, path: &Path, line: &[u8]) -> io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        f.write_all(line)?;
        f.sync_data()
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

#[derive(Debug, Clone)]
struct DiskEntry {
    id: ChunkId,
    len: u64,
    sha: Sha,
    pinned: bool,
}

#[derive(Debug)]
struct Tier<V> {
    policy: Box<dyn Policy>,
    entries: HashMap<u64, V, KeyHasher>,
    pinned: HashMap<u64, V, KeyHasher>,
    pinned_bytes: u64,
    capacity: u64,
}

impl<V> Tier<V> {
    fn new(kind: PolicyKind, capacity: u64) -> Self {
        Self {
            policy: kind
                .try_build(capacity)
                .unwrap_or_else(|| PolicyKind::Default.build(capacity)),
            entries: HashMap::default(),
            pinned: HashMap::default(),
            pinned_bytes: 0,
            capacity,
        }
    }

    fn get(&mut self, key: u64) -> Option<&V> {
        if let Some(v) = self.pinned.get(&key) {
            return Some(v);
        }
        if self.policy.get(key) {
            return self.entries.get(&key);
        }
        None
    }

    /// Inserts; returns the evicted values (and the value itself when not admitted).
    fn insert(&mut self, key: u64, size: u64, value: V, pinned: bool) -> Vec<V> {
        let mut out = Vec::new();
        if self.pinned.contains_key(&key) || self.entries.contains_key(&key) {
            return vec![value];
        }
        let mut evicted = Vec::new();
        if pinned {
            if self.pinned_bytes + size > self.capacity {
                return vec![value];
            }
            self.pinned_bytes += size;
            self.pinned.insert(key, value);
            self.policy
                .set_capacity(self.capacity - self.pinned_bytes, &mut evicted);
        } else if self.policy.insert(key, size, &mut evicted) {
            self.entries.insert(key, value);
        } else {
            out.push(value);
        }
        out.extend(evicted.into_iter().filter_map(|k| self.entries.remove(&k)));
        out
    }

    fn remove(&mut self, key: u64, size: impl Fn(&V) -> u64) -> Option<V> {
        if let Some(v) = self.pinned.remove(&key) {
            self.pinned_bytes -= size(&v);
            let mut ev = Vec::new();
            self.policy
                .set_capacity(self.capacity - self.pinned_bytes, &mut ev);
            debug_assert!(ev.is_empty(), "growing never evicts");
            return Some(v);
        }
        self.policy.remove(key);
        self.entries.remove(&key)
    }

    fn bytes(&self) -> u64 {
        self.policy.used() + self.pinned_bytes
    }

    /// Moves a cached value out of the policy's reach. Returns whether it was found (or
    /// already pinned).
    fn pin(&mut self, key: u64, size: impl Fn(&V) -> u64) -> bool {
        if self.pinned.contains_key(&key) {
            return true;
        }
        let Some(v) = self.entries.remove(&key) else {
            return false;
        };
        self.policy.remove(key);
        self.pinned_bytes += size(&v);
        self.pinned.insert(key, v);
        let mut evicted = Vec::new();
        self.policy.set_capacity(
            self.capacity.saturating_sub(self.pinned_bytes),
            &mut evicted,
        );
        for k in evicted {
            self.entries.remove(&k);
        }
        true
    }
}

struct Disk {
    dir: PathBuf,
    io: Arc<dyn DiskIo>,
    tier: Mutex<Tier<DiskEntry>>,
    metas: Mutex<HashMap<String, ObjectMeta>>,
    errors_in_a_row: AtomicU32,
    failed: AtomicBool,
    limit: u32,
}

impl fmt::Debug for Disk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Disk")
            .field("dir", &self.dir)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

/// The memory and disk tiers.
#[derive(Debug)]
pub struct ChunkStore {
    config: StoreConfig,
    memory: Mutex<Tier<(ChunkId, Bytes, Sha)>>,
    disk: Option<Disk>,
    metas: Mutex<HashMap<String, Arc<ObjectMeta>>>,
    memory_hits: AtomicU64,
    disk_hits: AtomicU64,
    misses: AtomicU64,
    corrupt: AtomicU64,
    disk_errors: AtomicU64,
}

/// A chunk found in the store.
#[derive(Debug, Clone)]
pub struct StoredChunk {
    /// The bytes.
    pub data: Bytes,
    /// Their SHA-256.
    pub sha: Sha,
}

impl ChunkStore {
    /// Opens a store; with a disk directory, recovers its index (see the module docs).
    ///
    /// # Errors
    ///
    /// When the disk directory cannot be created or its index cannot be read at all.
    pub fn open(config: StoreConfig) -> io::Result<Self> {
        Self::open_with(config, Arc::new(RealDisk))
    }

    /// [`open`](Self::open) with another [`DiskIo`] (for fault injection).
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open).
    pub fn open_with(config: StoreConfig, io: Arc<dyn DiskIo>) -> io::Result<Self> {
        let disk = match &config.disk_dir {
            Some(dir) => Some(Disk::recover(dir, &config, io)?),
            None => None,
        };
        let metas = disk
            .as_ref()
            .map(|d| {
                d.metas
                    .lock()
                    .iter()
                    .map(|(k, v)| (k.clone(), Arc::new(v.clone())))
                    .collect()
            })
            .unwrap_or_default();
        Ok(Self {
            memory: Mutex::new(Tier::new(config.policy, config.memory_bytes)),
            disk,
            metas: Mutex::new(metas),
            config,
            memory_hits: AtomicU64::new(0),
            disk_hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            corrupt: AtomicU64::new(0),
            disk_errors: AtomicU64::new(0),
        })
    }

    /// The settings.
    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    /// The chunk size.
    pub fn chunk_size(&self) -> u64 {
        self.config.chunk_size
    }

    /// What is known of `path`, if anything.
    pub fn meta(&self, path: &str) -> Option<Arc<ObjectMeta>> {
        self.metas.lock().get(path).cloned()
    }

    /// Records what is known of a file (kept on disk too, so a restart still knows it).
    pub fn put_meta(&self, meta: ObjectMeta) -> Arc<ObjectMeta> {
        let meta = Arc::new(meta);
        let old = self.metas.lock().insert(meta.path.clone(), meta.clone());
        if old.as_deref() != Some(&*meta) {
            if let Some(d) = self.usable_disk() {
                let r = d.log(&meta_record(&meta));
                self.note_io(r.map(|_| ()));
                d.metas.lock().insert(meta.path.clone(), (*meta).clone());
            }
        }
        meta
    }

    /// A chunk from memory only (no I/O): the fast path of the server.
    pub fn get_memory(&self, id: ChunkId) -> Option<StoredChunk> {
        let mut m = self.memory.lock();
        let hit = m
            .get(id.key())
            .filter(|(cid, ..)| *cid == id)
            .map(|(_, data, sha)| StoredChunk {
                data: data.clone(),
                sha: *sha,
            });
        drop(m);
        if hit.is_some() {
            self.memory_hits.fetch_add(1, Ordering::Relaxed);
        }
        hit
    }

    /// A chunk from memory, else from disk (checked against its SHA-256, then promoted to
    /// memory). `None` is a miss: the caller fills it.
    pub async fn get(self: &Arc<Self>, id: ChunkId) -> Option<StoredChunk> {
        if let Some(c) = self.get_memory(id) {
            return Some(c);
        }
        let found = match self.usable_disk() {
            Some(_) => {
                let store = self.clone();
                tokio::task::spawn_blocking(move || store.read_disk(id))
                    .await
                    .ok()
                    .flatten()
            }
            None => None,
        };
        match found {
            Some(c) => {
                self.disk_hits.fetch_add(1, Ordering::Relaxed);
                self.insert_memory(id, c.data.clone(), c.sha, false);
                Some(c)
            }
            None => {
                self.misses.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    fn read_disk(&self, id: ChunkId) -> Option<StoredChunk> {
        let d = self.usable_disk()?;
        let entry = d
            .tier
            .lock()
            .get(id.key())
            .filter(|e| e.id == id)
            .cloned()?;
        let path = d.chunk_path(id.key());
        match d.io.read(&path) {
            Ok(data) => {
                self.note_io(Ok(()));
                if data.len() as u64 != entry.len || sha256(&data) != entry.sha {
                    tracing::warn!(
                        file = id.file,
                        index = id.index,
                        "corrupt chunk on disk: dropped, will refetch"
                    );
                    self.corrupt.fetch_add(1, Ordering::Relaxed);
                    self.drop_disk(id);
                    return None;
                }
                Some(StoredChunk {
                    data: Bytes::from(data),
                    sha: entry.sha,
                })
            }
            Err(e) => {
                tracing::warn!(error = %e, file = id.file, index = id.index, "disk read failed");
                self.note_io(Err(e));
                None
            }
        }
    }

    fn insert_memory(&self, id: ChunkId, data: Bytes, sha: Sha, pinned: bool) {
        let len = data.len() as u64;
        let _evicted = self
            .memory
            .lock()
            .insert(id.key(), len, (id, data, sha), pinned);
    }

    /// Stores a verified chunk: in memory now, on disk behind (on a blocking thread).
    /// `pinned` chunks (proactive fill) are never evicted by reactive traffic.
    pub fn insert(self: &Arc<Self>, id: ChunkId, data: Bytes, sha: Sha, pinned: bool) {
        self.insert_memory(id, data.clone(), sha, pinned);
        if self.usable_disk().is_some() {
            let store = self.clone();
            tokio::task::spawn_blocking(move || store.write_disk(id, &data, sha, pinned));
        }
    }

    /// Stores a chunk on disk synchronously (the write-behind's body; tests call it to
    /// know the write is done).
    pub fn write_disk(&self, id: ChunkId, data: &[u8], sha: Sha, pinned: bool) {
        let Some(d) = self.usable_disk() else {
            return;
        };
        let key = id.key();
        if d.tier.lock().entries.contains_key(&key) || d.tier.lock().pinned.contains_key(&key) {
            return;
        }
        let entry = DiskEntry {
            id,
            len: data.len() as u64,
            sha,
            pinned,
        };
        // Data first, durably; then the index record. See the module docs.
        let r =
            d.io.write_atomic(&d.chunk_path(key), data)
                .and_then(|()| d.log(&put_record(&entry)));
        let ok = r.is_ok();
        self.note_io(r.map(|_| ()));
        if !ok {
            return;
        }
        let evicted = d.tier.lock().insert(key, entry.len, entry, pinned);
        for e in evicted {
            let k = e.id.key();
            if k == key {
                // Not admitted: forget the file just written.
                let _ = d.io.remove(&d.chunk_path(k));
                let _ = d.log(&del_record(k));
                continue;
            }
            let _ = d.log(&del_record(k));
            let _ = d.io.remove(&d.chunk_path(k));
        }
    }

    fn drop_disk(&self, id: ChunkId) {
        if let Some(d) = &self.disk {
            let key = id.key();
            d.tier.lock().remove(key, |e| e.len);
            let _ = d.log(&del_record(key));
            let _ = d.io.remove(&d.chunk_path(key));
        }
    }

    /// Pins a chunk already held (proactive fill of something reactive traffic brought in):
    /// from now on only [`remove`](Self::remove) takes it out. Returns whether it is held.
    pub fn pin(&self, id: ChunkId) -> bool {
        let key = id.key();
        let in_memory = self.memory.lock().pin(key, |(_, d, _)| d.len() as u64);
        let on_disk = self.usable_disk().is_some_and(|d| {
            let entry = {
                let mut t = d.tier.lock();
                if !t.pin(key, |e| e.len) {
                    return false;
                }
                t.pinned.get_mut(&key).map(|e| {
                    e.pinned = true;
                    e.clone()
                })
            };
            if let Some(e) = entry {
                let r = d.log(&put_record(&e));
                self.note_io(r);
            }
            true
        });
        in_memory || on_disk
    }

    /// Removes a chunk from both tiers (a purge, or a chunk found bad).
    pub fn remove(&self, id: ChunkId) {
        self.memory
            .lock()
            .remove(id.key(), |(_, d, _)| d.len() as u64);
        self.drop_disk(id);
    }

    /// Whether a chunk is held in either tier (no access is recorded).
    pub fn contains(&self, id: ChunkId) -> bool {
        let key = id.key();
        let m = self.memory.lock();
        if m.pinned.contains_key(&key) || m.entries.contains_key(&key) {
            return true;
        }
        drop(m);
        self.disk.as_ref().is_some_and(|d| {
            let t = d.tier.lock();
            t.pinned.contains_key(&key) || t.entries.contains_key(&key)
        })
    }

    /// Whether every chunk of `path` is held (the inventory a health report lists).
    pub fn holds_file(&self, path: &str) -> bool {
        self.meta(path).is_some_and(|m| {
            (0..m.chunks(self.config.chunk_size)).all(|i| self.contains(ChunkId::new(path, i)))
        })
    }

    /// The files whose chunks are all held.
    pub fn inventory(&self) -> Vec<String> {
        let paths: Vec<String> = self.metas.lock().keys().cloned().collect();
        let mut held: Vec<String> = paths.into_iter().filter(|p| self.holds_file(p)).collect();
        held.sort();
        held
    }

    /// The counters.
    pub fn stats(&self) -> StoreStats {
        let m = self.memory.lock();
        let (disk_bytes, disk_pinned) = self.disk.as_ref().map_or((0, 0), |d| {
            let t = d.tier.lock();
            (t.bytes(), t.pinned_bytes)
        });
        StoreStats {
            memory_hits: self.memory_hits.load(Ordering::Relaxed),
            disk_hits: self.disk_hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            corrupt: self.corrupt.load(Ordering::Relaxed),
            disk_errors: self.disk_errors.load(Ordering::Relaxed),
            memory_bytes: m.bytes(),
            disk_bytes,
            pinned_bytes: m.pinned_bytes.max(disk_pinned),
            disk_failed: self
                .disk
                .as_ref()
                .is_some_and(|d| d.failed.load(Ordering::Relaxed)),
        }
    }

    fn usable_disk(&self) -> Option<&Disk> {
        self.disk
            .as_ref()
            .filter(|d| !d.failed.load(Ordering::Relaxed))
    }

    fn note_io(&self, r: io::Result<()>) {
        let Some(d) = &self.disk else { return };
        match r {
            Ok(()) => d.errors_in_a_row.store(0, Ordering::Relaxed),
            Err(e) => {
                self.disk_errors.fetch_add(1, Ordering::Relaxed);
                let n = d.errors_in_a_row.fetch_add(1, Ordering::Relaxed) + 1;
                if n >= d.limit && !d.failed.swap(true, Ordering::Relaxed) {
                    tracing::error!(error = %e, errors = n, dir = %d.dir.display(), "disk declared failed: serving from memory and upstream only");
                }
            }
        }
    }
}

// === the disk index ===

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex32(s: &str) -> Option<Sha> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

fn seal(body: String) -> Vec<u8> {
    let crc = crc32fast::hash(body.as_bytes());
    format!("{body} {crc:08x}\n").into_bytes()
}

fn put_record(e: &DiskEntry) -> Vec<u8> {
    seal(format!(
        "P {:016x} {:016x} {} {} {} {}",
        e.id.key(),
        e.id.file,
        e.id.index,
        e.len,
        hex(&e.sha),
        u8::from(e.pinned)
    ))
}

fn del_record(key: u64) -> Vec<u8> {
    seal(format!("D {key:016x}"))
}

fn meta_record(m: &ObjectMeta) -> Vec<u8> {
    let secs = m
        .last_modified
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    // Paths and entity tags cannot hold spaces or newlines here: they are escaped.
    seal(format!(
        "M {} {} {} {}",
        escape(&m.path),
        m.len,
        escape(&m.etag),
        secs
    ))
}

fn escape(s: &str) -> String {
    s.replace('%', "%25")
        .replace(' ', "%20")
        .replace('\n', "%0A")
}

fn unescape(s: &str) -> String {
    s.replace("%0A", "\n")
        .replace("%20", " ")
        .replace("%25", "%")
}

enum Record {
    Put(DiskEntry),
    Del(u64),
    Meta(ObjectMeta),
}

fn parse_record(line: &str) -> Option<Record> {
    let (body, crc) = line.rsplit_once(' ')?;
    if u32::from_str_radix(crc, 16).ok()? != crc32fast::hash(body.as_bytes()) {
        return None;
    }
    let f: Vec<&str> = body.split(' ').collect();
    match f.as_slice() {
        ["P", key, file, index, len, sha, pinned] => {
            let id = ChunkId {
                file: u64::from_str_radix(file, 16).ok()?,
                index: index.parse().ok()?,
            };
            (u64::from_str_radix(key, 16).ok()? == id.key()).then_some(())?;
            Some(Record::Put(DiskEntry {
                id,
                len: len.parse().ok()?,
                sha: unhex32(sha)?,
                pinned: *pinned == "1",
            }))
        }
        ["D", key] => Some(Record::Del(u64::from_str_radix(key, 16).ok()?)),
        ["M", path, len, etag, secs] => Some(Record::Meta(ObjectMeta {
            path: unescape(path),
            len: len.parse().ok()?,
            etag: unescape(etag),
            last_modified: UNIX_EPOCH + Duration::from_secs(secs.parse().ok()?),
        })),
        _ => None,
    }
}

impl Disk {
    fn chunk_path(&self, key: u64) -> PathBuf {
        self.dir.join("chunks").join(format!("{key:016x}.chk"))
    }

    fn index_path(&self) -> PathBuf {
        self.dir.join("index.log")
    }

    fn log(&self, record: &[u8]) -> io::Result<()> {
        self.io.append_sync(&self.index_path(), record)
    }

    fn recover(dir: &Path, config: &StoreConfig, io: Arc<dyn DiskIo>) -> io::Result<Self> {
        std::fs::create_dir_all(dir.join("chunks"))?;
        let disk = Disk {
            dir: dir.to_path_buf(),
            io,
            tier: Mutex::new(Tier::new(config.policy, config.disk_bytes)),
            metas: Mutex::new(HashMap::new()),
            errors_in_a_row: AtomicU32::new(0),
            failed: AtomicBool::new(false),
            limit: config.disk_error_limit.max(1),
        };
        let text = match std::fs::read(disk.index_path()) {
            Ok(b) => String::from_utf8_lossy(&b).into_owned(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e),
        };
        let mut live: HashMap<u64, DiskEntry> = HashMap::new();
        let mut metas = HashMap::new();
        let mut torn = 0;
        for line in text.lines() {
            match parse_record(line) {
                Some(Record::Put(e)) => {
                    live.insert(e.id.key(), e);
                }
                Some(Record::Del(k)) => {
                    live.remove(&k);
                }
                Some(Record::Meta(m)) => {
                    metas.insert(m.path.clone(), m);
                }
                None => torn += 1,
            }
        }
        // Indexed chunks whose file is missing or the wrong size are dropped; files that
        // no record names (a crash between data and index) are deleted.
        let mut on_disk: HashMap<u64, u64> = HashMap::new();
        for entry in std::fs::read_dir(dir.join("chunks"))?.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let key = name
                .strip_suffix(".chk")
                .and_then(|k| u64::from_str_radix(k, 16).ok());
            match (key, entry.metadata()) {
                (Some(k), Ok(md)) => {
                    on_disk.insert(k, md.len());
                }
                _ => {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        let mut orphans = 0;
        for (&k, _) in on_disk.iter().filter(|(k, _)| !live.contains_key(k)) {
            orphans += 1;
            let _ = disk.io.remove(&disk.chunk_path(k));
        }
        live.retain(|k, e| on_disk.get(k) == Some(&e.len));
        // Admit in a stable order: pinned first, then the rest.
        let mut entries: Vec<DiskEntry> = live.into_values().collect();
        entries.sort_by_key(|e| (!e.pinned, e.id.file, e.id.index));
        {
            let mut t = disk.tier.lock();
            for e in entries {
                let (k, len, pinned) = (e.id.key(), e.len, e.pinned);
                for gone in t.insert(k, len, e, pinned) {
                    let _ = disk.io.remove(&disk.chunk_path(gone.id.key()));
                }
            }
        }
        // Compact: a fresh log with what is live, swapped in atomically.
        let mut log = Vec::new();
        for m in metas.values() {
            log.extend(meta_record(m));
        }
        {
            let t = disk.tier.lock();
            for e in t.pinned.values().chain(t.entries.values()) {
                log.extend(put_record(e));
            }
        }
        disk.io.write_atomic(&disk.index_path(), &log)?;
        tracing::info!(dir = %dir.display(), chunks = disk.tier.lock().entries.len(), orphans, torn, "disk tier recovered");
        *disk.metas.lock() = metas;
        Ok(disk)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(path: &str, len: u64) -> ObjectMeta {
        ObjectMeta {
            path: path.into(),
            len,
            etag: "\"e 1\"".into(),
            last_modified: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        }
    }

    #[test]
    fn records_round_trip_and_torn_ones_are_rejected() {
        let e = DiskEntry {
            id: ChunkId::new("a/b c.m4s", 3),
            len: 77,
            sha: sha256(b"x"),
            pinned: true,
        };
        let line = String::from_utf8(put_record(&e)).unwrap();
        match parse_record(line.trim_end()) {
            Some(Record::Put(p)) => {
                assert_eq!((p.id, p.len, p.sha, p.pinned), (e.id, 77, e.sha, true))
            }
            _ => panic!("a put record"),
        }
        assert!(parse_record(&line.trim_end()[..line.len() - 5]).is_none());
        let m = String::from_utf8(meta_record(&meta("a/b c.m4s", 9))).unwrap();
        match parse_record(m.trim_end()) {
            Some(Record::Meta(got)) => assert_eq!(got, meta("a/b c.m4s", 9)),
            _ => panic!("a meta record"),
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn pinned_chunks_survive_reactive_traffic() {
        let store = Arc::new(
            ChunkStore::open(StoreConfig {
                memory_bytes: 10,
                chunk_size: 1,
                ..StoreConfig::default()
            })
            .unwrap(),
        );
        let pinned = ChunkId::new("pinned", 0);
        store.insert(pinned, Bytes::from_static(b"pppp"), sha256(b"pppp"), true);
        for i in 0..100 {
            let id = ChunkId::new("reactive", i);
            store.insert(id, Bytes::from_static(b"rr"), sha256(b"rr"), false);
            let _ = store.get(id).await;
        }
        assert!(store.get_memory(pinned).is_some());
        let s = store.stats();
        assert_eq!(s.pinned_bytes, 4);
        assert!(s.memory_bytes <= 10);
    }
}
