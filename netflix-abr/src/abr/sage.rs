//! Sage: this crate's own algorithm.

use super::mpc::{Problem, Search, units};
use super::{Abr, Context, Decision, Download};
use crate::qoe::Qoe;
use std::collections::VecDeque;

/// Sage's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct SageConfig {
    /// Chunks planned ahead.
    pub horizon: usize,
    /// Throughput samples kept.
    pub window: usize,
    /// The QoE the plan maximises.
    pub qoe: Qoe,
}

impl Default for SageConfig {
    fn default() -> Self {
        Self {
            horizon: 5,
            window: 5,
            qoe: Qoe::Lin,
        }
    }
}

/// Sage: this crate's algorithm.
#[derive(Debug, Clone)]
pub struct Sage {
    cfg: SageConfig,
    history: VecDeque<f64>,
    latency_s: f64,
    search: Search,
}

impl Sage {
    /// Sage with the given settings.
    pub fn new(cfg: SageConfig) -> Self {
        Self {
            cfg,
            history: VecDeque::new(),
            latency_s: 0.0,
            search: Search::default(),
        }
    }
}

impl Abr for Sage {
    fn name(&self) -> &str {
        "sage"
    }

    fn reset(&mut self) {
        self.history.clear();
    }

    fn on_download(&mut self, d: &Download) {
        let transfer_ms = d.elapsed_ms - d.latency_ms;
        if d.bytes == 0 || transfer_ms <= 0.0 {
            return;
        }
        self.latency_s = d.latency_ms / 1000.0;
        if self.history.len() == self.cfg.window {
            self.history.pop_front();
        }
        self.history
            .push_back(d.bytes as f64 / (transfer_ms / 1000.0));
    }

    fn choose(&mut self, ctx: &Context<'_>) -> Decision {
        let video = ctx.video;
        let last = ctx.last_quality.unwrap_or(0);
        if self.history.is_empty() {
            return Decision::fetch(last);
        }
        let inv: f64 = self.history.iter().map(|v| 1.0 / v).sum();
        let bw = self.history.len() as f64 / inv;
        let horizon = self.cfg.horizon.min(ctx.chunks_left());
        if horizon == 0 {
            return Decision::fetch(last);
        }
        let latency = self.latency_s;
        let units = units(self.cfg.qoe, video.bitrates_kbps());
        let plan = self.search.run(&Problem {
            units: &units,
            scale: if self.cfg.qoe == Qoe::Lin {
                1000.0
            } else {
                1.0
            },
            rebuffer_penalty: self.cfg.qoe.rebuffer_penalty(),
            chunk_s: video.chunk_s(),
            buffer_s: ctx.buffer_s,
            last,
            horizon,
            download_s: &|d, q| latency + video.size(q, ctx.chunk + d).unwrap_or(0) as f64 / bw,
        });
        Decision::fetch(plan.unwrap_or(last))
    }
}
