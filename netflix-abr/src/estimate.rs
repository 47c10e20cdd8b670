//! Throughput estimators: what a player believes the network can carry.
//!
//! Every estimator takes [`Sample`]s (bytes, transfer time, time to first byte) and returns
//! an estimate in kbit/s. They are the ones the reference players use:
//!
//! | estimator | from | rule |
//! |---|---|---|
//! | [`DualEwma`] | hls.js `EwmaBandWidthEstimator` | two EWMAs (half-lives 3 s and 9 s of transfer time), the lower wins; 500 kbit/s before any sample |
//! | [`DashEwma`] | dash.js v5 `ThroughputModel` | two EWMAs (half-lives 3 s and 8 s, each sample weighted 1.5 × its seconds), bias-corrected, the lower wins |
//! | [`HarmonicMean`] | MPC (Yin et al., SIGCOMM 2015) | harmonic mean of the last N samples (N = 5) |
//!
//! Request latency (time to first byte) is left out of a sample's throughput by default, as
//! dash.js does with `useDeadTimeLatency`; [`Latency::Include`] counts it, as a simple
//! bytes-over-elapsed-time player would.
//!
//! # Example
//!
//! ```
//! use netflix_abr::estimate::{DashEwma, HarmonicMean, Sample, ThroughputEstimator};
//!
//! let mut e = HarmonicMean::new(5);
//! assert_eq!(e.estimate_kbps(), None);
//! // 500 kB in one second (plus 80 ms latency, left out): 4000 kbit/s.
//! e.add(&Sample::new(500_000, 1.08, 0.08));
//! e.add(&Sample::new(250_000, 1.08, 0.08));
//! // Harmonic mean of 4000 and 2000.
//! assert!((e.estimate_kbps().unwrap() - 2666.666).abs() < 0.01);
//!
//! let mut d = DashEwma::default();
//! d.add(&Sample::new(500_000, 1.08, 0.08));
//! assert_eq!(d.estimate_kbps(), Some(4000.0));
//! ```

use std::collections::VecDeque;
use std::fmt;

/// One completed download, as an estimator sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Sample {
    /// Bytes received.
    pub bytes: u64,
    /// Seconds from the request to the last byte.
    pub elapsed_s: f64,
    /// Seconds from the request to the first byte (time to first byte).
    pub latency_s: f64,
}

impl Sample {
    /// A sample of `bytes` received over `elapsed_s` seconds, of which `latency_s` passed
    /// before the first byte.
    pub const fn new(bytes: u64, elapsed_s: f64, latency_s: f64) -> Self {
        Self {
            bytes,
            elapsed_s,
            latency_s,
        }
    }

    /// The seconds counted as transfer time under `latency`.
    pub fn transfer_s(&self, latency: Latency) -> f64 {
        match latency {
            Latency::Exclude => {
                (self.elapsed_s - self.latency_s.clamp(0.0, self.elapsed_s)).max(0.0)
            }
            Latency::Include => self.elapsed_s.max(0.0),
        }
    }

    /// The sample's throughput in kbit/s under `latency` (`None` for an empty or instant
    /// transfer).
    pub fn kbps(&self, latency: Latency) -> Option<f64> {
        let t = self.transfer_s(latency);
        (t > 0.0 && self.bytes > 0).then(|| self.bytes as f64 * 8.0 / 1000.0 / t)
    }
}

/// Whether request latency counts as transfer time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Latency {
    /// Throughput = bytes / (elapsed − latency). The default (dash.js's `useDeadTimeLatency`).
    #[default]
    Exclude,
    /// Throughput = bytes / elapsed.
    Include,
}

/// Estimates throughput from completed downloads.
pub trait ThroughputEstimator: fmt::Debug + Send {
    /// Takes one completed download into account.
    fn add(&mut self, sample: &Sample);

    /// The current estimate in kbit/s, or `None` when there is nothing to go on.
    fn estimate_kbps(&self) -> Option<f64>;

    /// Forgets every sample.
    fn reset(&mut self);
}

// === EWMA ===

/// An exponentially weighted moving average with a half-life in units of sample weight.
#[derive(Debug, Clone, Copy)]
struct Ewma {
    half_life: f64,
    estimate: f64,
    total_weight: f64,
}

impl Ewma {
    fn new(half_life: f64) -> Self {
        Self {
            half_life,
            estimate: 0.0,
            total_weight: 0.0,
        }
    }

    fn sample(&mut self, weight: f64, value: f64) {
        let alpha = 0.5f64.powf(weight / self.half_life);
        self.estimate = value * (1.0 - alpha) + alpha * self.estimate;
        self.total_weight += weight;
    }

    /// Corrected for having started at zero.
    fn corrected(&self) -> f64 {
        let zero = 1.0 - 0.5f64.powf(self.total_weight / self.half_life);
        if zero > 0.0 {
            self.estimate / zero
        } else {
            self.estimate
        }
    }
}

/// hls.js's estimator: fast and slow EWMAs weighted by transfer seconds, the lower wins.
#[derive(Debug, Clone)]
pub struct DualEwma {
    fast: Ewma,
    slow: Ewma,
    default_kbps: f64,
    latency: Latency,
}

impl Default for DualEwma {
    /// hls.js's VoD defaults: half-lives 3 s and 9 s, 500 kbit/s until the first sample.
    fn default() -> Self {
        Self::new(3.0, 9.0, 500.0)
    }
}

impl DualEwma {
    /// Custom half-lives (seconds of transfer time) and starting estimate (kbit/s).
    pub fn new(fast_half_life_s: f64, slow_half_life_s: f64, default_kbps: f64) -> Self {
        Self {
            fast: Ewma::new(fast_half_life_s.max(f64::MIN_POSITIVE)),
            slow: Ewma::new(slow_half_life_s.max(f64::MIN_POSITIVE)),
            default_kbps,
            latency: Latency::Exclude,
        }
    }

    /// Counts or leaves out request latency.
    pub fn latency(mut self, latency: Latency) -> Self {
        self.latency = latency;
        self
    }
}

impl ThroughputEstimator for DualEwma {
    fn add(&mut self, s: &Sample) {
        if s.bytes == 0 {
            return;
        }
        // hls.js floors the duration at min(50 ms, bytes / 100000 ms).
        let floor_s = (50.0f64).min(s.bytes as f64 / 100_000.0) / 1000.0;
        let seconds = s.transfer_s(self.latency).max(floor_s);
        let kbps = s.bytes as f64 * 8.0 / 1000.0 / seconds;
        self.fast.sample(seconds, kbps);
        self.slow.sample(seconds, kbps);
    }

    fn estimate_kbps(&self) -> Option<f64> {
        if self.fast.total_weight >= 0.001 {
            Some(self.fast.corrected().min(self.slow.corrected()))
        } else {
            Some(self.default_kbps)
        }
    }

    fn reset(&mut self) {
        self.fast = Ewma::new(self.fast.half_life);
        self.slow = Ewma::new(self.slow.half_life);
    }
}

/// dash.js v5's estimator: fast and slow EWMAs, each sample weighted by 1.5 × its transfer
/// seconds, bias-corrected, the lower wins (rounded to whole kbit/s, as dash.js does).
#[derive(Debug, Clone)]
pub struct DashEwma {
    fast: Ewma,
    slow: Ewma,
    latency: Latency,
}

impl Default for DashEwma {
    /// dash.js v5 defaults: half-lives 3 s and 8 s.
    fn default() -> Self {
        Self::new(3.0, 8.0)
    }
}

impl DashEwma {
    /// Custom half-lives, in dash.js's units (weight = 0.0015 × transfer milliseconds).
    pub fn new(fast_half_life: f64, slow_half_life: f64) -> Self {
        Self {
            fast: Ewma::new(fast_half_life.max(f64::MIN_POSITIVE)),
            slow: Ewma::new(slow_half_life.max(f64::MIN_POSITIVE)),
            latency: Latency::Exclude,
        }
    }

    /// Counts or leaves out request latency.
    pub fn latency(mut self, latency: Latency) -> Self {
        self.latency = latency;
        self
    }
}

impl ThroughputEstimator for DashEwma {
    fn add(&mut self, s: &Sample) {
        // dash.js: at least 1 ms of download, throughput rounded to whole kbit/s.
        let ms = (s.transfer_s(self.latency) * 1000.0).max(1.0);
        if s.bytes == 0 {
            return;
        }
        let kbps = (8.0 * s.bytes as f64 / ms).round();
        let weight = 0.0015 * ms;
        self.fast.sample(weight, kbps);
        self.slow.sample(weight, kbps);
    }

    fn estimate_kbps(&self) -> Option<f64> {
        (self.fast.total_weight > 0.0)
            .then(|| self.fast.corrected().min(self.slow.corrected()).round())
    }

    fn reset(&mut self) {
        self.fast = Ewma::new(self.fast.half_life);
        self.slow = Ewma::new(self.slow.half_life);
    }
}

/// The harmonic mean of the last N samples, as MPC uses (N = 5).
#[derive(Debug, Clone)]
pub struct HarmonicMean {
    window: usize,
    samples: VecDeque<f64>,
    latency: Latency,
}

impl Default for HarmonicMean {
    /// A window of 5, as MPC.
    fn default() -> Self {
        Self::new(5)
    }
}

impl HarmonicMean {
    /// The harmonic mean of the last `window` samples (at least 1).
    pub fn new(window: usize) -> Self {
        Self {
            window: window.max(1),
            samples: VecDeque::with_capacity(window.max(1)),
            latency: Latency::Exclude,
        }
    }

    /// Counts or leaves out request latency.
    pub fn latency(mut self, latency: Latency) -> Self {
        self.latency = latency;
        self
    }

    /// The samples in the window, oldest first (kbit/s).
    pub fn samples(&self) -> impl Iterator<Item = f64> + '_ {
        self.samples.iter().copied()
    }
}

impl ThroughputEstimator for HarmonicMean {
    fn add(&mut self, s: &Sample) {
        if let Some(kbps) = s.kbps(self.latency) {
            if self.samples.len() == self.window {
                self.samples.pop_front();
            }
            self.samples.push_back(kbps);
        }
    }

    fn estimate_kbps(&self) -> Option<f64> {
        if self.samples.is_empty() {
            return None;
        }
        let inv: f64 = self.samples.iter().map(|v| 1.0 / v).sum();
        Some(self.samples.len() as f64 / inv)
    }

    fn reset(&mut self) {
        self.samples.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_policy() {
        let s = Sample::new(125_000, 1.1, 0.1);
        assert_eq!(s.kbps(Latency::Exclude), Some(1000.0));
        assert!((s.kbps(Latency::Include).unwrap() - 909.0909).abs() < 1e-3);
        assert_eq!(Sample::new(0, 1.0, 0.0).kbps(Latency::Exclude), None);
        assert_eq!(Sample::new(10, 0.1, 0.2).kbps(Latency::Exclude), None);
    }

    #[test]
    fn hls_dual_ewma_starts_at_its_default_and_takes_the_lower() {
        let mut e = DualEwma::default();
        assert_eq!(e.estimate_kbps(), Some(500.0));
        e.add(&Sample::new(1_000_000, 1.0, 0.0)); // 8000 kbit/s over 1 s
        // One sample: both EWMAs, bias-corrected, equal the sample.
        assert!((e.estimate_kbps().unwrap() - 8000.0).abs() < 1e-6);
        e.add(&Sample::new(125_000, 1.0, 0.0)); // 1000 kbit/s
        // The fast EWMA reacts more, so it is the lower one.
        let fast = e.fast.corrected();
        let slow = e.slow.corrected();
        assert!(fast < slow);
        assert_eq!(e.estimate_kbps(), Some(fast));
        e.reset();
        assert_eq!(e.estimate_kbps(), Some(500.0));
    }

    #[test]
    fn dash_ewma_matches_its_formula() {
        let mut e = DashEwma::default();
        assert_eq!(e.estimate_kbps(), None);
        e.add(&Sample::new(500_000, 2.0, 0.0)); // 2000 kbit/s over 2000 ms, weight 3
        e.add(&Sample::new(250_000, 1.0, 0.0)); // 2000 kbit/s
        assert_eq!(e.estimate_kbps(), Some(2000.0));
        e.add(&Sample::new(100_000, 1.0, 0.0)); // 800 kbit/s, weight 1.5
        // By hand: fast half-life 3 → alpha = 0.5^(1.5/3).
        let (w_total, a_fast) = (3.0 + 1.5 + 1.5, 0.5f64.powf(0.5));
        let fast_raw = {
            let mut v = 0.0;
            for (w, x) in [(3.0, 2000.0), (1.5, 2000.0), (1.5, 800.0)] {
                let a = 0.5f64.powf(w / 3.0);
                v = x * (1.0 - a) + a * v;
            }
            v
        };
        let fast = fast_raw / (1.0 - 0.5f64.powf(w_total / 3.0));
        assert!(a_fast < 1.0);
        assert_eq!(e.estimate_kbps(), Some(fast.round()));
    }

    #[test]
    fn harmonic_mean_keeps_a_window() {
        let mut e = HarmonicMean::new(2);
        for kbps in [1000.0, 2000.0, 4000.0] {
            e.add(&Sample::new((kbps * 1000.0 / 8.0) as u64, 1.0, 0.0));
        }
        assert_eq!(e.samples().collect::<Vec<_>>(), [2000.0, 4000.0]);
        assert!((e.estimate_kbps().unwrap() - 2.0 / (1.0 / 2000.0 + 1.0 / 4000.0)).abs() < 1e-9);
    }
}
