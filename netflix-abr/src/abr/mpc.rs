//! Model predictive control: MPC and RobustMPC (Yin et al., SIGCOMM 2015).

use super::{Abr, Context, Decision, Download};
use crate::qoe::Qoe;
use crate::video::envivio::ENVIVIO_SIZES;

/// `TOTAL_VIDEO_CHUNKS` of Pensieve's `mpc.py`.
const PENSIEVE_CHUNKS: usize = 48;
use std::collections::VecDeque;

/// The longest planning horizon [`Mpc`] accepts.
pub(crate) const MAX_HORIZON: usize = 8;

/// MPC's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct MpcConfig {
    /// Chunks planned ahead (5; at most 8).
    pub horizon: usize,
    /// Throughput samples in the harmonic mean (5).
    pub window: usize,
    /// RobustMPC: divide the estimate by 1 + the largest relative error of the last
    /// `window` estimates.
    pub robust: bool,
    /// The QoE the plan maximises (QoE_lin).
    pub qoe: Qoe,
    /// Pensieve's quirks (see [`Flavor::Pensieve`](super::Flavor)): plan the chunks one past
    /// the ones to come, with `mpc.py`'s own copy of the envivio chunk sizes (whatever the
    /// video's are) over its fixed 48 chunks, and keep the error history across sessions.
    pub pensieve: bool,
}

impl Default for MpcConfig {
    fn default() -> Self {
        Self {
            horizon: 5,
            window: 5,
            robust: true,
            qoe: Qoe::Lin,
            pensieve: false,
        }
    }
}

/// MPC and RobustMPC.
///
/// After every download, the throughput of the last `window` (5) downloads (bytes over
/// elapsed time, request latency included) gives a harmonic-mean estimate; RobustMPC
/// divides it by 1 + the largest relative prediction error of the last five. The next rung
/// is the first of the sequence of `horizon` (5) rungs that maximises QoE over the coming
/// chunks, simulating the buffer with each chunk's real size at that throughput.
///
/// The search is exact, and returns what a brute-force pass over all 6⁵ sequences returns
/// (ties to the lexicographically last sequence, as Pensieve's `mpc.py`), but prunes with
/// an upper bound on what a partial sequence can still gain (its bitrate and smoothness, and
/// the rebuffering even the lowest rungs would cause), so a decision takes microseconds.
///
/// # Example
///
/// ```
/// use netflix_abr::abr::{Abr, Context, Download, Mpc};
/// use netflix_abr::video::Video;
///
/// let video = Video::envivio();
/// let mut mpc = Mpc::robust();
/// // Chunk 0 (450 kB at 750 kbit/s) took 0.6 s: about 6 Mbit/s.
/// mpc.on_download(&Download::new(0, 1, 450_283, 600.0, 80.0));
/// let d = mpc.choose(&Context::new(&video, 1, 3.4, Some(1)));
/// assert!(d.quality >= 2, "{d:?}");
/// ```
#[derive(Debug, Clone)]
pub struct Mpc {
    cfg: MpcConfig,
    /// Throughputs of this session's downloads, MB/s, at most `window`.
    history: VecDeque<f64>,
    /// Relative errors of past estimates, at most 5.
    errors: VecDeque<f64>,
    last_estimate: Option<f64>,
    /// The throughput to plan with, MB/s.
    future_mbytes: Option<f64>,
    last_sent: usize,
    search: Search,
    units: UnitsCache,
}

impl Mpc {
    /// MPC with the given settings.
    pub fn new(cfg: MpcConfig) -> Self {
        let mut cfg = cfg;
        cfg.horizon = cfg.horizon.clamp(1, MAX_HORIZON);
        cfg.window = cfg.window.max(1);
        Self {
            cfg,
            history: VecDeque::with_capacity(cfg.window),
            errors: VecDeque::with_capacity(5),
            last_estimate: None,
            future_mbytes: None,
            last_sent: 0,
            search: Search::default(),
            units: UnitsCache::default(),
        }
    }

    /// "FastMPC" without the robust discount: plan with the harmonic mean itself.
    pub fn fast() -> Self {
        Self::new(MpcConfig {
            robust: false,
            ..MpcConfig::default()
        })
    }

    /// RobustMPC with horizon 5 and a 5-sample harmonic mean.
    pub fn robust() -> Self {
        Self::new(MpcConfig::default())
    }

    /// Turns Pensieve's quirks on or off (see [`MpcConfig::pensieve`]).
    pub fn pensieve(mut self, on: bool) -> Self {
        self.cfg.pensieve = on;
        self
    }

    /// The settings.
    pub fn config(&self) -> &MpcConfig {
        &self.cfg
    }

    /// The throughput the next plan assumes, in MB/s (after the robust discount).
    pub fn planning_mbytes_per_s(&self) -> Option<f64> {
        self.future_mbytes
    }
}

impl Abr for Mpc {
    fn name(&self) -> &str {
        if self.cfg.robust { "robust-mpc" } else { "mpc" }
    }

    fn reset(&mut self) {
        self.history.clear();
        self.future_mbytes = None;
        if !self.cfg.pensieve {
            // Pensieve keeps these in module globals for the whole run.
            self.errors.clear();
            self.last_estimate = None;
        }
    }

    fn on_download(&mut self, d: &Download) {
        if d.bytes == 0 || d.elapsed_ms <= 0.0 {
            return;
        }
        // Exactly mpc.py's arithmetic: float(size) / float(delay_ms) / 1000 (MB/s).
        let bw = d.bytes as f64 / d.elapsed_ms / 1000.0;
        let error = match self.last_estimate {
            Some(est) => (est - bw).abs() / bw,
            None => 0.0,
        };
        if self.errors.len() == 5 {
            self.errors.pop_front();
        }
        self.errors.push_back(error);
        if self.history.len() == self.cfg.window {
            self.history.pop_front();
        }
        self.history.push_back(bw);
        let mut inv = 0.0;
        for v in &self.history {
            inv += 1.0 / v;
        }
        let harmonic = 1.0 / (inv / self.history.len() as f64);
        let max_error = self.errors.iter().copied().fold(f64::MIN, f64::max);
        self.future_mbytes = Some(if self.cfg.robust {
            harmonic / (1.0 + max_error)
        } else {
            harmonic
        });
        self.last_estimate = Some(harmonic);
    }

    fn choose(&mut self, ctx: &Context<'_>) -> Decision {
        let video = ctx.video;
        let last = ctx.last_quality.unwrap_or(0).min(video.levels() - 1);
        let Some(bw) = self.future_mbytes else {
            // No measurement yet: stay where we are.
            return Decision::fetch(last);
        };
        let (first, horizon) = if self.cfg.pensieve {
            // mpc.py: last_index = chunks downloaded; it plans chunks last_index+1.. and
            // shortens the horizon only near the end of its 48.
            let n = PENSIEVE_CHUNKS;
            (
                ctx.chunk + 1,
                self.cfg.horizon.min(n.saturating_sub(ctx.chunk)),
            )
        } else {
            (ctx.chunk, self.cfg.horizon.min(ctx.chunks_left()))
        };
        if horizon == 0 {
            return Decision::fetch(last);
        }
        let pensieve = self.cfg.pensieve;
        let size = |q: usize, i: usize| -> f64 {
            if pensieve {
                // mpc.py's get_chunk_size: its own copy of the envivio sizes (whatever the
                // video_size files say), 0 past index 48.
                match ENVIVIO_SIZES.get(q) {
                    _ if i > PENSIEVE_CHUNKS => 0.0,
                    Some(rung) => rung.get(i).copied().unwrap_or(0) as f64,
                    None => video.size(q, i).unwrap_or(0) as f64,
                }
            } else {
                video.size(q, i).unwrap_or(0) as f64
            }
        };
        let plan = self.search.run(&Problem {
            units: self.units.of(self.cfg.qoe, video.bitrates_kbps()),
            scale: scale(self.cfg.qoe),
            rebuffer_penalty: self.cfg.qoe.rebuffer_penalty(),
            chunk_s: video.chunk_s(),
            buffer_s: ctx.buffer_s,
            last,
            horizon,
            download_s: &|d, q| (size(q, first + d) / 1_000_000.0) / bw,
        });
        if let Some(q) = plan {
            self.last_sent = q;
        }
        Decision::fetch(self.last_sent)
    }
}

/// Per-rung "units" whose sums the objective divides by the scale: kbit/s for QoE_lin (so
/// the arithmetic is mpc.py's), q(R) otherwise.
pub(crate) fn units(qoe: Qoe, bitrates_kbps: &[f64]) -> Vec<f64> {
    match qoe {
        Qoe::Lin => bitrates_kbps.to_vec(),
        _ => (0..bitrates_kbps.len())
            .map(|q| qoe.quality(bitrates_kbps, q))
            .collect(),
    }
}

/// What the objective divides the summed [`units`] by.
pub(crate) fn scale(qoe: Qoe) -> f64 {
    if qoe == Qoe::Lin { 1000.0 } else { 1.0 }
}

/// The [`units`] of the last ladder seen, recomputed only when the ladder changes.
#[derive(Debug, Clone, Default)]
pub(crate) struct UnitsCache {
    ladder: Vec<f64>,
    units: Vec<f64>,
}

impl UnitsCache {
    pub(crate) fn of(&mut self, qoe: Qoe, bitrates_kbps: &[f64]) -> &[f64] {
        if self.ladder != bitrates_kbps || self.units.len() != bitrates_kbps.len() {
            self.ladder = bitrates_kbps.to_vec();
            self.units = units(qoe, bitrates_kbps);
        }
        &self.units
    }
}

/// One planning problem: rungs, buffer, horizon and the download time of each rung at
/// each step.
pub(crate) struct Problem<'a> {
    pub(crate) units: &'a [f64],
    pub(crate) scale: f64,
    pub(crate) rebuffer_penalty: f64,
    pub(crate) chunk_s: f64,
    pub(crate) buffer_s: f64,
    pub(crate) last: usize,
    pub(crate) horizon: usize,
    /// Seconds to download rung `q` at step `d`.
    pub(crate) download_s: &'a dyn Fn(usize, usize) -> f64,
}

/// Reusable scratch space for the branch-and-bound search.
#[derive(Debug, Clone, Default)]
pub(crate) struct Search {
    /// `dt[d * levels + q]`: download seconds of rung q at step d.
    dt: Vec<f64>,
    /// `min_dt[d]`: the fastest download at step d.
    min_dt: Vec<f64>,
    /// `gain[r * levels + l]`: the most (bitrate − switching) units r more chunks can add after rung l.
    gain: Vec<f64>,
    combo: [usize; MAX_HORIZON],
    best: [usize; MAX_HORIZON],
    /// Nodes visited by the last search (for tests and benchmarks).
    pub(crate) visited: usize,
}

/// mpc.py starts its maximum at −10⁸ and accepts a plan only at or above it.
const FLOOR: f64 = -100_000_000.0;

/// One chunk of a plan, in mpc.py's order of operations: the download drains the buffer
/// (any shortfall is rebuffering), then the chunk adds `chunk_s`, up to `max_buffer_s`.
/// Returns the new buffer and the rebuffering.
#[inline(always)]
pub(crate) fn buffer_step(
    buffer_s: f64,
    download_s: f64,
    chunk_s: f64,
    max_buffer_s: f64,
) -> (f64, f64) {
    let (b, rebuffer) = if buffer_s < download_s {
        (0.0, download_s - buffer_s)
    } else {
        (buffer_s - download_s, 0.0)
    };
    ((b + chunk_s).min(max_buffer_s), rebuffer)
}

impl Search {
    /// The first rung of the best plan, or `None` when no plan scores at least −10⁸.
    pub(crate) fn run(&mut self, p: &Problem<'_>) -> Option<usize> {
        let levels = p.units.len();
        let h = p.horizon.min(MAX_HORIZON);
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
        // gain[r][l] = max over c of (u_c − |u_c − u_l|) + gain[r−1][c].
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
        self.visited = 0;

        let mut best_reward = FLOOR;
        let mut found = false;
        // Incumbents: the constant plans.
        for c in 0..levels {
            self.combo[..h].fill(c);
            let r = self.evaluate(p, h);
            if self.accept(r, best_reward, found, h) {
                best_reward = r;
                found = true;
                self.best[..h].copy_from_slice(&self.combo[..h]);
            }
        }

        // Depth-first, highest rung first, with bound pruning.
        // Per depth: buffer, rebuffer, bitrate units, switching units, next child to try.
        let mut buf = [0.0f64; MAX_HORIZON + 1];
        let mut rb = [0.0f64; MAX_HORIZON + 1];
        let mut bs = [0.0f64; MAX_HORIZON + 1];
        let mut sd = [0.0f64; MAX_HORIZON + 1];
        let mut next = [0usize; MAX_HORIZON + 1];
        buf[0] = p.buffer_s;
        next[0] = levels; // children are tried from levels-1 down to 0
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
            self.combo[depth] = c;
            self.visited += 1;
            let prev = if depth == 0 {
                p.last
            } else {
                self.combo[depth - 1]
            };
            let (b, extra) = buffer_step(
                buf[depth],
                self.dt[depth * levels + c],
                p.chunk_s,
                f64::INFINITY,
            );
            let r = rb[depth] + extra;
            let s = bs[depth] + p.units[c];
            let w = sd[depth] + (p.units[c] - p.units[prev]).abs();
            if depth + 1 == h {
                let reward = (s / p.scale) - (p.rebuffer_penalty * r) - (w / p.scale);
                if self.accept(reward, best_reward, found, h) {
                    best_reward = reward;
                    found = true;
                    self.best[..h].copy_from_slice(&self.combo[..h]);
                }
                continue;
            }
            // Bound: the most the remaining steps can add, and the least rebuffering they
            // must add (the fastest rung at every step).
            let remaining = h - depth - 1;
            let gain = self.gain[remaining * levels + c];
            let margin = 1e-9 * (1.0 + best_reward.abs());
            let mut bound = (s + gain) / p.scale - p.rebuffer_penalty * r - w / p.scale;
            if bound + margin < best_reward {
                continue;
            }
            let (mut bb, mut extra) = (b, 0.0);
            for step in depth + 1..h {
                let (next, x) = buffer_step(bb, self.min_dt[step], p.chunk_s, f64::INFINITY);
                bb = next;
                extra += x;
            }
            bound -= p.rebuffer_penalty * extra;
            if bound + margin < best_reward {
                continue;
            }
            depth += 1;
            buf[depth] = b;
            rb[depth] = r;
            bs[depth] = s;
            sd[depth] = w;
            next[depth] = levels;
        }
        found.then_some(self.best[0])
    }

    /// The reward of `self.combo[..h]`, in mpc.py's order of operations.
    fn evaluate(&self, p: &Problem<'_>, h: usize) -> f64 {
        let levels = p.units.len();
        let (mut b, mut r, mut s, mut w) = (p.buffer_s, 0.0, 0.0, 0.0);
        let mut prev = p.last;
        for d in 0..h {
            let c = self.combo[d];
            let (next, extra) = buffer_step(b, self.dt[d * levels + c], p.chunk_s, f64::INFINITY);
            b = next;
            r += extra;
            s += p.units[c];
            w += (p.units[c] - p.units[prev]).abs();
            prev = c;
        }
        (s / p.scale) - (p.rebuffer_penalty * r) - (w / p.scale)
    }

    /// mpc.py's `reward >= max_reward` over sequences in lexicographic order: the best
    /// reward, ties to the lexicographically last sequence.
    fn accept(&self, reward: f64, best: f64, found: bool, h: usize) -> bool {
        if reward > best {
            return true;
        }
        reward == best && (!found || self.combo[..h] > self.best[..h])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::video::Video;

    /// The brute force of mpc.py, for comparison.
    fn brute(p: &Problem<'_>) -> Option<usize> {
        let levels = p.units.len();
        let h = p.horizon;
        let mut best = FLOOR;
        let mut send = None;
        let total = levels.pow(h as u32);
        for n in 0..total {
            let mut combo = vec![0; h];
            let mut k = n;
            for d in (0..h).rev() {
                combo[d] = k % levels;
                k /= levels;
            }
            let (mut b, mut r, mut s, mut w) = (p.buffer_s, 0.0, 0.0, 0.0);
            let mut prev = p.last;
            for (d, &c) in combo.iter().enumerate() {
                let dt = (p.download_s)(d, c);
                if b < dt {
                    r += dt - b;
                    b = 0.0;
                } else {
                    b -= dt;
                }
                b += p.chunk_s;
                s += p.units[c];
                w += (p.units[c] - p.units[prev]).abs();
                prev = c;
            }
            let reward = (s / p.scale) - (p.rebuffer_penalty * r) - (w / p.scale);
            if reward >= best {
                best = reward;
                send = Some(combo[0]);
            }
        }
        send
    }

    #[test]
    fn branch_and_bound_agrees_with_brute_force() {
        let video = Video::envivio();
        let units = units(Qoe::Lin, video.bitrates_kbps());
        let mut search = Search::default();
        let mut visited = 0;
        let mut cases = 0;
        // A grid of throughputs, buffers, last rungs, horizons and positions.
        for &bw in &[0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.45, 0.6, 1.0, 3.0] {
            for &buffer in &[0.0, 0.5, 2.0, 4.0, 7.5, 12.0, 20.0, 40.0] {
                for last in 0..6 {
                    for horizon in 1..=5 {
                        for first in [1, 20, 45] {
                            let dl = |d: usize, q: usize| {
                                (video.size(q, first + d).unwrap_or(0) as f64 / 1e6) / bw
                            };
                            let p = Problem {
                                units: &units,
                                scale: 1000.0,
                                rebuffer_penalty: 4.3,
                                chunk_s: 4.0,
                                buffer_s: buffer,
                                last,
                                horizon,
                                download_s: &dl,
                            };
                            let want = brute(&p);
                            let got = search.run(&p);
                            assert_eq!(
                                got, want,
                                "bw {bw} buffer {buffer} last {last} h {horizon}"
                            );
                            visited += search.visited;
                            cases += 1;
                        }
                    }
                }
            }
        }
        // The pruning does its job: far fewer nodes than the 9330 of a full tree.
        assert!(
            visited / cases < 2000,
            "{} nodes per search",
            visited / cases
        );
    }

    #[test]
    fn pensieve_flavour_plans_with_its_own_copy_of_the_envivio_sizes() {
        let envivio = Video::envivio();
        // Same ladder, chunks three times as large.
        let sizes = (0..6)
            .map(|q| envivio.sizes(q).iter().map(|s| s * 3).collect())
            .collect();
        let heavy = Video::new(envivio.bitrates_kbps().to_vec(), 4.0, sizes)
            .and_then(|v| v.with_chunks(48))
            .unwrap();
        let decide = |pensieve: bool, video: &Video| {
            let mut mpc = Mpc::robust().pensieve(pensieve);
            for i in 0..3 {
                mpc.on_download(&Download::new(i, 3, 1_000_000, 2_000.0, 80.0));
            }
            mpc.choose(&Context::new(video, 3, 8.0, Some(3))).quality
        };
        assert_eq!(decide(true, &envivio), decide(true, &heavy));
        assert!(decide(false, &heavy) < decide(false, &envivio));
    }

    #[test]
    fn exact_ties_go_to_the_last_sequence() {
        // Every rung downloads instantly and is worth the same: all plans tie, and the
        // lexicographically last one (all top rung) wins, as in mpc.py.
        let units = [1.0, 1.0, 1.0];
        let dl = |_: usize, _: usize| 0.0;
        let p = Problem {
            units: &units,
            scale: 1.0,
            rebuffer_penalty: 4.3,
            chunk_s: 4.0,
            buffer_s: 10.0,
            last: 0,
            horizon: 3,
            download_s: &dl,
        };
        assert_eq!(Search::default().run(&p), Some(2));
    }
}
