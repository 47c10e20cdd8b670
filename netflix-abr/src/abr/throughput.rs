//! The throughput rule ("rate-based", RB).

use super::{Abr, Context, Decision, Download, highest_at_most};
use crate::estimate::{HarmonicMean, Latency, ThroughputEstimator};

/// The throughput rule: the highest rung whose bitrate is at most a safety factor times the
/// estimated throughput. Before the first sample it assumes `initial_kbps` (dash.js's
/// default for video, 1000 kbit/s).
///
/// The default estimator is the harmonic mean of the last five downloads with request
/// latency counted (what a player measures as bytes over elapsed time, and what Pensieve's
/// RB uses), and the default safety factor is dash.js's 0.9. [`ThroughputRule::dash`] is
/// dash.js's own: its EWMA estimator, latency left out.
///
/// # Example
///
/// ```
/// use netflix_abr::abr::{Abr, Context, Download, ThroughputRule};
/// use netflix_abr::video::Video;
///
/// let video = Video::envivio();
/// let mut rb = ThroughputRule::default();
/// // 1 MB in 2 s: 4000 kbit/s; × 0.9 = 3600: the 2850 kbit/s rung.
/// rb.on_download(&Download::new(0, 1, 1_000_000, 2000.0, 80.0));
/// assert_eq!(rb.choose(&Context::new(&video, 1, 8.0, Some(1))).quality, 4);
/// ```
#[derive(Debug)]
pub struct ThroughputRule {
    estimator: Box<dyn ThroughputEstimator>,
    safety: f64,
    initial_kbps: f64,
}

impl Default for ThroughputRule {
    /// Harmonic mean of the last 5 samples (latency included) × 0.9.
    fn default() -> Self {
        Self::new(
            Box::new(HarmonicMean::new(5).latency(Latency::Include)),
            0.9,
        )
    }
}

impl ThroughputRule {
    /// A throughput rule over any estimator, with a safety factor (0.9 is dash.js's; 1.0 is
    /// none).
    pub fn new(estimator: Box<dyn ThroughputEstimator>, safety: f64) -> Self {
        Self {
            estimator,
            safety,
            initial_kbps: 1000.0,
        }
    }

    /// dash.js v5's ThroughputRule: its dual EWMA (latency left out) × 0.9.
    pub fn dash() -> Self {
        Self::new(Box::new(crate::estimate::DashEwma::default()), 0.9)
    }

    /// Sets the throughput assumed before the first sample.
    pub fn initial_kbps(mut self, kbps: f64) -> Self {
        self.initial_kbps = kbps;
        self
    }

    /// The throughput the rule currently assumes, safety factor applied (kbit/s).
    pub fn safe_kbps(&self) -> f64 {
        self.estimator
            .estimate_kbps()
            .unwrap_or(self.initial_kbps / self.safety)
            * self.safety
    }
}

impl Abr for ThroughputRule {
    fn name(&self) -> &str {
        "rb"
    }

    fn reset(&mut self) {
        self.estimator.reset();
    }

    fn on_download(&mut self, d: &Download) {
        self.estimator.add(&d.sample());
    }

    fn choose(&mut self, ctx: &Context<'_>) -> Decision {
        Decision::fetch(highest_at_most(ctx.video.bitrates_kbps(), self.safe_kbps()))
    }
}
