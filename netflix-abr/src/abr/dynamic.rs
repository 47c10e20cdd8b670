//! dash.js v5's default ABR: DYNAMIC.

use super::abandon::{AbandonConfig, AbandonState};
use super::bola::{BUFFER_TIME_DEFAULT_S, BolaRule, INITIAL_KBPS, InsufficientBuffer, SAFETY};
use super::{Abr, Context, Decision, Download, Event, Progress, highest_at_most};
use crate::estimate::{DashEwma, ThroughputEstimator};
use std::collections::VecDeque;

/// dash.js's SwitchHistoryRule window (`sampleSize`).
const HISTORY: usize = 8;
/// dash.js's `switchPercentageThreshold`.
const DROP_RATIO: f64 = 0.075;

/// dash.js v5's default rule set, DYNAMIC.
///
/// * The **throughput rule** (highest rung at or below 0.9 × dash.js's EWMA) decides until
///   the buffer reaches 18 s; **BOLA** (dash.js's BolaRule: placeholder buffer and BOLA-O)
///   decides from then on, until the buffer falls below 9 s.
/// * The **InsufficientBufferRule** caps the rung at what can arrive before the buffer runs
///   out (0.7 × throughput × buffer / chunk duration), the lowest rung during a stall.
/// * The **SwitchHistoryRule** caps the rung once the last 8 decisions hold a down-switch.
/// * The final rung is the lowest of the three, as dash.js's rule collection combines them.
/// * The **AbandonRequestsRule** ([`AbandonConfig`]) abandons a chunk that is arriving too
///   slowly; for 10 s afterwards only down-switches are taken.
///
/// # Example
///
/// ```
/// use netflix_abr::abr::{Abr, Context, Dynamic};
/// use netflix_abr::video::Video;
///
/// let v = Video::envivio();
/// let mut d = Dynamic::new(v.bitrates_kbps());
/// // No measurement yet: dash.js's 1000 kbit/s start, the 750 kbit/s rung.
/// assert_eq!(d.choose(&Context::new(&v, 0, 0.0, None)).quality, 1);
/// ```
#[derive(Debug, Clone)]
pub struct Dynamic {
    bola: BolaRule,
    insufficient: InsufficientBuffer,
    throughput: DashEwma,
    use_bola: bool,
    history: VecDeque<(usize, bool)>,
    abandon: AbandonConfig,
    abandonment: AbandonState,
    chunk_s: f64,
    bitrates_kbps: Vec<f64>,
}

impl Dynamic {
    /// DYNAMIC for a ladder (kbit/s, ascending).
    pub fn new(bitrates_kbps: &[f64]) -> Self {
        Self {
            bola: BolaRule::new(bitrates_kbps),
            insufficient: InsufficientBuffer::default(),
            throughput: DashEwma::default(),
            use_bola: false,
            history: VecDeque::with_capacity(HISTORY + 1),
            abandon: AbandonConfig::default(),
            abandonment: AbandonState::default(),
            chunk_s: 0.0,
            bitrates_kbps: bitrates_kbps.to_vec(),
        }
    }

    /// Whether BOLA is currently in charge.
    pub fn using_bola(&self) -> bool {
        self.use_bola
    }

    /// SwitchHistoryRule: the cap implied by the recent decisions, if any.
    fn history_cap(&self, levels: usize) -> Option<usize> {
        if self.history.len() < HISTORY {
            return None;
        }
        let (mut drops, mut no_drops) = (0u32, 0u32);
        for q in 0..levels {
            let (d, n) = self.history.iter().filter(|(cur, _)| *cur == q).fold(
                (0, 0),
                |(d, n), &(_, drop)| if drop { (d + 1, n) } else { (d, n + 1) },
            );
            if d + n == 0 {
                continue;
            }
            drops += d;
            no_drops += n;
            let ratio = if no_drops == 0 {
                f64::INFINITY
            } else {
                f64::from(drops) / f64::from(no_drops)
            };
            if drops + no_drops >= HISTORY as u32 && ratio > DROP_RATIO {
                return Some(if q > 0 && d > 0 { q - 1 } else { q });
            }
        }
        None
    }
}

impl Abr for Dynamic {
    fn name(&self) -> &str {
        "dynamic"
    }

    fn reset(&mut self) {
        *self = Self::new(&self.bitrates_kbps.clone());
    }

    fn on_download(&mut self, d: &Download) {
        self.throughput.add(&d.sample());
        self.insufficient.on_download();
        self.bola.on_download(d, self.chunk_s);
    }

    fn choose(&mut self, ctx: &Context<'_>) -> Decision {
        self.chunk_s = ctx.video.chunk_s();
        let rates = ctx.video.bitrates_kbps();
        if rates != self.bitrates_kbps.as_slice() {
            *self = Self::new(rates);
            self.chunk_s = ctx.video.chunk_s();
        }
        // BOLA on at 18 s, off below 9 s.
        let threshold = if self.use_bola {
            0.5 * BUFFER_TIME_DEFAULT_S
        } else {
            BUFFER_TIME_DEFAULT_S
        };
        self.use_bola = ctx.buffer_s >= threshold;

        let estimate = self.throughput.estimate_kbps();
        let safe = estimate.map(|k| k * SAFETY);
        let current = ctx
            .last_quality
            .unwrap_or_else(|| highest_at_most(rates, INITIAL_KBPS));
        let mut wait = 0.0;
        let primary = if self.use_bola {
            self.bola.choose(ctx, safe).map(|(q, w)| {
                wait = w;
                q
            })
        } else {
            safe.map(|s| highest_at_most(rates, s))
        };
        let q = [
            primary,
            self.insufficient.cap(ctx, estimate),
            self.history_cap(rates.len()),
        ]
        .into_iter()
        .flatten()
        .min();
        let q = self.abandonment.cap(ctx.now_s, q.unwrap_or(current));
        self.history.push_back((current, q < current));
        if self.history.len() > HISTORY {
            self.history.pop_front();
        }
        Decision::fetch_after(q, wait)
    }

    fn abandon(&mut self, p: &Progress<'_>) -> Option<usize> {
        let config = &self.abandon;
        let to = self
            .abandonment
            .abandon(p, config.hold_s, || config.decide(p))?;
        self.history.clear();
        Some(to)
    }

    fn on_event(&mut self, e: &Event) {
        if let Event::Seek { .. } = e {
            self.insufficient.on_seek();
            self.abandonment.on_seek();
        }
        self.bola.on_event(e);
    }
}
