//! Trace-driven playback simulation: deterministic, chunk-level, fast.
//!
//! Two simulators share the [`Session`] and [`Summary`] results:
//!
//! * [`pensieve`]: the simulator of hongzimao/pensieve's test code, reproduced exactly, for
//!   comparing with the ABR literature.
//! * [`player`]: a general player model: VBR chunk sizes, a start-up threshold, stalls and
//!   resumption, a buffer target the player waits under, pauses an algorithm asks for,
//!   mid-chunk abandonment and seeks, over a trace that loops seamlessly.
//!
//! Scores follow Pensieve's evaluation: a session's totals (QoE, rebuffering, bitrate) count
//! chunks 1 onwards; chunk 0 is the start-up chunk and its wait the start-up delay.
//!
//! # Example
//!
//! ```
//! use netflix_abr::abr::{by_name, Flavor};
//! use netflix_abr::sim::{Summary, pensieve};
//! use netflix_abr::trace::Trace;
//! use netflix_abr::video::Video;
//!
//! let traces = vec![
//!     Trace::parse("fast", "0 6.0\n600 6.0\n")?,
//!     Trace::parse("slow", "0 0.9\n600 0.9\n")?,
//! ];
//! let video = Video::envivio();
//! let mut mpc = by_name("robust-mpc", &video, Flavor::Pensieve)?;
//! let sessions = pensieve::run(&traces, &video, &mut mpc, &Default::default())?;
//! let summary = Summary::of("robust-mpc", &sessions);
//! assert_eq!(summary.n_traces, 2);
//! assert_eq!(summary.chunks, 96);
//! assert!(sessions[0].mean_bitrate_kbps() > sessions[1].mean_bitrate_kbps());
//! # Ok::<(), netflix_abr::Error>(())
//! ```

pub mod pensieve;
pub mod player;

/// One chunk of a session.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct ChunkLog {
    /// The chunk's index in the video.
    pub chunk: usize,
    /// The rung it was fetched at.
    pub quality: usize,
    /// That rung's bitrate in kbit/s.
    pub bitrate_kbps: f64,
    /// Its size in bytes.
    pub bytes: u64,
    /// The clock (s) when it had arrived (Pensieve: after any sleep that followed it).
    pub time_s: f64,
    /// Milliseconds from its request to its last byte (for an abandoned and refetched chunk,
    /// from the first request).
    pub delay_ms: f64,
    /// Milliseconds of waiting around it: Pensieve's (residual) sleep after it, or the
    /// general player's wait before requesting it.
    pub sleep_ms: f64,
    /// Seconds buffered once it had arrived (Pensieve: after the sleep).
    pub buffer_s: f64,
    /// Seconds of rebuffering while it was waited for.
    pub rebuffer_s: f64,
    /// Its QoE score.
    pub reward: f64,
}

/// The result of playing one video over one trace.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct Session {
    /// The trace's name.
    pub trace: String,
    /// Every chunk, in download order (empty when the simulator was told not to keep them).
    pub chunks: Vec<ChunkLog>,
    /// Seconds from the first request until playback started.
    pub startup_s: f64,
    /// Chunks downloaded.
    pub downloaded: usize,
    /// Chunks scored (all but the first).
    pub scored: usize,
    /// Sum of the scored chunks' QoE.
    pub total_qoe: f64,
    /// Seconds of rebuffering over the scored chunks.
    pub rebuffer_s: f64,
    /// Sum of the scored chunks' bitrates, kbit/s.
    pub bitrate_sum_kbps: f64,
    /// Rung changes between consecutive chunks.
    pub switches: usize,
    /// Bytes downloaded and thrown away (abandoned or flushed by a seek).
    pub wasted_bytes: u64,
    keep: bool,
    last_quality: Option<usize>,
}

impl Session {
    fn new(trace: &str, keep: bool, capacity: usize) -> Self {
        Self {
            trace: trace.to_owned(),
            chunks: if keep {
                Vec::with_capacity(capacity)
            } else {
                Vec::new()
            },
            startup_s: 0.0,
            downloaded: 0,
            scored: 0,
            total_qoe: 0.0,
            rebuffer_s: 0.0,
            bitrate_sum_kbps: 0.0,
            switches: 0,
            wasted_bytes: 0,
            keep,
            last_quality: None,
        }
    }

    fn record(&mut self, c: ChunkLog) {
        if self.downloaded == 0 {
            self.startup_s = c.rebuffer_s;
        } else {
            self.scored += 1;
            self.total_qoe += c.reward;
            self.rebuffer_s += c.rebuffer_s;
            self.bitrate_sum_kbps += c.bitrate_kbps;
        }
        if self.last_quality.is_some_and(|q| q != c.quality) {
            self.switches += 1;
        }
        self.last_quality = Some(c.quality);
        self.downloaded += 1;
        if self.keep {
            self.chunks.push(c);
        }
    }

    /// The mean bitrate of the scored chunks, kbit/s.
    pub fn mean_bitrate_kbps(&self) -> f64 {
        if self.scored == 0 {
            0.0
        } else {
            self.bitrate_sum_kbps / self.scored as f64
        }
    }

    /// The mean QoE per scored chunk.
    pub fn qoe_per_chunk(&self) -> f64 {
        if self.scored == 0 {
            0.0
        } else {
            self.total_qoe / self.scored as f64
        }
    }
}

/// Means over a set of sessions: the figures `abr_sim --json` prints.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct Summary {
    /// The algorithm's name.
    pub algorithm: String,
    /// Sessions (traces) played.
    pub n_traces: usize,
    /// Mean over sessions of the total QoE of chunks 1 onwards.
    pub mean_total_qoe: f64,
    /// `mean_total_qoe` divided by the scored chunks per session (47 for 48-chunk videos).
    pub mean_qoe_per_chunk: f64,
    /// Mean over sessions of the seconds of rebuffering over chunks 1 onwards.
    pub mean_rebuffer_s: f64,
    /// Mean over sessions of the mean bitrate of chunks 1 onwards, kbit/s.
    pub mean_bitrate_kbps: f64,
    /// Chunks downloaded in all.
    pub chunks: usize,
}

impl Summary {
    /// Summarises sessions.
    pub fn of(algorithm: &str, sessions: &[Session]) -> Self {
        let n = sessions.len();
        let mean = |f: &dyn Fn(&Session) -> f64| {
            if n == 0 {
                0.0
            } else {
                sessions.iter().map(f).sum::<f64>() / n as f64
            }
        };
        let mean_total_qoe = mean(&|s| s.total_qoe);
        let scored = mean(&|s| s.scored as f64);
        Self {
            algorithm: algorithm.to_owned(),
            n_traces: n,
            mean_total_qoe,
            mean_qoe_per_chunk: if scored > 0.0 {
                mean_total_qoe / scored
            } else {
                0.0
            },
            mean_rebuffer_s: mean(&|s| s.rebuffer_s),
            mean_bitrate_kbps: mean(&|s| s.mean_bitrate_kbps()),
            chunks: sessions.iter().map(|s| s.downloaded).sum(),
        }
    }
}
