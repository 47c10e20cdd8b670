//! BOLA (Spiteri, Urgaonkar, Sitaraman, INFOCOM 2016) as dash.js v5 runs it.

use super::{Abr, Context, Decision, Download, Event, Playback, highest_at_most};
use crate::estimate::{DashEwma, ThroughputEstimator};

/// dash.js's `MINIMUM_BUFFER_S`: BOLA targets the lowest rung at 10 s of buffer.
const MINIMUM_BUFFER_S: f64 = 10.0;
/// dash.js's `MINIMUM_BUFFER_PER_BITRATE_LEVEL_S`.
const MINIMUM_BUFFER_PER_LEVEL_S: f64 = 2.0;
/// dash.js's `bufferTimeDefault` (v5).
pub(crate) const BUFFER_TIME_DEFAULT_S: f64 = 18.0;
/// dash.js's `PLACEHOLDER_BUFFER_DECAY`.
const PLACEHOLDER_DECAY: f64 = 0.99;
/// dash.js's default start bitrate for video.
pub(crate) const INITIAL_KBPS: f64 = 1000.0;
/// dash.js's `bandwidthSafetyFactor`.
pub(crate) const SAFETY: f64 = 0.9;

/// BOLA's parameters for a ladder, computed as dash.js v5's `_calculateBolaParameters`.
///
/// Utilities are `ln(b_i / b_0) + 1`; the buffer target is `max(18, 10 + 2N)` seconds;
/// `gp = (u_max − 1) / (target / 10 − 1)` and `Vp = 10 / gp`, so that the lowest rung is
/// chosen up to 10 s of buffer and the highest from the target.
///
/// # Example
///
/// ```
/// use netflix_abr::abr::BolaParams;
///
/// let p = BolaParams::new(&[300.0, 750.0, 1200.0, 1850.0, 2850.0, 4300.0]).unwrap();
/// assert!((p.gp() - 2.21882).abs() < 1e-5);
/// assert!((p.vp() - 4.50689).abs() < 1e-5);
/// // The buffer levels where BOLA's choice steps up a rung.
/// let steps: Vec<f64> = p.switch_points().iter().map(|b| (b * 1000.0).round() / 1000.0).collect();
/// assert_eq!(steps, [7.247, 10.599, 12.646, 14.596, 16.503]);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct BolaParams {
    bitrates_kbps: Vec<f64>,
    utilities: Vec<f64>,
    gp: f64,
    vp: f64,
}

impl BolaParams {
    /// dash.js's parameters for a ladder (kbit/s, ascending); `None` for fewer than two
    /// rungs (BOLA's "one bitrate" state).
    pub fn new(bitrates_kbps: &[f64]) -> Option<Self> {
        if bitrates_kbps.len() < 2 {
            return None;
        }
        let logs: Vec<f64> = bitrates_kbps.iter().map(|b| (b * 1000.0).ln()).collect();
        let utilities: Vec<f64> = logs.iter().map(|u| u - logs[0] + 1.0).collect();
        let top = utilities.len() - 1;
        let target = BUFFER_TIME_DEFAULT_S
            .max(MINIMUM_BUFFER_S + MINIMUM_BUFFER_PER_LEVEL_S * bitrates_kbps.len() as f64);
        let gp = (utilities[top] - 1.0) / (target / MINIMUM_BUFFER_S - 1.0);
        let vp = MINIMUM_BUFFER_S / gp;
        Some(Self {
            bitrates_kbps: bitrates_kbps.to_vec(),
            utilities,
            gp,
            vp,
        })
    }

    /// γp, the weight of rebuffering avoidance.
    pub fn gp(&self) -> f64 {
        self.gp
    }

    /// Vp, the weight of the buffer.
    pub fn vp(&self) -> f64 {
        self.vp
    }

    /// The utilities, `ln(b_i / b_0) + 1`.
    pub fn utilities(&self) -> &[f64] {
        &self.utilities
    }

    /// BOLA's choice at a (possibly placeholder-inflated) buffer level: the rung maximising
    /// `(Vp·(u_i − 1 + gp) − B) / b_i`, ties to the higher rung.
    pub fn choose(&self, buffer_s: f64) -> usize {
        let mut best = 0;
        let mut score = f64::NAN;
        for (i, (&u, &b)) in self.utilities.iter().zip(&self.bitrates_kbps).enumerate() {
            let s = (self.vp * (u - 1.0 + self.gp) - buffer_s) / (b * 1000.0);
            if score.is_nan() || s >= score {
                score = s;
                best = i;
            }
        }
        best
    }

    /// dash.js's `_minBufferLevelForRepresentation`: the buffer from which BOLA prefers rung
    /// `q` to every lower one (Vp above the true crossover, as in dash.js).
    pub fn min_buffer_s(&self, q: usize) -> f64 {
        let (uq, bq) = (self.utilities[q], self.bitrates_kbps[q] * 1000.0);
        let mut min = 0.0f64;
        for i in 0..q {
            let (ui, bi) = (self.utilities[i], self.bitrates_kbps[i] * 1000.0);
            if ui < uq {
                let level = self.vp * (self.gp + (bq * ui - bi * uq) / (bq - bi));
                min = min.max(level);
            }
        }
        min
    }

    /// dash.js's `_maxBufferLevelForRepresentation`: above this buffer BOLA would rather wait
    /// than fetch rung `q`.
    pub fn max_buffer_s(&self, q: usize) -> f64 {
        self.vp * (self.utilities[q] + self.gp)
    }

    /// The buffer levels at which [`choose`](Self::choose) steps from rung i to i + 1.
    pub fn switch_points(&self) -> Vec<f64> {
        (1..self.utilities.len())
            .map(|q| {
                let (u0, b0) = (self.utilities[q - 1], self.bitrates_kbps[q - 1] * 1000.0);
                let (u1, b1) = (self.utilities[q], self.bitrates_kbps[q] * 1000.0);
                // Equal scores: (Vp(u0−1+gp) − B)/b0 = (Vp(u1−1+gp) − B)/b1.
                self.vp * ((u1 - 1.0 + self.gp) * b0 - (u0 - 1.0 + self.gp) * b1) / (b0 - b1)
            })
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    OneBitrate,
    Startup,
    Steady,
}

/// dash.js v5's `BolaRule`: STARTUP by throughput, then STEADY with the placeholder
/// buffer and the BOLA-O cap. Its event hooks run whether or not it decides (DYNAMIC keeps
/// them on while the throughput rule is in charge).
#[derive(Debug, Clone)]
pub(crate) struct BolaRule {
    /// dash.js creates the state on BOLA's first call; until then events are ignored.
    created: bool,
    params: Option<BolaParams>,
    state: State,
    placeholder_s: f64,
    current: Option<usize>,
    last_chunk_s: Option<f64>,
    last_finish_s: Option<f64>,
    last_call_s: Option<f64>,
    /// The buffer when the last chunk was requested.
    buffer_at_request_s: Option<f64>,
}

impl BolaRule {
    pub(crate) fn new(bitrates_kbps: &[f64]) -> Self {
        let params = BolaParams::new(bitrates_kbps);
        Self {
            created: false,
            state: if params.is_some() {
                State::Startup
            } else {
                State::OneBitrate
            },
            params,
            placeholder_s: 0.0,
            current: None,
            last_chunk_s: None,
            last_finish_s: None,
            last_call_s: None,
            buffer_at_request_s: None,
        }
    }

    fn clear(&mut self) {
        self.placeholder_s = 0.0;
        self.last_finish_s = None;
        self.last_call_s = None;
        self.buffer_at_request_s = None;
    }

    /// The rung and pause dash.js's BolaRule asks for; `None` is NO_CHANGE.
    pub(crate) fn choose(
        &mut self,
        ctx: &Context<'_>,
        safe_kbps: Option<f64>,
    ) -> Option<(usize, f64)> {
        if !self.created
            || (self.state != State::OneBitrate
                && self.params.as_ref().map(|p| p.bitrates_kbps.as_slice())
                    != Some(ctx.video.bitrates_kbps()))
        {
            *self = Self::new(ctx.video.bitrates_kbps());
            self.created = true;
        }
        let params = self.params.as_ref()?;
        let rates = ctx.video.bitrates_kbps();
        let buffer = ctx.buffer_s;
        self.buffer_at_request_s = Some(buffer);
        match self.state {
            State::OneBitrate => None,
            State::Startup => {
                let safe = safe_kbps?;
                let q = highest_at_most(rates, safe);
                self.placeholder_s = (params.min_buffer_s(q) - buffer).max(0.0);
                self.current = Some(q);
                if self.last_chunk_s.is_some_and(|d| buffer >= d) {
                    self.state = State::Steady;
                }
                Some((q, 0.0))
            }
            State::Steady => {
                // Idle time since the last download (or call) grows the placeholder.
                let now = ctx.now_s;
                if let Some(t) = self.last_finish_s {
                    self.placeholder_s += (now - t).max(0.0);
                } else if let Some(t) = self.last_call_s {
                    self.placeholder_s += (now - t).max(0.0);
                }
                self.last_call_s = Some(now);
                self.last_finish_s = None;

                let mut q = params.choose(buffer + self.placeholder_s);
                let current = self.current.unwrap_or(q);
                // BOLA-O: never step up past what the throughput sustains (nor below current).
                let sustainable = highest_at_most(rates, safe_kbps.unwrap_or(0.0));
                if q > current && q > sustainable {
                    q = sustainable.max(current);
                }
                let mut delay = (buffer + self.placeholder_s - params.max_buffer_s(q)).max(0.0);
                if delay <= self.placeholder_s {
                    self.placeholder_s -= delay;
                    delay = 0.0;
                } else {
                    delay -= self.placeholder_s;
                    self.placeholder_s = 0.0;
                    if q == rates.len() - 1 {
                        delay = 0.0;
                    }
                }
                self.current = Some(q);
                Some((q, delay))
            }
        }
    }

    pub(crate) fn on_download(&mut self, d: &Download, chunk_s: f64) {
        if !self.created {
            return;
        }
        let Some(params) = &self.params else { return };
        self.last_chunk_s = Some(chunk_s);
        self.current = Some(d.quality);
        if self.state == State::OneBitrate {
            return;
        }
        self.placeholder_s *= PLACEHOLDER_DECAY;
        if let Some(at_request) = self.buffer_at_request_s.take() {
            let max = (params.max_buffer_s(d.quality) - at_request).max(0.0);
            self.placeholder_s = self.placeholder_s.min(max);
        }
        self.last_finish_s = Some(d.at_s);
    }

    pub(crate) fn on_event(&mut self, e: &Event) {
        if !self.created {
            return;
        }
        match *e {
            Event::Stall => {
                if self.state == State::Steady {
                    self.placeholder_s = 0.0;
                }
            }
            Event::Seek { .. } => {
                if self.state != State::OneBitrate {
                    self.state = State::Startup;
                }
                self.clear();
            }
            Event::Abandoned { quality, buffer_s } => {
                if let Some(p) = &self.params {
                    let want = if quality > 0 {
                        p.min_buffer_s(quality)
                    } else {
                        MINIMUM_BUFFER_S
                    };
                    self.placeholder_s = self.placeholder_s.min((want - buffer_s).max(0.0));
                }
                self.current = Some(quality);
            }
        }
    }
}

/// dash.js's InsufficientBufferRule: a cap of `0.7 × throughput × buffer / chunk duration`,
/// the lowest rung during a stall; inactive for the first two chunks of a session.
#[derive(Debug, Clone)]
pub(crate) struct InsufficientBuffer {
    ignore: u32,
}

impl Default for InsufficientBuffer {
    fn default() -> Self {
        Self { ignore: 2 }
    }
}

impl InsufficientBuffer {
    pub(crate) fn cap(&self, ctx: &Context<'_>, kbps: Option<f64>) -> Option<usize> {
        if self.ignore > 0 {
            return None;
        }
        if ctx.playback == Playback::Stalled {
            return Some(0);
        }
        let cap = kbps? * 0.7 * ctx.buffer_s / ctx.video.chunk_s();
        (cap > 0.0).then(|| highest_at_most(ctx.video.bitrates_kbps(), cap))
    }

    pub(crate) fn on_download(&mut self) {
        self.ignore = self.ignore.saturating_sub(1);
    }

    pub(crate) fn on_seek(&mut self) {
        self.ignore = 2;
    }
}

/// BOLA: buffer-based, Lyapunov-optimal rung selection, with dash.js v5's parameters.
///
/// * [`Bola::basic`] (`bola`): BOLA-BASIC. The rung maximises
///   `(Vp·(u_i − 1 + gp) − B) / b_i` over the real buffer B, and BOLA pauses (see
///   [`Decision::wait_s`]) rather than fetch when the buffer is above the rung's ceiling.
/// * [`Bola::enhanced`] (`bola-e`): BOLA-E as dash.js v5 runs it. A throughput-based
///   start-up that sets a *placeholder* buffer (so BOLA starts at the rung the network
///   sustains), idle time that grows the placeholder, the BOLA-O cap (no step up past the
///   sustainable rung), and the InsufficientBufferRule (no rung that cannot arrive before
///   the buffer runs out) combined by taking the lower.
///
/// Throughput comes from dash.js's estimator ([`DashEwma`], latency left out) × 0.9.
///
/// # Example
///
/// ```
/// use netflix_abr::abr::{Abr, Bola, Context};
/// use netflix_abr::video::Video;
///
/// let v = Video::envivio();
/// let mut bola = Bola::basic(v.bitrates_kbps());
/// assert_eq!(bola.choose(&Context::new(&v, 1, 5.0, Some(0))).quality, 0);
/// assert_eq!(bola.choose(&Context::new(&v, 1, 11.0, Some(0))).quality, 2);
/// assert_eq!(bola.choose(&Context::new(&v, 1, 17.0, Some(0))).quality, 5);
/// ```
#[derive(Debug, Clone)]
pub struct Bola {
    enhanced: bool,
    rule: BolaRule,
    insufficient: InsufficientBuffer,
    throughput: DashEwma,
    chunk_s: f64,
}

impl Bola {
    /// BOLA-BASIC for a ladder (kbit/s, ascending).
    pub fn basic(bitrates_kbps: &[f64]) -> Self {
        Self::build(bitrates_kbps, false)
    }

    /// BOLA-E for a ladder (kbit/s, ascending).
    pub fn enhanced(bitrates_kbps: &[f64]) -> Self {
        Self::build(bitrates_kbps, true)
    }

    fn build(bitrates_kbps: &[f64], enhanced: bool) -> Self {
        Self {
            enhanced,
            rule: BolaRule::new(bitrates_kbps),
            insufficient: InsufficientBuffer::default(),
            throughput: DashEwma::default(),
            chunk_s: 0.0,
        }
    }

    /// The parameters in use (`None` for a one-rung ladder).
    pub fn params(&self) -> Option<&BolaParams> {
        self.rule.params.as_ref()
    }
}

impl Abr for Bola {
    fn name(&self) -> &str {
        if self.enhanced { "bola-e" } else { "bola" }
    }

    fn reset(&mut self) {
        let rates = self
            .rule
            .params
            .as_ref()
            .map(|p| p.bitrates_kbps.clone())
            .unwrap_or_default();
        *self = Self::build(&rates, self.enhanced);
    }

    fn on_download(&mut self, d: &Download) {
        self.throughput.add(&d.sample());
        self.insufficient.on_download();
        self.rule.on_download(d, self.chunk_s);
    }

    fn choose(&mut self, ctx: &Context<'_>) -> Decision {
        self.chunk_s = ctx.video.chunk_s();
        let rates = ctx.video.bitrates_kbps();
        if !self.enhanced {
            if self
                .rule
                .params
                .as_ref()
                .map(|p| p.bitrates_kbps.as_slice())
                != Some(rates)
            {
                self.rule = BolaRule::new(rates);
            }
            let Some(params) = &self.rule.params else {
                return Decision::fetch(0);
            };
            let q = params.choose(ctx.buffer_s);
            let wait = if q + 1 == rates.len() {
                0.0
            } else {
                (ctx.buffer_s - params.max_buffer_s(q)).max(0.0)
            };
            return Decision::fetch_after(q, wait);
        }
        let estimate = self.throughput.estimate_kbps();
        let safe = estimate.map(|k| k * SAFETY);
        let last = ctx
            .last_quality
            .unwrap_or_else(|| highest_at_most(rates, INITIAL_KBPS));
        let (mut q, wait) = self.rule.choose(ctx, safe).unwrap_or((last, 0.0));
        if let Some(cap) = self.insufficient.cap(ctx, estimate) {
            q = q.min(cap);
        }
        Decision::fetch_after(q, wait)
    }

    fn on_event(&mut self, e: &Event) {
        if let Event::Seek { .. } = e {
            self.insufficient.on_seek();
        }
        self.rule.on_event(e);
    }
}
