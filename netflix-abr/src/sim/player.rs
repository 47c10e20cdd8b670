//! The general player model.
//!
//! A single-connection player fetching one chunk at a time over a looping trace:
//!
//! 1. While the buffer holds more than `max_buffer_s − chunk` it waits (playing).
//! 2. It asks the algorithm for the next chunk's rung, and waits for as long as the
//!    algorithm asks ([`Decision::wait_s`](crate::abr::Decision::wait_s)).
//! 3. The request takes one round trip (`rtt_s`) before the first byte; then bytes flow at
//!    the trace's throughput × `payload_portion`. With abandonment on, every
//!    `progress_interval_s` the algorithm may [abandon](crate::abr::Abr::abandon) the chunk
//!    for a lower rung; the bytes so far are wasted and the chunk is requested again.
//! 4. Playback starts once `startup_s` of media is buffered; when the buffer runs dry it
//!    stalls (rebuffering) until `resume_s` is buffered again.
//! 5. [`Seek`]s flush the buffer at a given time and restart playback from a new position,
//!    through start-up again.
//!
//! Unlike [Pensieve's simulator](super::pensieve), the trace loops seamlessly (its time
//! wraps to the first timestamp), and the round trip advances the trace.
//!
//! # Example
//!
//! ```
//! use netflix_abr::abr::Bola;
//! use netflix_abr::sim::player::{self, Config, Seek};
//! use netflix_abr::trace::Trace;
//! use netflix_abr::video::Video;
//!
//! let trace = Trace::parse("cell", "0 3.0\n20 3.0\n25 0.3\n40 4.0\n")?;
//! let video = Video::envivio();
//! let mut bola = Bola::enhanced(video.bitrates_kbps());
//! let mut config = Config::default();
//! config.abandonment = true;
//! config.seeks = vec![Seek { at_s: 60.0, to_s: 120.0 }];
//! let session = player::simulate(&trace, &video, &mut bola, &config)?;
//! assert!(session.startup_s > 0.0);
//! // After the seek to 120 s, chunk 30 is fetched next.
//! assert!(session.chunks.iter().any(|c| c.chunk == 30));
//! # Ok::<(), netflix_abr::Error>(())
//! ```

use super::{ChunkLog, Session};
use crate::abr::{Abr, Context, Download, Event, Playback, Progress};
use crate::error::{Error, Result};
use crate::qoe::Qoe;
use crate::trace::Trace;
use crate::video::Video;

/// A seek: at `at_s` on the session clock, playback jumps to media position `to_s`.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Seek {
    /// When, in seconds since the session started.
    pub at_s: f64,
    /// Where to, in seconds of media.
    pub to_s: f64,
}

/// The player model's settings.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct Config {
    /// Seconds before the first byte of each request (80 ms).
    pub rtt_s: f64,
    /// The share of the trace's throughput that carries payload (0.95).
    pub payload_portion: f64,
    /// The buffer the player fills up to (60 s).
    pub max_buffer_s: f64,
    /// Media buffered before playback starts; `None` is one chunk.
    pub startup_s: Option<f64>,
    /// Media buffered before a stalled playback resumes; `None` is one chunk.
    pub resume_s: Option<f64>,
    /// Where in the trace the session starts, seconds after its first timestamp.
    pub trace_offset_s: f64,
    /// Ask the algorithm about abandoning the chunk in flight.
    pub abandonment: bool,
    /// Seconds between progress events while a chunk downloads (0.1 s).
    pub progress_interval_s: f64,
    /// Seeks, by time.
    pub seeks: Vec<Seek>,
    /// The per-chunk score.
    pub qoe: Qoe,
    /// Keep each chunk's record.
    pub keep_chunks: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            rtt_s: 0.08,
            payload_portion: 0.95,
            max_buffer_s: 60.0,
            startup_s: None,
            resume_s: None,
            trace_offset_s: 0.0,
            abandonment: false,
            progress_interval_s: 0.1,
            seeks: Vec::new(),
            qoe: Qoe::Lin,
            keep_chunks: true,
        }
    }
}

/// A seamlessly looping network link.
#[derive(Debug, Clone)]
struct Link<'a> {
    time: &'a [f64],
    mbps: &'a [f64],
    /// The current interval: (time[i-1], time[i]] at mbps[i].
    i: usize,
    /// Trace time now, within (time[i-1], time[i]].
    t: f64,
    payload: f64,
}

impl<'a> Link<'a> {
    fn new(trace: &'a Trace, offset_s: f64, payload: f64) -> Self {
        let mut link = Self {
            time: trace.time_s(),
            mbps: trace.mbps(),
            i: 1,
            t: trace.time_s()[0],
            payload,
        };
        link.idle(offset_s.max(0.0) % trace.duration_s().max(f64::MIN_POSITIVE));
        link
    }

    fn wrap(&mut self) {
        self.i += 1;
        if self.i >= self.time.len() {
            self.i = 1;
            self.t = self.time[0];
        }
    }

    /// Lets `dt` seconds pass.
    fn idle(&mut self, mut dt: f64) {
        while dt > 0.0 {
            let left = self.time[self.i] - self.t;
            if left > dt {
                self.t += dt;
                return;
            }
            dt -= left.max(0.0);
            self.t = self.time[self.i];
            self.wrap();
        }
    }

    /// Transfers up to `bytes` within `limit_s` seconds: (bytes moved, seconds taken).
    fn transfer(&mut self, bytes: f64, limit_s: f64) -> (f64, f64) {
        let (mut moved, mut spent) = (0.0, 0.0);
        loop {
            let rate = self.mbps[self.i] * 1e6 / 8.0 * self.payload;
            let left = (self.time[self.i] - self.t).max(0.0);
            let window = left.min(limit_s - spent);
            if rate > 0.0 && moved + rate * window >= bytes {
                let dt = (bytes - moved) / rate;
                self.t += dt;
                return (bytes, spent + dt);
            }
            moved += rate * window;
            spent += window;
            if window < left {
                self.t += window;
                return (moved, spent);
            }
            self.t = self.time[self.i];
            self.wrap();
        }
    }
}

/// The player's clock, buffer and playback state.
#[derive(Debug)]
struct Clock {
    now: f64,
    buffer: f64,
    state: Playback,
    startup: f64,
    /// Rebuffering since the last chunk was recorded.
    stall: f64,
    stalled_event: bool,
}

impl Clock {
    /// Plays (or waits) for `dt` seconds.
    fn pass(&mut self, dt: f64) {
        self.now += dt;
        match self.state {
            Playback::Starting => self.startup += dt,
            Playback::Stalled => self.stall += dt,
            Playback::Playing => {
                if self.buffer >= dt {
                    self.buffer -= dt;
                } else {
                    self.stall += dt - self.buffer;
                    self.buffer = 0.0;
                    self.state = Playback::Stalled;
                    self.stalled_event = true;
                }
            }
        }
    }
}

/// Plays the whole video over `trace` with `abr` (after [`reset`](Abr::reset)ting it).
///
/// # Errors
///
/// [`ErrorKind::Invalid`](crate::ErrorKind::Invalid) for a configuration out of range (a
/// non-positive buffer, progress interval or payload portion, a negative round trip, or a
/// start-up threshold above the buffer) or when the algorithm chooses a rung that does not
/// exist.
pub fn simulate(
    trace: &Trace,
    video: &Video,
    abr: &mut dyn Abr,
    config: &Config,
) -> Result<Session> {
    let chunk_s = video.chunk_s();
    let startup_s = config.startup_s.unwrap_or(chunk_s);
    let resume_s = config.resume_s.unwrap_or(chunk_s);
    let bad = |reason: &str| Err(Error::invalid("player configuration", reason.to_owned()));
    let within = |x: f64, lo: f64, hi: f64| x >= lo && x <= hi;
    if !within(config.max_buffer_s, chunk_s, f64::MAX) {
        return bad("max_buffer_s must hold at least one chunk");
    }
    if !within(config.rtt_s, 0.0, f64::MAX)
        || !within(config.payload_portion, f64::MIN_POSITIVE, 1.0)
    {
        return bad("rtt_s must be ≥ 0 and payload_portion in (0, 1]");
    }
    if !within(config.progress_interval_s, f64::MIN_POSITIVE, f64::MAX) {
        return bad("progress_interval_s must be positive");
    }
    if !within(startup_s, 0.0, config.max_buffer_s) || !within(resume_s, 0.0, config.max_buffer_s) {
        return bad("startup_s and resume_s must lie between 0 and max_buffer_s");
    }
    let mut seeks = config.seeks.clone();
    seeks.retain(|s| s.at_s.is_finite() && s.to_s.is_finite() && s.to_s >= 0.0);
    seeks.sort_by(|a, b| a.at_s.total_cmp(&b.at_s));
    let mut seeks = seeks.into_iter().peekable();

    abr.reset();
    let mut link = Link::new(trace, config.trace_offset_s, config.payload_portion);
    let mut clock = Clock {
        now: 0.0,
        buffer: 0.0,
        state: Playback::Starting,
        startup: 0.0,
        stall: 0.0,
        stalled_event: false,
    };
    let mut session = Session::new(trace.name(), config.keep_chunks, video.chunks());
    let mut first_start: Option<f64> = None;
    let rates = video.bitrates_kbps();
    let mut next = 0usize;
    let mut last: Option<usize> = None;

    // Lets `dt` pass on link and clock, stopping at a seek: returns the seconds that passed
    // and whether a seek is due.
    let pass =
        |dt: f64, link: &mut Link<'_>, clock: &mut Clock, next_seek: Option<f64>| -> (f64, bool) {
            let until = next_seek.map_or(f64::INFINITY, |at| (at - clock.now).max(0.0));
            let step = dt.min(until);
            link.idle(step);
            clock.pass(step);
            (step, until <= dt)
        };

    'chunks: while next < video.chunks() {
        let mut waited = 0.0;
        let stall_before = clock.stall;
        // Seeks due now.
        if let Some(s) = seeks.next_if(|s| s.at_s <= clock.now) {
            next = seek(&mut clock, abr, video, s);
            continue;
        }
        // 1. Wait for room in the buffer.
        let room = clock.buffer + chunk_s - config.max_buffer_s;
        if room > 0.0 && clock.state == Playback::Playing {
            let (dt, seek_due) = pass(room, &mut link, &mut clock, seeks.peek().map(|s| s.at_s));
            waited += dt;
            if seek_due {
                continue;
            }
        }
        // 2. Decide.
        emit_stall(&mut clock, abr);
        let ctx = Context::new(video, next, clock.buffer, last)
            .at(clock.now)
            .playback(clock.state);
        let decision = abr.choose(&ctx);
        let mut quality = decision.quality;
        if quality >= video.levels() {
            return Err(Error::invalid(
                "rung",
                format!(
                    "{} chose rung {quality} of a {}-rung video",
                    abr.name(),
                    video.levels()
                ),
            ));
        }
        if decision.wait_s > 0.0 && decision.wait_s.is_finite() {
            let (dt, seek_due) = pass(
                decision.wait_s,
                &mut link,
                &mut clock,
                seeks.peek().map(|s| s.at_s),
            );
            waited += dt;
            if seek_due {
                continue;
            }
        }
        // 3. Fetch, possibly abandoning for a lower rung.
        let requested = clock.now;
        let bytes = loop {
            let size = video.size(quality, next).unwrap_or(0);
            let request = clock.now;
            let (_, seek_due) = pass(
                config.rtt_s,
                &mut link,
                &mut clock,
                seeks.peek().map(|s| s.at_s),
            );
            if seek_due {
                continue 'chunks;
            }
            let latency = clock.now - request;
            let mut loaded = 0.0f64;
            loop {
                let mut limit = if config.abandonment {
                    config.progress_interval_s
                } else {
                    f64::INFINITY
                };
                if let Some(s) = seeks.peek() {
                    limit = limit.min((s.at_s - clock.now).max(0.0));
                }
                let (moved, dt) = link.transfer(size as f64 - loaded, limit);
                clock.pass(dt);
                loaded += moved;
                if loaded >= size as f64 {
                    break;
                }
                if seeks.peek().is_some_and(|s| s.at_s <= clock.now) {
                    session.wasted_bytes += loaded as u64;
                    continue 'chunks;
                }
                if config.abandonment {
                    emit_stall(&mut clock, abr);
                    let progress = Progress {
                        context: Context::new(video, next, clock.buffer, last)
                            .at(clock.now)
                            .playback(clock.state),
                        quality,
                        bytes_total: size,
                        bytes_loaded: loaded as u64,
                        elapsed_s: clock.now - request,
                        latency_s: latency,
                    };
                    if let Some(lower) = abr.abandon(&progress) {
                        if lower < quality {
                            tracing::debug!(
                                chunk = next,
                                from = quality,
                                to = lower,
                                loaded = loaded as u64,
                                of = size,
                                "chunk abandoned"
                            );
                            session.wasted_bytes += loaded as u64;
                            quality = lower;
                            abr.on_event(&Event::Abandoned {
                                quality,
                                buffer_s: clock.buffer,
                            });
                            // Start over at the lower rung.
                            break;
                        }
                    }
                }
            }
            if loaded >= size as f64 {
                abr.on_download(
                    &Download::new(
                        next,
                        quality,
                        size,
                        (clock.now - request) * 1000.0,
                        latency * 1000.0,
                    )
                    .at(clock.now),
                );
                break size;
            }
        };
        // 4. The chunk is in.
        clock.buffer += chunk_s;
        let threshold = if clock.state == Playback::Starting {
            startup_s
        } else {
            resume_s
        };
        if clock.state != Playback::Playing && clock.buffer >= threshold.min(config.max_buffer_s) {
            if clock.state == Playback::Starting && first_start.is_none() {
                first_start = Some(clock.startup);
            }
            clock.state = Playback::Playing;
        }
        let rebuffer = clock.stall - stall_before;
        let reward = config.qoe.chunk(rates, quality, last, rebuffer);
        session.record(ChunkLog {
            chunk: next,
            quality,
            bitrate_kbps: rates[quality],
            bytes,
            time_s: clock.now,
            delay_ms: (clock.now - requested) * 1000.0,
            sleep_ms: waited * 1000.0,
            buffer_s: clock.buffer,
            rebuffer_s: rebuffer,
            reward,
        });
        last = Some(quality);
        next += 1;
    }
    session.startup_s = first_start.unwrap_or(clock.startup);
    tracing::debug!(
        trace = %session.trace,
        algorithm = abr.name(),
        qoe_per_chunk = session.qoe_per_chunk(),
        rebuffer_s = session.rebuffer_s,
        startup_s = session.startup_s,
        "player session done"
    );
    Ok(session)
}

fn emit_stall(clock: &mut Clock, abr: &mut dyn Abr) {
    if clock.stalled_event {
        clock.stalled_event = false;
        abr.on_event(&Event::Stall);
    }
}

fn seek(clock: &mut Clock, abr: &mut dyn Abr, video: &Video, s: Seek) -> usize {
    let to_chunk =
        ((s.to_s / video.chunk_s()).floor() as usize).min(video.chunks().saturating_sub(1));
    clock.buffer = 0.0;
    clock.state = Playback::Starting;
    clock.stalled_event = false;
    abr.on_event(&Event::Seek { to_chunk });
    to_chunk
}

/// Plays the video once over each trace, resetting the algorithm before each.
///
/// # Errors
///
/// As [`simulate`].
pub fn simulate_all(
    traces: &[Trace],
    video: &Video,
    abr: &mut dyn Abr,
    config: &Config,
) -> Result<Vec<Session>> {
    traces
        .iter()
        .map(|t| simulate(t, video, abr, config))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abr::{Bba, Decision, ThroughputRule};

    fn flat(mbps: f64) -> Trace {
        Trace::parse("flat", &format!("0 {mbps}\n1000 {mbps}\n")).unwrap()
    }

    #[test]
    fn a_fast_link_never_stalls_and_fills_to_the_cap() {
        let video = Video::envivio();
        let s = simulate(
            &flat(50.0),
            &video,
            &mut Bba::pensieve(),
            &Config::default(),
        )
        .unwrap();
        assert_eq!(s.downloaded, 48);
        assert_eq!(s.rebuffer_s, 0.0);
        assert!(s.chunks.iter().all(|c| c.buffer_s <= 60.0 + 1e-9));
        assert!(s.chunks.iter().any(|c| c.buffer_s > 55.0));
        assert!(s.chunks.iter().any(|c| c.sleep_ms > 0.0));
    }

    #[test]
    fn a_slow_link_stalls_and_counts_it() {
        let video = Video::envivio();
        // 0.2 Mbit/s cannot carry even the 300 kbit/s rung.
        let s = simulate(&flat(0.2), &video, &mut Bba::pensieve(), &Config::default()).unwrap();
        assert!(s.rebuffer_s > 10.0, "{}", s.rebuffer_s);
        assert!(s.startup_s > 5.0);
        let recorded: f64 = s.chunks[1..].iter().map(|c| c.rebuffer_s).sum();
        assert!((recorded - s.rebuffer_s).abs() < 1e-9);
    }

    #[test]
    fn one_chunk_takes_size_over_rate_plus_rtt() {
        let video = Video::envivio();
        let mut rb = ThroughputRule::default();
        let s = simulate(&flat(8.0), &video, &mut rb, &Config::default()).unwrap();
        let c0 = s.chunks[0];
        let want = (c0.bytes as f64 / (8e6 / 8.0 * 0.95) + 0.08) * 1000.0;
        assert!(
            (c0.delay_ms - want).abs() < 1e-6,
            "{} vs {want}",
            c0.delay_ms
        );
        assert!((s.startup_s - want / 1000.0).abs() < 1e-9);
    }

    /// An algorithm that always picks the top rung and abandons to the bottom one.
    #[derive(Debug)]
    struct Greedy(usize);
    impl Abr for Greedy {
        fn name(&self) -> &str {
            "greedy"
        }
        fn reset(&mut self) {}
        fn on_download(&mut self, _: &Download) {}
        fn choose(&mut self, ctx: &Context<'_>) -> Decision {
            Decision::fetch(ctx.video.levels() - 1)
        }
        fn abandon(&mut self, p: &Progress<'_>) -> Option<usize> {
            self.0 += 1;
            (p.quality > 0 && p.elapsed_s > 1.0).then_some(0)
        }
    }

    #[test]
    fn abandonment_refetches_at_the_lower_rung_and_counts_waste() {
        let video = Video::envivio();
        let cfg = Config {
            abandonment: true,
            ..Config::default()
        };
        let mut g = Greedy(0);
        let s = simulate(&flat(1.0), &video, &mut g, &cfg).unwrap();
        assert!(g.0 > 0);
        assert!(s.wasted_bytes > 0);
        assert!(s.chunks.iter().all(|c| c.quality == 0));
    }

    #[test]
    fn seeks_restart_from_the_target() {
        let video = Video::envivio();
        let cfg = Config {
            seeks: vec![Seek {
                at_s: 30.0,
                to_s: 100.0,
            }],
            ..Config::default()
        };
        let s = simulate(&flat(5.0), &video, &mut Bba::pensieve(), &cfg).unwrap();
        let order: Vec<usize> = s.chunks.iter().map(|c| c.chunk).collect();
        let jump = order
            .windows(2)
            .position(|w| w[1] != w[0] + 1)
            .expect("a jump");
        assert_eq!(order[jump + 1], 25);
        assert_eq!(*order.last().unwrap(), 47);
    }

    #[test]
    fn bad_configuration_is_refused() {
        let video = Video::envivio();
        let cfg = Config {
            max_buffer_s: 1.0,
            ..Config::default()
        };
        let e = simulate(&flat(5.0), &video, &mut Bba::pensieve(), &cfg).unwrap_err();
        assert!(e.is_invalid());
    }
}
