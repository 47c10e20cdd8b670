//! Proactive fill: popular titles are placed on the appliances before anyone asks.
//!
//! Every day the control plane predicts what each cluster's members will watch and
//! publishes a [`FillManifest`]: titles by popularity rank, each with its files. Each
//! appliance takes from it the files that placement puts on it (with the number of copies
//! the title's rank earns, [`CopyPolicy`]) and fills them, pinned so reactive traffic
//! cannot evict them, inside an off-peak [`FillWindow`] and under a [`TokenBucket`] rate
//! cap, so filling never competes with peak-hour serving.
//!
//! ```
//! use netflix_oca::proactive::{FillWindow, TokenBucket};
//! use std::time::Duration;
//!
//! // 02:00 to 06:00 UTC; the window may wrap midnight (22:00 to 04:00).
//! let w = FillWindow::new(2 * 3600, 6 * 3600);
//! assert!(w.contains(Duration::from_secs(3 * 3600)));
//! assert!(!w.contains(Duration::from_secs(12 * 3600)));
//! assert!(FillWindow::new(22 * 3600, 4 * 3600).contains(Duration::from_secs(23 * 3600)));
//!
//! // 10 MB/s with a 2 MB burst: 5 MB more needs 0.3 s beyond the burst.
//! let mut bucket = TokenBucket::new(10_000_000, 2_000_000);
//! assert_eq!(bucket.take(2_000_000, Duration::ZERO), Duration::ZERO);
//! assert_eq!(bucket.take(3_000_000, Duration::ZERO), Duration::from_millis(300));
//! ```

use crate::fill::{ChunkSource, FillError, Filler};
use crate::placement::{CopyPolicy, Placement};
use crate::store::ChunkId;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// One title of a fill manifest.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ManifestTitle {
    /// The title's id.
    pub title: String,
    /// Its predicted popularity rank in the cluster (0 is the most popular).
    pub rank: usize,
    /// Its files (every rendition's segments, manifests, init segments).
    pub files: Vec<String>,
}

/// The control plane's daily list of titles to place in a cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FillManifest {
    /// The cluster it is for.
    pub cluster: String,
    /// The day it is for (`YYYY-MM-DD`), for logs.
    pub day: String,
    /// The titles, most popular first.
    pub titles: Vec<ManifestTitle>,
}

/// An off-peak window, as seconds after midnight UTC: `[start, end)`, wrapping midnight
/// when `end < start`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FillWindow {
    start: u32,
    end: u32,
}

impl FillWindow {
    /// A window from `start` to `end` seconds after midnight (taken modulo a day).
    pub fn new(start: u32, end: u32) -> Self {
        Self {
            start: start % 86_400,
            end: end % 86_400,
        }
    }

    /// A window that is always open (tests, and appliances with no peak to avoid).
    pub fn always() -> Self {
        Self { start: 0, end: 0 }
    }

    /// Whether the time of day `t` (since midnight) is inside.
    pub fn contains(&self, t: Duration) -> bool {
        let s = (t.as_secs() % 86_400) as u32;
        match self.start.cmp(&self.end) {
            std::cmp::Ordering::Equal => true,
            std::cmp::Ordering::Less => (self.start..self.end).contains(&s),
            std::cmp::Ordering::Greater => s >= self.start || s < self.end,
        }
    }

    /// How long from time of day `t` until the window opens (zero inside it).
    pub fn wait(&self, t: Duration) -> Duration {
        if self.contains(t) {
            return Duration::ZERO;
        }
        let s = (t.as_secs() % 86_400) as u32;
        Duration::from_secs(u64::from((self.start + 86_400 - s) % 86_400))
    }
}

/// A token bucket over bytes: `rate` bytes a second, at most `burst` saved up.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Duration,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate: u64, burst: u64) -> Self {
        Self {
            rate: rate.max(1) as f64,
            burst: burst as f64,
            tokens: burst as f64,
            last: Duration::ZERO,
        }
    }

    /// Takes `n` bytes at time `now` (any monotonic clock); returns how long to wait before
    /// sending them so the rate holds (zero when the bucket had them).
    pub fn take(&mut self, n: u64, now: Duration) -> Duration {
        let elapsed = now.saturating_sub(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.tokens -= n as f64;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate)
        }
    }
}

/// What one proactive pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FillReport {
    /// Files this appliance was to hold.
    pub files: usize,
    /// Files already held before the pass.
    pub already: usize,
    /// Bytes fetched.
    pub bytes: u64,
    /// Files that could not be filled.
    pub failed: usize,
}

/// Fills an appliance's share of a manifest.
#[derive(Debug, Clone)]
pub struct ProactiveFill {
    filler: Arc<Filler>,
    placement: Placement,
    me: String,
    copies: CopyPolicy,
    window: FillWindow,
    rate: u64,
}

impl ProactiveFill {
    /// Proactive fill for the node called `me` of `placement`, through `filler`. By default
    /// the window is always open, the rate cap 100 MB/s, copies [`CopyPolicy::default`].
    pub fn new(filler: Arc<Filler>, placement: Placement, me: impl Into<String>) -> Self {
        Self {
            filler,
            placement,
            me: me.into(),
            copies: CopyPolicy::default(),
            window: FillWindow::always(),
            rate: 100_000_000,
        }
    }

    /// Sets the off-peak window.
    #[must_use]
    pub fn window(mut self, window: FillWindow) -> Self {
        self.window = window;
        self
    }

    /// Caps the fill rate, in bytes a second.
    #[must_use]
    pub fn rate(mut self, bytes_per_second: u64) -> Self {
        self.rate = bytes_per_second;
        self
    }

    /// Sets how many copies a title's rank earns.
    #[must_use]
    pub fn copies(mut self, copies: CopyPolicy) -> Self {
        self.copies = copies;
        self
    }

    /// The files of `manifest` that placement puts on this node: every file of each title
    /// whose copies (as many as its rank earns) include this node.
    pub fn share(&self, manifest: &FillManifest) -> Vec<String> {
        let Some(me) = self
            .placement
            .nodes()
            .iter()
            .position(|n| n.name() == self.me)
        else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for t in &manifest.titles {
            let k = self.copies.copies(t.rank);
            if self.placement.replicas(t.title.as_bytes(), k).contains(&me) {
                out.extend(t.files.iter().cloned());
            }
        }
        out
    }

    /// Fills this node's share of `manifest`, pinned, waiting for the window and keeping
    /// to the rate cap. Files already held are pinned in place.
    pub async fn run(&self, manifest: &FillManifest) -> FillReport {
        let mut report = FillReport::default();
        let files = self.share(manifest);
        report.files = files.len();
        let start = tokio::time::Instant::now();
        let mut bucket = TokenBucket::new(self.rate, self.filler.store().chunk_size().max(1 << 20));
        let store = self.filler.store().clone();
        for path in files {
            let wait = self.window.wait(time_of_day());
            if !wait.is_zero() {
                tracing::info!(?wait, "proactive fill waits for its window");
                tokio::time::sleep(wait).await;
            }
            if store.holds_file(&path) {
                report.already += 1;
                let meta = store.meta(&path).expect("held files have metadata");
                for i in 0..meta.chunks(store.chunk_size()) {
                    store.pin(ChunkId::new(&path, i));
                }
                continue;
            }
            match self.fill_file(&path, &mut bucket, start).await {
                Ok(bytes) => report.bytes += bytes,
                Err(e) => {
                    tracing::warn!(path, error = %e, "proactive fill failed");
                    report.failed += 1;
                }
            }
        }
        tracing::info!(?report, cluster = %manifest.cluster, node = %self.me, "proactive fill pass done");
        report
    }

    async fn fill_file(
        &self,
        path: &str,
        bucket: &mut TokenBucket,
        start: tokio::time::Instant,
    ) -> Result<u64, FillError> {
        let meta = self.filler.meta(path, &[]).await?;
        let size = self.filler.store().chunk_size();
        let mut bytes = 0;
        for i in 0..meta.chunks(size) {
            let id = ChunkId::new(path, i);
            if self.filler.store().pin(id) {
                continue;
            }
            let len = (meta.len - i * size).min(size);
            let wait = bucket.take(len, start.elapsed());
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
            match self.filler.chunk(&meta, i, Vec::new(), true).await {
                ChunkSource::Ready(_) => {
                    self.filler.store().pin(id);
                }
                ChunkSource::Flying(r) => {
                    r.collect().await?;
                    // A reactive flight may have stored it unpinned.
                    self.filler.store().pin(id);
                }
            }
            bytes += len;
        }
        Ok(bytes)
    }
}

fn time_of_day() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(Duration::ZERO, |d| {
            Duration::from_secs(d.as_secs() % 86_400)
        })
}
