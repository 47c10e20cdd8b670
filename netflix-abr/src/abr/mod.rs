//! ABR algorithms: which rung to fetch next.
//!
//! Every algorithm implements [`Abr`], whose methods do no IO and read no clock: a player
//! (or the [simulator](crate::sim)) tells it about each finished download
//! ([`on_download`](Abr::on_download)), asks it for the next chunk's rung
//! ([`choose`](Abr::choose)), may ask mid-download whether to give up on a chunk
//! ([`abandon`](Abr::abandon)), and reports stalls and seeks ([`on_event`](Abr::on_event)).
//! The same object therefore drives a real player and a simulation.
//!
//! | name | type | rule |
//! |---|---|---|
//! | `rb` | [`ThroughputRule`] | highest rung below a safety factor × estimated throughput |
//! | `bb` | [`Bba::pensieve`] | Pensieve's buffer-based rule (reservoir 5 s, cushion 10 s) |
//! | `bba0` | [`Bba::bba0`] | BBA-0 (Huang et al., SIGCOMM 2014): rate map with reservoir, cushion and hysteresis |
//! | `bola` | [`Bola::basic`] | BOLA-BASIC, parameters as dash.js v5 computes them |
//! | `bola-e` | [`Bola::enhanced`] | BOLA-E: placeholder buffer, BOLA-O cap, insufficient-buffer rule |
//! | `mpc` | [`Mpc::fast`] | MPC (Yin et al., SIGCOMM 2015), horizon 5, harmonic-mean throughput |
//! | `robust-mpc` | [`Mpc::robust`] | RobustMPC: the estimate divided by 1 + the largest recent error |
//! | `dynamic` | [`Dynamic`] | dash.js DYNAMIC: throughput rule below 18 s of buffer, BOLA-E above |
//! | `sage` | [`Sage`] | ours: stochastic lookahead over a learned throughput-error distribution |
//!
//! [`Abandoning`] adds dash.js's abandonment rule to any of them. [`by_name`] builds any of
//! them from its name, in the standard or the [Pensieve-compatible](Flavor::Pensieve)
//! flavour.
//!
//! # Example
//!
//! ```
//! use netflix_abr::abr::{Abr, Bba, Context, Download};
//! use netflix_abr::video::Video;
//!
//! let video = Video::envivio();
//! let mut bb = Bba::pensieve();
//! bb.on_download(&Download::new(0, 1, 450_283, 1917.4, 80.0));
//! let next = bb.choose(&Context::new(&video, 1, 7.4, Some(1)));
//! assert_eq!(next.quality, 1); // 5·(7.4 − 5)/10 = 1.2, rounded down
//! ```

mod abandon;
mod bba;
mod bola;
mod dynamic;
mod mpc;
mod sage;
mod throughput;

pub use self::abandon::{AbandonConfig, Abandoning};
pub use self::bba::Bba;
pub use self::bola::{Bola, BolaParams};
pub use self::dynamic::Dynamic;
pub use self::mpc::{Mpc, MpcConfig};
pub use self::sage::{Sage, SageConfig};
pub use self::throughput::ThroughputRule;

use crate::error::{Error, Result};
use crate::estimate::Sample;
use crate::video::Video;
use std::fmt;

/// Where playback stands when an algorithm is asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Playback {
    /// Nothing has played yet (start-up, or after a seek).
    #[default]
    Starting,
    /// Playing.
    Playing,
    /// Stalled: the buffer ran dry after playback had started.
    Stalled,
}

/// What an algorithm knows when it chooses the next chunk.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Context<'a> {
    /// The title: rungs, chunk duration, chunk sizes.
    pub video: &'a Video,
    /// The index of the chunk to fetch.
    pub chunk: usize,
    /// Seconds of media buffered ahead of the playhead.
    pub buffer_s: f64,
    /// The rung of the previous chunk, if any.
    pub last_quality: Option<usize>,
    /// The player's clock in seconds (from the start of the session).
    pub now_s: f64,
    /// Whether playback is starting, playing or stalled.
    pub playback: Playback,
}

impl<'a> Context<'a> {
    /// A context for chunk `chunk` with `buffer_s` seconds buffered.
    pub fn new(video: &'a Video, chunk: usize, buffer_s: f64, last_quality: Option<usize>) -> Self {
        Self {
            video,
            chunk,
            buffer_s,
            last_quality,
            now_s: 0.0,
            playback: if last_quality.is_some() {
                Playback::Playing
            } else {
                Playback::Starting
            },
        }
    }

    /// Sets the clock.
    pub fn at(mut self, now_s: f64) -> Self {
        self.now_s = now_s;
        self
    }

    /// Sets the playback state.
    pub fn playback(mut self, playback: Playback) -> Self {
        self.playback = playback;
        self
    }

    /// The chunks left to fetch, this one included.
    pub fn chunks_left(&self) -> usize {
        self.video.chunks().saturating_sub(self.chunk)
    }
}

/// One finished download, as the player measured it.
///
/// Times are in milliseconds, the unit of a player's clock and of Pensieve's simulator, so
/// that an algorithm sees exactly the figures the reference code sees.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct Download {
    /// The chunk's index.
    pub chunk: usize,
    /// The rung fetched.
    pub quality: usize,
    /// Bytes received.
    pub bytes: u64,
    /// Milliseconds from the request to the last byte.
    pub elapsed_ms: f64,
    /// Milliseconds from the request to the first byte.
    pub latency_ms: f64,
    /// The player's clock, in seconds, when the last byte arrived.
    pub at_s: f64,
}

impl Download {
    /// A finished download of `bytes` bytes of chunk `chunk` at rung `quality`, which took
    /// `elapsed_ms` from the request, `latency_ms` of it before the first byte.
    pub fn new(chunk: usize, quality: usize, bytes: u64, elapsed_ms: f64, latency_ms: f64) -> Self {
        Self {
            chunk,
            quality,
            bytes,
            elapsed_ms,
            latency_ms,
            at_s: 0.0,
        }
    }

    /// Sets the clock reading at which the download finished.
    pub fn at(mut self, at_s: f64) -> Self {
        self.at_s = at_s;
        self
    }

    /// The download as a throughput-estimator sample.
    pub fn sample(&self) -> Sample {
        Sample::new(
            self.bytes,
            self.elapsed_ms / 1000.0,
            self.latency_ms / 1000.0,
        )
    }
}

/// An algorithm's choice for the next chunk.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct Decision {
    /// The rung to fetch.
    pub quality: usize,
    /// Seconds to wait before sending the request (BOLA pauses rather than overfill its
    /// buffer with a low rung). Players and the general simulator honour it; Pensieve's
    /// simulator has no such pause and ignores it.
    pub wait_s: f64,
}

impl Decision {
    /// Fetch rung `quality` now.
    pub const fn fetch(quality: usize) -> Self {
        Self {
            quality,
            wait_s: 0.0,
        }
    }

    /// Fetch rung `quality` after waiting `wait_s` seconds.
    pub const fn fetch_after(quality: usize, wait_s: f64) -> Self {
        Self { quality, wait_s }
    }
}

/// A download in flight, as the player sees it at a progress event.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Progress<'a> {
    /// Playback and buffer now.
    pub context: Context<'a>,
    /// The rung being fetched.
    pub quality: usize,
    /// The chunk's full size in bytes.
    pub bytes_total: u64,
    /// Bytes received so far.
    pub bytes_loaded: u64,
    /// Seconds since the request.
    pub elapsed_s: f64,
    /// Seconds from the request to the first byte (equal to `elapsed_s` while none arrived).
    pub latency_s: f64,
}

/// Something that happened to playback.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// The buffer ran dry and playback stalled.
    Stall,
    /// The user seeked; the buffer was flushed and the next chunk is `to_chunk`.
    Seek {
        /// The chunk playback resumes from.
        to_chunk: usize,
    },
    /// The download of the current chunk was abandoned in favour of rung `quality`.
    Abandoned {
        /// The new rung.
        quality: usize,
        /// Seconds buffered at that moment.
        buffer_s: f64,
    },
}

/// An ABR algorithm. The methods do no IO; a player or the simulator calls them.
///
/// The call order for one session: [`reset`](Abr::reset), then for every chunk
/// [`choose`](Abr::choose) (except where the player fixes the rung, as Pensieve does for
/// the first chunk), progress polls to [`abandon`](Abr::abandon) while it downloads, and
/// [`on_download`](Abr::on_download) when it has arrived.
pub trait Abr: fmt::Debug + Send {
    /// The algorithm's name, as [`by_name`] knows it.
    fn name(&self) -> &str;

    /// Starts a new session (a new video).
    fn reset(&mut self);

    /// Takes a finished download into account.
    fn on_download(&mut self, download: &Download);

    /// Chooses the rung of chunk `ctx.chunk`.
    fn choose(&mut self, ctx: &Context<'_>) -> Decision;

    /// Called while a chunk downloads: `Some(rung)` abandons it and fetches the same chunk
    /// at that (lower) rung instead. The default never abandons.
    fn abandon(&mut self, _progress: &Progress<'_>) -> Option<usize> {
        None
    }

    /// Takes a playback event into account. The default ignores it.
    fn on_event(&mut self, _event: &Event) {}
}

impl<A: Abr + ?Sized> Abr for Box<A> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn reset(&mut self) {
        (**self).reset();
    }
    fn on_download(&mut self, download: &Download) {
        (**self).on_download(download);
    }
    fn choose(&mut self, ctx: &Context<'_>) -> Decision {
        (**self).choose(ctx)
    }
    fn abandon(&mut self, progress: &Progress<'_>) -> Option<usize> {
        (**self).abandon(progress)
    }
    fn on_event(&mut self, event: &Event) {
        (**self).on_event(event);
    }
}

/// Which variant of an algorithm [`by_name`] builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Flavor {
    /// The algorithms as their papers and dash.js define them.
    #[default]
    Standard,
    /// The algorithms exactly as hongzimao/pensieve's `test/` code runs them, quirks
    /// included: RobustMPC plans the chunks one past the next, with `mpc.py`'s built-in
    /// copy of the envivio chunk sizes (whatever the video's files say), and keeps its error
    /// history from one video to the next. Use with [`sim::pensieve`](crate::sim::pensieve).
    Pensieve,
}

/// The names [`by_name`] accepts, ours first. `default` is also accepted, as ours.
pub const NAMES: [&str; 9] = [
    "sage",
    "bb",
    "bba0",
    "rb",
    "bola",
    "bola-e",
    "mpc",
    "robust-mpc",
    "dynamic",
];

/// The name of this crate's own algorithm, which `default` stands for.
pub const DEFAULT: &str = "sage";

/// Builds an algorithm by name (see the [module docs](self)) for a video's rungs.
///
/// # Errors
///
/// [`ErrorKind::Invalid`](crate::ErrorKind::Invalid) for an unknown name (the message lists
/// the known ones).
///
/// # Example
///
/// ```
/// use netflix_abr::abr::{Flavor, by_name};
/// use netflix_abr::video::Video;
///
/// let video = Video::envivio();
/// let mpc = by_name("robust-mpc", &video, Flavor::Pensieve)?;
/// assert_eq!(mpc.name(), "robust-mpc");
/// assert_eq!(by_name("default", &video, Flavor::Standard)?.name(), "sage");
/// assert!(by_name("nope", &video, Flavor::Standard).is_err());
/// # Ok::<(), netflix_abr::Error>(())
/// ```
pub fn by_name(name: &str, video: &Video, flavor: Flavor) -> Result<Box<dyn Abr>> {
    let pensieve = flavor == Flavor::Pensieve;
    Ok(match name {
        "sage" | "default" => Box::new(Sage::new(SageConfig::default())),
        "bb" => Box::new(Bba::pensieve()),
        "bba0" => Box::new(Bba::bba0(5.0, 10.0)),
        "rb" => Box::new(ThroughputRule::default()),
        "bola" => Box::new(Bola::basic(video.bitrates_kbps())),
        "bola-e" => Box::new(Bola::enhanced(video.bitrates_kbps())),
        "mpc" => Box::new(Mpc::fast().pensieve(pensieve)),
        "robust-mpc" => Box::new(Mpc::robust().pensieve(pensieve)),
        "dynamic" => Box::new(Dynamic::new(video.bitrates_kbps())),
        _ => {
            return Err(Error::invalid(
                "algorithm",
                format!(
                    "unknown algorithm {name:?}; known: {}, default",
                    NAMES.join(", ")
                ),
            ));
        }
    })
}

/// The highest rung whose bitrate is at most `kbps` (the lowest when none is): dash.js's
/// `getOptimalRepresentationForBitrate`.
pub fn highest_at_most(bitrates_kbps: &[f64], kbps: f64) -> usize {
    bitrates_kbps.iter().rposition(|&b| b <= kbps).unwrap_or(0)
}
