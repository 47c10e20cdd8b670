//! The replicated client: reads from the local zone with fallback, writes to every copy.

use crate::codec::{self, CodecConfig, Manifest};
use crate::conn::Replies;
use crate::discovery::Discovery;
use crate::error::{Error, Result};
use crate::ketama::{Continuum, Mode};
use crate::latch::{CopyFuture, Latch, Outcome, Policy};
use crate::metrics::{ClientStats, Ended, Metrics, Op, ZoneStats};
use crate::near::{HotKeys, Near, NearCache};
use crate::node::{Health, Node, NodeConfig};
use crate::protocol::{Expect, GetFlags, Reply, SetFlags, Writer, set_request};
use crate::topology::{ServerGroup, Topology};
use bytes::Bytes;
use parking_lot::Mutex;
use parking_lot::RwLock;
use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::Poll;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;
use tracing::Instrument;

/// memcached reads a TTL above 30 days as an absolute Unix time.
const THIRTY_DAYS: u64 = 60 * 60 * 24 * 30;
/// memcached's longest key.
pub const MAX_KEY_LEN: usize = 250;

/// A replicated memcached client: one full copy of the cache per server group (zone).
///
/// * Reads go to the local zone's node for the key (ketama), and on a miss or an error to
///   the next zone, up to [`read_tries`](Builder::read_tries) zones.
/// * Writes go to every zone at once and return a [`Latch`] once its [`Policy`] is met
///   (or cannot be); the other copies finish in the background.
///
/// Cloning is cheap (an `Arc`); clones share connections.
///
/// # Example
///
/// ```no_run
/// use netflix_evcache::{EvCache, Policy};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let cache = EvCache::builder("MOVIES")
///     .nodes("us-east-1a=10.0.1.1:11211;us-east-1b=10.0.2.1:11211;us-east-1c=10.0.3.1:11211")?
///     .local_zone("us-east-1a")
///     .latch(Policy::Quorum)
///     .build()?;
/// let latch = cache.set("title:80100172", b"Stranger Things".as_slice(), None).await?;
/// assert!(latch.is_met());
/// let v = cache.get("title:80100172").await?;
/// assert_eq!(v.as_deref(), Some(&b"Stranger Things"[..]));
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct EvCache {
    inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    app: String,
    prefix: Option<String>,
    /// The servers now; replaced whole when discovery changes them.
    view: RwLock<Arc<View>>,
    default_ttl: Duration,
    latch: Policy,
    fallback_on_miss: bool,
    /// How views are built.
    shape: Shape,
    codec: CodecConfig,
    key_hashing: KeyHashing,
    near: Option<Near>,
    hedge: Option<Duration>,
    lease: Lease,
    stats: ClientStats,
    zone_stats: Mutex<Vec<(String, Arc<ZoneStats>)>>,
}

impl Inner {
    /// The counters of zone `name`, made on first use; kept across topology changes.
    fn zone_stats(&self, name: &str) -> Arc<ZoneStats> {
        zone_stats_in(&self.zone_stats, name)
    }
}

fn zone_stats_in(registry: &Mutex<Vec<(String, Arc<ZoneStats>)>>, name: &str) -> Arc<ZoneStats> {
    let mut r = registry.lock();
    if let Some((_, z)) = r.iter().find(|(n, _)| n == name) {
        return z.clone();
    }
    let z = Arc::new(ZoneStats::default());
    r.push((name.to_string(), z.clone()));
    z
}

/// How `get_or_compute` coordinates callers of one cold key.
#[derive(Debug, Clone, Copy)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default))]
pub struct Lease {
    /// How long the winner's claim lasts if it never writes (it crashed): after this, the
    /// next caller wins. Default 10 s.
    #[cfg_attr(feature = "serde", serde(with = "crate::config::millis"))]
    pub ttl: Duration,
    /// How long the other callers wait for the winner's value before computing it
    /// themselves. Default 1 s.
    #[cfg_attr(feature = "serde", serde(with = "crate::config::millis"))]
    pub wait: Duration,
}

impl Default for Lease {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(10),
            wait: Duration::from_secs(1),
        }
    }
}

/// When keys are hashed to fit memcached.
///
/// A hashed key is the MD5 of `prefix:key` in URL-safe base64 (keeping the prefix in
/// front). The value is stored with the original key in front of it, and a read checks
/// it: two keys that hash alike never return each other's value (a collision reads as a
/// miss). Counters (`incr`/`decr`) are stored without it, being numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub enum KeyHashing {
    /// Never (EVCache's default): keys over 250 bytes are refused.
    #[default]
    Off,
    /// Only keys too long for memcached.
    OverLength,
    /// Every key (keys of any length and spread; values carry their key).
    Always,
}

/// How a topology becomes a [`View`]: the same for the first one and every change.
#[derive(Debug, Clone, Default)]
struct Shape {
    mode: Mode,
    node: NodeConfig,
    local_zone: Option<String>,
    read_tries: Option<usize>,
}

/// The server groups at one moment.
#[derive(Debug)]
pub(crate) struct View {
    groups: Vec<Group>,
    /// Readable groups in read order: the local zone first.
    read_order: Vec<usize>,
    /// How many zones a read may ask.
    read_tries: usize,
}

impl View {
    fn topology(&self) -> Topology {
        Topology::new(self.groups.iter().map(|g| g.spec.clone()).collect())
    }

    /// A view of `topology`, reusing `old`'s nodes (connections and health) where the
    /// address is the same.
    fn build(
        topology: &Topology,
        old: Option<&View>,
        shape: &Shape,
        stats: &dyn Fn(&str) -> Arc<ZoneStats>,
    ) -> Result<View> {
        topology.validate()?;
        let existing: HashMap<SocketAddr, Arc<Node>> = old
            .map(|v| {
                v.groups
                    .iter()
                    .flat_map(|g| g.nodes.iter().map(|n| (n.addr, n.clone())))
                    .collect()
            })
            .unwrap_or_default();
        let mut groups = Vec::with_capacity(topology.groups.len());
        for g in &topology.groups {
            let ring =
                Continuum::new(&g.nodes, shape.mode).map_err(|e| Error::Config(e.to_string()))?;
            let nodes = g
                .nodes
                .iter()
                .map(|n| {
                    let addr = n
                        .socket_string()
                        .to_socket_addrs()
                        .ok()
                        .and_then(|mut a| a.next())
                        .ok_or_else(|| Error::Config(format!("`{n}` does not resolve")))?;
                    Ok(existing
                        .get(&addr)
                        .cloned()
                        .unwrap_or_else(|| Arc::new(Node::new(addr, shape.node.clone()))))
                })
                .collect::<Result<Vec<_>>>()?;
            groups.push(Group {
                spec: g.clone(),
                stats: stats(&g.name),
                name: Arc::from(g.name.as_str()),
                write_only: g.write_only,
                nodes,
                ring,
            });
        }
        let mut read_order: Vec<usize> = (0..groups.len())
            .filter(|&i| !groups[i].write_only)
            .collect();
        if let Some(zone) = shape.local_zone.as_deref() {
            let at = read_order
                .iter()
                .position(|&i| &*groups[i].name == zone)
                .ok_or_else(|| {
                    Error::Config(format!(
                        "the local zone `{zone}` is not a readable server group"
                    ))
                })?;
            let local = read_order.remove(at);
            read_order.insert(0, local);
        }
        let read_tries = shape
            .read_tries
            .unwrap_or(read_order.len())
            .min(read_order.len());
        Ok(View {
            groups,
            read_order,
            read_tries,
        })
    }
}

#[derive(Debug)]
struct Group {
    /// The group as configured.
    spec: ServerGroup,
    name: Arc<str>,
    stats: Arc<ZoneStats>,
    write_only: bool,
    nodes: Vec<Arc<Node>>,
    ring: Continuum,
}

impl Group {
    fn node_for(&self, key: &[u8]) -> &Arc<Node> {
        if self.nodes.len() == 1 {
            // One node holds every key: no need to hash.
            return &self.nodes[0];
        }
        &self.nodes[self.ring.locate(key)]
    }
}

/// Builds an [`EvCache`].
#[derive(Debug)]
pub struct Builder {
    app: String,
    prefix: Option<String>,
    topology: Topology,
    shape: Shape,
    default_ttl: Duration,
    latch: Policy,
    fallback_on_miss: bool,
    codec: CodecConfig,
    key_hashing: KeyHashing,
    near: Option<Near>,
    hedge: Option<Duration>,
    lease: Lease,
}

impl EvCache {
    /// A builder for the app `app` (EVCache's app name, such as `EVCACHE_MOVIES`).
    pub fn builder(app: impl Into<String>) -> Builder {
        Builder {
            app: app.into(),
            prefix: None,
            topology: Topology::default(),
            shape: Shape::default(),
            default_ttl: Duration::from_secs(900),
            latch: Policy::default(),
            fallback_on_miss: true,
            codec: CodecConfig::default(),
            key_hashing: KeyHashing::Off,
            near: None,
            hedge: None,
            lease: Lease::default(),
        }
    }

    /// The app name.
    pub fn app(&self) -> &str {
        &self.inner.app
    }

    pub(crate) fn from_inner(inner: Arc<Inner>) -> Self {
        Self { inner }
    }

    fn view(&self) -> Arc<View> {
        self.inner.view.read().clone()
    }

    /// A snapshot of the counters (see [`metrics`](crate::metrics)).
    pub fn metrics(&self) -> Metrics {
        crate::metrics::snapshot(&self.inner.zone_stats.lock(), &self.inner.stats)
    }

    /// The servers now, as a [`Topology`].
    pub fn topology(&self) -> Topology {
        self.view().topology()
    }

    /// Replaces the servers. Nodes whose address stays keep their connections and health;
    /// keys move only as far as ketama moves them.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for an invalid topology (the servers stay as they were).
    pub fn set_topology(&self, topology: &Topology) -> Result<()> {
        let old = self.view();
        let view = View::build(topology, Some(&old), &self.inner.shape, &|z| {
            self.inner.zone_stats(z)
        })?;
        *self.inner.view.write() = Arc::new(view);
        tracing::info!(app = %self.inner.app, nodes = %topology.to_nodes_string(), "server groups changed");
        Ok(())
    }

    /// Each server group's name and the health of each of its nodes.
    pub fn health(&self) -> Vec<(String, Vec<(SocketAddr, Health)>)> {
        self.view()
            .groups
            .iter()
            .map(|g| {
                (
                    g.name.to_string(),
                    g.nodes.iter().map(|n| (n.addr, n.health())).collect(),
                )
            })
            .collect()
    }

    /// The key as sent to memcached: `prefix:key`, validated, and hashed when
    /// [`KeyHashing`] says so.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidKey`] for an empty key, one holding whitespace or control bytes, or
    /// (without key hashing) one over 250 bytes with its prefix.
    pub fn canonical_key(&self, key: &str) -> Result<Vec<u8>> {
        Ok(self.key(key)?.wire)
    }

    fn key(&self, key: &str) -> Result<Key> {
        let k = match &self.inner.prefix {
            Some(p) => format!("{p}:{key}").into_bytes(),
            None => key.as_bytes().to_vec(),
        };
        let bad = |reason| Error::InvalidKey {
            key: key.chars().take(80).collect(),
            reason,
        };
        if key.is_empty() {
            return Err(bad("empty"));
        }
        if k.iter().any(|&b| b <= b' ' || b == 0x7f) {
            return Err(bad("holds whitespace or control bytes"));
        }
        let hash = match self.inner.key_hashing {
            KeyHashing::Off => false,
            KeyHashing::OverLength => k.len() > MAX_KEY_LEN,
            KeyHashing::Always => true,
        };
        if hash {
            if k.len() > u16::MAX as usize {
                return Err(bad("longer than 65535 bytes"));
            }
            let mut wire = match &self.inner.prefix {
                Some(p) => format!("{p}:").into_bytes(),
                None => Vec::new(),
            };
            wire.extend_from_slice(codec::hashed_key(&k).as_bytes());
            return Ok(Key {
                wire,
                original: Some(k),
            });
        }
        if k.len() > MAX_KEY_LEN {
            return Err(bad("longer than 250 bytes with its prefix"));
        }
        Ok(Key {
            wire: k,
            original: None,
        })
    }

    fn ttl_seconds(&self, ttl: Option<Duration>) -> u32 {
        let ttl = ttl.unwrap_or(self.inner.default_ttl);
        let secs = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
        if secs == 0 {
            return 0;
        }
        if secs <= THIRTY_DAYS {
            return secs as u32;
        }
        // Over 30 days, memcached wants the absolute expiry time.
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        u32::try_from(now + secs).unwrap_or(u32::MAX)
    }

    // === reads ===

    /// The value of `key`, from the local zone, falling back to other zones on a miss or
    /// an error. `Ok(None)` is a miss in every zone asked.
    ///
    /// # Errors
    ///
    /// An invalid key, or the last error when every zone asked failed.
    pub async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        Ok(self
            .read(
                key,
                &GetFlags {
                    value: true,
                    ..GetFlags::default()
                },
            )
            .await?
            .map(|v| v.data))
    }

    /// The value and its CAS token, for [`cas`](Self::cas).
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    pub async fn gets(&self, key: &str) -> Result<Option<(Bytes, u64)>> {
        Ok(self
            .read(
                key,
                &GetFlags {
                    value: true,
                    cas: true,
                    ..GetFlags::default()
                },
            )
            .await?
            .map(|v| (v.data, v.cas.unwrap_or(0))))
    }

    /// Gets the value and resets its TTL in one `mg ... T` on the zone that answered. The
    /// TTL of the other copies is refreshed in the background.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    pub async fn get_and_touch(&self, key: &str, ttl: Option<Duration>) -> Result<Option<Bytes>> {
        let t = self.ttl_seconds(ttl);
        let hit = self
            .read(
                key,
                &GetFlags {
                    value: true,
                    touch: Some(t),
                    ..GetFlags::default()
                },
            )
            .await?;
        if hit.is_some() {
            let this = self.clone();
            let key = key.to_string();
            tokio::spawn(async move {
                let _ = this.touch(&key, ttl).await;
            });
        }
        Ok(hit.map(|v| v.data))
    }

    /// The value of `key`, or, on a miss, `compute`'s value, stored in every zone.
    ///
    /// Stampede protection: when many callers miss the same key at once, one computes and
    /// the others wait for its value (up to [`Lease::wait`], then they compute too). The
    /// winner is chosen by memcached itself (meta `mg ... N`, which makes a placeholder and
    /// hands out a win flag once), so it holds across processes and machines, not only in
    /// this client. After [`invalidate`](Self::invalidate), callers get the stale value at
    /// once while one of them recomputes (stale-while-revalidate).
    ///
    /// Over the text protocol (old servers) there are no leases: every caller that misses
    /// computes.
    ///
    /// # Errors
    ///
    /// An invalid key; [`Error::Compute`] with `compute`'s error (nothing is stored, and the
    /// claim is released so the next caller can try).
    ///
    /// # Example
    ///
    /// ```no_run
    /// # use netflix_evcache::EvCache;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), netflix_evcache::Error> {
    /// # let cache = EvCache::builder("APP").nodes("zone-a=127.0.0.1:11211")?.build()?;
    /// let row = cache
    ///     .get_or_compute("row:popular", None, || async {
    ///         // An expensive query, run by one caller at a time across the fleet.
    ///         Ok::<_, std::io::Error>(b"[80100172,70143836]".to_vec())
    ///     })
    ///     .await?;
    /// # let _ = row;
    /// # Ok(()) }
    /// ```
    pub async fn get_or_compute<F, Fut, V, E>(
        &self,
        key: &str,
        ttl: Option<Duration>,
        compute: F,
    ) -> Result<Bytes>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = std::result::Result<V, E>>,
        V: Into<Bytes>,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let k = self.key(key)?;
        let lease = self.inner.lease;
        let v = self.view();
        let Some(&local) = v.read_order.first() else {
            return Err(Error::NoCopies);
        };
        let group = &v.groups[local];
        let node = group.node_for(&k.wire).clone();
        let mut w = Writer::default();
        w.get(
            &k.wire,
            &GetFlags {
                value: true,
                vivify: Some(lease.ttl.as_secs().max(1) as u32),
                ..GetFlags::default()
            },
        );
        let request = Bytes::from(w.buf);
        let deadline = Instant::now() + lease.wait;
        let mut backoff = Duration::from_millis(2);
        let mut won = false;
        loop {
            let start = Instant::now();
            let r = node
                .call(request.clone(), Expect::One, node.config().read_timeout)
                .await;
            match r {
                Ok(Replies::One(Reply::Value(m, data))) => {
                    let flags = m.flags.unwrap_or(0);
                    if m.win {
                        // Ours to compute: a cold placeholder, or a stale value to renew.
                        group.stats.record(Op::Get, Ended::Miss, start.elapsed());
                        won = true;
                        break;
                    }
                    if !m.won_elsewhere && !m.stale {
                        group.stats.record(Op::Get, Ended::Hit, start.elapsed());
                        if let Some(v) = self.finish(group, &k, flags, data).await? {
                            return Ok(v);
                        }
                        break;
                    }
                    if m.stale && !data.is_empty() {
                        // Someone is recomputing: serve the stale value meanwhile.
                        if let Some(v) = self.finish(group, &k, flags, data).await? {
                            self.inner
                                .stats
                                .stale_served
                                .fetch_add(1, Ordering::Relaxed);
                            return Ok(v);
                        }
                    }
                    // Someone else is computing a cold key: wait for it, a while.
                    if Instant::now() + backoff > deadline {
                        break;
                    }
                    self.inner.stats.lease_waits.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_millis(50));
                }
                // No lease here (the text protocol), or the local zone failed: read the
                // other zones, then compute.
                _ => {
                    if let Some(v) = self.get(key).await? {
                        return Ok(v);
                    }
                    break;
                }
            }
        }
        let value: Bytes = match compute().await {
            Ok(v) => v.into(),
            Err(e) => {
                if won {
                    // Release the claim: drop the empty placeholder, so another caller can
                    // win (a stale value stays: it is still better than nothing).
                    let _ = self.release_placeholder(&node, &k.wire).await;
                }
                return Err(Error::Compute(e.into()));
            }
        };
        self.inner.stats.computed.fetch_add(1, Ordering::Relaxed);
        self.set(key, value.clone(), ttl).await?;
        Ok(value)
    }

    /// Deletes the empty placeholder of a failed computation (not a stale value).
    async fn release_placeholder(&self, node: &Node, wire: &[u8]) -> Result<()> {
        let mut r = Writer::default();
        r.get(
            wire,
            &GetFlags {
                cas: true,
                value: true,
                ..GetFlags::default()
            },
        );
        if let Replies::One(Reply::Value(m, data)) = node
            .call(r.buf, Expect::One, node.config().write_timeout)
            .await?
        {
            if data.is_empty() {
                let mut d = Writer::default();
                d.delete(wire, None, m.cas);
                node.call(d.buf, Expect::One, node.config().write_timeout)
                    .await?;
            }
        }
        Ok(())
    }

    /// Marks `key` stale in every zone instead of deleting it: for `ttl` more (at most),
    /// [`get_or_compute`](Self::get_or_compute) serves the old value while one caller
    /// recomputes it (meta `md ... I`). Plain gets still see the value until then.
    ///
    /// # Errors
    ///
    /// As [`delete`](Self::delete).
    pub async fn invalidate(&self, key: &str, ttl: Duration) -> Result<Latch> {
        let k = self.canonical_key(key)?;
        let mut w = Writer::default();
        w.delete(&k, Some(ttl.as_secs().max(1) as u32), None);
        self.fan_out(&k, w.buf, "invalidate").await
    }

    async fn read(&self, key: &str, flags: &GetFlags) -> Result<Option<Found>> {
        let k = self.key(key)?;
        let near = self
            .inner
            .near
            .as_ref()
            .filter(|_| flags.value && !flags.cas);
        if let Some(near) = near {
            if let Some(data) = near.get(&k.wire) {
                self.inner.stats.near_hits.fetch_add(1, Ordering::Relaxed);
                return Ok(Some(Found { data, cas: None }));
            }
        }
        let found = self.read_zones(&k, flags).await?;
        if let (Some(near), Some(f)) = (near, &found) {
            if near.observe(&k.wire) {
                near.put(&k.wire, f.data.clone());
            }
        }
        Ok(found)
    }

    /// Reads from the zones in order (the second one hedged after the hedge delay).
    async fn read_zones(&self, k: &Key, flags: &GetFlags) -> Result<Option<Found>> {
        let mut w = Writer::default();
        w.get(&k.wire, flags);
        let request = Bytes::from(w.buf);
        let v = self.view();
        let order: Vec<usize> = v.read_order.iter().take(v.read_tries).copied().collect();
        let mut last_err = None;
        let mut missed = false;
        let mut next = 0;
        let settle = |a: Attempt, missed: &mut bool, last_err: &mut Option<Error>| match a {
            Attempt::Hit(f) => Some(f),
            Attempt::Miss => {
                *missed = true;
                None
            }
            Attempt::Failed(e) => {
                *last_err = Some(e);
                None
            }
        };
        if let (Some(delay), true) = (self.inner.hedge, order.len() >= 2) {
            let (a, b) = self
                .hedged(&v, order[0], order[1], k, &request, flags, delay)
                .await;
            next = if b.is_some() { 2 } else { 1 };
            for r in [Some(a), b].into_iter().flatten() {
                if let Some(f) = settle(r, &mut missed, &mut last_err) {
                    return Ok(Some(f));
                }
            }
            if missed && !self.inner.fallback_on_miss {
                return Ok(None);
            }
        }
        for (n, &g) in order.iter().enumerate().skip(next) {
            if n > 0 {
                self.inner.stats.fallbacks.fetch_add(1, Ordering::Relaxed);
            }
            let a = self.attempt(&v.groups[g], k, &request, flags, n + 1).await;
            if let Some(f) = settle(a, &mut missed, &mut last_err) {
                return Ok(Some(f));
            }
            if missed && !self.inner.fallback_on_miss {
                return Ok(None);
            }
        }
        match last_err {
            // A zone that answered with a miss gave the answer; only when every zone asked
            // failed is the read an error.
            Some(e) if !missed => Err(e),
            _ => Ok(None),
        }
    }

    /// Reads zone `a`; if it has not answered after `delay`, zone `b` too. Returns the
    /// first hit as soon as it comes, else both results (`b`'s if it was asked).
    #[allow(clippy::too_many_arguments, reason = "one internal call site")]
    async fn hedged(
        &self,
        v: &View,
        a: usize,
        b: usize,
        k: &Key,
        request: &Bytes,
        flags: &GetFlags,
        delay: Duration,
    ) -> (Attempt, Option<Attempt>) {
        let started = std::sync::atomic::AtomicBool::new(false);
        let mut fa = std::pin::pin!(self.attempt(&v.groups[a], k, request, flags, 1));
        let mut fb = std::pin::pin!(async {
            tokio::time::sleep(delay).await;
            started.store(true, Ordering::Relaxed);
            self.inner.stats.hedges.fetch_add(1, Ordering::Relaxed);
            self.attempt(&v.groups[b], k, request, flags, 2).await
        });
        let (mut ra, mut rb) = (None, None);
        std::future::poll_fn(|cx| {
            if ra.is_none() {
                if let Poll::Ready(r) = fa.as_mut().poll(cx) {
                    ra = Some(r);
                }
            }
            if rb.is_none() && !matches!(ra, Some(Attempt::Hit(_))) {
                if let Poll::Ready(r) = fb.as_mut().poll(cx) {
                    rb = Some(r);
                }
            }
            let hit = |r: &Option<Attempt>| matches!(r, Some(Attempt::Hit(_)));
            if hit(&ra)
                || hit(&rb)
                || (ra.is_some() && (rb.is_some() || !started.load(Ordering::Relaxed)))
            {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
        if matches!(rb, Some(Attempt::Hit(_))) {
            self.inner.stats.hedge_wins.fetch_add(1, Ordering::Relaxed);
            return (rb.take().unwrap_or(Attempt::Miss), ra);
        }
        (ra.unwrap_or(Attempt::Miss), rb)
    }

    /// One read of one zone, counted and traced.
    async fn attempt(
        &self,
        group: &Group,
        k: &Key,
        request: &Bytes,
        flags: &GetFlags,
        attempt: usize,
    ) -> Attempt {
        let node = group.node_for(&k.wire);
        let span = tracing::debug_span!(
            "evcache.call",
            op = "get",
            zone = %group.name,
            attempt,
            hit = tracing::field::Empty
        );
        let start = Instant::now();
        let r = node
            .call(request.clone(), Expect::One, node.config().read_timeout)
            .instrument(span.clone())
            .await;
        let a = match r {
            Ok(Replies::One(Reply::Value(m, data))) if m.is_placeholder(&data) => Attempt::Miss,
            Ok(Replies::One(Reply::Value(m, data))) => {
                if flags.value {
                    match self.finish(group, k, m.flags.unwrap_or(0), data).await {
                        Ok(Some(data)) => Attempt::Hit(Found { data, cas: m.cas }),
                        Ok(None) => Attempt::Miss,
                        Err(e) => Attempt::Failed(e),
                    }
                } else {
                    Attempt::Hit(Found { data, cas: m.cas })
                }
            }
            Ok(Replies::One(Reply::Done(m))) if !flags.value => Attempt::Hit(Found {
                data: Bytes::new(),
                cas: m.cas,
            }),
            Ok(Replies::One(Reply::Miss)) => Attempt::Miss,
            Ok(Replies::One(Reply::ServerError(kind, message))) => Attempt::Failed(Error::Server {
                node: node.addr,
                kind,
                message,
            }),
            Ok(_) => Attempt::Failed(Error::UnexpectedReply {
                node: node.addr,
                op: "get",
            }),
            Err(e) => {
                tracing::debug!(zone = %group.name, node = %node.addr, error = %e, "read failed; trying the next zone");
                Attempt::Failed(e)
            }
        };
        let ended = match &a {
            Attempt::Hit(_) => Ended::Hit,
            Attempt::Miss => Ended::Miss,
            Attempt::Failed(_) => Ended::Error,
        };
        span.record("hit", ended == Ended::Hit);
        group.stats.record(Op::Get, ended, start.elapsed());
        a
    }

    /// Turns a stored item back into the value: joins chunks (from the same zone), checks
    /// a hashed key's envelope, inflates. `Ok(None)`: not this key's value after all (a
    /// hash collision, chunks missing or from another write).
    async fn finish(
        &self,
        group: &Group,
        k: &Key,
        flags: u32,
        data: Bytes,
    ) -> Result<Option<Bytes>> {
        let (mut data, mut flags) = (data, flags);
        if flags & codec::FLAG_CHUNKED != 0 {
            let m = Manifest::parse(&data)?;
            let keys: Vec<Vec<u8>> = (0..m.chunks)
                .map(|i| codec::chunk_key(&k.wire, m.id, i))
                .collect();
            let got = self.fetch_raw(group, &keys).await;
            let chunks: Option<Vec<Bytes>> = got.into_iter().map(|c| c.map(|(_, d)| d)).collect();
            match chunks.and_then(|c| m.join(&c)) {
                Some(joined) => {
                    data = joined;
                    flags = m.flags;
                }
                None => {
                    tracing::debug!(zone = %group.name, "a chunked value's chunks are missing or from another write: a miss");
                    return Ok(None);
                }
            }
        }
        if flags & codec::FLAG_KEYED != 0 {
            let original = k.original.as_deref().unwrap_or(&k.wire);
            match codec::unwrap_keyed(original, data)? {
                Some(d) => data = d,
                None => {
                    tracing::warn!(zone = %group.name, "hashed key collision: the item belongs to another key");
                    return Ok(None);
                }
            }
        }
        codec::decode(data, flags, self.inner.codec.max_value).map(Some)
    }

    /// Items of `keys` from one group, raw (flags and bytes), in one pipelined batch per
    /// node; `None` for a miss or a failed node.
    async fn fetch_raw(&self, group: &Group, keys: &[Vec<u8>]) -> Vec<Option<(u32, Bytes)>> {
        let mut by_node: HashMap<usize, Vec<usize>> = HashMap::new();
        for (i, k) in keys.iter().enumerate() {
            let n = if group.nodes.len() == 1 {
                0
            } else {
                group.ring.locate(k)
            };
            by_node.entry(n).or_default().push(i);
        }
        let calls = by_node.into_iter().map(|(n, idx)| {
            let mut w = Writer::default();
            for (o, &i) in idx.iter().enumerate() {
                w.get(
                    &keys[i],
                    &GetFlags {
                        value: true,
                        opaque: Some(o as u32),
                        quiet: true,
                        ..GetFlags::default()
                    },
                );
            }
            w.noop();
            let node = group.nodes[n].clone();
            async move {
                let timeout = node.config().read_timeout;
                (idx, node.call(w.buf, Expect::UntilMn, timeout).await)
            }
        });
        let mut out = vec![None; keys.len()];
        for (idx, r) in futures_join_all(calls).await {
            if let Ok(Replies::Batch(replies)) = r {
                for reply in replies {
                    if let Reply::Value(m, data) = reply {
                        if m.is_placeholder(&data) {
                            continue;
                        }
                        if let Some(&i) = m.opaque.and_then(|o| idx.get(o as usize)) {
                            out[i] = Some((m.flags.unwrap_or(0), data));
                        }
                    }
                }
            }
        }
        out
    }

    /// Values of many keys: one pipelined batch per node of the local zone, then only the
    /// keys still missing from the next zone. Missing keys are absent from the map.
    ///
    /// # Errors
    ///
    /// An invalid key. Node failures are not errors here: their keys go to the next zone.
    pub async fn get_bulk<'a, I>(&self, keys: I) -> Result<HashMap<String, Bytes>>
    where
        I: IntoIterator<Item = &'a str>,
    {
        let mut missing: Vec<(String, Key)> = keys
            .into_iter()
            .map(|k| Ok((k.to_string(), self.key(k)?)))
            .collect::<Result<_>>()?;
        let mut found = HashMap::with_capacity(missing.len());
        let v = self.view();
        for &g in v.read_order.iter().take(v.read_tries) {
            if missing.is_empty() {
                break;
            }
            let group = &v.groups[g];
            let wire: Vec<Vec<u8>> = missing.iter().map(|(_, k)| k.wire.clone()).collect();
            let got = self.fetch_raw(group, &wire).await;
            let mut hit = vec![false; missing.len()];
            for (i, item) in got.into_iter().enumerate() {
                let Some((flags, data)) = item else { continue };
                match self.finish(group, &missing[i].1, flags, data).await {
                    Ok(Some(v)) => {
                        hit[i] = true;
                        found.insert(missing[i].0.clone(), v);
                    }
                    Ok(None) => {}
                    Err(e) => {
                        tracing::debug!(zone = %group.name, error = %e, "a bulk value did not decode; trying the next zone");
                    }
                }
            }
            let mut i = 0;
            missing.retain(|_| {
                let keep = !hit[i];
                i += 1;
                keep
            });
            if !self.inner.fallback_on_miss {
                break;
            }
        }
        Ok(found)
    }

    // === writes ===

    /// Sets `key` in every zone. `ttl` `None` is the default TTL (900 s); zero never
    /// expires; over 30 days it is sent as an absolute time, as memcached requires.
    ///
    /// # Errors
    ///
    /// An invalid key. Copy failures are reported by the latch.
    pub async fn set(
        &self,
        key: &str,
        value: impl Into<Bytes>,
        ttl: Option<Duration>,
    ) -> Result<Latch> {
        self.store(key, value.into(), ttl, b'S', None).await
    }

    /// Sets `key` to `value` serialized as JSON (flagged, so other readers know).
    ///
    /// # Errors
    ///
    /// [`Error::Codec`] when `value` does not serialize; otherwise as [`set`](Self::set).
    ///
    /// # Example
    ///
    /// ```no_run
    /// # use netflix_evcache::EvCache;
    /// #[derive(serde::Serialize, serde::Deserialize)]
    /// struct Profile { plan: String, maturity: u8 }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), netflix_evcache::Error> {
    /// # let cache = EvCache::builder("APP").nodes("zone-a=127.0.0.1:11211")?.build()?;
    /// cache.set_json("profile:7", &Profile { plan: "premium".into(), maturity: 16 }, None).await?;
    /// let p: Option<Profile> = cache.get_json("profile:7").await?;
    /// assert_eq!(p.map(|p| p.maturity), Some(16));
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "serde")]
    #[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
    pub async fn set_json<T: serde::Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
        ttl: Option<Duration>,
    ) -> Result<Latch> {
        let data = serde_json::to_vec(value).map_err(|e| Error::Codec(format!("json: {e}")))?;
        self.store_flagged(key, data.into(), codec::FLAG_JSON, ttl, b'S', None)
            .await
    }

    /// The value of `key` deserialized from JSON, read as [`get`](Self::get) reads.
    ///
    /// # Errors
    ///
    /// [`Error::Codec`] when the stored bytes are not `T` in JSON; otherwise as
    /// [`get`](Self::get).
    #[cfg(feature = "serde")]
    #[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
    pub async fn get_json<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        match self.get(key).await? {
            Some(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| Error::Codec(format!("json: {e}"))),
            None => Ok(None),
        }
    }

    /// Replaces `key` where it exists.
    ///
    /// # Errors
    ///
    /// As [`set`](Self::set).
    pub async fn replace(
        &self,
        key: &str,
        value: impl Into<Bytes>,
        ttl: Option<Duration>,
    ) -> Result<Latch> {
        self.store(key, value.into(), ttl, b'R', None).await
    }

    /// Appends to the value where it exists.
    ///
    /// # Errors
    ///
    /// As [`set`](Self::set).
    pub async fn append(&self, key: &str, value: impl Into<Bytes>) -> Result<Latch> {
        self.store(key, value.into(), None, b'A', None).await
    }

    /// Prepends to the value where it exists.
    ///
    /// # Errors
    ///
    /// As [`set`](Self::set).
    pub async fn prepend(&self, key: &str, value: impl Into<Bytes>) -> Result<Latch> {
        self.store(key, value.into(), None, b'P', None).await
    }

    /// Appends, creating the item with this value where it does not exist (one `ms MA N`).
    ///
    /// # Errors
    ///
    /// As [`set`](Self::set).
    pub async fn append_or_add(
        &self,
        key: &str,
        value: impl Into<Bytes>,
        ttl: Option<Duration>,
    ) -> Result<Latch> {
        let k = self.key(key)?;
        let ttl = self.ttl_seconds(ttl);
        let value: Bytes = value.into();
        if value.len() > self.inner.codec.max_item {
            return Err(Error::ValueTooLarge {
                size: value.len(),
                max: self.inner.codec.max_item,
            });
        }
        let set = |data: &[u8], flags, mode, vivify| {
            set_request(
                &k.wire,
                data,
                &SetFlags {
                    vivify,
                    ..SetFlags::new(ttl, flags, mode)
                },
            )
        };
        // `N` makes memcached ≥ 1.6.21 create the item in the append itself; older servers
        // ignore it and answer NS, so a copy that was missing falls back to add, and an add
        // that lost a race appends again. With a hashed key the item must start with the
        // key's envelope, so it is always created by the add.
        let (append, add) = match &k.original {
            None => (set(&value, 0, b'A', Some(ttl)), set(&value, 0, b'E', None)),
            Some(original) => (
                set(&value, 0, b'A', None),
                set(
                    &codec::wrap_keyed(original, &value),
                    codec::FLAG_KEYED,
                    b'E',
                    None,
                ),
            ),
        };
        self.fan_out_with(
            &self.view(),
            &k.wire,
            WriteOp::AppendOrAdd { append, add },
            "append_or_add",
        )
        .await
    }

    /// Sets `key` only if it holds the value read with `cas` (from [`gets`](Self::gets)),
    /// in every zone. A copy with another value reports [`Outcome::Exists`].
    ///
    /// # Errors
    ///
    /// As [`set`](Self::set).
    pub async fn cas(
        &self,
        key: &str,
        value: impl Into<Bytes>,
        cas: u64,
        ttl: Option<Duration>,
    ) -> Result<Latch> {
        self.store(key, value.into(), ttl, b'S', Some(cas)).await
    }

    async fn store(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
        mode: u8,
        cas: Option<u64>,
    ) -> Result<Latch> {
        self.store_flagged(key, value, 0, ttl, mode, cas).await
    }

    async fn store_flagged(
        &self,
        key: &str,
        value: Bytes,
        flags: u32,
        ttl: Option<Duration>,
        mode: u8,
        cas: Option<u64>,
    ) -> Result<Latch> {
        let k = self.key(key)?;
        let write = self.encode_write(&k, value, flags, self.ttl_seconds(ttl), mode, cas)?;
        self.fan_out_with(&self.view(), &k.wire, write, "set").await
    }

    /// The request(s) that store `value` under `k`: compressed, wrapped with the original
    /// key when hashed, chunked when larger than an item. Appends and prepends go as they
    /// are (memcached joins bytes; it cannot join compressed or chunked values).
    fn encode_write(
        &self,
        k: &Key,
        value: Bytes,
        flags: u32,
        ttl: u32,
        mode: u8,
        cas: Option<u64>,
    ) -> Result<WriteOp> {
        let raw = matches!(mode, b'A' | b'P');
        let request = |key: &[u8], data: &[u8], flags: u32, mode: u8, cas: Option<u64>| {
            set_request(
                key,
                data,
                &SetFlags {
                    cas,
                    ..SetFlags::new(ttl, flags, mode)
                },
            )
        };
        let max_item = self.inner.codec.max_item;
        if raw {
            if mode == b'P' && k.original.is_some() {
                return Err(Error::Codec(
                    "prepend would go before a hashed key's envelope".into(),
                ));
            }
            if value.len() > max_item {
                return Err(Error::ValueTooLarge {
                    size: value.len(),
                    max: max_item,
                });
            }
            return Ok(WriteOp::One(request(&k.wire, &value, flags, mode, cas)));
        }
        let (mut data, mut flags) = codec::encode(value, flags, &self.inner.codec)?;
        if let Some(original) = &k.original {
            data = codec::wrap_keyed(original, &data);
            flags |= codec::FLAG_KEYED;
        }
        if data.len() <= max_item {
            return Ok(WriteOp::One(request(&k.wire, &data, flags, mode, cas)));
        }
        let (manifest, chunks) = Manifest::split(&data, flags, max_item);
        let parts = chunks
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let ck = codec::chunk_key(&k.wire, manifest.id, i as u32);
                let r = request(&ck, c, 0, b'S', None);
                (ck, r)
            })
            .collect();
        let manifest = request(
            &k.wire,
            &manifest.to_bytes(),
            codec::FLAG_CHUNKED,
            mode,
            cas,
        );
        Ok(WriteOp::Chunked {
            parts: Arc::new(parts),
            manifest,
        })
    }

    /// Adds `key` where no copy holds it: first writer wins. If some zone already held a
    /// value, that value is copied over the zones where this add went in, so every copy
    /// agrees, and the call returns `false`.
    ///
    /// # Errors
    ///
    /// As [`set`](Self::set).
    pub async fn add(
        &self,
        key: &str,
        value: impl Into<Bytes>,
        ttl: Option<Duration>,
    ) -> Result<bool> {
        let k = self.key(key)?;
        let ttl = self.ttl_seconds(ttl);
        let write = self.encode_write(&k, value.into(), 0, ttl, b'E', None)?;
        let v = self.view();
        let latch = self
            .fan_out_with(&v, &k.wire, write, "add")
            .await?
            .wait_all()
            .await;
        let lost = latch.outcomes().any(|o| o == Outcome::NotStored);
        if !lost {
            return Ok(latch.successes() > 0);
        }
        // Someone else's value is the first: copy it from where it is over our copies.
        let holder = latch
            .copies()
            .iter()
            .position(|c| matches!(c.result, Some(Ok(Outcome::NotStored))));
        let won: Vec<usize> = latch
            .copies()
            .iter()
            .enumerate()
            .filter(|(_, c)| matches!(c.result, Some(Ok(Outcome::Stored))))
            .map(|(i, _)| i)
            .collect();
        if let (Some(h), false) = (holder, won.is_empty()) {
            if self.copy_item(&v, h, &won, &k.wire, ttl).await {
                tracing::debug!(key, "add lost to an existing value; copies repaired");
            }
        }
        Ok(false)
    }

    /// Copies the item under `wire` (and its chunks) from group `from` over groups `to`,
    /// with its remaining TTL. Returns whether there was an item to copy.
    async fn copy_item(&self, v: &View, from: usize, to: &[usize], wire: &[u8], ttl: u32) -> bool {
        let group = &v.groups[from];
        let node = group.node_for(wire);
        let mut r = Writer::default();
        r.get(
            wire,
            &GetFlags {
                value: true,
                ttl: true,
                ..GetFlags::default()
            },
        );
        let Ok(Replies::One(Reply::Value(m, data))) = node
            .call(r.buf, Expect::One, node.config().read_timeout)
            .await
        else {
            return false;
        };
        let left = match m.ttl {
            Some(-1) => 0,
            Some(t) if t > 0 => t as u32,
            _ => ttl,
        };
        let flags = m.flags.unwrap_or(0);
        let mut items = Vec::new();
        if flags & codec::FLAG_CHUNKED != 0 {
            let Ok(manifest) = Manifest::parse(&data) else {
                return false;
            };
            let keys: Vec<Vec<u8>> = (0..manifest.chunks)
                .map(|i| codec::chunk_key(wire, manifest.id, i))
                .collect();
            for (ck, item) in keys.iter().zip(self.fetch_raw(group, &keys).await) {
                let Some((f, d)) = item else { return false };
                items.push((ck.clone(), f, d));
            }
        }
        items.push((wire.to_vec(), flags, data));
        for &g in to {
            for (key, flags, data) in &items {
                let node = v.groups[g].node_for(key).clone();
                let request = set_request(key, data, &SetFlags::new(left, *flags, b'S'));
                let _ = node
                    .call(request, Expect::One, node.config().write_timeout)
                    .await;
            }
        }
        true
    }

    /// Deletes `key` in every zone.
    ///
    /// # Errors
    ///
    /// As [`set`](Self::set).
    pub async fn delete(&self, key: &str) -> Result<Latch> {
        let k = self.canonical_key(key)?;
        let mut w = Writer::default();
        w.delete(&k, None, None);
        self.fan_out(&k, w.buf, "delete").await
    }

    /// Resets the TTL of `key` in every zone (`mg <key> T<ttl>` without the value).
    ///
    /// # Errors
    ///
    /// As [`set`](Self::set).
    pub async fn touch(&self, key: &str, ttl: Option<Duration>) -> Result<Latch> {
        let k = self.canonical_key(key)?;
        let mut w = Writer::default();
        w.get(
            &k,
            &GetFlags {
                touch: Some(self.ttl_seconds(ttl)),
                ..GetFlags::default()
            },
        );
        self.fan_out(&k, w.buf, "touch").await
    }

    /// Adds `delta` in every zone, creating the counter at `initial` where it is missing,
    /// and reconciles: if the copies disagree, the highest value is written to all. Returns
    /// that value.
    ///
    /// # Errors
    ///
    /// An invalid key, or [`Error::NoCopies`] when no copy answered.
    pub async fn incr(
        &self,
        key: &str,
        delta: u64,
        initial: u64,
        ttl: Option<Duration>,
    ) -> Result<u64> {
        self.arith(key, true, delta, initial, ttl).await
    }

    /// Subtracts `delta` (memcached stops at 0) in every zone; reconciled as
    /// [`incr`](Self::incr), to the lowest value.
    ///
    /// # Errors
    ///
    /// As [`incr`](Self::incr).
    pub async fn decr(
        &self,
        key: &str,
        delta: u64,
        initial: u64,
        ttl: Option<Duration>,
    ) -> Result<u64> {
        self.arith(key, false, delta, initial, ttl).await
    }

    async fn arith(
        &self,
        key: &str,
        incr: bool,
        delta: u64,
        initial: u64,
        ttl: Option<Duration>,
    ) -> Result<u64> {
        let k = self.canonical_key(key)?;
        if let Some(near) = &self.inner.near {
            near.remove(&k);
        }
        let ttl = self.ttl_seconds(ttl);
        let mut w = Writer::default();
        w.arith(&k, incr, delta, Some((ttl, initial)));
        let request = Bytes::from(w.buf);
        // A server that cannot create the counter itself (the text protocol) answers
        // NOT_FOUND: add the initial value, and if another writer added first, count again.
        let add = set_request(
            &k,
            initial.to_string().as_bytes(),
            &SetFlags::new(ttl, 0, b'E'),
        );
        let number = |r: Result<Replies>| match r {
            Ok(Replies::One(Reply::Value(_, data))) => std::str::from_utf8(&data)
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .map(Some)
                .ok_or(()),
            Ok(Replies::One(Reply::NotFound | Reply::Miss)) => Ok(None),
            _ => Err(()),
        };
        let v = self.view();
        let calls = v.groups.iter().enumerate().map(|(g, group)| {
            let node = group.node_for(&k).clone();
            let (request, add) = (request.clone(), add.clone());
            async move {
                let timeout = node.config().write_timeout;
                let first = number(node.call(request.clone(), Expect::One, timeout).await);
                let n = match first {
                    Ok(None) => match node.call(add, Expect::One, timeout).await {
                        Ok(Replies::One(Reply::Done(_))) => Some(initial),
                        Ok(Replies::One(Reply::NotStored)) => {
                            number(node.call(request, Expect::One, timeout).await)
                                .ok()
                                .flatten()
                        }
                        _ => None,
                    },
                    Ok(n) => n,
                    Err(()) => None,
                };
                (g, n)
            }
        });
        let mut values: Vec<(usize, u64)> = Vec::new();
        for (g, n) in futures_join_all(calls).await {
            if let Some(n) = n {
                values.push((g, n));
            }
        }
        let pick = if incr {
            values.iter().map(|v| v.1).max()
        } else {
            values.iter().map(|v| v.1).min()
        };
        let Some(target) = pick else {
            return Err(Error::NoCopies);
        };
        let behind: Vec<usize> = values
            .iter()
            .filter(|v| v.1 != target)
            .map(|v| v.0)
            .collect();
        if !behind.is_empty() {
            let s = set_request(
                &k,
                target.to_string().as_bytes(),
                &SetFlags::new(ttl, 0, b'S'),
            );
            for g in behind {
                let node = v.groups[g].node_for(&k).clone();
                let _ = node
                    .call(s.clone(), Expect::One, node.config().write_timeout)
                    .await;
            }
            tracing::debug!(key, target, "counter copies disagreed; reconciled");
        }
        Ok(target)
    }

    /// Sends one request to the key's node in every group and collects a latch.
    async fn fan_out(&self, key: &[u8], bytes: Vec<u8>, op: &'static str) -> Result<Latch> {
        self.fan_out_with(&self.view(), key, WriteOp::One(bytes.into()), op)
            .await
    }

    async fn fan_out_with(
        &self,
        v: &View,
        key: &[u8],
        write: WriteOp,
        op: &'static str,
    ) -> Result<Latch> {
        if let Some(near) = &self.inner.near {
            near.remove(key);
        }
        let counted = match op {
            "delete" | "invalidate" => Op::Delete,
            "touch" => Op::Touch,
            _ => Op::Set,
        };
        let n = v.groups.len();
        let mut groups = Vec::with_capacity(n);
        let mut futs: Vec<CopyFuture> = Vec::with_capacity(n);
        for group in &v.groups {
            groups.push((group.name.clone(), group.write_only));
            let node = group.node_for(key).clone();
            let write = write.clone();
            let stats = group.stats.clone();
            let parts: Vec<Arc<Node>> = match &write {
                WriteOp::Chunked { parts, .. } => parts
                    .iter()
                    .map(|(k, _)| group.node_for(k).clone())
                    .collect(),
                _ => Vec::new(),
            };
            futs.push(Box::pin(async move {
                let start = Instant::now();
                let r = async move {
                    match write {
                        WriteOp::One(bytes) => store_outcome(&node, bytes, op).await,
                        WriteOp::AppendOrAdd { append, add } => {
                            let mut r = store_outcome(&node, append.clone(), op).await;
                            if matches!(r, Ok(Outcome::NotStored)) {
                                r = store_outcome(&node, add, op).await;
                                if matches!(r, Ok(Outcome::NotStored)) {
                                    r = store_outcome(&node, append, op).await;
                                }
                            }
                            r
                        }
                        WriteOp::Chunked {
                            parts: requests,
                            manifest,
                        } => {
                            // Every chunk first; the manifest only once they are all stored.
                            let chunks = parts
                                .iter()
                                .zip(requests.iter())
                                .map(|(node, (_, bytes))| store_outcome(node, bytes.clone(), op));
                            for r in futures_join_all(chunks).await {
                                match r {
                                    Ok(Outcome::Stored) => {}
                                    other => return other,
                                }
                            }
                            store_outcome(&node, manifest, op).await
                        }
                    }
                }
                .await;
                let ended = match &r {
                    Ok(Outcome::Stored) => Ended::Done,
                    Ok(_) => Ended::Miss,
                    Err(_) => Ended::Error,
                };
                stats.record(counted, ended, start.elapsed());
                r
            }));
        }
        let latch = Latch::collect(self.inner.latch, groups, futs).await;
        if !latch.is_met() {
            self.inner.stats.latch_unmet.fetch_add(1, Ordering::Relaxed);
        }
        Ok(latch)
    }
}

/// A write sent to every copy (cheap to clone: the requests are shared).
#[derive(Clone)]
enum WriteOp {
    /// One request.
    One(Bytes),
    /// Append; on NS add; on NS append again.
    AppendOrAdd { append: Bytes, add: Bytes },
    /// A large value: its chunks (key, request), then its manifest.
    Chunked {
        parts: Arc<Vec<(Vec<u8>, Bytes)>>,
        manifest: Bytes,
    },
}

/// A key as sent, and the original when it was hashed.
#[derive(Debug, Clone)]
struct Key {
    wire: Vec<u8>,
    original: Option<Vec<u8>>,
}

async fn store_outcome(node: &Node, bytes: Bytes, op: &'static str) -> Result<Outcome> {
    let timeout = node.config().write_timeout;
    match node.call(bytes, Expect::One, timeout).await? {
        Replies::One(Reply::Done(_) | Reply::Value(..)) => Ok(Outcome::Stored),
        Replies::One(Reply::NotStored) => Ok(Outcome::NotStored),
        Replies::One(Reply::Exists) => Ok(Outcome::Exists),
        Replies::One(Reply::NotFound | Reply::Miss) => Ok(Outcome::NotFound),
        Replies::One(Reply::ServerError(kind, message)) => Err(Error::Server {
            node: node.addr,
            kind,
            message,
        }),
        _ => Err(Error::UnexpectedReply {
            node: node.addr,
            op,
        }),
    }
}

struct Found {
    data: Bytes,
    cas: Option<u64>,
}

/// One zone's answer to a read.
enum Attempt {
    Hit(Found),
    Miss,
    Failed(Error),
}

/// Runs futures concurrently and returns their outputs in order (a tiny `join_all`).
async fn futures_join_all<F: std::future::Future>(
    futs: impl IntoIterator<Item = F>,
) -> Vec<F::Output> {
    let futs: Vec<_> = futs.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = (0..futs.len()).map(|_| None).collect();
    let mut futs: Vec<Option<_>> = futs.into_iter().map(Some).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in futs.iter_mut().enumerate() {
            if let Some(fut) = f {
                match fut.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => {
                        out[i] = Some(v);
                        *f = None;
                    }
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter()
        .map(|v| v.expect("every future completed"))
        .collect()
}

impl Builder {
    /// The server groups.
    #[must_use]
    pub fn topology(mut self, topology: Topology) -> Self {
        self.topology = topology;
        self
    }

    /// The server groups from EVCache's `<APP>-NODES` string.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when the string does not parse.
    pub fn nodes(self, nodes: &str) -> Result<Self> {
        Ok(self.topology(nodes.parse()?))
    }

    /// The zone read first (default: the first readable group).
    #[must_use]
    pub fn local_zone(mut self, zone: impl Into<String>) -> Self {
        self.shape.local_zone = Some(zone.into());
        self
    }

    /// Prefixes every key: `prefix:key`.
    #[must_use]
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = Some(prefix.into());
        self
    }

    /// How nodes are placed on the ring (default [`Mode::Spymemcached`]).
    #[must_use]
    pub fn ketama(mut self, mode: Mode) -> Self {
        self.shape.mode = mode;
        self
    }

    /// Connections, queues, timeouts and TKO per node.
    #[must_use]
    pub fn node_config(mut self, cfg: NodeConfig) -> Self {
        self.shape.node = cfg;
        self
    }

    /// The TTL of writes that give none (default 900 s, EVCache's).
    #[must_use]
    pub fn default_ttl(mut self, ttl: Duration) -> Self {
        self.default_ttl = ttl;
        self
    }

    /// The write latch (default [`Policy::AllMinusOne`]).
    #[must_use]
    pub fn latch(mut self, policy: Policy) -> Self {
        self.latch = policy;
        self
    }

    /// How many zones a read may ask (default: all readable zones).
    #[must_use]
    pub fn read_tries(mut self, tries: usize) -> Self {
        self.shape.read_tries = Some(tries.max(1));
        self
    }

    /// Whether a miss falls back to the next zone (default true; an error always does).
    #[must_use]
    pub fn fallback_on_miss(mut self, on: bool) -> Self {
        self.fallback_on_miss = on;
        self
    }

    /// Compression threshold, item size for chunking, largest value.
    #[must_use]
    pub fn codec(mut self, codec: CodecConfig) -> Self {
        self.codec = codec;
        self
    }

    /// When keys are hashed (default [`KeyHashing::Off`]).
    #[must_use]
    pub fn key_hashing(mut self, hashing: KeyHashing) -> Self {
        self.key_hashing = hashing;
        self
    }

    /// A near cache for every key: values read or written are served from memory for
    /// `ttl` (see [`near`](crate::near)).
    #[must_use]
    pub fn near_cache(mut self, cfg: NearCache) -> Self {
        self.near = Some(Near::all(cfg));
        self
    }

    /// Hot-key detection: keys read more than the threshold per second are served from
    /// memory for a short TTL (see [`near`](crate::near)).
    #[must_use]
    pub fn hot_keys(mut self, cfg: HotKeys) -> Self {
        self.near = Some(Near::hot(cfg));
        self
    }

    /// Hedged reads: when the local zone has not answered after `delay`, the next zone is
    /// asked too, and the first hit wins. Costs one extra read for the slowest reads only;
    /// a good `delay` is the local zone's p95-p99.
    #[must_use]
    pub fn hedge_after(mut self, delay: Duration) -> Self {
        self.hedge = Some(delay);
        self
    }

    /// How `get_or_compute` coordinates callers of a cold key.
    #[must_use]
    pub fn lease(mut self, lease: Lease) -> Self {
        self.lease = lease;
        self
    }

    /// Builds the client. Connections open on first use.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for an invalid topology, an unknown local zone or an address that
    /// does not resolve.
    pub fn build(self) -> Result<EvCache> {
        let zone_stats = Mutex::new(Vec::new());
        let view = View::build(&self.topology, None, &self.shape, &|z| {
            zone_stats_in(&zone_stats, z)
        })?;
        Ok(EvCache {
            inner: Arc::new(Inner {
                app: self.app,
                prefix: self.prefix,
                view: RwLock::new(Arc::new(view)),
                default_ttl: self.default_ttl,
                latch: self.latch,
                fallback_on_miss: self.fallback_on_miss,
                codec: self.codec,
                key_hashing: self.key_hashing,
                shape: self.shape,
                near: self.near,
                hedge: self.hedge,
                lease: self.lease,
                stats: ClientStats::default(),
                zone_stats,
            }),
        })
    }

    /// Builds the client from `discovery`'s first answer, and keeps asking it every
    /// `refresh`. A node that vanishes from the answers is kept for `grace` (it may be a
    /// blip of the discovery service, and its keys would move twice) and then removed; a new
    /// node is added at the next refresh. The refresh stops when the last clone of the
    /// client is dropped.
    ///
    /// # Errors
    ///
    /// The first discovery's error, or [`Error::Config`] for an unusable topology.
    pub async fn build_discovered(
        mut self,
        discovery: Arc<dyn Discovery>,
        refresh: Duration,
        grace: Duration,
    ) -> Result<EvCache> {
        self.topology = discovery.discover().await?;
        let cache = self.build()?;
        tokio::spawn(crate::discovery::refresh_loop(
            Arc::downgrade(&cache.inner),
            discovery,
            refresh.max(Duration::from_millis(10)),
            grace,
        ));
        Ok(cache)
    }
}
