//! Stage 5, the players: a fleet of simulated players, each an ABR algorithm of
//! `netflix-abr` on a network trace, downloading the title's real segments over HTTP from
//! the OCAs, paced to the trace's throughput.
//!
//! A player asks the gateway to play (its subscriber's token, its network's address),
//! probes every OCA URL of the answer, and streams from the best: the fastest answer to
//! the probe, in whole milliseconds, and the steering order among equals. When an OCA
//! fails, during a request or in the middle of a body, the player moves on to the next
//! URL and fetches the chunk again; when every URL has failed it asks the API again,
//! whose steering by then knows which edges are gone. A chunk that cannot be fetched at
//! all is a player error; the run expects none.
//!
//! The player's clock is the real clock times `speed`: at 1 the fleet plays in real time;
//! at 4 a minute of video plays in about a quarter of a minute, the trace and the
//! playhead both running four times as fast.

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use netflix_abr::abr::{self, Abr, Context, Download, Event, Flavor, Playback};
use netflix_abr::qoe::Qoe;
use netflix_abr::trace::Trace;
use netflix_abr::video::Video;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

type HttpClient = Client<HttpConnector, Empty<Bytes>>;

/// Seconds of one request's round trip before its first byte (Pensieve's 80 ms).
const RTT_S: f64 = 0.08;
/// The share of the trace's throughput that carries payload (Pensieve's 0.95).
const PAYLOAD: f64 = 0.95;
/// The buffer a player fills up to, in seconds of media (hls.js's `maxBufferLength`).
pub(crate) const MAX_BUFFER_S: f64 = 30.0;
/// Attempts at one chunk (over every OCA, and fresh answers of the API) before the player
/// gives up with an error.
const ATTEMPTS: usize = 8;

/// What a player is.
#[derive(Debug, Clone)]
pub(crate) struct Spec {
    pub(crate) id: usize,
    pub(crate) algorithm: &'static str,
    pub(crate) trace: Arc<Trace>,
    /// Where in the trace the session starts (seconds after its first timestamp).
    pub(crate) trace_offset_s: f64,
    pub(crate) subscriber: &'static str,
    pub(crate) token: &'static str,
    pub(crate) client_ip: String,
    pub(crate) country: &'static str,
}

/// The title as players see it.
#[derive(Debug)]
pub(crate) struct Title {
    pub(crate) name: String,
    /// Chunk sizes and the rungs' bitrates (lowest first).
    pub(crate) video: Video,
    /// Per rung: its directory, its initialization segment and its media segments, in order.
    pub(crate) rungs: Vec<RungFiles>,
}

/// One rung's files, relative to the title.
#[derive(Debug, Clone)]
pub(crate) struct RungFiles {
    pub(crate) dir: String,
    pub(crate) init: String,
    pub(crate) segments: Vec<String>,
}

/// A player's state for the dashboard.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct Live {
    pub(crate) id: usize,
    pub(crate) algorithm: &'static str,
    pub(crate) trace: String,
    pub(crate) subscriber: &'static str,
    pub(crate) cluster: String,
    /// The OCA it streams from (host:port).
    pub(crate) oca: String,
    /// `starting`, `playing`, `stalled`, `done` or `failed`.
    pub(crate) state: &'static str,
    pub(crate) bitrate_kbps: f64,
    pub(crate) buffer_s: f64,
    pub(crate) chunks_done: usize,
    pub(crate) chunks: usize,
    pub(crate) rebuffer_s: f64,
    pub(crate) failovers: usize,
    /// Throughput of the last download, Mbit/s.
    pub(crate) throughput_mbps: f64,
}

/// Every player's state, shared with the dashboard.
pub(crate) type Board = Arc<Mutex<Vec<Live>>>;

/// One downloaded chunk.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub(crate) struct ChunkRecord {
    pub(crate) chunk: usize,
    pub(crate) quality: usize,
    pub(crate) bitrate_kbps: f64,
    pub(crate) bytes: u64,
    /// The player's clock when its last byte arrived, s.
    pub(crate) at_s: f64,
    pub(crate) buffer_s: f64,
    pub(crate) rebuffer_s: f64,
    /// QoE_lin of the chunk (0 for the first, which is not scored).
    pub(crate) reward: f64,
}

/// A player's session, once it has ended.
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    pub(crate) spec: Spec,
    pub(crate) chunks: Vec<ChunkRecord>,
    pub(crate) startup_s: f64,
    pub(crate) rebuffer_s: f64,
    pub(crate) total_qoe: f64,
    pub(crate) switches: usize,
    pub(crate) failovers: usize,
    /// Chunks that could not be fetched at all, and why.
    pub(crate) errors: Vec<String>,
    /// API calls made, and those answered with other than 200.
    pub(crate) api_calls: usize,
    pub(crate) api_failures: usize,
    /// The OCAs it streamed from, in order.
    pub(crate) ocas: Vec<String>,
}

impl Outcome {
    /// Mean QoE per scored chunk.
    pub(crate) fn qoe_per_chunk(&self) -> f64 {
        let scored = self.chunks.len().saturating_sub(1);
        if scored == 0 {
            0.0
        } else {
            self.total_qoe / scored as f64
        }
    }

    /// Mean bitrate of the chunks, kbit/s.
    pub(crate) fn mean_bitrate_kbps(&self) -> f64 {
        if self.chunks.is_empty() {
            0.0
        } else {
            self.chunks.iter().map(|c| c.bitrate_kbps).sum::<f64>() / self.chunks.len() as f64
        }
    }
}

/// A link whose throughput follows a trace, looping.
#[derive(Debug)]
struct Link<'a> {
    trace: &'a Trace,
    offset_s: f64,
}

impl Link<'_> {
    /// The trace's rate (bytes a second of payload) at session time `t`, and the session
    /// time at which that rate changes.
    fn rate_at(&self, t: f64) -> (f64, f64) {
        let times = self.trace.time_s();
        let mbps = self.trace.mbps();
        let first = times[0];
        let span = self.trace.duration_s().max(1e-3);
        let local = (t + self.offset_s).rem_euclid(span);
        let at = first + local;
        let i = times.partition_point(|&x| x <= at).saturating_sub(1);
        let end = times.get(i + 1).copied().unwrap_or(first + span);
        let rate = mbps[i] * 1e6 / 8.0 * PAYLOAD;
        (rate, t + (end - at).max(1e-6))
    }

    /// The session time at which `bytes` more bytes have arrived, starting at `t`.
    fn deliver(&self, mut t: f64, bytes: u64) -> f64 {
        let mut left = bytes as f64;
        // Bounded: a trace refuses stretches of zero throughput long enough to hang here.
        for _ in 0..1_000_000 {
            if left <= 0.0 {
                break;
            }
            let (rate, until) = self.rate_at(t);
            let can = rate * (until - t);
            if rate > 0.0 && can >= left {
                return t + left / rate;
            }
            left -= can.max(0.0);
            t = until;
        }
        t
    }
}

/// The playhead and the buffer on the player's clock.
#[derive(Debug)]
struct Playhead {
    at: f64,
    buffer: f64,
    state: Playback,
    startup: f64,
    rebuffer: f64,
}

impl Playhead {
    /// Lets the clock run to `now`: the buffer drains while playing; stalls count.
    fn advance(&mut self, now: f64, abr: &mut dyn Abr) {
        let dt = (now - self.at).max(0.0);
        self.at = now.max(self.at);
        match self.state {
            Playback::Starting => self.startup += dt,
            Playback::Stalled => self.rebuffer += dt,
            Playback::Playing => {
                if self.buffer >= dt {
                    self.buffer -= dt;
                } else {
                    self.rebuffer += dt - self.buffer;
                    self.buffer = 0.0;
                    self.state = Playback::Stalled;
                    abr.on_event(&Event::Stall);
                }
            }
        }
    }
}

/// How one attempt at a chunk ended.
enum Fetch {
    Done { bytes: u64, first_byte_s: f64 },
    Failed(String),
}

/// One player.
struct Player<'a> {
    spec: Spec,
    title: &'a Title,
    gateway: SocketAddr,
    speed: f64,
    board: Board,
    client: HttpClient,
    started: Instant,
    /// The ranked OCA URLs of the title (each ends with `/`), the current one first.
    ocas: Vec<String>,
    current: usize,
    cluster: String,
    outcome: Outcome,
}

impl Player<'_> {
    fn now(&self) -> f64 {
        self.started.elapsed().as_secs_f64() * self.speed
    }

    async fn sleep_until(&self, t: f64) {
        let real = Duration::from_secs_f64((t / self.speed).max(0.0));
        tokio::time::sleep_until(self.started + real).await;
    }

    fn update(&self, f: impl FnOnce(&mut Live)) {
        if let Some(l) = super::dashboard::lock(&self.board).get_mut(self.spec.id) {
            f(l);
        }
    }

    /// Asks the gateway to play; on success, probes and ranks the OCAs of the answer.
    async fn ask(&mut self) -> Result<(), String> {
        let mut last = String::new();
        for attempt in 0..4 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
            }
            self.outcome.api_calls += 1;
            match super::play(
                &self.client,
                self.gateway,
                Some(self.spec.token),
                self.spec.country,
                &self.spec.client_ip,
            )
            .await
            {
                Ok((200, answer)) => {
                    let urls: Vec<String> = answer["urls"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(|u| u.as_str())
                                .map(|u| u.trim_end_matches("master.m3u8").to_string())
                                .collect()
                        })
                        .unwrap_or_default();
                    self.cluster = answer["cluster"].as_str().unwrap_or("-").to_string();
                    self.ocas = self.probe(urls).await;
                    self.current = 0;
                    if self.ocas.is_empty() {
                        last = "no OCA of the answer answered its probe".into();
                        continue;
                    }
                    let (oca, cluster) = (host(&self.ocas[0]), self.cluster.clone());
                    self.update(|l| {
                        l.oca = oca;
                        l.cluster = cluster;
                    });
                    return Ok(());
                }
                Ok((status, answer)) => {
                    self.outcome.api_failures += 1;
                    last = format!("the API answered {status}: {answer}");
                }
                Err(e) => {
                    self.outcome.api_failures += 1;
                    last = e;
                }
            }
        }
        Err(last)
    }

    /// Probes each OCA (the title's playlist) and ranks those that answered: fastest in
    /// whole milliseconds first, steering's order among equals.
    async fn probe(&self, urls: Vec<String>) -> Vec<String> {
        let mut ranked = Vec::new();
        for (rank, base) in urls.into_iter().enumerate() {
            let t = Instant::now();
            let ok = tokio::time::timeout(
                Duration::from_secs(2),
                super::fetch(&self.client, &format!("{base}master.m3u8")),
            )
            .await;
            if let Ok(Ok(_)) = ok {
                ranked.push((t.elapsed().as_millis(), rank, base));
            } else {
                tracing::debug!(target: "full_stack", player = self.spec.id, base, "probe failed");
            }
        }
        ranked.sort();
        ranked.into_iter().map(|(_, _, b)| b).collect()
    }

    /// GETs `url`, reading the body at the trace's pace from session time `t`.
    async fn fetch_paced(&self, link: &Link<'_>, url: &str, t: f64) -> Fetch {
        let uri: http::Uri = match url.parse() {
            Ok(u) => u,
            Err(e) => return Fetch::Failed(format!("{url}: {e}")),
        };
        let first = t + RTT_S;
        let res = tokio::time::timeout(Duration::from_secs(5), self.client.get(uri)).await;
        let res = match res {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return Fetch::Failed(format!("{}: {e}", host(url))),
            Err(_) => return Fetch::Failed(format!("{}: no answer within 5 s", host(url))),
        };
        if res.status() != http::StatusCode::OK {
            return Fetch::Failed(format!("{}: status {}", host(url), res.status()));
        }
        self.sleep_until(first).await;
        let mut body = res.into_body();
        let (mut got, mut at) = (0u64, first);
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(5), body.frame()).await;
            match frame {
                Ok(None) => break,
                Ok(Some(Ok(f))) => {
                    if let Ok(data) = f.into_data() {
                        got += data.len() as u64;
                        at = link.deliver(at, data.len() as u64);
                        self.sleep_until(at).await;
                    }
                }
                Ok(Some(Err(e))) => {
                    return Fetch::Failed(format!(
                        "{}: the body broke after {got} bytes: {e}",
                        host(url)
                    ));
                }
                Err(_) => {
                    return Fetch::Failed(format!("{}: the body stalled for 5 s", host(url)));
                }
            }
        }
        Fetch::Done {
            bytes: got,
            first_byte_s: first - t,
        }
    }

    /// Fetches one file of the title, failing over across OCAs (and fresh API answers).
    async fn fetch_file(&mut self, link: &Link<'_>, rel: &str) -> Result<(u64, f64, f64), String> {
        let mut why = Vec::new();
        for _ in 0..ATTEMPTS {
            if self.current >= self.ocas.len() {
                // Every OCA of the answer failed: ask again.
                self.ask().await?;
            }
            let base = self.ocas[self.current].clone();
            let t = self.now();
            match self.fetch_paced(link, &format!("{base}{rel}"), t).await {
                Fetch::Done {
                    bytes,
                    first_byte_s,
                } => return Ok((bytes, t, first_byte_s)),
                Fetch::Failed(e) => {
                    tracing::info!(
                        target: "full_stack",
                        "player {}: {e}; failing over",
                        self.spec.id
                    );
                    why.push(e);
                    self.outcome.failovers += 1;
                    self.current += 1;
                    let next = self.ocas.get(self.current).map(|b| host(b));
                    let failovers = self.outcome.failovers;
                    self.update(|l| {
                        l.failovers = failovers;
                        if let Some(n) = next {
                            l.oca = n;
                        }
                    });
                }
            }
        }
        Err(format!("{rel}: {}", why.join("; ")))
    }

    async fn run(mut self) -> Outcome {
        let title = self.title;
        let video = &title.video;
        let trace = self.spec.trace.clone();
        let link = Link {
            trace: &trace,
            offset_s: self.spec.trace_offset_s,
        };
        let mut abr = match abr::by_name(self.spec.algorithm, video, Flavor::Standard) {
            Ok(a) => a,
            Err(e) => {
                self.outcome.errors.push(e.to_string());
                return self.outcome;
            }
        };
        abr.reset();
        if let Err(e) = self.ask().await {
            self.outcome.errors.push(format!("play: {e}"));
            self.update(|l| l.state = "failed");
            return self.outcome;
        }
        let rates = video.bitrates_kbps().to_vec();
        let chunk_s = video.chunk_s();
        let mut head = Playhead {
            at: self.now(),
            buffer: 0.0,
            state: Playback::Starting,
            startup: 0.0,
            rebuffer: 0.0,
        };
        let mut last: Option<usize> = None;
        let mut inited = vec![false; title.rungs.len()];
        for chunk in 0..video.chunks() {
            // Room in the buffer first.
            let room = head.buffer + chunk_s - MAX_BUFFER_S;
            if room > 0.0 && head.state == Playback::Playing {
                self.sleep_until(head.at + room).await;
            }
            head.advance(self.now(), abr.as_mut());
            let ctx = Context::new(video, chunk, head.buffer, last)
                .at(head.at)
                .playback(head.state);
            let decision = abr.choose(&ctx);
            let quality = decision.quality.min(video.levels() - 1);
            if decision.wait_s > 0.0 && decision.wait_s.is_finite() {
                self.sleep_until(head.at + decision.wait_s.min(chunk_s))
                    .await;
            }
            let rung = &title.rungs[quality];
            let mut bytes = 0;
            let mut requested = None;
            let mut first_byte = 0.0;
            let mut files = Vec::with_capacity(2);
            if !inited[quality] {
                files.push(format!("{}/{}", rung.dir, rung.init));
            }
            files.push(format!("{}/{}", rung.dir, rung.segments[chunk]));
            let mut failed = None;
            for f in &files {
                match self.fetch_file(&link, f).await {
                    Ok((b, t, fb)) => {
                        bytes += b;
                        requested.get_or_insert(t);
                        first_byte = fb;
                    }
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            if let Some(e) = failed {
                self.outcome.errors.push(e);
                self.update(|l| l.state = "failed");
                break;
            }
            inited[quality] = true;
            let stall_before = head.rebuffer + head.startup;
            let arrived = self.now();
            head.advance(arrived, abr.as_mut());
            let requested = requested.unwrap_or(arrived);
            let elapsed_ms = (arrived - requested).max(1e-3) * 1000.0;
            abr.on_download(
                &Download::new(chunk, quality, bytes, elapsed_ms, first_byte * 1000.0).at(arrived),
            );
            head.buffer += chunk_s;
            if head.state != Playback::Playing && head.buffer >= chunk_s {
                head.state = Playback::Playing;
            }
            let rebuffer = if chunk == 0 {
                0.0
            } else {
                head.rebuffer + head.startup - stall_before
            };
            let reward = if chunk == 0 {
                0.0
            } else {
                Qoe::Lin.chunk(&rates, quality, last, rebuffer)
            };
            if last.is_some_and(|q| q != quality) {
                self.outcome.switches += 1;
            }
            self.outcome.total_qoe += reward;
            last = Some(quality);
            self.outcome.chunks.push(ChunkRecord {
                chunk,
                quality,
                bitrate_kbps: rates[quality],
                bytes,
                at_s: arrived,
                buffer_s: head.buffer,
                rebuffer_s: rebuffer,
                reward,
            });
            let oca = host(&self.ocas[self.current.min(self.ocas.len() - 1)]);
            if self.outcome.ocas.last() != Some(&oca) {
                self.outcome.ocas.push(oca);
            }
            let (buffer, state, total_rebuffer) = (head.buffer, head.state, head.rebuffer);
            self.update(|l| {
                l.bitrate_kbps = rates[quality];
                l.buffer_s = buffer;
                l.chunks_done = chunk + 1;
                l.rebuffer_s = total_rebuffer;
                l.state = state_name(state);
                l.throughput_mbps = bytes as f64 * 8.0 / elapsed_ms / 1000.0;
            });
            // The session's position, through the API (a heartbeat every other chunk).
            if chunk % 2 == 1 {
                self.heartbeat((chunk + 1) as f64 * chunk_s).await;
            }
        }
        // Play out what is buffered.
        if self.outcome.errors.is_empty() {
            let end = head.at + head.buffer;
            self.update(|l| l.state = "done");
            head.advance(end, abr.as_mut());
        }
        self.outcome.startup_s = head.startup;
        self.outcome.rebuffer_s = head.rebuffer;
        self.outcome
    }

    /// Tells the API where playback stands.
    async fn heartbeat(&mut self, position_s: f64) {
        self.outcome.api_calls += 1;
        let url = format!(
            "http://{}/session?title={}&position={position_s:.0}",
            self.gateway, self.title.name
        );
        let req = http::Request::post(url)
            .header(
                http::header::AUTHORIZATION,
                format!("Bearer {}", self.spec.token),
            )
            .body(Empty::new());
        let ok = match req {
            Ok(req) => matches!(
                tokio::time::timeout(Duration::from_secs(5), self.client.request(req)).await,
                Ok(Ok(r)) if r.status() == http::StatusCode::OK
            ),
            Err(_) => false,
        };
        if !ok {
            self.outcome.api_failures += 1;
        }
    }
}

fn state_name(s: Playback) -> &'static str {
    match s {
        Playback::Starting => "starting",
        Playback::Playing => "playing",
        Playback::Stalled => "stalled",
    }
}

/// `host:port` of a URL.
pub(crate) fn host(url: &str) -> String {
    url.split("://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .unwrap_or(url)
        .to_string()
}

/// The first state of each player, for the board.
pub(crate) fn lives(specs: &[Spec], chunks: usize) -> Vec<Live> {
    specs
        .iter()
        .map(|s| Live {
            id: s.id,
            algorithm: s.algorithm,
            trace: s.trace.name().to_string(),
            subscriber: s.subscriber,
            cluster: String::new(),
            oca: String::new(),
            state: "starting",
            bitrate_kbps: 0.0,
            buffer_s: 0.0,
            chunks_done: 0,
            chunks,
            rebuffer_s: 0.0,
            failovers: 0,
            throughput_mbps: 0.0,
        })
        .collect()
}

/// Plays one session of `spec`, updating `board`.
pub(crate) async fn play(
    spec: Spec,
    title: Arc<Title>,
    gateway: SocketAddr,
    speed: f64,
    board: Board,
) -> Outcome {
    let player = Player {
        outcome: Outcome {
            spec: spec.clone(),
            chunks: Vec::new(),
            startup_s: 0.0,
            rebuffer_s: 0.0,
            total_qoe: 0.0,
            switches: 0,
            failovers: 0,
            errors: Vec::new(),
            api_calls: 0,
            api_failures: 0,
            ocas: Vec::new(),
        },
        spec,
        title: &title,
        gateway,
        speed,
        board,
        client: Client::builder(TokioExecutor::new()).build_http(),
        started: Instant::now(),
        ocas: Vec::new(),
        current: 0,
        cluster: String::new(),
    };
    player.run().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_link_follows_the_trace_and_loops() {
        // 8 Mbit/s for 1 s, then 0.8 Mbit/s for 1 s, looping.
        let trace = Trace::new("t", vec![0.0, 1.0, 2.0], vec![8.0, 0.8, 8.0]).unwrap();
        let link = Link {
            trace: &trace,
            offset_s: 0.0,
        };
        let fast = 1e6 * PAYLOAD; // bytes a second at 8 Mbit/s
        let t = link.deliver(0.0, (fast / 2.0) as u64);
        assert!((t - 0.5).abs() < 1e-6, "{t}");
        // A whole fast second, then a tenth of the rate.
        let t = link.deliver(0.0, (fast * 1.05) as u64);
        assert!((t - 1.5).abs() < 1e-3, "{t}");
        // Past the end, the trace starts over at its first rate.
        let t = link.deliver(2.0, (fast / 2.0) as u64);
        assert!((t - 2.5).abs() < 1e-6, "{t}");
    }
}
