//! Where the server list comes from, and how it is kept fresh.
//!
//! A [`Discovery`] answers "which server groups and nodes does this app have now". The
//! client asks it once when built with
//! [`Builder::build_discovered`](crate::Builder::build_discovered), then every refresh
//! period. Changes apply without dropping a request: nodes that stay keep their
//! connections and health, new nodes join at once, and a node that vanished stays for a
//! grace period before it is removed (a discovery service's blip would otherwise move its
//! keys away and back).
//!
//! Three sources come with the crate: [`StaticDiscovery`] (a fixed topology),
//! [`FileDiscovery`] (a file holding an `<APP>-NODES` string, or JSON with the `serde`
//! feature: the file an operator or a sidecar rewrites) and [`DnsDiscovery`] (each zone a
//! DNS name whose A/AAAA records are the nodes).
//!
//! ```no_run
//! use netflix_evcache::EvCache;
//! use netflix_evcache::discovery::FileDiscovery;
//! use std::{sync::Arc, time::Duration};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), netflix_evcache::Error> {
//! let cache = EvCache::builder("EVCACHE_MOVIES")
//!     .local_zone("us-east-1a")
//!     .build_discovered(
//!         Arc::new(FileDiscovery::new("/etc/evcache/EVCACHE_MOVIES-NODES")),
//!         Duration::from_secs(30),
//!         Duration::from_secs(120),
//!     )
//!     .await?;
//! cache.get("title:80100172").await?;
//! # Ok(()) }
//! ```

use crate::error::{Error, Result};
use crate::ketama::NodeSpec;
use crate::topology::{ServerGroup, Topology};
use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// The future a [`Discovery`] returns.
pub type DiscoverFuture<'a> = Pin<Box<dyn Future<Output = Result<Topology>> + Send + 'a>>;

/// A source of the app's server groups.
pub trait Discovery: Send + Sync + 'static {
    /// The server groups now.
    ///
    /// # Errors
    ///
    /// When the source cannot be read; the client keeps the servers it has.
    fn discover(&self) -> DiscoverFuture<'_>;
}

/// A fixed topology.
#[derive(Debug, Clone)]
pub struct StaticDiscovery(pub Topology);

impl Discovery for StaticDiscovery {
    fn discover(&self) -> DiscoverFuture<'_> {
        let t = self.0.clone();
        Box::pin(async move { Ok(t) })
    }
}

/// A file holding EVCache's `<APP>-NODES` string (`zone=host:port,...;zone2=...`), or,
/// with the `serde` feature, a JSON [`Topology`] (a file starting with `{`).
#[derive(Debug, Clone)]
pub struct FileDiscovery {
    path: PathBuf,
}

impl FileDiscovery {
    /// Reads `path` at every refresh.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }
}

impl Discovery for FileDiscovery {
    fn discover(&self) -> DiscoverFuture<'_> {
        Box::pin(async move {
            let path = self.path.clone();
            let text = tokio::task::spawn_blocking(move || std::fs::read_to_string(&path))
                .await
                .map_err(|e| Error::Config(format!("reading the node file: {e}")))?
                .map_err(|e| Error::Config(format!("{}: {e}", self.path.display())))?;
            parse_file(&text)
        })
    }
}

fn parse_file(text: &str) -> Result<Topology> {
    let text = text.trim();
    if text.starts_with('{') {
        #[cfg(feature = "serde")]
        {
            let t: Topology =
                serde_json::from_str(text).map_err(|e| Error::Config(format!("json: {e}")))?;
            t.validate()?;
            return Ok(t);
        }
        #[cfg(not(feature = "serde"))]
        return Err(Error::Config(
            "a JSON node file needs the `serde` feature".into(),
        ));
    }
    text.parse()
}

/// Each zone a DNS name whose address records are its nodes, all on one port.
#[derive(Debug, Clone)]
pub struct DnsDiscovery {
    zones: Vec<(String, String, u16)>,
}

impl DnsDiscovery {
    /// No zones yet.
    pub fn new() -> Self {
        Self { zones: Vec::new() }
    }

    /// Adds zone `zone`: the records of `name`, port `port`.
    #[must_use]
    pub fn zone(mut self, zone: impl Into<String>, name: impl Into<String>, port: u16) -> Self {
        self.zones.push((zone.into(), name.into(), port));
        self
    }
}

impl Default for DnsDiscovery {
    fn default() -> Self {
        Self::new()
    }
}

impl Discovery for DnsDiscovery {
    fn discover(&self) -> DiscoverFuture<'_> {
        Box::pin(async move {
            let mut groups = Vec::with_capacity(self.zones.len());
            for (zone, name, port) in &self.zones {
                let addrs = tokio::net::lookup_host((name.as_str(), *port))
                    .await
                    .map_err(|e| Error::Config(format!("resolving `{name}`: {e}")))?;
                let mut nodes: Vec<NodeSpec> = Vec::new();
                for a in addrs {
                    let mut spec = NodeSpec::new(a.ip().to_string(), a.port());
                    spec.host = Some(name.clone());
                    if !nodes.contains(&spec) {
                        nodes.push(spec);
                    }
                }
                groups.push(ServerGroup::new(zone.clone(), nodes));
            }
            let t = Topology::new(groups);
            t.validate()?;
            Ok(t)
        })
    }
}

/// Keeps vanished nodes for a grace period: what the client should use now, given what
/// discovery said.
#[derive(Debug, Default)]
pub(crate) struct Grace {
    /// (group, node) → when discovery first stopped listing it.
    missing: HashMap<(String, String), Instant>,
}

impl Grace {
    pub(crate) fn apply(
        &mut self,
        current: &Topology,
        found: &Topology,
        grace: Duration,
        now: Instant,
    ) -> Topology {
        let mut out = found.clone();
        let mut still_missing = HashMap::new();
        for g in &current.groups {
            let listed = found.groups.iter().find(|f| f.name == g.name);
            for n in &g.nodes {
                let here = listed.is_some_and(|f| {
                    f.nodes
                        .iter()
                        .any(|m| m.socket_string() == n.socket_string())
                });
                if here {
                    continue;
                }
                let key = (g.name.clone(), n.socket_string());
                let since = self.missing.get(&key).copied().unwrap_or(now);
                if now.duration_since(since) < grace {
                    still_missing.insert(key, since);
                    match out.groups.iter_mut().find(|o| o.name == g.name) {
                        Some(o) => o.nodes.push(n.clone()),
                        None => {
                            let mut kept = g.clone();
                            kept.nodes = vec![n.clone()];
                            out.groups.push(kept);
                        }
                    }
                } else {
                    tracing::info!(group = %g.name, node = %n, "node gone from discovery past its grace period: removed");
                }
            }
        }
        self.missing = still_missing;
        out
    }
}

pub(crate) async fn refresh_loop(
    cache: std::sync::Weak<crate::client::Inner>,
    discovery: Arc<dyn Discovery>,
    every: Duration,
    grace: Duration,
) {
    let mut state = Grace::default();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let found = discovery.discover().await;
        let Some(inner) = cache.upgrade() else { return };
        let client = crate::EvCache::from_inner(inner);
        match found {
            Ok(found) => {
                let current = client.topology();
                let next = state.apply(&current, &found, grace, Instant::now());
                if next != current {
                    if let Err(e) = client.set_topology(&next) {
                        tracing::warn!(error = %e, "discovered servers are unusable; keeping the current ones");
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "discovery failed; keeping the current servers"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn vanished_nodes_stay_for_the_grace_period() {
        let both: Topology = "a=10.0.0.1:11211,10.0.0.2:11211".parse().unwrap();
        let one: Topology = "a=10.0.0.1:11211".parse().unwrap();
        let mut g = Grace::default();
        let grace = Duration::from_secs(60);
        let t0 = Instant::now();
        assert_eq!(g.apply(&both, &one, grace, t0), both);
        assert_eq!(
            g.apply(&both, &one, grace, t0 + Duration::from_secs(59)),
            both
        );
        assert_eq!(
            g.apply(&both, &one, grace, t0 + Duration::from_secs(60)),
            one
        );
        // Back within the grace period: the clock restarts when it vanishes again.
        let mut g = Grace::default();
        assert_eq!(g.apply(&both, &one, grace, t0), both);
        assert_eq!(
            g.apply(&both, &both, grace, t0 + Duration::from_secs(30)),
            both
        );
        assert_eq!(
            g.apply(&both, &one, grace, t0 + Duration::from_secs(70)),
            both
        );
    }

    #[test]
    fn node_files_parse() {
        assert_eq!(parse_file(" a=127.0.0.1:1\n").unwrap().groups.len(), 1);
        assert!(parse_file("garbage").is_err());
    }
}
