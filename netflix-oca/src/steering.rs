//! Steering: which appliances a client should use for a title.
//!
//! 1. The client's IP address is matched to the longest announced prefix, which names the
//!    ISP cluster that serves it ([`PrefixTable`]).
//! 2. In that cluster, the candidates are the nodes placement puts the title on, in
//!    placement order; each must hold the title (its latest inventory says so), be healthy,
//!    accept new sessions and be under its load cap. A candidate that is fine but lacks
//!    the title is a *content miss*; one that holds it but is unhealthy, draining,
//!    overloaded or silent is a *health miss*.
//! 3. The answer is a ranked list of about ten signed URLs: the good candidates, then the
//!    cluster's other healthy nodes (they fill from their peers), then the fallback tiers.
//!
//! A title is *live* only once at least K copies exist in at least M clusters
//! ([`LiveRule`]); before that steering answers [`SteerError::NotLive`].
//!
//! # Example
//!
//! ```
//! use netflix_oca::http::sign::UrlSigner;
//! use netflix_oca::placement::{Node, Placement};
//! use netflix_oca::steering::{LiveRule, NodeStatus, Steering};
//!
//! let placement = Placement::new([Node::new("oca-1", "h1"), Node::new("oca-2", "h2")])?;
//! let mut s = Steering::new(UrlSigner::new(b"secret".to_vec()), LiveRule { copies: 1, clusters: 1 });
//! s.add_cluster("isp-a", placement, ["10.1.0.0/16".parse()?]);
//! for node in ["oca-1", "oca-2"] {
//!     let status = NodeStatus {
//!         base_url: format!("http://{node}.isp-a.example"),
//!         titles: vec!["title-81".into()],
//!         ..NodeStatus::default()
//!     };
//!     s.report("isp-a", node, status);
//! }
//! let answer = s.steer("10.1.2.3".parse()?, "title-81", "title-81/master.m3u8")?;
//! assert_eq!(answer.cluster, "isp-a");
//! assert_eq!(answer.urls.len(), 2);
//! assert!(answer.urls[0].ends_with("/title-81/master.m3u8"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::http::sign::UrlSigner;
use crate::placement::Placement;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};
use tokio::time::Instant;

/// An IP prefix (`10.1.0.0/16`, `2001:db8::/32`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Prefix {
    bits: u128,
    len: u8,
    v6: bool,
}

/// A prefix that does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadPrefix(pub String);

impl fmt::Display for BadPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} is not an IP prefix like 10.1.0.0/16", self.0)
    }
}

impl std::error::Error for BadPrefix {}

fn key(ip: IpAddr) -> (u128, bool) {
    match ip {
        IpAddr::V4(a) => (u128::from(u32::from(a)) << 96, false),
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(v4) => (u128::from(u32::from(v4)) << 96, false),
            None => (u128::from(a), true),
        },
    }
}

fn mask(len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(len))
    }
}

impl FromStr for Prefix {
    type Err = BadPrefix;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadPrefix(s.to_string());
        let (addr, len) = s.split_once('/').ok_or_else(bad)?;
        let ip: IpAddr = addr.parse().map_err(|_| bad())?;
        let len: u8 = len.parse().map_err(|_| bad())?;
        let (bits, v6) = key(ip);
        let max = if v6 { 128 } else { 32 };
        if len > max {
            return Err(bad());
        }
        // IPv4 addresses sit in the top 32 bits, so a prefix of either family masks the
        // top `len` bits.
        Ok(Prefix {
            bits: bits & mask(len),
            len,
            v6,
        })
    }
}

/// Longest-prefix match from IP prefixes to values: one hash table per prefix length
/// present, searched from the longest.
#[derive(Debug, Clone)]
pub struct PrefixTable<V> {
    /// (v6, len) -> (masked bits -> value), longest first.
    levels: Vec<(bool, u8, HashMap<u128, V>)>,
}

impl<V> Default for PrefixTable<V> {
    fn default() -> Self {
        Self { levels: Vec::new() }
    }
}

impl<V: Clone> PrefixTable<V> {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a prefix.
    pub fn insert(&mut self, p: Prefix, v: V) {
        let at = match self
            .levels
            .iter()
            .position(|(v6, l, _)| (*v6, *l) == (p.v6, p.len))
        {
            Some(i) => i,
            None => {
                self.levels.push((p.v6, p.len, HashMap::new()));
                self.levels.sort_by_key(|l| std::cmp::Reverse(l.1));
                self.levels
                    .iter()
                    .position(|(v6, l, _)| (*v6, *l) == (p.v6, p.len))
                    .expect("just inserted")
            }
        };
        self.levels[at].2.insert(p.bits, v);
    }

    /// The value of the longest prefix that contains `ip`.
    pub fn lookup(&self, ip: IpAddr) -> Option<&V> {
        let (bits, v6) = key(ip);
        self.levels
            .iter()
            .filter(|(lv6, _, _)| *lv6 == v6)
            .find_map(|(_, len, map)| map.get(&(bits & mask(*len))))
    }

    /// The number of prefixes.
    pub fn len(&self) -> usize {
        self.levels.iter().map(|l| l.2.len()).sum()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What steering knows of a node, from its latest health report.
#[derive(Debug, Clone)]
pub struct NodeStatus {
    /// Where clients reach it (`http://10.1.0.5:8080`).
    pub base_url: String,
    /// The titles it holds in full.
    pub titles: Vec<String>,
    /// Its load, as a fraction of its cap (1.0 = at the cap).
    pub load: f64,
    /// Whether it reports itself healthy (disks, fill).
    pub healthy: bool,
    /// Whether it takes new sessions (not draining, not cut off from the control plane).
    pub accepting: bool,
}

impl Default for NodeStatus {
    fn default() -> Self {
        Self {
            base_url: String::new(),
            titles: Vec::new(),
            load: 0.0,
            healthy: true,
            accepting: true,
        }
    }
}

#[derive(Debug)]
struct NodeView {
    status: NodeStatus,
    titles: HashSet<String>,
    seen: Instant,
}

#[derive(Debug)]
struct ClusterView {
    placement: Placement,
    nodes: HashMap<String, NodeView>,
}

/// When a title may be steered to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveRule {
    /// Copies a cluster must hold for the title to count there (K).
    pub copies: usize,
    /// Clusters that must hold it (M).
    pub clusters: usize,
}

/// Why a client could not be steered.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SteerError {
    /// No announced prefix contains the client's address.
    UnknownClient(IpAddr),
    /// The title does not have K copies in M clusters yet.
    NotLive(String),
    /// No node of the cluster can serve.
    NoCandidates(String),
}

impl fmt::Display for SteerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SteerError::UnknownClient(ip) => write!(f, "no cluster serves {ip}"),
            SteerError::NotLive(t) => write!(f, "title {t} is not live yet"),
            SteerError::NoCandidates(c) => write!(f, "no node of cluster {c} can serve"),
        }
    }
}

impl std::error::Error for SteerError {}

/// A steering answer.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SteerAnswer {
    /// The client's cluster.
    pub cluster: String,
    /// Signed URLs of the file asked for, best first.
    pub urls: Vec<String>,
    /// Placement candidates skipped because they lack the title.
    pub content_misses: u32,
    /// Candidates skipped because they are unhealthy, draining, overloaded or silent.
    pub health_misses: u32,
}

/// Steering counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SteerStats {
    /// Answers given.
    pub answers: u64,
    /// Content misses, summed over answers.
    pub content_misses: u64,
    /// Health misses, summed over answers.
    pub health_misses: u64,
    /// Requests for titles not live yet.
    pub not_live: u64,
}

/// The steering service's state: prefixes, clusters, and the nodes' latest reports.
#[derive(Debug)]
pub struct Steering {
    prefixes: PrefixTable<String>,
    clusters: HashMap<String, ClusterView>,
    signer: UrlSigner,
    rule: LiveRule,
    /// A node silent for longer than this is a health miss.
    stale_after: Duration,
    url_ttl: Duration,
    max_urls: usize,
    load_cap: f64,
    fallbacks: Vec<String>,
    answers: AtomicU64,
    content_misses: AtomicU64,
    health_misses: AtomicU64,
    not_live: AtomicU64,
}

impl Steering {
    /// Empty steering state signing with `signer`.
    pub fn new(signer: UrlSigner, rule: LiveRule) -> Self {
        Self {
            prefixes: PrefixTable::new(),
            clusters: HashMap::new(),
            signer,
            rule,
            stale_after: Duration::from_secs(30),
            url_ttl: Duration::from_secs(6 * 3600),
            max_urls: 10,
            load_cap: 0.9,
            fallbacks: Vec::new(),
            answers: AtomicU64::new(0),
            content_misses: AtomicU64::new(0),
            health_misses: AtomicU64::new(0),
            not_live: AtomicU64::new(0),
        }
    }

    /// Sets how long a node may stay silent before it is treated as unhealthy (default
    /// 30 s).
    pub fn stale_after(&mut self, d: Duration) -> &mut Self {
        self.stale_after = d;
        self
    }

    /// Sets the load fraction above which a node gets no new sessions (default 0.9).
    pub fn load_cap(&mut self, cap: f64) -> &mut Self {
        self.load_cap = cap;
        self
    }

    /// Adds base URLs tried after every node of the cluster (a regional tier).
    pub fn fallback(&mut self, base_url: impl Into<String>) -> &mut Self {
        self.fallbacks.push(base_url.into());
        self
    }

    /// Adds a cluster with its placement and the prefixes it serves.
    pub fn add_cluster(
        &mut self,
        name: impl Into<String>,
        placement: Placement,
        prefixes: impl IntoIterator<Item = Prefix>,
    ) {
        let name = name.into();
        for p in prefixes {
            self.prefixes.insert(p, name.clone());
        }
        self.clusters.insert(
            name,
            ClusterView {
                placement,
                nodes: HashMap::new(),
            },
        );
    }

    /// Records a node's health report. Unknown clusters are ignored.
    pub fn report(&mut self, cluster: &str, node: &str, status: NodeStatus) {
        if let Some(c) = self.clusters.get_mut(cluster) {
            let titles = status.titles.iter().cloned().collect();
            c.nodes.insert(
                node.to_string(),
                NodeView {
                    status,
                    titles,
                    seen: Instant::now(),
                },
            );
        }
    }

    /// The cluster that serves `ip`.
    pub fn cluster_of(&self, ip: IpAddr) -> Option<&str> {
        self.prefixes.lookup(ip).map(String::as_str)
    }

    /// Whether `title` has K copies in M clusters.
    pub fn is_live(&self, title: &str) -> bool {
        let clusters = self
            .clusters
            .values()
            .filter(|c| {
                c.nodes
                    .values()
                    .filter(|n| n.titles.contains(title))
                    .count()
                    >= self.rule.copies
            })
            .count();
        clusters >= self.rule.clusters
    }

    fn usable(&self, n: &NodeView, now: Instant) -> bool {
        n.status.healthy
            && n.status.accepting
            && n.status.load < self.load_cap
            && now.duration_since(n.seen) <= self.stale_after
    }

    /// Steers a client at `ip` to `path` (a file of `title`): see the module docs.
    ///
    /// # Errors
    ///
    /// [`SteerError::UnknownClient`] when no prefix matches, [`SteerError::NotLive`]
    /// before the title has its copies, [`SteerError::NoCandidates`] when no node and no
    /// fallback can serve.
    pub fn steer(&self, ip: IpAddr, title: &str, path: &str) -> Result<SteerAnswer, SteerError> {
        let cluster_name = self.cluster_of(ip).ok_or(SteerError::UnknownClient(ip))?;
        if !self.is_live(title) {
            self.not_live.fetch_add(1, Ordering::Relaxed);
            return Err(SteerError::NotLive(title.to_string()));
        }
        let cluster = &self.clusters[cluster_name];
        let now = Instant::now();
        let ranking = cluster
            .placement
            .ranking_hash(crate::placement::hash_key(title.as_bytes()));
        let token = self
            .signer
            .sign_scope(title, SystemTime::now() + self.url_ttl);
        let path = path.trim_start_matches('/');
        let url = |base: &str| format!("{}{token}/{path}", base.trim_end_matches('/'));
        // Walk the ranking until the list is full: holders in placement order, then the
        // usable nodes that would fill from their peers, then the fallback tiers. URLs are
        // formatted only for what is kept.
        let mut holders: Vec<&str> = Vec::with_capacity(self.max_urls);
        let mut fillers: Vec<&str> = Vec::new();
        let (mut content, mut health) = (0u32, 0u32);
        for (rank, &i) in ranking.iter().enumerate() {
            if holders.len() >= self.max_urls {
                break;
            }
            let name = cluster.placement.node(i).name();
            let Some(view) = cluster.nodes.get(name) else {
                health += u32::from(rank < self.rule.copies.max(1));
                continue;
            };
            let holds = view.titles.contains(title);
            let usable = self.usable(view, now);
            match (holds, usable) {
                (true, true) => holders.push(&view.status.base_url),
                (true, false) => health += 1,
                (false, true) => {
                    content += 1;
                    if fillers.len() < self.max_urls {
                        fillers.push(&view.status.base_url);
                    }
                }
                (false, false) => {}
            }
        }
        let urls: Vec<String> = holders
            .into_iter()
            .chain(fillers)
            .chain(self.fallbacks.iter().map(String::as_str))
            .take(self.max_urls)
            .map(url)
            .collect();
        self.answers.fetch_add(1, Ordering::Relaxed);
        self.content_misses
            .fetch_add(u64::from(content), Ordering::Relaxed);
        self.health_misses
            .fetch_add(u64::from(health), Ordering::Relaxed);
        if urls.is_empty() {
            return Err(SteerError::NoCandidates(cluster_name.to_string()));
        }
        Ok(SteerAnswer {
            cluster: cluster_name.to_string(),
            urls,
            content_misses: content,
            health_misses: health,
        })
    }

    /// The counters.
    pub fn stats(&self) -> SteerStats {
        SteerStats {
            answers: self.answers.load(Ordering::Relaxed),
            content_misses: self.content_misses.load(Ordering::Relaxed),
            health_misses: self.health_misses.load(Ordering::Relaxed),
            not_live: self.not_live.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::placement::Node;

    #[test]
    fn longest_prefix_wins() {
        let mut t = PrefixTable::new();
        t.insert("10.0.0.0/8".parse().unwrap(), "wide");
        t.insert("10.1.0.0/16".parse().unwrap(), "narrow");
        t.insert("10.1.2.0/24".parse().unwrap(), "narrowest");
        t.insert("2001:db8::/32".parse().unwrap(), "v6");
        t.insert("0.0.0.0/0".parse().unwrap(), "default");
        let l = |s: &str| t.lookup(s.parse().unwrap()).copied();
        assert_eq!(l("10.1.2.3"), Some("narrowest"));
        assert_eq!(l("10.1.3.3"), Some("narrow"));
        assert_eq!(l("10.2.3.3"), Some("wide"));
        assert_eq!(l("11.0.0.1"), Some("default"));
        assert_eq!(l("::ffff:10.1.2.3"), Some("narrowest"));
        assert_eq!(l("2001:db8:1::1"), Some("v6"));
        assert_eq!(l("2001:db9::1"), None);
        assert!("10.0.0.0/33".parse::<Prefix>().is_err());
        assert!("10.0.0.0".parse::<Prefix>().is_err());
        assert!("nonsense/8".parse::<Prefix>().is_err());
    }

    fn steering() -> Steering {
        let p =
            Placement::new((0..4).map(|i| Node::new(format!("n{i}"), format!("h{i}")))).unwrap();
        let mut s = Steering::new(
            UrlSigner::new(b"k".to_vec()),
            LiveRule {
                copies: 2,
                clusters: 1,
            },
        );
        s.add_cluster("c", p, ["192.0.2.0/24".parse().unwrap()]);
        s.fallback("http://regional");
        s
    }

    fn status(n: &str, titles: &[&str]) -> NodeStatus {
        NodeStatus {
            base_url: format!("http://{n}"),
            titles: titles.iter().map(|t| t.to_string()).collect(),
            ..NodeStatus::default()
        }
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn candidates_misses_and_liveness() {
        let mut s = steering();
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        s.report("c", "n0", status("n0", &["t"]));
        assert_eq!(
            s.steer(ip, "t", "t/m.m3u8"),
            Err(SteerError::NotLive("t".into()))
        );
        s.report("c", "n1", status("n1", &["t"]));
        s.report("c", "n2", status("n2", &[]));
        s.report(
            "c",
            "n3",
            NodeStatus {
                healthy: false,
                ..status("n3", &["t"])
            },
        );
        let a = s.steer(ip, "t", "t/m.m3u8").unwrap();
        assert_eq!(a.content_misses, 1, "n2 is fine but lacks the title");
        assert_eq!(a.health_misses, 1, "n3 holds it but is unhealthy");
        // Holders first, then n2 (it can fill), then the regional fallback.
        assert_eq!(a.urls.len(), 4);
        assert!(a.urls[0].starts_with("http://n0/s/") || a.urls[0].starts_with("http://n1/s/"));
        assert!(a.urls[2].starts_with("http://n2/s/"));
        assert!(a.urls[3].starts_with("http://regional/s/"));
        // A silent node becomes a health miss.
        tokio::time::advance(Duration::from_secs(31)).await;
        s.report("c", "n0", status("n0", &["t"]));
        s.report("c", "n2", status("n2", &[]));
        let a = s.steer(ip, "t", "t/m.m3u8").unwrap();
        assert!(a.health_misses >= 2);
        assert!(matches!(
            s.steer("198.51.100.1".parse().unwrap(), "t", "x"),
            Err(SteerError::UnknownClient(_))
        ));
    }
}
