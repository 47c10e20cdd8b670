//! Stage 3, the cache: a memcached process for each of three zones (started here on free
//! loopback ports, stopped when dropped), and the playback API's store on
//! `netflix-evcache` over them: a copy of every item in each zone, reads from the local
//! zone with fallback to the others, writes to every zone.

use netflix_evcache::ketama::NodeSpec;
use netflix_evcache::{EvCache, Policy, ServerGroup, Topology};
use std::time::Duration;
use tokio::process::{Child, Command};

/// The zones, the first being the API's own.
pub(crate) const ZONES: [&str; 3] = ["zone-a", "zone-b", "zone-c"];

/// One memcached process, killed when dropped.
pub(crate) struct Memcached {
    child: std::sync::Mutex<Child>,
    port: u16,
}

impl Memcached {
    /// Starts memcached on a free loopback port and waits until it accepts connections.
    async fn start() -> Result<Self, String> {
        // memcached refuses to run as root unless told which user to be.
        let root = std::process::Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
        for _ in 0..10 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map_err(|e| format!("a free port: {e}"))?
                .port();
            let mut cmd = Command::new("memcached");
            cmd.args(["-l", "127.0.0.1", "-p", &port.to_string(), "-U", "0"])
                .args(["-t", "1", "-m", "64"])
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .kill_on_drop(true);
            if root {
                cmd.args(["-u", "root"]);
            }
            let mut child = cmd.spawn().map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => {
                    "memcached is not installed: run `scripts/setup.sh test`".to_string()
                }
                _ => format!("starting memcached: {e}"),
            })?;
            for _ in 0..200 {
                if tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .is_ok()
                {
                    return Ok(Self {
                        child: std::sync::Mutex::new(child),
                        port,
                    });
                }
                if let Ok(Some(_)) = child.try_wait() {
                    break; // the port was taken meanwhile: try another
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        Err("memcached did not start on a free port".into())
    }

    /// Kills it (SIGKILL): its connections reset, new ones are refused.
    pub(crate) async fn kill(&self) {
        let _ = super::dashboard::lock(&self.child).start_kill();
        // Gone once its port refuses connections.
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_err()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
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
            .map(|(zone, m)| ServerGroup::new(*zone, vec![NodeSpec::new("127.0.0.1", m.port)]))
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
            .map(|m| m.port.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(Cache { servers, client })
}
