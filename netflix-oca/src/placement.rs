//! Placement: which appliances of a cluster hold a file.
//!
//! Open Connect spreads a cluster's catalogue over its appliances by consistent hashing, so
//! every appliance and the steering service agree on where a file lives without asking
//! anyone, and adding or removing an appliance moves only that appliance's share of files.
//!
//! [`Placement`] is **rendezvous hashing** (highest random weight, Thaler and Ravishankar,
//! 1998): each (file, node) pair gets a pseudo-random score and the file lives on the nodes
//! with the highest scores. Weighted nodes use the logarithmic method (Schindelhauer and
//! Schomaker, 2005), so a node of weight 2 wins twice as often as a node of weight 1, and
//! the ranking stays consistent when weights change.
//!
//! # Design note: why not a ring of virtual nodes
//!
//! A ring with 160 virtual nodes per node (ketama, the `hashring` crate) gives each node a
//! share that varies by several percent (the arcs are random), so the busiest of 100 nodes
//! carries 10-20% more than the mean; only thousands of virtual nodes per node bring that
//! down, at a cost in memory and cache misses. Rendezvous hashing has no arcs: a node's
//! share is exact in expectation, the busiest of 100 nodes holding 1M files carries about
//! 2.5% more than the mean (the binomial noise of the keys themselves), and adding a node
//! moves exactly the files it wins. Its cost is a score per node per lookup, a multiply
//! and a compare each: about 90 ns for 100 nodes, which is why scores are 64-bit integer
//! hashes and the weighted logarithm is only taken when weights differ. BENCHMARKS.md has
//! both measured side by side.
//!
//! Beyond the primary node:
//! - [`Placement::replicas`]: the top *k* nodes in score order, skipping nodes on a physical
//!   host already chosen, so *k* copies are always on *k* different machines.
//! - [`CopyPolicy`]: how many copies a title gets from its popularity rank.
//! - [`Placement::locate_bounded`]: consistent hashing with bounded loads (Mirrokni, Thorup
//!   and Zadimoghaddam, 2018): when the preferred node is above (1+ε) times the mean load,
//!   the file spills to the next node in its own ranking.
//!
//! # Example
//!
//! ```
//! use netflix_oca::placement::{Node, Placement};
//!
//! let cluster = Placement::new([
//!     Node::new("oca-1", "rack-a/host-1"),
//!     Node::new("oca-2", "rack-a/host-2"),
//!     Node::new("oca-3", "rack-b/host-3").weight(2),
//! ])?;
//! let primary = cluster.locate(b"title-81/video/1080p/seg-00042.m4s").unwrap();
//! let copies = cluster.replicas(b"title-81/video/1080p/seg-00042.m4s", 2);
//! assert_eq!(copies[0], primary);
//! assert_ne!(cluster.node(copies[0]).host(), cluster.node(copies[1]).host());
//! # Ok::<(), netflix_oca::placement::PlacementError>(())
//! ```

use std::fmt;

/// One appliance (or one disk group of an appliance) in a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    name: String,
    host: String,
    weight: u32,
    seed: u64,
}

impl Node {
    /// A node called `name` (unique in the cluster) on physical `host`, with weight 1.
    /// Nodes that share a host never hold two copies of the same file.
    pub fn new(name: impl Into<String>, host: impl Into<String>) -> Self {
        let name = name.into();
        let seed = hash_key(name.as_bytes());
        Self {
            name,
            host: host.into(),
            weight: 1,
            seed,
        }
    }

    /// Sets the weight: a node of weight 2 holds twice the files of a node of weight 1
    /// (say, twice the disk). A weight of 0 holds nothing.
    #[must_use]
    pub fn weight(mut self, weight: u32) -> Self {
        self.weight = weight;
        self
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The physical host.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The node's weight.
    pub fn get_weight(&self) -> u32 {
        self.weight
    }
}

/// A node's position in a [`Placement`], as lookups return it.
pub type NodeIndex = usize;

/// A cluster's placement function: files to nodes by weighted rendezvous hashing.
#[derive(Debug, Clone)]
pub struct Placement {
    nodes: Vec<Node>,
    seeds: Vec<u64>,
    /// Weights as f64, when they are not all equal (the logarithmic method is needed).
    weights: Option<Vec<f64>>,
    /// Each node's host, as a small integer, for the distinct-host rule.
    hosts: Vec<u32>,
}

/// A placement that cannot be built.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PlacementError {
    /// Two nodes have the same name.
    DuplicateNode(String),
    /// No node has a weight above 0.
    NoCapacity,
    /// The node to remove is not there.
    UnknownNode(String),
    /// More than 65,536 nodes in one cluster.
    TooManyNodes(usize),
}

impl fmt::Display for PlacementError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlacementError::DuplicateNode(n) => write!(f, "node {n:?} is listed twice"),
            PlacementError::NoCapacity => f.write_str("no node has a weight above 0"),
            PlacementError::UnknownNode(n) => write!(f, "no node is called {n:?}"),
            PlacementError::TooManyNodes(n) => write!(f, "{n} nodes: a cluster has at most 65536"),
        }
    }
}

impl std::error::Error for PlacementError {}

impl Placement {
    /// A placement over `nodes`.
    ///
    /// # Errors
    ///
    /// [`PlacementError::DuplicateNode`] when two nodes share a name,
    /// [`PlacementError::NoCapacity`] when every weight is 0, and
    /// [`PlacementError::TooManyNodes`] beyond 65,536 nodes.
    pub fn new(nodes: impl IntoIterator<Item = Node>) -> Result<Self, PlacementError> {
        let nodes: Vec<Node> = nodes.into_iter().collect();
        let mut names: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
        names.sort_unstable();
        if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
            return Err(PlacementError::DuplicateNode(w[0].to_string()));
        }
        if nodes.iter().all(|n| n.weight == 0) {
            return Err(PlacementError::NoCapacity);
        }
        if nodes.len() > 1 << INDEX_BITS {
            return Err(PlacementError::TooManyNodes(nodes.len()));
        }
        let first = nodes[0].weight;
        let weights = nodes
            .iter()
            .any(|n| n.weight != first)
            .then(|| nodes.iter().map(|n| f64::from(n.weight)).collect());
        let mut host_names: Vec<&str> = Vec::new();
        let hosts = nodes
            .iter()
            .map(|n| match host_names.iter().position(|h| *h == n.host) {
                Some(i) => i as u32,
                None => {
                    host_names.push(&n.host);
                    (host_names.len() - 1) as u32
                }
            })
            .collect();
        Ok(Self {
            seeds: nodes.iter().map(|n| n.seed).collect(),
            weights,
            hosts,
            nodes,
        })
    }

    /// The nodes, in the order lookups index them.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// The node at `index`.
    ///
    /// # Panics
    ///
    /// When `index` is not a node of this placement.
    pub fn node(&self, index: NodeIndex) -> &Node {
        &self.nodes[index]
    }

    /// The number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether there are no nodes (never true of a built placement).
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The same cluster with `node` added. Only files whose new top score is `node`'s move.
    ///
    /// # Errors
    ///
    /// [`PlacementError::DuplicateNode`] when the name is taken.
    pub fn with_node(&self, node: Node) -> Result<Self, PlacementError> {
        Self::new(self.nodes.iter().cloned().chain([node]))
    }

    /// The same cluster without the node called `name`. Only that node's files move.
    ///
    /// # Errors
    ///
    /// [`PlacementError::UnknownNode`] when there is no such node, and
    /// [`PlacementError::NoCapacity`] when nothing would be left.
    pub fn without_node(&self, name: &str) -> Result<Self, PlacementError> {
        if !self.nodes.iter().any(|n| n.name == name) {
            return Err(PlacementError::UnknownNode(name.to_string()));
        }
        Self::new(self.nodes.iter().filter(|n| n.name != name).cloned())
    }

    /// The node that holds the first copy of `key` (a file name, a title id).
    pub fn locate(&self, key: &[u8]) -> Option<NodeIndex> {
        self.locate_hash(hash_key(key))
    }

    /// [`locate`](Self::locate) for a key already hashed with [`hash_key`].
    pub fn locate_hash(&self, h: u64) -> Option<NodeIndex> {
        match &self.weights {
            None => {
                // Equal weights: the highest integer score wins. The node's index replaces
                // the score's low bits, so the loop is a branch-free max (four independent
                // maxima for instruction-level parallelism) and the winner's index falls
                // out of the maximum.
                let tag = |i: usize, s: u64| mix(h, s) | i as u64;
                let mut best = [0u64; 4];
                let chunks = self.seeds.chunks_exact(4);
                let rest = chunks.remainder();
                for (c, seeds) in chunks.enumerate() {
                    for lane in 0..4 {
                        best[lane] = best[lane].max(tag(c * 4 + lane, seeds[lane]));
                    }
                }
                let base = self.seeds.len() - rest.len();
                for (j, &s) in rest.iter().enumerate() {
                    best[0] = best[0].max(tag(base + j, s));
                }
                let top = best[0].max(best[1]).max(best[2].max(best[3]));
                Some((top & INDEX_MASK) as usize)
            }
            Some(_) => {
                let top = (0..self.seeds.len())
                    .map(|i| self.rank_key(h, i))
                    .max()
                    .unwrap_or(0);
                (top != 0).then_some((top & INDEX_MASK) as usize)
            }
        }
    }

    /// Node `i`'s rank key for key hash `h`: higher wins, and 0 means "never" (weight 0).
    /// Equal weights: the integer score; unequal: the bits of the positive weighted score,
    /// which order like the floats. Either way the node's index replaces the low bits, so
    /// keys are unique and the winner's index is in its key.
    #[inline]
    fn rank_key(&self, h: u64, i: usize) -> u64 {
        let raw = mix(h, self.seeds[i]);
        match &self.weights {
            None => raw | i as u64,
            Some(w) if w[i] == 0.0 => 0,
            Some(w) => (weighted(raw, w[i]).to_bits() & !INDEX_MASK) | i as u64,
        }
    }

    /// Every node with a weight above 0, best first, for `key`'s hash.
    pub fn ranking_hash(&self, h: u64) -> Vec<NodeIndex> {
        let mut keyed: Vec<(u64, NodeIndex)> = (0..self.nodes.len())
            .map(|i| (self.rank_key(h, i), i))
            .filter(|&(k, _)| k != 0)
            .collect();
        keyed.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        keyed.into_iter().map(|(_, i)| i).collect()
    }

    /// The nodes that hold `k` copies of `key`, best first, each on a different physical
    /// host. Fewer when the cluster has fewer hosts.
    pub fn replicas(&self, key: &[u8], k: usize) -> Vec<NodeIndex> {
        let mut out = Vec::with_capacity(k);
        self.replicas_hash(hash_key(key), k, &mut out);
        out
    }

    /// [`replicas`](Self::replicas) for a hashed key, into `out` (cleared first).
    pub fn replicas_hash(&self, h: u64, k: usize, out: &mut Vec<NodeIndex>) {
        out.clear();
        if k == 0 {
            return;
        }
        // Every node's rank key once (no branches), then one branch-free maximum per copy,
        // each below the last: for a few copies of a hundred nodes that beats keeping a
        // sorted top-k, whose insertions mispredict.
        let n = self.nodes.len();
        let mut stack = [0u64; 128];
        let mut heap = Vec::new();
        let keys: &mut [u64] = if n <= stack.len() {
            &mut stack[..n]
        } else {
            heap.resize(n, 0);
            &mut heap
        };
        for (i, key) in keys.iter_mut().enumerate() {
            *key = self.rank_key(h, i);
        }
        let mut below = u64::MAX;
        while out.len() < k {
            let mut best = 0u64;
            let mut at = usize::MAX;
            for (i, &key) in keys.iter().enumerate() {
                let take = key < below && key > best;
                best = if take { key } else { best };
                at = if take { i } else { at };
            }
            if best == 0 {
                break;
            }
            below = best;
            if out.iter().all(|&j| self.hosts[j] != self.hosts[at]) {
                out.push(at);
            }
        }
    }

    /// Consistent hashing with bounded loads: the best node for `key` whose load is below
    /// `(1 + epsilon)` times its fair share of `total + 1` (its weight's part of the
    /// cluster), so no node takes more than that. `load(i)` is node `i`'s current load (open
    /// sessions, bytes per second...). With `epsilon` = 0.25, a file moves off its preferred
    /// node only while that node is 25% above its share.
    ///
    /// Returns `None` only when every node is at its bound (impossible when the loads sum
    /// to `total`).
    pub fn locate_bounded(
        &self,
        key: &[u8],
        epsilon: f64,
        total: u64,
        load: impl Fn(NodeIndex) -> u64,
    ) -> Option<NodeIndex> {
        let h = hash_key(key);
        let weight_sum: f64 = self.nodes.iter().map(|n| f64::from(n.weight)).sum();
        let bound = |i: NodeIndex| {
            ((1.0 + epsilon) * (total + 1) as f64 * f64::from(self.nodes[i].weight) / weight_sum)
                .ceil()
        };
        let first = self.locate_hash(h)?;
        if (load(first) as f64) < bound(first) {
            return Some(first);
        }
        self.ranking_hash(h)
            .into_iter()
            .skip(1)
            .find(|&i| (load(i) as f64) < bound(i))
    }
}

/// How many copies a title gets in a cluster, from its popularity rank (0 is the most
/// popular): demand falls roughly as 1/rank (Zipf), so the top titles get `max` copies and
/// each tenfold drop in popularity halves the count, down to `min`.
///
/// ```
/// use netflix_oca::placement::CopyPolicy;
///
/// let p = CopyPolicy { min: 1, max: 8 };
/// assert_eq!(p.copies(0), 8);
/// assert_eq!(p.copies(9), 8);
/// assert_eq!(p.copies(10), 4);
/// assert_eq!(p.copies(150), 2);
/// assert_eq!(p.copies(100_000), 1);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopyPolicy {
    /// Copies of the least popular titles (at least 1).
    pub min: usize,
    /// Copies of the ten most popular titles.
    pub max: usize,
}

impl Default for CopyPolicy {
    /// One to three copies: Open Connect keeps popular files on several appliances of a
    /// cluster, the long tail on one.
    fn default() -> Self {
        Self { min: 1, max: 3 }
    }
}

impl CopyPolicy {
    /// The number of copies for the title at popularity `rank`.
    pub fn copies(&self, rank: usize) -> usize {
        let decades = rank.max(1).ilog10();
        let min = self.min.max(1);
        (self.max.max(min) >> decades.min(63)).max(min)
    }
}

/// The placement key of a file: its title, the first segment of its path
/// (`title-81/video/1080p/seg-00042.m4s` -> `title-81`). A title's files live together, so
/// one steering answer serves a whole playback.
pub fn title_of(path: &str) -> &str {
    let p = path.trim_start_matches('/');
    p.split_once('/').map_or(p, |(t, _)| t)
}

/// The 64-bit hash placement uses for keys (xxHash3, stable across versions and machines,
/// so every appliance and the steering service compute the same placement).
pub fn hash_key(key: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(key)
}

/// The score of a (key, node) pair: one 64 × 64 → 128-bit multiply folded to 64 bits (the
/// "mum" step of wyhash), over the key hash and the node's seed.
#[inline]
fn mix(h: u64, seed: u64) -> u64 {
    // The multiplier's low 16 bits are zero, so the score's are too: the node's index
    // goes there with one OR (see `INDEX_BITS`).
    (h ^ seed).wrapping_mul(0x79b9_7f4a_7c15_0000)
}

/// The low bits of a score that carry the node's index, so that the highest score also
/// names its node: a cluster has at most 2^16 nodes.
const INDEX_BITS: u32 = 16;
const INDEX_MASK: u64 = (1 << INDEX_BITS) - 1;

/// The logarithmic method: `w / -ln(u)` with `u` the score as a number in (0, 1).
#[inline]
fn weighted(raw: u64, w: f64) -> f64 {
    let u = ((raw >> 11) as f64 + 0.5) * (1.0 / (1u64 << 53) as f64);
    w / -u.ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(n: usize) -> Placement {
        Placement::new((0..n).map(|i| Node::new(format!("oca-{i}"), format!("host-{i}")))).unwrap()
    }

    fn keys(n: usize) -> impl Iterator<Item = u64> {
        (0..n).map(|i| hash_key(format!("title-{}/seg-{i}", i % 997).as_bytes()))
    }

    fn loads(p: &Placement, n: usize) -> Vec<usize> {
        let mut l = vec![0; p.len()];
        for h in keys(n) {
            l[p.locate_hash(h).unwrap()] += 1;
        }
        l
    }

    #[test]
    fn balanced_within_the_noise_of_the_keys() {
        for n in [10, 100] {
            let l = loads(&cluster(n), 200_000);
            let mean = 200_000.0 / n as f64;
            let peak = *l.iter().max().unwrap() as f64 / mean;
            // Binomial noise: 4 standard deviations of the per-node count.
            assert!(
                peak < 1.0 + 4.0 / mean.sqrt(),
                "{n} nodes: peak/mean {peak}"
            );
        }
    }

    #[test]
    fn weights_set_shares() {
        let p = Placement::new([
            Node::new("a", "h1"),
            Node::new("b", "h2").weight(2),
            Node::new("c", "h3").weight(1),
            Node::new("d", "h4").weight(0),
        ])
        .unwrap();
        let l = loads(&p, 100_000);
        assert_eq!(l[3], 0);
        let mut out = Vec::new();
        for h in keys(1_000) {
            let ranking = p.ranking_hash(h);
            assert_eq!(ranking.len(), 3, "the weight-0 node is never ranked");
            assert_eq!(Some(ranking[0]), p.locate_hash(h));
            p.replicas_hash(h, 2, &mut out);
            assert_eq!(out, ranking[..2]);
        }
        let share = l[1] as f64 / 100_000.0;
        assert!((share - 0.5).abs() < 0.01, "weight 2 of 4: {share}");
    }

    #[test]
    fn adding_a_node_moves_only_its_share() {
        let before = cluster(10);
        let after = before.with_node(Node::new("oca-new", "host-new")).unwrap();
        let mut moved = 0;
        for h in keys(100_000) {
            let (a, b) = (
                before.locate_hash(h).unwrap(),
                after.locate_hash(h).unwrap(),
            );
            if a != b {
                // Every moved key moved to the new node.
                assert_eq!(after.node(b).name(), "oca-new");
                moved += 1;
            }
        }
        let ideal = 100_000.0 / 11.0;
        assert!(
            (moved as f64) < ideal * 1.05,
            "{moved} moved, ideal {ideal}"
        );
        let removed = after.without_node("oca-3").unwrap();
        for h in keys(20_000) {
            let a = after.locate_hash(h).unwrap();
            if after.node(a).name() != "oca-3" {
                assert_eq!(
                    after.node(a).name(),
                    removed.node(removed.locate_hash(h).unwrap()).name()
                );
            }
        }
    }

    #[test]
    fn replicas_are_on_distinct_hosts_and_agree_with_the_ranking() {
        let p =
            Placement::new((0..12).map(|i| Node::new(format!("n{i}"), format!("host-{}", i / 3))))
                .unwrap();
        let mut out = Vec::new();
        for h in keys(2_000) {
            p.replicas_hash(h, 3, &mut out);
            assert_eq!(out.len(), 3);
            let hosts: std::collections::HashSet<_> =
                out.iter().map(|&i| p.node(i).host()).collect();
            assert_eq!(hosts.len(), 3);
            assert_eq!(out[0], p.locate_hash(h).unwrap());
            let full = p.ranking_hash(h);
            assert_eq!(full[0], out[0]);
        }
        // Only 4 hosts: 5 copies cannot be on distinct hosts.
        p.replicas_hash(1, 5, &mut out);
        assert_eq!(out.len(), 4);
    }

    #[test]
    fn bounded_load_spills_to_the_next_in_ranking() {
        let p = cluster(4);
        let key = b"title-1/seg-1";
        let first = p.locate(key).unwrap();
        let second = p.ranking_hash(hash_key(key))[1];
        // Everything on the first node: it is over its bound.
        let loads = |i| if i == first { 100 } else { 0 };
        assert_eq!(p.locate_bounded(key, 0.25, 100, loads), Some(second));
        assert_eq!(p.locate_bounded(key, 0.25, 100, |_| 25), Some(first));
    }

    proptest::proptest! {
        /// Consistency: when a node joins, every key that moves moves to it; when a node
        /// leaves, only its keys move.
        #[test]
        fn only_the_changed_node_moves_keys(
            n in 1usize..30,
            weights in proptest::collection::vec(1u32..4, 30),
            key_seeds in proptest::collection::vec(proptest::prelude::any::<u64>(), 200),
        ) {
            let nodes: Vec<Node> = (0..n)
                .map(|i| Node::new(format!("n{i}"), format!("h{i}")).weight(weights[i]))
                .collect();
            let before = Placement::new(nodes).unwrap();
            let after = before.with_node(Node::new("new", "hnew").weight(weights[29])).unwrap();
            for &h in &key_seeds {
                let a = before.node(before.locate_hash(h).unwrap()).name();
                let b = after.node(after.locate_hash(h).unwrap()).name();
                proptest::prop_assert!(a == b || b == "new");
            }
            if n > 1 {
                let gone = before.without_node("n0").unwrap();
                for &h in &key_seeds {
                    let a = before.node(before.locate_hash(h).unwrap()).name();
                    let b = gone.node(gone.locate_hash(h).unwrap()).name();
                    proptest::prop_assert!(a == b || a == "n0");
                }
            }
        }
    }

    #[test]
    fn bad_clusters_are_refused() {
        assert_eq!(
            Placement::new([Node::new("a", "h"), Node::new("a", "h2")]).unwrap_err(),
            PlacementError::DuplicateNode("a".into())
        );
        assert_eq!(
            Placement::new([Node::new("a", "h").weight(0)]).unwrap_err(),
            PlacementError::NoCapacity
        );
        assert_eq!(Placement::new([]).unwrap_err(), PlacementError::NoCapacity);
        assert!(matches!(
            cluster(2).without_node("zz"),
            Err(PlacementError::UnknownNode(_))
        ));
    }
}
