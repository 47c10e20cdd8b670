//! Quality of experience: the per-chunk score of Yin et al. (MPC, SIGCOMM 2015) and Mao et
//! al. (Pensieve, SIGCOMM 2017).
//!
//! For chunk *n* at bitrate *Rₙ* with *Tₙ* seconds of rebuffering before it played:
//!
//! > QoEₙ = q(Rₙ) − μ·Tₙ − |q(Rₙ) − q(Rₙ₋₁)|
//!
//! | metric | q(R) | μ |
//! |---|---|---|
//! | [`Qoe::Lin`] | R in Mbit/s | 4.3 |
//! | [`Qoe::Log`] | ln(R / R_min) | 2.66 |
//! | [`Qoe::Hd`] | 1, 2, 3, 12, 15, 20 by rung (rewards HD rungs) | 8 |
//!
//! These are Pensieve's three settings; μ of QoE_lin is 4.3 so that one second of
//! rebuffering costs as much as the top rung's bitrate gains.
//!
//! # Example
//!
//! ```
//! use netflix_abr::qoe::Qoe;
//!
//! let ladder = [300.0, 750.0, 1200.0, 1850.0, 2850.0, 4300.0];
//! // Up from 750 to 1850 kbit/s after 0.5 s of rebuffering.
//! let r = Qoe::Lin.chunk(&ladder, 3, Some(1), 0.5);
//! assert!((r - (1.85 - 4.3 * 0.5 - 1.1)).abs() < 1e-12);
//! assert_eq!(Qoe::Hd.chunk(&ladder, 5, Some(5), 0.0), 20.0);
//! ```

use std::fmt;
use std::str::FromStr;

/// A QoE metric: the quality of a rung, and the weight of a second of rebuffering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum Qoe {
    /// QoE_lin: bitrate in Mbit/s, 4.3 per second of rebuffering.
    #[default]
    Lin,
    /// QoE_log: ln(bitrate / lowest bitrate), 2.66 per second of rebuffering.
    Log,
    /// QoE_HD: Pensieve's HD reward table by rung (1, 2, 3, 12, 15, 20; extended by +5 per rung
    /// above the sixth), 8 per second of rebuffering.
    Hd,
}

/// Pensieve's `BITRATE_REWARD` for QoE_HD.
const HD_REWARD: [f64; 6] = [1.0, 2.0, 3.0, 12.0, 15.0, 20.0];

impl Qoe {
    /// All metrics.
    pub const ALL: [Qoe; 3] = [Qoe::Lin, Qoe::Log, Qoe::Hd];

    /// The quality q(R) of rung `quality` of a ladder (kbit/s, ascending).
    ///
    /// # Panics
    ///
    /// When `quality` is out of the ladder's range.
    pub fn quality(self, bitrates_kbps: &[f64], quality: usize) -> f64 {
        match self {
            Qoe::Lin => bitrates_kbps[quality] / 1000.0,
            Qoe::Log => (bitrates_kbps[quality] / bitrates_kbps[0]).ln(),
            Qoe::Hd => match HD_REWARD.get(quality) {
                Some(&r) => r,
                None => HD_REWARD[5] + 5.0 * (quality - 5) as f64,
            },
        }
    }

    /// μ: the penalty per second of rebuffering.
    pub fn rebuffer_penalty(self) -> f64 {
        match self {
            Qoe::Lin => 4.3,
            Qoe::Log => 2.66,
            Qoe::Hd => 8.0,
        }
    }

    /// The score of one chunk at rung `quality`, after rung `previous` (no smoothness
    /// penalty for the first chunk), with `rebuffer_s` seconds of rebuffering.
    pub fn chunk(
        self,
        bitrates_kbps: &[f64],
        quality: usize,
        previous: Option<usize>,
        rebuffer_s: f64,
    ) -> f64 {
        if self == Qoe::Lin {
            // Pensieve's order of operations: |ΔR| in kbit/s, then / 1000.
            let r = bitrates_kbps[quality];
            let switch = previous.map_or(0.0, |p| (r - bitrates_kbps[p]).abs());
            return r / 1000.0 - self.rebuffer_penalty() * rebuffer_s - switch / 1000.0;
        }
        let q = self.quality(bitrates_kbps, quality);
        let switch = previous.map_or(0.0, |p| (q - self.quality(bitrates_kbps, p)).abs());
        q - self.rebuffer_penalty() * rebuffer_s - switch
    }

    /// The metric's name: `lin`, `log` or `hd`.
    pub fn name(self) -> &'static str {
        match self {
            Qoe::Lin => "lin",
            Qoe::Log => "log",
            Qoe::Hd => "hd",
        }
    }
}

impl fmt::Display for Qoe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Qoe {
    type Err = crate::Error;

    /// `lin`, `log` or `hd` (case-insensitive).
    fn from_str(s: &str) -> crate::Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "lin" => Ok(Qoe::Lin),
            "log" => Ok(Qoe::Log),
            "hd" => Ok(Qoe::Hd),
            _ => Err(crate::Error::invalid(
                "QoE metric",
                format!("{s:?} is not one of lin, log, hd"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pensieve_values() {
        let l = [300.0, 750.0, 1200.0, 1850.0, 2850.0, 4300.0];
        assert_eq!(Qoe::Log.quality(&l, 0), 0.0);
        assert!((Qoe::Log.quality(&l, 5) - (4300.0f64 / 300.0).ln()).abs() < 1e-12);
        assert_eq!(Qoe::Hd.chunk(&l, 3, Some(5), 1.0), 12.0 - 8.0 - 8.0);
        assert_eq!(Qoe::Hd.quality(&[1.0; 8], 7), 30.0);
        assert_eq!(Qoe::Lin.chunk(&l, 0, None, 0.0), 0.3);
        assert_eq!("HD".parse::<Qoe>().unwrap(), Qoe::Hd);
        assert!("x".parse::<Qoe>().unwrap_err().is_invalid());
    }
}
