//! Buffer-based rate adaptation (BBA).

use super::{Abr, Context, Decision, Download};

/// Buffer-based adaptation: the rung follows the buffer level alone.
///
/// Below the *reservoir* the lowest rung is fetched; above reservoir + *cushion* the
/// highest; in between a rate map rises from one to the other. Two rate maps:
///
/// * [`Bba::pensieve`] (`bb`): hongzimao/pensieve's `test/bb.py`, linear in the rung index,
///   `floor(5 · (B − 5) / 10)` for six rungs, with no hysteresis.
/// * [`Bba::bba0`] (`bba0`): BBA-0 of Huang et al. (SIGCOMM 2014, Algorithm 1), linear in
///   bitrate, with hysteresis: the rung moves up only once the map reaches the next rung up,
///   and down only once it falls to the next rung down.
///
/// # Example
///
/// ```
/// use netflix_abr::abr::{Abr, Bba, Context};
/// use netflix_abr::video::Video;
///
/// let v = Video::envivio();
/// let mut bb = Bba::pensieve();
/// let at = |bb: &mut Bba, buffer| bb.choose(&Context::new(&v, 1, buffer, Some(2))).quality;
/// assert_eq!(at(&mut bb, 4.9), 0);
/// assert_eq!(at(&mut bb, 10.0), 2);
/// assert_eq!(at(&mut bb, 15.0), 5);
///
/// let mut bba0 = Bba::bba0(5.0, 10.0);
/// // f(10 s) = 300 + 4000 · 0.5 = 2300 kbit/s: from 1200 it rises to the highest rung below the map.
/// assert_eq!(bba0.choose(&Context::new(&v, 1, 10.0, Some(2))).quality, 3);
/// // From 1850 the map has to reach 2850 to move up, and fall to 1200 to move down: stay.
/// assert_eq!(bba0.choose(&Context::new(&v, 1, 10.0, Some(3))).quality, 3);
/// ```
#[derive(Debug, Clone)]
pub struct Bba {
    reservoir_s: f64,
    cushion_s: f64,
    map: RateMap,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RateMap {
    PensieveIndex,
    Bba0,
}

impl Bba {
    /// Pensieve's `bb.py`: reservoir 5 s, cushion 10 s, a rate map linear in the rung index.
    pub fn pensieve() -> Self {
        Self {
            reservoir_s: 5.0,
            cushion_s: 10.0,
            map: RateMap::PensieveIndex,
        }
    }

    /// BBA-0 with the given reservoir and cushion in seconds (the paper used 90 s and 126 s
    /// of a 240 s buffer; Pensieve's 60 s buffer calls for 5 s and 10 s).
    pub fn bba0(reservoir_s: f64, cushion_s: f64) -> Self {
        Self {
            reservoir_s,
            cushion_s: cushion_s.max(f64::MIN_POSITIVE),
            map: RateMap::Bba0,
        }
    }

    fn pensieve_rule(&self, levels: usize, buffer_s: f64) -> usize {
        let top = levels - 1;
        if buffer_s < self.reservoir_s {
            0
        } else if buffer_s >= self.reservoir_s + self.cushion_s {
            top
        } else {
            // `int()` of a non-negative float: truncation.
            let q = top as f64 * (buffer_s - self.reservoir_s) / self.cushion_s;
            (q as usize).min(top)
        }
    }

    fn bba0_rule(&self, rates: &[f64], buffer_s: f64, prev: usize) -> usize {
        let top = rates.len() - 1;
        let prev = prev.min(top);
        if buffer_s <= self.reservoir_s {
            return 0;
        }
        if buffer_s >= self.reservoir_s + self.cushion_s {
            return top;
        }
        let f = rates[0] + (rates[top] - rates[0]) * (buffer_s - self.reservoir_s) / self.cushion_s;
        let up = rates[(prev + 1).min(top)];
        let down = rates[prev.saturating_sub(1)];
        if f >= up {
            // max{R_i : R_i < f(B)}
            rates.iter().rposition(|&r| r < f).unwrap_or(0)
        } else if f <= down {
            // min{R_i : R_i > f(B)}
            rates.iter().position(|&r| r > f).unwrap_or(top)
        } else {
            prev
        }
    }
}

impl Abr for Bba {
    fn name(&self) -> &str {
        match self.map {
            RateMap::PensieveIndex => "bb",
            RateMap::Bba0 => "bba0",
        }
    }

    fn reset(&mut self) {}

    fn on_download(&mut self, _d: &Download) {}

    fn choose(&mut self, ctx: &Context<'_>) -> Decision {
        let rates = ctx.video.bitrates_kbps();
        Decision::fetch(match self.map {
            RateMap::PensieveIndex => self.pensieve_rule(rates.len(), ctx.buffer_s),
            RateMap::Bba0 => self.bba0_rule(rates, ctx.buffer_s, ctx.last_quality.unwrap_or(0)),
        })
    }
}
