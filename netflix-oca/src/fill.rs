//! Fill: fetching missing chunks from the tiers above, once per chunk.
//!
//! - **Single flight with read-while-writer.** The first request for a missing chunk
//!   starts a *flight*, a task of its own that fetches the chunk; every request for the same
//!   chunk while it flies follows it and streams the bytes as they arrive, so a thousand
//!   requests for a cold chunk make one upstream fetch and none waits for the whole chunk.
//!   The flight belongs to no request: a client that goes away does not cancel it. If the
//!   flight itself fails or is dropped, every follower gets an error, never a short body
//!   that looks complete.
//! - **Tiers with escalation.** Sources are tried in order (a peer in the cluster, then
//!   the parent or regional tier, then the origin). A source that errors or is silent for
//!   [`FillConfig::idle_timeout`] is abandoned for the next one, which is asked only for the
//!   bytes still missing (a ranged, resumable fill).
//! - **Checksums.** Each upstream answer to a fill carries `Content-Digest: sha-256=...`
//!   (RFC 9530) for the bytes it sent; they are checked before the chunk is stored, and a
//!   mismatch fails the flight. The stored chunk keeps its own SHA-256 for the disk tier.
//!
//! # Example
//!
//! An edge that fills from a peer first, then the regional tier, then the origin (the
//! peer is usually chosen per file by placement: see [`crate::server::placement_route`]).
//!
//! ```no_run
//! use netflix_oca::fill::{FillConfig, Filler, Upstream};
//! use netflix_oca::http::client::HttpUpstream;
//! use netflix_oca::store::{ChunkStore, StoreConfig};
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! # fn main() -> std::io::Result<()> {
//! let store = Arc::new(ChunkStore::open(StoreConfig::default())?);
//! let tiers: Vec<Arc<dyn Upstream>> = vec![
//!     Arc::new(HttpUpstream::peer("oca-2", "10.1.0.2:80".parse().unwrap())),
//!     Arc::new(HttpUpstream::new("regional", "10.0.0.1:80".parse().unwrap())),
//!     Arc::new(HttpUpstream::new("origin", "10.9.0.1:80".parse().unwrap())),
//! ];
//! let filler = Filler::new(store, tiers, FillConfig { idle_timeout: Duration::from_secs(1) });
//! # let _ = filler;
//! # Ok(()) }
//! ```

use crate::http::range::ByteRange;
use crate::store::{ChunkId, ChunkStore, ObjectMeta, Sha};
use bytes::Bytes;
use http_body_util::BodyExt as _;
use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{OnceCell, watch};

/// A boxed error from an upstream body.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A boxed future, as [`Upstream`] returns them.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A body of bytes arriving from upstream.
pub type UpstreamBody = http_body_util::combinators::BoxBody<Bytes, BoxError>;

/// Why a fill failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FillError {
    /// The file does not exist upstream (404 from the last tier).
    NotFound,
    /// Every tier failed; the last reason.
    Exhausted(String),
    /// An upstream's bytes did not match the digest it declared.
    Checksum {
        /// The tier that sent them.
        tier: String,
    },
    /// The flight was dropped before it finished (shutdown).
    Abandoned,
}

impl fmt::Display for FillError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FillError::NotFound => f.write_str("not found upstream"),
            FillError::Exhausted(why) => write!(f, "every fill source failed: {why}"),
            FillError::Checksum { tier } => write!(f, "bytes from {tier} failed their checksum"),
            FillError::Abandoned => f.write_str("the fill was abandoned"),
        }
    }
}

impl std::error::Error for FillError {}

/// An upstream's answer to a ranged GET.
#[derive(Debug)]
pub struct Fetched {
    /// The file's metadata, from the response headers.
    pub meta: ObjectMeta,
    /// The bytes the body carries.
    pub range: ByteRange,
    /// The digest the upstream declared for them, if any.
    pub digest: Option<Sha>,
    /// The body.
    pub body: UpstreamBody,
}

/// A source of files above this appliance: a peer, a parent tier, the origin.
pub trait Upstream: Send + Sync + fmt::Debug + 'static {
    /// A name for logs and errors.
    fn name(&self) -> &str;

    /// The file's metadata (a HEAD). `Err(FillError::NotFound)` when it does not exist.
    fn head<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Result<ObjectMeta, FillError>>;

    /// A range of the file (a ranged GET, asking for a digest).
    fn get<'a>(
        &'a self,
        path: &'a str,
        range: ByteRange,
    ) -> BoxFuture<'a, Result<Fetched, FillError>>;

    /// The digest of a range, without its bytes (a ranged HEAD): how a fill that was
    /// resumed across sources checks the chunk it assembled.
    fn digest<'a>(
        &'a self,
        path: &'a str,
        range: ByteRange,
    ) -> BoxFuture<'a, Result<Sha, FillError>>;
}

/// Fill settings.
#[derive(Debug, Clone)]
pub struct FillConfig {
    /// How long a source may take to answer, or stay silent mid-body, before the next
    /// source is asked (default 2 s).
    pub idle_timeout: Duration,
}

impl Default for FillConfig {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(2),
        }
    }
}

#[derive(Debug, Clone)]
enum Progress {
    Running(usize),
    Done,
    Failed(FillError),
}

#[derive(Debug)]
struct Flight {
    pieces: Mutex<Vec<Bytes>>,
    progress: watch::Sender<Progress>,
}

/// Follows a flight: the chunk's bytes as they arrive.
#[derive(Debug)]
pub struct FlightReader {
    flight: Arc<Flight>,
    rx: watch::Receiver<Progress>,
    next: usize,
}

impl FlightReader {
    /// The next piece of the chunk; `None` once the whole chunk has been read; an error if
    /// the flight failed (the bytes read so far are not a complete chunk).
    pub async fn next(&mut self) -> Option<Result<Bytes, FillError>> {
        loop {
            {
                let pieces = self.flight.pieces.lock();
                if self.next < pieces.len() {
                    self.next += 1;
                    return Some(Ok(pieces[self.next - 1].clone()));
                }
            }
            let p = self.rx.borrow_and_update().clone();
            match p {
                Progress::Done => {
                    if self.next < self.flight.pieces.lock().len() {
                        continue;
                    }
                    return None;
                }
                Progress::Failed(e) => return Some(Err(e)),
                Progress::Running(n) if n > self.next => continue,
                Progress::Running(_) => {
                    if self.rx.changed().await.is_err() {
                        return Some(Err(FillError::Abandoned));
                    }
                }
            }
        }
    }

    /// Reads the rest of the chunk into one buffer.
    pub async fn collect(mut self) -> Result<Bytes, FillError> {
        let mut parts = Vec::new();
        while let Some(p) = self.next().await {
            parts.push(p?);
        }
        Ok(concat(parts))
    }
}

fn concat(parts: Vec<Bytes>) -> Bytes {
    if parts.len() == 1 {
        return parts.into_iter().next().expect("one part");
    }
    let mut all = Vec::with_capacity(parts.iter().map(Bytes::len).sum());
    for p in parts {
        all.extend_from_slice(&p);
    }
    Bytes::from(all)
}

/// Counters of the filler.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FillStats {
    /// Flights started (chunks fetched from upstream).
    pub flights: u64,
    /// Requests that followed a flight already in the air.
    pub followers: u64,
    /// Metadata lookups sent upstream.
    pub heads: u64,
    /// Times a source was abandoned for the next one.
    pub escalations: u64,
    /// Flights that failed.
    pub failures: u64,
}

type MetaCell = Arc<OnceCell<Result<Arc<ObjectMeta>, FillError>>>;

/// Fills chunks into a [`ChunkStore`] from a list of upstream tiers.
#[derive(Debug)]
pub struct Filler {
    store: Arc<ChunkStore>,
    tiers: Vec<Arc<dyn Upstream>>,
    config: FillConfig,
    flights: Mutex<HashMap<ChunkId, Arc<Flight>>>,
    metas: Mutex<HashMap<String, MetaCell>>,
    flights_started: AtomicU64,
    followers: AtomicU64,
    heads: AtomicU64,
    escalations: AtomicU64,
    failures: AtomicU64,
}

/// How a chunk is to be had.
#[derive(Debug)]
pub enum ChunkSource {
    /// In the store now.
    Ready(Bytes),
    /// Arriving: follow the flight.
    Flying(FlightReader),
}

impl Filler {
    /// A filler over `store` fetching from `tiers`, tried in order.
    pub fn new(store: Arc<ChunkStore>, tiers: Vec<Arc<dyn Upstream>>, config: FillConfig) -> Self {
        Self {
            store,
            tiers,
            config,
            flights: Mutex::new(HashMap::new()),
            metas: Mutex::new(HashMap::new()),
            flights_started: AtomicU64::new(0),
            followers: AtomicU64::new(0),
            heads: AtomicU64::new(0),
            escalations: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        }
    }

    /// The store filled.
    pub fn store(&self) -> &Arc<ChunkStore> {
        &self.store
    }

    /// The counters.
    pub fn stats(&self) -> FillStats {
        FillStats {
            flights: self.flights_started.load(Ordering::Relaxed),
            followers: self.followers.load(Ordering::Relaxed),
            heads: self.heads.load(Ordering::Relaxed),
            escalations: self.escalations.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
        }
    }

    /// The file's metadata: from the store, else from the first tier that knows it (one
    /// lookup however many ask at once).
    ///
    /// # Errors
    ///
    /// [`FillError::NotFound`] when the tiers say it does not exist, or the last tier's
    /// failure.
    pub async fn meta(
        &self,
        path: &str,
        tiers: &[Arc<dyn Upstream>],
    ) -> Result<Arc<ObjectMeta>, FillError> {
        if let Some(m) = self.store.meta(path) {
            return Ok(m);
        }
        let cell = self
            .metas
            .lock()
            .entry(path.to_string())
            .or_default()
            .clone();
        let result = cell
            .get_or_init(|| async {
                // A lookup that finished between our check above and this cell's creation
                // has already stored the answer: no second HEAD.
                if let Some(m) = self.store.meta(path) {
                    return Ok(m);
                }
                self.heads.fetch_add(1, Ordering::Relaxed);
                let mut last = FillError::Exhausted("no fill source is configured".into());
                for t in self.tiers_for(tiers) {
                    match tokio::time::timeout(self.config.idle_timeout, t.head(path)).await {
                        Ok(Ok(meta)) => return Ok(self.store.put_meta(meta)),
                        Ok(Err(FillError::NotFound)) => last = FillError::NotFound,
                        Ok(Err(e)) => last = e,
                        Err(_) => last = FillError::Exhausted(format!("{} timed out", t.name())),
                    }
                }
                Err(last)
            })
            .await
            .clone();
        self.metas.lock().remove(path);
        result
    }

    fn tiers_for<'a>(
        &'a self,
        extra: &'a [Arc<dyn Upstream>],
    ) -> impl Iterator<Item = &'a Arc<dyn Upstream>> {
        extra.iter().chain(self.tiers.iter())
    }

    /// Chunk `index` of `meta`'s file: from the store, or by joining or starting a
    /// flight. `first` are sources to try before the filler's own tiers (the peer that
    /// holds the file, by placement). `pinned` stores it as proactively filled.
    pub async fn chunk(
        self: &Arc<Self>,
        meta: &Arc<ObjectMeta>,
        index: u64,
        first: Vec<Arc<dyn Upstream>>,
        pinned: bool,
    ) -> ChunkSource {
        let id = ChunkId::new(&meta.path, index);
        if let Some(c) = self.store.get_memory(id) {
            return ChunkSource::Ready(c.data);
        }
        if let Some(f) = self.follow(id) {
            return ChunkSource::Flying(f);
        }
        if let Some(c) = self.store.get(id).await {
            return ChunkSource::Ready(c.data);
        }
        let (flight, started) = {
            let mut flights = self.flights.lock();
            match flights.get(&id) {
                Some(f) => (f.clone(), false),
                None => {
                    let (tx, _) = watch::channel(Progress::Running(0));
                    let f = Arc::new(Flight {
                        pieces: Mutex::new(Vec::new()),
                        progress: tx,
                    });
                    flights.insert(id, f.clone());
                    (f, true)
                }
            }
        };
        if started {
            self.flights_started.fetch_add(1, Ordering::Relaxed);
            let this = self.clone();
            let meta = meta.clone();
            let f = flight.clone();
            tokio::spawn(async move { this.fly(id, meta, index, first, pinned, f).await });
        } else {
            self.followers.fetch_add(1, Ordering::Relaxed);
        }
        ChunkSource::Flying(reader(flight))
    }

    fn follow(&self, id: ChunkId) -> Option<FlightReader> {
        let f = self.flights.lock().get(&id).cloned()?;
        self.followers.fetch_add(1, Ordering::Relaxed);
        Some(reader(f))
    }

    async fn fly(
        self: Arc<Self>,
        id: ChunkId,
        meta: Arc<ObjectMeta>,
        index: u64,
        first: Vec<Arc<dyn Upstream>>,
        pinned: bool,
        flight: Arc<Flight>,
    ) {
        // If this task is dropped before it finishes, followers must hear of it.
        struct Guard<'a> {
            flight: &'a Flight,
            filler: &'a Filler,
            id: ChunkId,
            done: bool,
        }
        impl Drop for Guard<'_> {
            fn drop(&mut self) {
                if !self.done {
                    self.flight
                        .progress
                        .send_replace(Progress::Failed(FillError::Abandoned));
                    self.filler.flights.lock().remove(&self.id);
                }
            }
        }
        let mut guard = Guard {
            flight: &flight,
            filler: &self,
            id,
            done: false,
        };
        let size = self.store.chunk_size();
        let start = index * size;
        let end = (start + size).min(meta.len);
        let result = self
            .fetch_chunk(&meta.path, start, end, &first, &flight)
            .await;
        match result {
            Ok(sha) => {
                let data = concat(flight.pieces.lock().clone());
                self.store.insert(id, data, sha, pinned);
                flight.progress.send_replace(Progress::Done);
            }
            Err(e) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(path = %meta.path, index, error = %e, "fill failed");
                flight.progress.send_replace(Progress::Failed(e));
            }
        }
        self.flights.lock().remove(&id);
        guard.done = true;
    }

    /// Fetches bytes `start..end` into the flight, escalating and resuming across tiers.
    async fn fetch_chunk(
        &self,
        path: &str,
        start: u64,
        end: u64,
        first: &[Arc<dyn Upstream>],
        flight: &Flight,
    ) -> Result<Sha, FillError> {
        let mut whole = Sha256::new();
        let mut got = 0u64;
        let mut resumed = false;
        let mut last = FillError::Exhausted("no fill source is configured".into());
        let idle = self.config.idle_timeout;
        for (n, tier) in self.tiers_for(first).enumerate() {
            if n > 0 {
                self.escalations.fetch_add(1, Ordering::Relaxed);
            }
            let want = ByteRange {
                start: start + got,
                end,
            };
            let fetched = match tokio::time::timeout(idle, tier.get(path, want)).await {
                Ok(Ok(f)) => f,
                Ok(Err(e)) => {
                    tracing::debug!(tier = tier.name(), error = %e, "fill source failed; escalating");
                    last = e;
                    continue;
                }
                Err(_) => {
                    last =
                        FillError::Exhausted(format!("{} did not answer in {idle:?}", tier.name()));
                    continue;
                }
            };
            if fetched.range != want {
                last = FillError::Exhausted(format!("{} sent other bytes than asked", tier.name()));
                continue;
            }
            let Some(digest) = fetched.digest else {
                last = FillError::Exhausted(format!("{} sent no digest", tier.name()));
                continue;
            };
            let mut part = Sha256::new();
            let mut part_len = 0u64;
            let mut body = fetched.body;
            let failed = loop {
                match tokio::time::timeout(idle, body.frame()).await {
                    Err(_) => break Some(format!("{} went silent for {idle:?}", tier.name())),
                    Ok(None) => break None,
                    Ok(Some(Err(e))) => break Some(format!("{}: {e}", tier.name())),
                    Ok(Some(Ok(frame))) => {
                        let Ok(data) = frame.into_data() else {
                            continue;
                        };
                        if data.is_empty() {
                            continue;
                        }
                        let room = (want.len() - part_len) as usize;
                        let data = if data.len() > room {
                            data.slice(..room)
                        } else {
                            data
                        };
                        part.update(&data);
                        whole.update(&data);
                        part_len += data.len() as u64;
                        got += data.len() as u64;
                        let count = {
                            let mut pieces = flight.pieces.lock();
                            pieces.push(data);
                            pieces.len()
                        };
                        flight.progress.send_replace(Progress::Running(count));
                    }
                }
            };
            if part_len == want.len() {
                if <[u8; 32]>::from(part.finalize()) != digest {
                    return Err(FillError::Checksum {
                        tier: tier.name().to_string(),
                    });
                }
            } else if part_len > 0 {
                // The bytes that did arrive stay (followers have them already); the next
                // source is asked for the rest, and the assembled chunk is checked whole.
                resumed = true;
            }
            if got == end - start {
                if resumed {
                    let full = ByteRange { start, end };
                    let sha: Sha = whole.finalize().into();
                    return match tokio::time::timeout(idle, tier.digest(path, full)).await {
                        Ok(Ok(d)) if d == sha => Ok(sha),
                        Ok(Ok(_)) => Err(FillError::Checksum {
                            tier: tier.name().to_string(),
                        }),
                        Ok(Err(e)) => Err(e),
                        Err(_) => Err(FillError::Exhausted(format!(
                            "{} did not give a digest",
                            tier.name()
                        ))),
                    };
                }
                return Ok(whole.finalize().into());
            }
            last = FillError::Exhausted(
                failed.unwrap_or_else(|| format!("{} ended early", tier.name())),
            );
        }
        Err(last)
    }
}

fn reader(flight: Arc<Flight>) -> FlightReader {
    let rx = flight.progress.subscribe();
    FlightReader {
        flight,
        rx,
        next: 0,
    }
}
