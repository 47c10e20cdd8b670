//! Sage: this crate's own algorithm.

use super::mpc::units;
use super::{Abr, Context, Decision, Download};
use crate::qoe::Qoe;
use std::collections::VecDeque;

/// The longest horizon Sage plans over.
const MAX_H: usize = 10;

/// Sage's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct SageConfig {
    /// Chunks planned ahead.
    pub horizon: usize,
    /// Throughput samples in the harmonic-mean prediction.
    pub window: usize,
    /// Prediction errors remembered.
    pub error_window: usize,
    /// Throughput scenarios (quantiles of the error distribution).
    pub scenarios: usize,
    /// Weight of the pessimistic tail: 0 is the plain mean over scenarios, 1 the worst.
    pub risk: f64,
    /// Value of a second of buffer left at the end of the horizon, in QoE units.
    pub terminal_weight: f64,
    /// Buffer above this is worth nothing at the end of the horizon.
    pub terminal_cap_s: f64,
    /// The rebuffering penalty the plan uses (μ of the QoE by default).
    pub plan_rebuffer_penalty: Option<f64>,
    /// The player's buffer cap (Pensieve's 60 s).
    pub max_buffer_s: f64,
    /// The QoE the plan maximises.
    pub qoe: Qoe,
    /// RobustMPC's discount over this many recent errors (0: off).
    pub robust_window: usize,
    /// Scale of the error spread around the prediction (1: as measured).
    pub spread: f64,
    /// Weight of an outage scenario.
    pub outage_weight: f64,
    /// Throughput of the outage scenario, as a share of the prediction.
    pub outage_ratio: f64,
}

impl Default for SageConfig {
    fn default() -> Self {
        Self {
            horizon: 5,
            window: 5,
            error_window: 20,
            scenarios: 5,
            risk: 0.0,
            terminal_weight: 0.0,
            terminal_cap_s: 20.0,
            plan_rebuffer_penalty: None,
            max_buffer_s: 60.0,
            qoe: Qoe::Lin,
            robust_window: 0,
            spread: 1.0,
            outage_weight: 0.0,
            outage_ratio: 0.1,
        }
    }
}

/// Sage: this crate's algorithm.
#[derive(Debug, Clone)]
pub struct Sage {
    cfg: SageConfig,
    /// Transfer throughputs (bytes/s), latency excluded.
    history: VecDeque<f64>,
    /// ln(actual / predicted) of past downloads.
    errors: VecDeque<f64>,
    /// The prediction made before the download in flight.
    predicted: Option<f64>,
    latency_s: f64,
    planner: Planner,
    units: (Vec<f64>, Vec<f64>),
    scratch: Vec<f64>,
    values: Vec<f64>,
}

impl Sage {
    /// Sage with the given settings.
    pub fn new(cfg: SageConfig) -> Self {
        Self {
            cfg,
            history: VecDeque::new(),
            errors: VecDeque::new(),
            predicted: None,
            latency_s: 0.0,
            planner: Planner::default(),
            units: (Vec::new(), Vec::new()),
            scratch: Vec::new(),
            values: Vec::new(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &SageConfig {
        &self.cfg
    }

    fn prediction(&self) -> Option<f64> {
        if self.history.is_empty() {
            return None;
        }
        let n = self.cfg.window.max(1).min(self.history.len());
        let inv: f64 = self.history.iter().rev().take(n).map(|v| 1.0 / v).sum();
        Some(n as f64 / inv)
    }
}

impl Abr for Sage {
    fn name(&self) -> &str {
        "sage"
    }

    fn reset(&mut self) {
        self.history.clear();
        self.errors.clear();
        self.predicted = None;
    }

    fn on_download(&mut self, d: &Download) {
        let transfer_ms = d.elapsed_ms - d.latency_ms;
        if d.bytes == 0 || transfer_ms <= 0.0 {
            return;
        }
        self.latency_s = d.latency_ms / 1000.0;
        let tput = d.bytes as f64 / (transfer_ms / 1000.0);
        if let Some(p) = self.predicted.take() {
            if self.errors.len() == self.cfg.error_window.max(1) {
                self.errors.pop_front();
            }
            self.errors.push_back((tput / p).ln());
        }
        if self.history.len() == 32 {
            self.history.pop_front();
        }
        self.history.push_back(tput);
    }

    fn choose(&mut self, ctx: &Context<'_>) -> Decision {
        let video = ctx.video;
        let levels = video.levels();
        let last = ctx.last_quality.unwrap_or(0).min(levels - 1);
        let Some(bw) = self.prediction() else {
            return Decision::fetch(last);
        };
        self.predicted = Some(bw);
        let bw = if self.cfg.robust_window > 0 {
            let max_err = self
                .errors
                .iter()
                .rev()
                .take(self.cfg.robust_window)
                .map(|e| ((-e).exp() - 1.0).abs())
                .fold(0.0, f64::max);
            bw / (1.0 + max_err)
        } else {
            bw
        };
        let horizon = self.cfg.horizon.clamp(1, MAX_H).min(ctx.chunks_left());
        if horizon == 0 {
            return Decision::fetch(last);
        }
        if self.units.0 != video.bitrates_kbps() {
            self.units = (
                video.bitrates_kbps().to_vec(),
                units(self.cfg.qoe, video.bitrates_kbps()),
            );
        }
        // Scenarios: quantiles of the recent prediction errors (none yet: the prediction).
        let k = self.cfg.scenarios.max(1);
        self.scratch.clear();
        self.scratch.extend(self.errors.iter().copied());
        self.scratch.sort_by(f64::total_cmp);
        let mut ratios = Vec::with_capacity(k);
        if self.scratch.is_empty() {
            ratios.push(1.0);
        } else {
            for i in 0..k {
                let q = (i as f64 + 0.5) / k as f64;
                let pos = q * (self.scratch.len() - 1) as f64;
                let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
                let e =
                    self.scratch[lo] + (self.scratch[hi] - self.scratch[lo]) * (pos - lo as f64);
                ratios.push((e * self.cfg.spread).exp());
            }
        }
        let latency = self.latency_s;
        let mu = self
            .cfg
            .plan_rebuffer_penalty
            .unwrap_or(self.cfg.qoe.rebuffer_penalty());
        self.values.clear();
        self.values.resize(levels, 0.0);
        let mut worst = vec![f64::INFINITY; levels];
        let mut per = vec![0.0; levels];
        let n = ratios.len() as f64;
        let ow = self.cfg.outage_weight.clamp(0.0, 1.0);
        if ow > 0.0 {
            ratios.push(self.cfg.outage_ratio);
        }
        for (i, &r) in ratios.iter().enumerate() {
            let weight = if i as f64 >= n { ow } else { (1.0 - ow) / n };
            let rate = bw * r;
            let plan = Plan {
                units: &self.units.1,
                scale: if self.cfg.qoe == Qoe::Lin {
                    1000.0
                } else {
                    1.0
                },
                rebuffer_penalty: mu,
                chunk_s: video.chunk_s(),
                max_buffer_s: self.cfg.max_buffer_s,
                buffer_s: ctx.buffer_s,
                last,
                horizon,
                terminal_weight: self.cfg.terminal_weight,
                terminal_cap_s: self.cfg.terminal_cap_s,
                download_s: &|d, q| {
                    latency + video.size(q, ctx.chunk + d).unwrap_or(0) as f64 / rate
                },
            };
            self.planner.best_per_first(&plan, &mut per);
            for q in 0..levels {
                self.values[q] += per[q] * weight;
                worst[q] = worst[q].min(per[q]);
            }
        }
        let risk = self.cfg.risk.clamp(0.0, 1.0);
        let mut best = last;
        let mut best_v = f64::NEG_INFINITY;
        for q in 0..levels {
            let v = (1.0 - risk) * self.values[q] + risk * worst[q];
            if v > best_v {
                best_v = v;
                best = q;
            }
        }
        Decision::fetch(best)
    }
}

/// A planning problem with a terminal value and a buffer cap.
struct Plan<'a> {
    units: &'a [f64],
    scale: f64,
    rebuffer_penalty: f64,
    chunk_s: f64,
    max_buffer_s: f64,
    buffer_s: f64,
    last: usize,
    horizon: usize,
    terminal_weight: f64,
    terminal_cap_s: f64,
    download_s: &'a dyn Fn(usize, usize) -> f64,
}

/// Branch and bound for the best plan starting with each rung.
#[derive(Debug, Clone, Default)]
struct Planner {
    dt: Vec<f64>,
    min_dt: Vec<f64>,
    gain: Vec<f64>,
}

impl Planner {
    /// `out[q]` = the best value of a plan whose first rung is q.
    fn best_per_first(&mut self, p: &Plan<'_>, out: &mut Vec<f64>) {
        let levels = p.units.len();
        let h = p.horizon.min(MAX_H);
        out.clear();
        out.resize(levels, f64::NEG_INFINITY);
        self.dt.clear();
        self.min_dt.clear();
        for d in 0..h {
            let mut min = f64::INFINITY;
            for q in 0..levels {
                let t = (p.download_s)(d, q);
                self.dt.push(t);
                min = min.min(t);
            }
            self.min_dt.push(min);
        }
        self.gain.clear();
        self.gain.resize((h + 1) * levels, 0.0);
        for r in 1..=h {
            for l in 0..levels {
                let mut g = f64::NEG_INFINITY;
                for c in 0..levels {
                    let v = p.units[c] - (p.units[c] - p.units[l]).abs()
                        + self.gain[(r - 1) * levels + c];
                    g = g.max(v);
                }
                self.gain[r * levels + l] = g;
            }
        }
        let terminal = |b: f64| p.terminal_weight * b.min(p.terminal_cap_s);
        let step = |b: f64, dt: f64| -> (f64, f64) {
            let (mut b, mut r) = (b, 0.0);
            if b < dt {
                r = dt - b;
                b = 0.0;
            } else {
                b -= dt;
            }
            ((b + p.chunk_s).min(p.max_buffer_s), r)
        };
        // Incumbents: constant continuations after each first rung.
        for first in 0..levels {
            for c in [first, 0] {
                let (mut b, mut rb, mut s, mut w, mut prev) = (p.buffer_s, 0.0, 0.0, 0.0, p.last);
                for d in 0..h {
                    let q = if d == 0 { first } else { c };
                    let (nb, r) = step(b, self.dt[d * levels + q]);
                    b = nb;
                    rb += r;
                    s += p.units[q];
                    w += (p.units[q] - p.units[prev]).abs();
                    prev = q;
                }
                let v = s / p.scale - p.rebuffer_penalty * rb - w / p.scale + terminal(b);
                out[first] = out[first].max(v);
            }
        }
        let mut combo = [0usize; MAX_H];
        let mut buf = [0.0f64; MAX_H + 1];
        let mut rb = [0.0f64; MAX_H + 1];
        let mut bs = [0.0f64; MAX_H + 1];
        let mut sd = [0.0f64; MAX_H + 1];
        let mut next = [0usize; MAX_H + 1];
        buf[0] = p.buffer_s;
        next[0] = levels;
        let mut depth = 0usize;
        loop {
            if next[depth] == 0 {
                if depth == 0 {
                    break;
                }
                depth -= 1;
                continue;
            }
            next[depth] -= 1;
            let c = next[depth];
            combo[depth] = c;
            let prev = if depth == 0 { p.last } else { combo[depth - 1] };
            let (b, r) = step(buf[depth], self.dt[depth * levels + c]);
            let r = rb[depth] + r;
            let s = bs[depth] + p.units[c];
            let w = sd[depth] + (p.units[c] - p.units[prev]).abs();
            let first = combo[0];
            if depth + 1 == h {
                let v = s / p.scale - p.rebuffer_penalty * r - w / p.scale + terminal(b);
                if v > out[first] {
                    out[first] = v;
                }
                continue;
            }
            let remaining = h - depth - 1;
            let gain = self.gain[remaining * levels + c];
            let best_end = (b + remaining as f64 * p.chunk_s).min(p.max_buffer_s);
            let mut bound =
                (s + gain) / p.scale - p.rebuffer_penalty * r - w / p.scale + terminal(best_end);
            if bound <= out[first] {
                continue;
            }
            let (mut bb, mut extra) = (b, 0.0);
            for st in depth + 1..h {
                let (nb, x) = step(bb, self.min_dt[st]);
                bb = nb;
                extra += x;
            }
            bound -= p.rebuffer_penalty * extra;
            if bound <= out[first] {
                continue;
            }
            depth += 1;
            buf[depth] = b;
            rb[depth] = r;
            bs[depth] = s;
            sd[depth] = w;
            next[depth] = levels;
        }
    }
}
