//! Stage 3, the cache: a memcached process for each of three zones (started here on free
//! loopback ports, stopped when dropped), and the playback API's store on
//! `netflix-evcache` over them: a copy of every item in each zone, reads from the local
//! zone with fallback to the others, writes to every zone.

use netflix_evcache::local;
use netflix_evcache::{EvCache, Policy, ServerGroup, Topology};
use std::sync::Mutex;

/// The zones, the first being the API's own.
pub(crate) const ZONES: [&str; 3] = ["zone-a", "zone-b", "zone-c"];

/// One zone's memcached (`netflix_evcache::local`), killed when dropped.
pub(crate) struct Memcached(Mutex<local::Memcached>);

impl Memcached {
    /// Starts memcached on a free loopback port (off the runtime's threads: it waits for
    /// the process to accept connections).
    async fn start() -> Result<Self, String> {
        let started = tokio::task::spawn_blocking(local::Memcached::start)
            .await
            .map_err(|e| format!("starting memcached: {e}"))?;
        match started {
            Ok(m) => Ok(Self(Mutex::new(m))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(format!("{e}: run `scripts/setup.sh demo`"))
            }
            Err(e) => Err(format!("starting memcached: {e}")),
        }
    }

    fn port(&self) -> u16 {
        super::dashboard::lock(&self.0).port()
    }

    fn spec(&self) -> netflix_evcache::ketama::NodeSpec {
        super::dashboard::lock(&self.0).spec()
    }

    /// Kills it (SIGKILL): its connections reset, new ones are refused.
    pub(crate) fn kill(&self) {
        super::dashboard::lock(&self.0).kill();
    }
}

/// The three zones' servers and a client whose local zone is the first.
pub(crate) struct Cache {
    pub(crate) servers: Vec<Memcached>,
    pub(crate) client: EvCache,
}

/// Starts a memcached for each zone and the client over them.
pub(crate) async fn start() -> Result<Cache, String> {
    let mut servers = Vec::new();
    for _ in ZONES {
        servers.push(Memcached::start().await?);
    }
    let topology = Topology::new(
        ZONES
            .iter()
            .zip(&servers)
            .map(|(zone, m)| ServerGroup::new(*zone, vec![m.spec()]))
            .collect(),
    );
    let client = EvCache::builder("playback")
        .topology(topology)
        .local_zone(ZONES[0])
        // A write returns once one zone has it; the others are written in the background.
        .latch(Policy::One)
        .build()
        .map_err(|e| format!("the cache client: {e}"))?;
    tracing::info!(
        target: "full_stack",
        "cache: memcached for {} on ports {}",
        ZONES.join(", "),
        servers
            .iter()
            .map(|m| m.port().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(Cache { servers, client })
}
