//! The Pensieve-compatible simulator: hongzimao/pensieve's `test/fixed_env.py`, exactly.
//!
//! This is the chunk-level simulator the ABR literature reports its numbers on. It is
//! reproduced operation for operation (the same floating-point results, chunk by chunk),
//! including its rules that a new design would not choose:
//!
//! * 48 chunks of 4 s; a download takes the trace's throughput × 0.95 (packet payload) plus
//!   one 80 ms round trip, which delays the chunk but does not advance the trace;
//! * the buffer is capped at 60 s: above it the player sleeps in whole 500 ms steps, the
//!   buffer drops by the whole sleep, but the sleep reported (and added to the clock) is
//!   what is left after skipping whole trace intervals;
//! * traces are played in order from their second sample, one video per trace; a trace
//!   that runs out wraps to its second sample with the clock at 0; the clock is never reset
//!   between videos;
//! * the first chunk of every video is fetched at the default rung (1) and scores no
//!   switching penalty; its rebuffering is the start-up delay.
//!
//! [`run`] drives an [`Abr`] over a set of traces as Pensieve's `bb.py` and `mpc.py` drive
//! theirs; [`write_log`] writes the per-trace logs in their format, byte for byte.
//!
//! # Example
//!
//! ```
//! use netflix_abr::abr::Bba;
//! use netflix_abr::sim::pensieve::{self, Options};
//! use netflix_abr::trace::Trace;
//! use netflix_abr::video::Video;
//!
//! let trace = Trace::parse("flat", "0 3.0\n1000 3.0\n")?;
//! let video = Video::envivio();
//! let mut bb = Bba::pensieve();
//! let run = pensieve::run(&[trace], &video, &mut bb, &Options::default())?;
//! let session = &run[0];
//! assert_eq!(session.chunks.len(), 48);
//! assert_eq!(session.chunks[0].quality, 1); // the default rung
//! // Chunk 0: 450 283 bytes at 3 Mbit/s × 0.95, plus 80 ms.
//! let expected = 450_283.0 / (3e6 / 8.0) / 0.95 * 1000.0 + 80.0;
//! assert!((session.chunks[0].delay_ms - expected).abs() < 1e-9);
//! # Ok::<(), netflix_abr::Error>(())
//! ```

use super::{ChunkLog, Session};
use crate::abr::{Abr, Context, Download, Playback};
use crate::error::{Error, Result};
use crate::qoe::Qoe;
use crate::trace::Trace;
use crate::video::Video;
use std::io;

/// `LINK_RTT` in milliseconds.
pub const LINK_RTT_MS: f64 = 80.0;
/// `PACKET_PAYLOAD_PORTION`.
pub const PACKET_PAYLOAD_PORTION: f64 = 0.95;
/// `BUFFER_THRESH` in milliseconds.
pub const BUFFER_THRESH_MS: f64 = 60_000.0;
/// `DRAIN_BUFFER_SLEEP_TIME` in milliseconds.
pub const DRAIN_BUFFER_SLEEP_MS: f64 = 500.0;
/// `DEFAULT_QUALITY`: the rung of every video's first chunk.
pub const DEFAULT_QUALITY: usize = 1;

/// One step of [`Env`]: what `get_video_chunk` returns.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct Step {
    /// The trace the chunk was downloaded over.
    pub trace: usize,
    /// The chunk's index in its video.
    pub chunk: usize,
    /// Milliseconds from request to last byte, the round trip included.
    pub delay_ms: f64,
    /// The (residual) sleep in milliseconds, see the [module docs](self).
    pub sleep_ms: f64,
    /// Seconds buffered after the chunk arrived and any sleep.
    pub buffer_s: f64,
    /// Seconds of rebuffering while it downloaded.
    pub rebuffer_s: f64,
    /// The chunk's size in bytes.
    pub bytes: u64,
    /// Whether this was the video's last chunk (the next step starts the next trace).
    pub end_of_video: bool,
    /// Chunks left in the video after this one.
    pub chunks_left: usize,
}

/// `fixed_env.Environment`: the network and the buffer, one chunk per [`step`](Env::step).
#[derive(Debug, Clone)]
pub struct Env<'a> {
    traces: &'a [Trace],
    video: &'a Video,
    trace_idx: usize,
    ptr: usize,
    last_time: f64,
    buffer_ms: f64,
    counter: usize,
    chunk_ms: f64,
}

impl<'a> Env<'a> {
    /// An environment over `traces`, starting with the first.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Invalid`](crate::ErrorKind::Invalid) when there is no trace.
    pub fn new(traces: &'a [Trace], video: &'a Video) -> Result<Self> {
        let first = traces
            .first()
            .ok_or_else(|| Error::invalid("traces", "no trace to simulate"))?;
        Ok(Self {
            traces,
            video,
            trace_idx: 0,
            ptr: 1,
            last_time: first.time_s()[0],
            buffer_ms: 0.0,
            counter: 0,
            chunk_ms: video.chunk_s() * 1000.0,
        })
    }

    /// The index of the trace the next chunk downloads over.
    pub fn trace_index(&self) -> usize {
        self.trace_idx
    }

    /// The index of the next chunk in its video.
    pub fn chunk_index(&self) -> usize {
        self.counter
    }

    /// Downloads the next chunk at rung `quality`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Invalid`](crate::ErrorKind::Invalid) when `quality` is not a rung.
    pub fn step(&mut self, quality: usize) -> Result<Step> {
        if quality >= self.video.levels() {
            return Err(Error::invalid(
                "rung",
                format!("{quality} is not below the {} rungs", self.video.levels()),
            ));
        }
        let trace = &self.traces[self.trace_idx];
        let (time, bw) = (trace.time_s(), trace.mbps());
        let (trace_idx, chunk) = (self.trace_idx, self.counter);
        let size = self.video.size(quality, self.counter).unwrap_or(0);
        let size_f = size as f64;

        let mut delay = 0.0f64;
        let mut sent = 0.0f64;
        loop {
            let throughput = bw[self.ptr] * 1_000_000.0 / 8.0;
            let duration = time[self.ptr] - self.last_time;
            let payload = throughput * duration * PACKET_PAYLOAD_PORTION;
            if sent + payload > size_f {
                let fractional = (size_f - sent) / throughput / PACKET_PAYLOAD_PORTION;
                delay += fractional;
                self.last_time += fractional;
                break;
            }
            sent += payload;
            delay += duration;
            self.last_time = time[self.ptr];
            self.advance(time.len());
        }
        delay *= 1000.0;
        delay += LINK_RTT_MS;

        let rebuf = (delay - self.buffer_ms).max(0.0);
        self.buffer_ms = (self.buffer_ms - delay).max(0.0);
        self.buffer_ms += self.chunk_ms;

        let mut sleep = 0.0f64;
        if self.buffer_ms > BUFFER_THRESH_MS {
            let drain = self.buffer_ms - BUFFER_THRESH_MS;
            sleep = (drain / DRAIN_BUFFER_SLEEP_MS).ceil() * DRAIN_BUFFER_SLEEP_MS;
            self.buffer_ms -= sleep;
            loop {
                let duration = time[self.ptr] - self.last_time;
                if duration > sleep / 1000.0 {
                    self.last_time += sleep / 1000.0;
                    break;
                }
                sleep -= duration * 1000.0;
                self.last_time = time[self.ptr];
                self.advance(time.len());
            }
        }
        let buffer_ms = self.buffer_ms;

        self.counter += 1;
        let chunks = self.video.chunks();
        let chunks_left = chunks.saturating_sub(self.counter);
        let end_of_video = self.counter >= chunks;
        if end_of_video {
            self.buffer_ms = 0.0;
            self.counter = 0;
            self.trace_idx = (self.trace_idx + 1) % self.traces.len();
            self.ptr = 1;
            self.last_time = self.traces[self.trace_idx].time_s()[0];
        }
        Ok(Step {
            trace: trace_idx,
            chunk,
            delay_ms: delay,
            sleep_ms: sleep,
            buffer_s: buffer_ms / 1000.0,
            rebuffer_s: rebuf / 1000.0,
            bytes: size,
            end_of_video,
            chunks_left,
        })
    }

    fn advance(&mut self, len: usize) {
        self.ptr += 1;
        if self.ptr >= len {
            // Loop back; the trace "starts with time 0".
            self.ptr = 1;
            self.last_time = 0.0;
        }
    }
}

/// How [`run`] scores and records.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Options {
    /// The per-chunk reward (QoE_lin, as Pensieve's test code).
    pub qoe: Qoe,
    /// Keep every chunk's record in [`Session::chunks`] (on by default; off for speed).
    pub keep_chunks: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            qoe: Qoe::Lin,
            keep_chunks: true,
        }
    }
}

/// Plays one video per trace, in order, with `abr` choosing every chunk but each video's
/// first, exactly as Pensieve's `test/bb.py` and `test/mpc.py` do.
///
/// The algorithm is told about every download (the last of a video included) and is
/// [`reset`](Abr::reset) between videos; build it with
/// [`Flavor::Pensieve`](crate::abr::Flavor::Pensieve) to reproduce Pensieve's own
/// algorithms. The clock runs on across videos, as in Pensieve. [`Runner`] does the same
/// one session at a time.
///
/// # Errors
///
/// [`ErrorKind::Invalid`](crate::ErrorKind::Invalid) when there is no trace, the video has
/// fewer than two rungs, or the algorithm chooses a rung that does not exist.
pub fn run(
    traces: &[Trace],
    video: &Video,
    abr: &mut dyn Abr,
    options: &Options,
) -> Result<Vec<Session>> {
    Runner::new(traces, video, abr, options.clone())?.collect()
}

/// [`run`], one session at a time: an iterator over the traces' sessions.
///
/// # Example
///
/// ```
/// use netflix_abr::abr::Bba;
/// use netflix_abr::sim::pensieve::{Options, Runner};
/// use netflix_abr::trace::Trace;
/// use netflix_abr::video::Video;
///
/// let traces = [Trace::parse("a", "0 2\n500 2\n")?, Trace::parse("b", "0 4\n500 4\n")?];
/// let video = Video::envivio();
/// let mut bb = Bba::pensieve();
/// for (i, session) in Runner::new(&traces, &video, &mut bb, Options::default())?.enumerate() {
///     let session = session?;
///     eprintln!("{}/{}: {}", i + 1, traces.len(), session.trace);
/// }
/// # Ok::<(), netflix_abr::Error>(())
/// ```
#[derive(Debug)]
pub struct Runner<'a> {
    env: Env<'a>,
    traces: &'a [Trace],
    video: &'a Video,
    abr: &'a mut dyn Abr,
    options: Options,
    time_stamp_ms: f64,
    next: usize,
    failed: bool,
}

impl<'a> Runner<'a> {
    /// A run over `traces`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Invalid`](crate::ErrorKind::Invalid) when there is no trace or the video
    /// has fewer than two rungs.
    pub fn new(
        traces: &'a [Trace],
        video: &'a Video,
        abr: &'a mut dyn Abr,
        options: Options,
    ) -> Result<Self> {
        if video.levels() <= DEFAULT_QUALITY {
            return Err(Error::invalid(
                "video",
                "Pensieve's simulator starts at rung 1 and needs at least two rungs",
            ));
        }
        let env = Env::new(traces, video)?;
        abr.reset();
        Ok(Self {
            env,
            traces,
            video,
            abr,
            options,
            time_stamp_ms: 0.0,
            next: 0,
            failed: false,
        })
    }

    fn session(&mut self) -> Result<Session> {
        let video = self.video;
        let rates = video.bitrates_kbps();
        let trace = &self.traces[self.next];
        let mut session = Session::new(trace.name(), self.options.keep_chunks, video.chunks());
        let mut quality = DEFAULT_QUALITY;
        let mut last = DEFAULT_QUALITY;
        loop {
            let step = self.env.step(quality)?;
            self.time_stamp_ms += step.delay_ms;
            self.time_stamp_ms += step.sleep_ms;
            let reward = self
                .options
                .qoe
                .chunk(rates, quality, Some(last), step.rebuffer_s);
            session.record(ChunkLog {
                chunk: step.chunk,
                quality,
                bitrate_kbps: rates[quality],
                bytes: step.bytes,
                time_s: self.time_stamp_ms / 1000.0,
                delay_ms: step.delay_ms,
                sleep_ms: step.sleep_ms,
                buffer_s: step.buffer_s,
                rebuffer_s: step.rebuffer_s,
                reward,
            });
            last = quality;
            self.abr.on_download(
                &Download::new(step.chunk, quality, step.bytes, step.delay_ms, LINK_RTT_MS)
                    .at(self.time_stamp_ms / 1000.0),
            );
            if step.end_of_video {
                break;
            }
            let ctx = Context::new(video, step.chunk + 1, step.buffer_s, Some(last))
                .at(self.time_stamp_ms / 1000.0)
                .playback(Playback::Playing);
            quality = self.abr.choose(&ctx).quality;
            if quality >= video.levels() {
                return Err(Error::invalid(
                    "rung",
                    format!(
                        "{} chose rung {quality} of a {}-rung video",
                        self.abr.name(),
                        video.levels()
                    ),
                ));
            }
        }
        tracing::debug!(
            trace = %session.trace,
            algorithm = self.abr.name(),
            qoe_per_chunk = session.qoe_per_chunk(),
            rebuffer_s = session.rebuffer_s,
            "pensieve session done"
        );
        self.abr.reset();
        Ok(session)
    }
}

impl Iterator for Runner<'_> {
    type Item = Result<Session>;

    fn next(&mut self) -> Option<Result<Session>> {
        if self.failed || self.next >= self.traces.len() {
            return None;
        }
        let session = self.session();
        self.failed = session.is_err();
        self.next += 1;
        Some(session)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = if self.failed {
            0
        } else {
            self.traces.len() - self.next
        };
        (left, Some(left))
    }
}

/// Writes a session's log in Pensieve's `results/log_sim_*` format: per chunk, tab-separated,
/// the clock in seconds, the bitrate in kbit/s, the buffer (s), the rebuffering (s), the
/// chunk's bytes, the delay (ms) and the reward; then an empty line.
///
/// Numbers are printed as Python 2.7 with numpy 1.13 prints them (12 significant digits),
/// so the files match the reference's byte for byte. (Pensieve's `bb.py` plays the first
/// trace a second time at the end of a run and overwrites its log with that replay, so
/// only the clock column of that one file differs from ours.)
///
/// # Errors
///
/// The writer's.
pub fn write_log(session: &Session, mut w: impl io::Write) -> io::Result<()> {
    for c in &session.chunks {
        writeln!(
            w,
            "{}\t{}\t{}\t{}\t{}\t{}\t{}",
            py_str(c.time_s),
            py_int_or_float(c.bitrate_kbps),
            py_str(c.buffer_s),
            py_str(c.rebuffer_s),
            c.bytes,
            py_str(c.delay_ms),
            py_str(c.reward),
        )?;
    }
    writeln!(w)
}

/// `str(x)` of Python 2.7 / numpy 1.13 for a float: `%.12g`, plus `.0` when the result
/// looks like an integer. Whole bitrates print as integers, as Pensieve's `int` constants.
pub(crate) fn py_str(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf" } else { "-inf" }.into();
    }
    let sci = format!("{x:.11e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..12).contains(&exp) {
        let m = trim_zeros(mantissa);
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{m}e{sign}{:02}", exp.abs());
    }
    let decimals = (11 - exp).max(0) as usize;
    let fixed = format!("{x:.decimals$}");
    let s = trim_zeros(&fixed);
    if s.contains('.') {
        s.to_owned()
    } else {
        format!("{s}.0")
    }
}

/// Whole bitrates are Python `int`s in Pensieve (`VIDEO_BIT_RATE`).
fn py_int_or_float(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        py_str(x)
    }
}

fn trim_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_float_text() {
        for (x, want) in [
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (4.0, "4.0"),
            (300.0, "300.0"),
            (1.9174375092063, "1.91743750921"),
            (1917.4375092063, "1917.43750921"),
            (-0.15000000000000002, "-0.15"),
            (-7.4949812895870895, "-7.49498128959"),
            (0.0001, "0.0001"),
            (0.00001234, "1.234e-05"),
            (123456789012.0, "123456789012.0"),
            (99999999999.99999, "100000000000.0"),
            (1.5e12, "1.5e+12"),
            (-2.5e-7, "-2.5e-07"),
            (24853.000000000004, "24853.0"),
            (0.1 + 0.2, "0.3"),
        ] {
            assert_eq!(py_str(x), want, "{x:?}");
        }
    }

    #[test]
    fn wraps_a_short_trace_and_caps_the_buffer() {
        // Two samples: 1 s at 100 Mbit/s. Downloads wrap the trace, and the buffer hits 60 s.
        let trace = Trace::parse("short", "0 100\n1 100\n").unwrap();
        let video = Video::envivio();
        let mut env = Env::new(std::slice::from_ref(&trace), &video).unwrap();
        let mut slept = false;
        for _ in 0..48 {
            let s = env.step(5).unwrap();
            assert!(s.buffer_s <= 60.0);
            slept |= s.sleep_ms > 0.0;
        }
        assert!(slept);
        assert_eq!(env.chunk_index(), 0);
        assert!(env.step(6).unwrap_err().is_invalid());
    }
}
