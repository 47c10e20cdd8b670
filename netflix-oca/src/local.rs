//! A whole Open Connect topology on loopback, for examples, integration tests and demos:
//! an origin serving a directory, a regional appliance filling from it, ISP clusters of
//! edge appliances placed by consistent hashing and filling from their peers and the
//! regional tier, the control plane with health reports, proactive fill and steering.
//!
//! ```no_run
//! use netflix_oca::local::{ClusterSpec, LocalCdn, LocalCdnConfig};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! let cdn = LocalCdn::start(LocalCdnConfig {
//!     origin_dir: "/srv/titles".into(),
//!     clusters: vec![
//!         ClusterSpec::new("isp-a", 3, ["10.1.0.0/16"]),
//!         ClusterSpec::new("isp-b", 3, ["10.2.0.0/16"]),
//!     ],
//!     ..LocalCdnConfig::default()
//! })
//! .await?;
//! let answer = cdn.control.steer("10.1.2.3".parse().unwrap(), "title-81", "title-81/master.m3u8");
//! # let _ = answer;
//! cdn.shutdown().await;
//! # Ok(()) }
//! ```

use crate::control::{ControlClient, ControlPlane};
use crate::fill::{FillConfig, Filler, Upstream};
use crate::http::client::HttpUpstream;
use crate::http::sign::UrlSigner;
use crate::placement::{CopyPolicy, Node, Placement};
use crate::proactive::{FillManifest, FillReport, ProactiveFill};
use crate::server::{OcaServer, placement_route};
use crate::steering::{LiveRule, Prefix, Steering};
use crate::store::{ChunkStore, StoreConfig};
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// One ISP cluster.
#[derive(Debug, Clone)]
pub struct ClusterSpec {
    /// Its name.
    pub name: String,
    /// How many edge appliances.
    pub nodes: usize,
    /// The client prefixes it serves.
    pub prefixes: Vec<String>,
}

impl ClusterSpec {
    /// A cluster of `nodes` edges serving `prefixes`.
    pub fn new<'a>(name: &str, nodes: usize, prefixes: impl IntoIterator<Item = &'a str>) -> Self {
        Self {
            name: name.into(),
            nodes,
            prefixes: prefixes.into_iter().map(str::to_string).collect(),
        }
    }
}

/// The topology's settings.
#[derive(Debug, Clone)]
pub struct LocalCdnConfig {
    /// The origin's directory.
    pub origin_dir: PathBuf,
    /// The ISP clusters.
    pub clusters: Vec<ClusterSpec>,
    /// The chunk store of every appliance (memory only unless a disk directory is set;
    /// with one, each appliance gets a subdirectory).
    pub store: StoreConfig,
    /// The key signing steering's URLs.
    pub signing_key: Vec<u8>,
    /// Copies per title by popularity.
    pub copies: CopyPolicy,
    /// When a title is live.
    pub live: LiveRule,
    /// How often appliances report.
    pub report_interval: Duration,
    /// How long without the control plane before an appliance stops taking new sessions.
    pub lost_after: Duration,
    /// The proactive fill rate cap, bytes a second.
    pub fill_rate: u64,
    /// The web origin the edges let read their answers (see [`OcaServer::cors`]), for
    /// browser players on a page of another origin; `None` (the default) sends no CORS
    /// headers.
    pub cors: Option<::http::HeaderValue>,
}

impl Default for LocalCdnConfig {
    fn default() -> Self {
        Self {
            origin_dir: PathBuf::from("."),
            clusters: vec![ClusterSpec::new("isp-a", 3, ["10.1.0.0/16"])],
            store: StoreConfig {
                memory_bytes: 128 << 20,
                ..StoreConfig::default()
            },
            signing_key: b"local-cdn-signing-key".to_vec(),
            copies: CopyPolicy { min: 2, max: 3 },
            live: LiveRule {
                copies: 2,
                clusters: 1,
            },
            report_interval: Duration::from_millis(500),
            lost_after: Duration::from_secs(5),
            fill_rate: 200_000_000,
            cors: None,
        }
    }
}

/// One running appliance (or the origin).
#[derive(Debug)]
pub struct Appliance {
    /// Its name (`origin`, `regional`, `isp-a-oca-1`...).
    pub name: String,
    /// Its cluster (empty for the origin and the regional tier).
    pub cluster: String,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its server.
    pub server: OcaServer,
    /// Its drain switch (edges only).
    pub drain: Option<Arc<AtomicBool>>,
    stop: Option<oneshot::Sender<()>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Appliance {
    /// Starts `server` on a free port, as a tier outside the clusters.
    async fn tier(name: &str, server: OcaServer) -> io::Result<Self> {
        let (l, addr) = listen().await?;
        let (stop, task) = spawn_server(&server, l);
        Ok(Self {
            name: name.into(),
            cluster: String::new(),
            addr,
            server,
            drain: None,
            stop: Some(stop),
            tasks: vec![task],
        })
    }

    /// Its base URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// A running topology; see the module docs.
#[derive(Debug)]
pub struct LocalCdn {
    /// The origin.
    pub origin: Appliance,
    /// The regional tier.
    pub regional: Appliance,
    /// The edges, cluster by cluster.
    pub edges: Vec<Appliance>,
    /// The control plane.
    pub control: ControlPlane,
    /// The control plane's address.
    pub control_addr: SocketAddr,
    /// The placement of each cluster.
    pub placements: HashMap<String, Placement>,
    /// The URL signer.
    pub signer: UrlSigner,
    config: LocalCdnConfig,
    control_stop: Option<oneshot::Sender<()>>,
    fills: Arc<parking_lot::Mutex<Vec<FillReport>>>,
}

async fn listen() -> io::Result<(TcpListener, SocketAddr)> {
    let l = TcpListener::bind("127.0.0.1:0").await?;
    let a = l.local_addr()?;
    Ok((l, a))
}

fn spawn_server(
    server: &OcaServer,
    listener: TcpListener,
) -> (oneshot::Sender<()>, JoinHandle<()>) {
    let (tx, rx) = oneshot::channel::<()>();
    let s = server.clone();
    let task = tokio::spawn(async move {
        let _ = s
            .serve(listener, async {
                let _ = rx.await;
            })
            .await;
    });
    (tx, task)
}

impl LocalCdn {
    /// Starts everything on free loopback ports.
    ///
    /// # Errors
    ///
    /// When the origin directory does not exist, a port cannot be bound or a store cannot
    /// be opened.
    pub async fn start(config: LocalCdnConfig) -> io::Result<Self> {
        let signer = UrlSigner::new(config.signing_key.clone());
        let store_for = |name: &str| -> io::Result<Arc<ChunkStore>> {
            let mut c = config.store.clone();
            c.disk_dir = c.disk_dir.map(|d| d.join(name));
            Ok(Arc::new(ChunkStore::open(c)?))
        };

        // The origin and the regional tier.
        let origin = Appliance::tier("origin", OcaServer::origin(&config.origin_dir)?).await?;
        let origin_addr = origin.addr;
        let regional_filler = Arc::new(Filler::new(
            store_for("regional")?,
            vec![Arc::new(HttpUpstream::new("origin", origin_addr))],
            FillConfig::default(),
        ));
        let regional = Appliance::tier("regional", OcaServer::edge(regional_filler)).await?;
        let regional_addr = regional.addr;

        // The control plane.
        let mut steering = Steering::new(signer.clone(), config.live);
        steering.stale_after(config.lost_after);
        steering.fallback(format!("http://{regional_addr}"));
        let mut placements = HashMap::new();
        let mut listeners = Vec::new();
        for c in &config.clusters {
            let mut nodes = Vec::new();
            for i in 1..=c.nodes {
                let name = format!("{}-oca-{i}", c.name);
                let (l, a) = listen().await?;
                listeners.push((c.name.clone(), name.clone(), l, a));
                nodes.push(Node::new(name.clone(), format!("{name}-host")));
            }
            let placement = Placement::new(nodes)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
            let prefixes = c
                .prefixes
                .iter()
                .map(|p| p.parse::<Prefix>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
            steering.add_cluster(&c.name, placement.clone(), prefixes);
            placements.insert(c.name.clone(), placement);
        }
        let control = ControlPlane::new(steering);
        let (l, control_addr) = listen().await?;
        let (control_stop, rx) = oneshot::channel::<()>();
        {
            let control = control.clone();
            tokio::spawn(async move {
                let _ = control
                    .serve(l, async {
                        let _ = rx.await;
                    })
                    .await;
            });
        }

        // The edges.
        let fills = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let mut edges = Vec::new();
        let addrs: HashMap<String, SocketAddr> = listeners
            .iter()
            .map(|(_, n, _, a)| (n.clone(), *a))
            .collect();
        for (cluster, name, l, addr) in listeners {
            let placement = placements[&cluster].clone();
            let peers: HashMap<String, Arc<dyn Upstream>> = placement
                .nodes()
                .iter()
                .filter(|n| n.name() != name)
                .map(|n| {
                    let up: Arc<dyn Upstream> = Arc::new(
                        HttpUpstream::peer(n.name(), addrs[n.name()]).signed(signer.clone()),
                    );
                    (n.name().to_string(), up)
                })
                .collect();
            let filler = Arc::new(Filler::new(
                store_for(&name)?,
                vec![Arc::new(HttpUpstream::new("regional", regional_addr))],
                FillConfig::default(),
            ));
            let mut server = OcaServer::edge(filler.clone())
                .signed(signer.clone())
                .peers(placement_route(
                    placement.clone(),
                    name.clone(),
                    peers,
                    config.copies.max,
                ));
            if let Some(origin) = &config.cors {
                server = server.cors(origin.clone());
            }
            let (stop, task) = spawn_server(&server, l);
            let proactive = ProactiveFill::new(filler, placement, name.clone())
                .copies(config.copies)
                .rate(config.fill_rate);
            let fills2 = fills.clone();
            let client = ControlClient::new(
                control_addr,
                server.clone(),
                &cluster,
                &name,
                format!("http://{addr}"),
            )
            .interval(config.report_interval)
            .lost_after(config.lost_after)
            .on_manifest(Arc::new(move |m: FillManifest| {
                let p = proactive.clone();
                let fills = fills2.clone();
                tokio::spawn(async move {
                    let r = p.run(&m).await;
                    fills.lock().push(r);
                });
            }));
            let drain = client.drain_switch();
            let (ctl_stop_tx, ctl_stop_rx) = oneshot::channel::<()>();
            let ctl = tokio::spawn(client.run(async {
                let _ = ctl_stop_rx.await;
            }));
            // The control client stops with the server.
            let watcher = tokio::spawn(async move {
                let _ = task.await;
                let _ = ctl_stop_tx.send(());
            });
            edges.push(Appliance {
                name,
                cluster,
                addr,
                server,
                drain: Some(drain),
                stop: Some(stop),
                tasks: vec![ctl, watcher],
            });
        }
        tracing::info!(origin = %origin_addr, regional = %regional_addr, control = %control_addr, edges = edges.len(), "local CDN up");
        Ok(Self {
            origin,
            regional,
            edges,
            control,
            control_addr,
            placements,
            signer,
            config,
            control_stop: Some(control_stop),
            fills,
        })
    }

    /// Publishes a fill manifest to its cluster (every edge fetches it on its next report
    /// and fills its share).
    pub fn publish(&self, manifest: FillManifest) {
        self.control.publish(manifest);
    }

    /// The proactive fill passes finished so far.
    pub fn fill_reports(&self) -> Vec<FillReport> {
        self.fills.lock().clone()
    }

    /// Waits until `title` is live (K copies in M clusters), up to `timeout`.
    pub async fn wait_live(&self, title: &str, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while tokio::time::Instant::now() < deadline {
            if self.control.steering().read().is_live(title) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    /// The edge called `name`.
    pub fn edge(&self, name: &str) -> Option<&Appliance> {
        self.edges.iter().find(|e| e.name == name)
    }

    /// Kills the edge at `base_url` (or called `name`) as a crash would.
    pub fn kill(&self, name_or_url: &str) -> bool {
        match self
            .edges
            .iter()
            .find(|e| e.name == name_or_url || name_or_url.starts_with(&e.url()))
        {
            Some(e) => {
                e.server.kill();
                true
            }
            None => false,
        }
    }

    /// The settings it was started with.
    pub fn config(&self) -> &LocalCdnConfig {
        &self.config
    }

    /// Stops everything.
    pub async fn shutdown(mut self) {
        for a in self
            .edges
            .iter_mut()
            .chain([&mut self.regional, &mut self.origin])
        {
            if let Some(s) = a.stop.take() {
                let _ = s.send(());
            }
            for t in a.tasks.drain(..) {
                t.abort();
            }
        }
        if let Some(s) = self.control_stop.take() {
            let _ = s.send(());
        }
    }
}
