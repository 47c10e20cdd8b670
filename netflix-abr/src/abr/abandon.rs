//! dash.js's abandonment rule.

use super::bola::BUFFER_TIME_DEFAULT_S;
use super::{Abr, Context, Decision, Download, Event, Progress, highest_at_most};

/// The settings of dash.js v5's `AbandonRequestsRule`.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct AbandonConfig {
    /// Never abandon with more than this buffered (dash.js: `bufferTimeDefault`, 18 s).
    pub max_buffer_s: f64,
    /// Abandon only when the whole chunk would take more than this many chunk durations at
    /// the throughput measured so far (`abandonDurationMultiplier`, 1.8).
    pub duration_multiplier: f64,
    /// Judge only after this long since the first byte (`minSegmentDownloadTimeThresholdInMs`, 0.5 s).
    pub min_elapsed_s: f64,
    /// After an abandonment, only lower rungs are taken for this long (`abandonLoadTimeout`, 10 s).
    pub hold_s: f64,
}

impl Default for AbandonConfig {
    fn default() -> Self {
        Self {
            max_buffer_s: BUFFER_TIME_DEFAULT_S,
            duration_multiplier: 1.8,
            min_elapsed_s: 0.5,
            hold_s: 10.0,
        }
    }
}

impl AbandonConfig {
    /// dash.js's decision for a download in flight: the rung to switch to, or `None`.
    ///
    /// With at most `max_buffer_s` buffered, at least `min_elapsed_s` since the first byte,
    /// and a measured throughput at which the whole chunk would take at least
    /// `duration_multiplier` chunk durations, it switches to the highest rung at or below
    /// that throughput, if the bytes still to come at the current rung exceed that rung's
    /// whole chunk.
    pub fn decide(&self, p: &Progress<'_>) -> Option<usize> {
        let ctx = &p.context;
        if ctx.buffer_s > self.max_buffer_s || p.quality == 0 || p.bytes_loaded >= p.bytes_total {
            return None;
        }
        let transfer_s = p.elapsed_s - p.latency_s;
        if transfer_s <= self.min_elapsed_s || p.bytes_loaded == 0 {
            return None;
        }
        let kbps = (8.0 * p.bytes_loaded as f64 / (transfer_s * 1000.0)).round();
        if kbps <= 0.0 {
            return None;
        }
        let estimated_s = p.bytes_total as f64 * 8.0 / kbps / 1000.0;
        if estimated_s < ctx.video.chunk_s() * self.duration_multiplier {
            return None;
        }
        let rates = ctx.video.bitrates_kbps();
        let to = highest_at_most(rates, kbps);
        let whole_at_new = p.bytes_total as f64 * rates[to] / rates[p.quality];
        ((p.bytes_total - p.bytes_loaded) as f64 > whole_at_new && to < p.quality).then_some(to)
    }
}

/// dash.js's abandonment bookkeeping: a chunk is abandoned at most once, and for
/// `hold_s` afterwards decisions cannot go above the rung abandoned to.
#[derive(Debug, Clone, Default)]
pub(crate) struct AbandonState {
    abandoned_chunk: Option<usize>,
    /// Until when, and the highest rung allowed.
    hold: Option<(f64, usize)>,
}

impl AbandonState {
    /// Asks `decide` about the chunk in flight, once per chunk, and starts a hold when it
    /// abandons.
    pub(crate) fn abandon(
        &mut self,
        p: &Progress<'_>,
        hold_s: f64,
        decide: impl FnOnce() -> Option<usize>,
    ) -> Option<usize> {
        let chunk = p.context.chunk;
        if self.abandoned_chunk == Some(chunk) {
            return None;
        }
        let to = decide()?;
        self.abandoned_chunk = Some(chunk);
        self.hold = Some((p.context.now_s + hold_s, to));
        Some(to)
    }

    /// `quality`, capped while a hold lasts.
    pub(crate) fn cap(&mut self, now_s: f64, quality: usize) -> usize {
        match self.hold {
            Some((until, cap)) if now_s < until => quality.min(cap),
            Some(_) => {
                self.hold = None;
                quality
            }
            None => quality,
        }
    }

    /// A seek ends any hold.
    pub(crate) fn on_seek(&mut self) {
        self.hold = None;
    }
}

/// Any algorithm plus dash.js's abandonment rule.
///
/// The inner algorithm is asked first; if it does not abandon, [`AbandonConfig::decide`]
/// is. A chunk is abandoned at most once, and for `hold_s` after an abandonment decisions
/// cannot go above the rung abandoned to.
///
/// # Example
///
/// ```
/// use netflix_abr::abr::{Abandoning, Abr, Bba};
///
/// let bb = Abandoning::new(Bba::pensieve());
/// assert_eq!(bb.name(), "bb");
/// ```
#[derive(Debug, Clone)]
pub struct Abandoning<A> {
    inner: A,
    config: AbandonConfig,
    state: AbandonState,
}

impl<A: Abr> Abandoning<A> {
    /// Wraps `inner` with dash.js's default abandonment settings.
    pub fn new(inner: A) -> Self {
        Self::with_config(inner, AbandonConfig::default())
    }

    /// Wraps `inner` with custom settings.
    pub fn with_config(inner: A, config: AbandonConfig) -> Self {
        Self {
            inner,
            config,
            state: AbandonState::default(),
        }
    }

    /// The wrapped algorithm.
    pub fn inner(&self) -> &A {
        &self.inner
    }
}

impl<A: Abr> Abr for Abandoning<A> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn reset(&mut self) {
        self.inner.reset();
        self.state = AbandonState::default();
    }

    fn on_download(&mut self, d: &Download) {
        self.inner.on_download(d);
    }

    fn choose(&mut self, ctx: &Context<'_>) -> Decision {
        let mut d = self.inner.choose(ctx);
        d.quality = self.state.cap(ctx.now_s, d.quality);
        d
    }

    fn abandon(&mut self, p: &Progress<'_>) -> Option<usize> {
        let (inner, config) = (&mut self.inner, &self.config);
        self.state.abandon(p, config.hold_s, || {
            inner.abandon(p).or_else(|| config.decide(p))
        })
    }

    fn on_event(&mut self, e: &Event) {
        if let Event::Seek { .. } = e {
            self.state.on_seek();
        }
        self.inner.on_event(e);
    }
}
