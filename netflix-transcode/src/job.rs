//! What to transcode and how.

use crate::codec::{Codec, Encoder};
use crate::plan::Chunking;
use netflix_abr::ladder::{Ladder, Rendition};
use netflix_abr::per_title::Selection;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Which ladder to encode.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum LadderSpec {
    /// Apple's HLS authoring specification ladder ([`Ladder::apple_hls`]).
    Apple,
    /// Pensieve's "envivio" ladder ([`Ladder::envivio`]).
    Envivio,
    /// A per-title ladder from trial encodes and their convex hull.
    PerTitle(PerTitle),
    /// Your own.
    Custom(Ladder),
}

impl LadderSpec {
    /// `apple`, `envivio` or `per-title` (with default settings).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "apple" => Some(LadderSpec::Apple),
            "envivio" => Some(LadderSpec::Envivio),
            "per-title" => Some(LadderSpec::PerTitle(PerTitle::default())),
            _ => None,
        }
    }
}

/// Settings for a per-title ladder: a trial encode at every (height, bitrate) pair on a
/// sample of the source, PSNR of each against the source, the upper convex hull of all
/// points (netflix-abr's [`convex_hull`](netflix_abr::per_title::convex_hull)), and the
/// rungs picked on it.
#[derive(Debug, Clone, PartialEq)]
pub struct PerTitle {
    /// Candidate heights; those above the source's are skipped.
    pub heights: Vec<u32>,
    /// Candidate bitrates in kbit/s.
    pub bitrates_kbps: Vec<u32>,
    /// How rungs are picked on the hull.
    pub selection: Selection,
    /// How much of the source the trials encode, from its start.
    pub sample_seconds: f64,
    /// The trials' encoder preset (a fast one: only the ranking matters).
    pub preset: Option<String>,
}

impl Default for PerTitle {
    fn default() -> Self {
        Self {
            heights: vec![234, 360, 540, 720, 1080],
            bitrates_kbps: vec![150, 300, 600, 1200, 2400, 4800, 8000],
            selection: Selection::BitrateRatio(1.6),
            sample_seconds: 10.0,
            preset: None,
        }
    }
}

/// A hook run on every chunk after ffmpeg has written it and before it is validated: for
/// custom checks, or to inject faults in tests (truncate a file, drop a frame).
pub trait ChunkHook: Send + Sync + 'static {
    /// `outputs` are the chunk's files, one per rung, lowest rung first.
    fn after_encode(&self, chunk: usize, attempt: u32, outputs: &[PathBuf]);
}

/// A transcode job: one source, one ladder, one output directory.
///
/// ```
/// use netflix_transcode::{Codec, Job, LadderSpec};
/// let job = Job::new("mezzanine.mov", "out/title-1")
///     .ladder(LadderSpec::Envivio)
///     .codec(Codec::X264)
///     .workers(2)
///     .segment_seconds(4.0);
/// assert_eq!(job.segment_seconds, 4.0);
/// ```
#[derive(Clone)]
pub struct Job {
    /// The source file.
    pub input: PathBuf,
    /// The origin directory: `master.m3u8`, `manifest.mpd` and the renditions go here.
    pub out: PathBuf,
    /// Where chunks, the journal and staging live; `out/.transcode` by default. Kept after
    /// a failure or a cancel, so that the next run resumes; removed after success unless
    /// [`Job::keep_work`] is set.
    pub work_dir: Option<PathBuf>,
    /// The ladder.
    pub ladder: LadderSpec,
    /// The encoder.
    pub encoder: Encoder,
    /// Parallel chunk encodes; `None` picks from cores and memory.
    pub workers: Option<usize>,
    /// Segment (and GOP) length in seconds.
    pub segment_seconds: f64,
    /// How the source is cut; `None` for guided chunks ([`ChunkPlan::guided`](crate::ChunkPlan::guided):
    /// 4 to 30 s, shrinking towards the end so the workers finish together).
    pub chunking: Option<Chunking>,
    /// Retries per chunk after the first attempt.
    pub retries: u32,
    /// The wait before the first retry; it doubles on each further one.
    pub backoff: Duration,
    /// The AAC bitrate of the audio rendition; `None` leaves audio out.
    pub audio_bitrate: Option<u32>,
    /// Accept a variable-frame-rate source (frames keep their timestamps).
    pub allow_vfr: bool,
    /// Accept an interlaced source (it is deinterlaced with `bwdif`).
    pub allow_interlaced: bool,
    /// Measure PSNR and SSIM of every rendition.
    pub quality: bool,
    /// Keep the work directory after success.
    pub keep_work: bool,
    /// Runs on every encoded chunk before validation.
    pub hook: Option<Arc<dyn ChunkHook>>,
}

impl fmt::Debug for Job {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Job")
            .field("input", &self.input)
            .field("out", &self.out)
            .field("ladder", &self.ladder)
            .field("encoder", &self.encoder)
            .field("workers", &self.workers)
            .field("segment_seconds", &self.segment_seconds)
            .field("chunking", &self.chunking)
            .field("hook", &self.hook.is_some())
            .finish_non_exhaustive()
    }
}

impl Job {
    /// A job with the defaults: Apple's ladder, x264, 4-second segments, auto workers,
    /// two retries, 128 kbit/s AAC, quality measured.
    pub fn new(input: impl Into<PathBuf>, out: impl Into<PathBuf>) -> Self {
        Self {
            input: input.into(),
            out: out.into(),
            work_dir: None,
            ladder: LadderSpec::Apple,
            encoder: Encoder::new(Codec::X264),
            workers: None,
            segment_seconds: 4.0,
            chunking: None,
            retries: 2,
            backoff: Duration::from_millis(500),
            audio_bitrate: Some(128_000),
            allow_vfr: false,
            allow_interlaced: false,
            quality: true,
            keep_work: false,
            hook: None,
        }
    }

    /// Sets the ladder.
    pub fn ladder(mut self, ladder: LadderSpec) -> Self {
        self.ladder = ladder;
        self
    }

    /// Sets the codec, at its default preset.
    pub fn codec(mut self, codec: Codec) -> Self {
        self.encoder = Encoder::new(codec);
        self
    }

    /// Sets the encoder.
    pub fn encoder(mut self, encoder: Encoder) -> Self {
        self.encoder = encoder;
        self
    }

    /// Sets the number of parallel chunk encodes.
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = Some(workers.max(1));
        self
    }

    /// Sets the segment length.
    pub fn segment_seconds(mut self, seconds: f64) -> Self {
        self.segment_seconds = seconds;
        self
    }

    /// Sets the chunking.
    pub fn chunking(mut self, chunking: Chunking) -> Self {
        self.chunking = Some(chunking);
        self
    }

    /// Sets the work directory.
    pub fn work_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.work_dir = Some(dir.into());
        self
    }

    /// Sets the retries per chunk.
    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// Sets the first retry's backoff.
    pub fn backoff(mut self, backoff: Duration) -> Self {
        self.backoff = backoff;
        self
    }

    /// Sets the audio bitrate, or `None` for no audio.
    pub fn audio(mut self, bitrate: Option<u32>) -> Self {
        self.audio_bitrate = bitrate;
        self
    }

    /// Accepts variable frame rate sources.
    pub fn allow_vfr(mut self, allow: bool) -> Self {
        self.allow_vfr = allow;
        self
    }

    /// Accepts (and deinterlaces) interlaced sources.
    pub fn allow_interlaced(mut self, allow: bool) -> Self {
        self.allow_interlaced = allow;
        self
    }

    /// Whether to measure PSNR and SSIM.
    pub fn quality(mut self, on: bool) -> Self {
        self.quality = on;
        self
    }

    /// Keeps the work directory after success.
    pub fn keep_work(mut self, keep: bool) -> Self {
        self.keep_work = keep;
        self
    }

    /// Sets a hook run on every encoded chunk.
    pub fn hook(mut self, hook: impl ChunkHook) -> Self {
        self.hook = Some(Arc::new(hook));
        self
    }

    /// The work directory in use.
    pub fn resolved_work_dir(&self) -> PathBuf {
        self.work_dir
            .clone()
            .unwrap_or_else(|| self.out.join(".transcode"))
    }
}

fn even(x: f64) -> u32 {
    ((x / 2.0).round() as u32).max(1) * 2
}

/// The even size of a rendition `height` pixels tall with the source's aspect ratio.
pub(crate) fn size_for_height(height: u32, (src_w, src_h): (u32, u32)) -> (u32, u32) {
    let h = even(f64::from(height));
    (even(f64::from(h) * f64::from(src_w) / f64::from(src_h)), h)
}

/// Fits a ladder to a source: rungs taller than the source are dropped (the lowest stays,
/// at the source's height), and each rung's width follows the source's aspect ratio, so a
/// 2.35:1 source gets 2.35:1 renditions. Sizes are even, as 4:2:0 needs.
pub fn fit_ladder(ladder: &Ladder, (src_w, src_h): (u32, u32)) -> Vec<Rendition> {
    let mut out: Vec<Rendition> = Vec::new();
    for r in ladder.renditions() {
        if r.height > src_h {
            continue;
        }
        let h = even(f64::from(r.height));
        let w = even(f64::from(h) * f64::from(src_w) / f64::from(src_h));
        out.push(Rendition {
            width: w,
            height: h,
            ..r.clone()
        });
    }
    if out.is_empty() {
        if let Some(r) = ladder.renditions().first() {
            out.push(Rendition {
                width: even(f64::from(src_w)),
                height: even(f64::from(src_h)),
                ..r.clone()
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ladders_fit_the_source() {
        let l = Ladder::apple_hls();
        let r = fit_ladder(&l, (640, 272));
        // 234p is the only rung not taller than 272.
        assert_eq!(r.len(), 1);
        assert_eq!((r[0].width, r[0].height), (550, 234));
        let r = fit_ladder(&l, (1920, 1080));
        assert_eq!(r.len(), 9);
        assert_eq!((r[0].width, r[0].height), (416, 234));
        let tiny = fit_ladder(&l, (160, 90));
        assert_eq!((tiny[0].width, tiny[0].height), (160, 90));
    }
}
