//! Bitrate ladders: which renditions of a title to encode.
//!
//! A [`Ladder`] is a validated list of [`Rendition`]s sorted by bitrate, with no two at the
//! same bitrate. Three fixed ladders are built in:
//!
//! * [`Ladder::apple_hls`]: the H.264 table of Apple's *HLS Authoring Specification for
//!   Apple Devices* (item 1.25; average bitrates, 145 to 7800 kbit/s).
//! * [`Ladder::netflix_fixed`]: Netflix's one-size-fits-all ladder from before per-title
//!   encoding ("Per-Title Encode Optimization", Netflix Tech Blog, December 2015).
//! * [`Ladder::envivio`]: the six rungs of the "envivio" video used by Pensieve and most
//!   ABR research (300 to 4300 kbit/s), with the resolutions of its DASH manifest.
//!
//! Per-title ladders come from measured rate-quality points: see [`per_title`](crate::per_title).
//!
//! # Example
//!
//! ```
//! use netflix_abr::ladder::{FrameRate, Ladder, Rendition};
//!
//! let ladder = Ladder::new(vec![
//!     Rendition::new(1280, 720, 3_000_000, "avc1.64001f", FrameRate::integer(30)),
//!     Rendition::new(640, 360, 800_000, "avc1.64001e", FrameRate::integer(30)),
//! ])?;
//! assert_eq!(ladder.bitrates_kbps(), [800.0, 3000.0]); // sorted
//! assert_eq!(Ladder::envivio().len(), 6);
//! # Ok::<(), netflix_abr::Error>(())
//! ```

use crate::error::{Error, Result, ensure};
use std::fmt;

/// A frame rate as a fraction, so that 29.97 (30000/1001) stays exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct FrameRate {
    /// Frames…
    pub num: u32,
    /// …per this many seconds.
    pub den: u32,
}

impl FrameRate {
    /// A whole number of frames per second.
    pub const fn integer(fps: u32) -> Self {
        Self { num: fps, den: 1 }
    }

    /// A fractional rate, such as 30000/1001.
    pub const fn new(num: u32, den: u32) -> Self {
        Self { num, den }
    }

    /// The rate in frames per second.
    pub fn as_f64(self) -> f64 {
        f64::from(self.num) / f64::from(self.den.max(1))
    }
}

impl fmt::Display for FrameRate {
    /// Three decimals, as HLS's `FRAME-RATE` attribute writes it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.3}", self.as_f64())
    }
}

/// One encoding of a title: resolution, bitrate, codec and frame rate.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Rendition {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Average bitrate in bits per second.
    pub bitrate: u32,
    /// The RFC 6381 codec string, such as `avc1.64001f`.
    pub codecs: String,
    /// Frames per second.
    pub frame_rate: FrameRate,
}

impl Rendition {
    /// Creates a rendition.
    pub fn new(
        width: u32,
        height: u32,
        bitrate: u32,
        codecs: impl Into<String>,
        frame_rate: FrameRate,
    ) -> Self {
        Self {
            width,
            height,
            bitrate,
            codecs: codecs.into(),
            frame_rate,
        }
    }

    /// The bitrate in kbit/s.
    pub fn bitrate_kbps(&self) -> f64 {
        f64::from(self.bitrate) / 1000.0
    }

    fn validate(&self) -> Result<()> {
        ensure(self.width > 0 && self.height > 0, "rendition", || {
            format!("resolution {}x{} has a zero side", self.width, self.height)
        })?;
        ensure(self.bitrate > 0, "rendition", || "bitrate is zero".into())?;
        ensure(
            self.frame_rate.num > 0 && self.frame_rate.den > 0,
            "rendition",
            || {
                format!(
                    "frame rate {}/{} is not positive",
                    self.frame_rate.num, self.frame_rate.den
                )
            },
        )?;
        ensure(!self.codecs.trim().is_empty(), "rendition", || {
            "codec string is empty".into()
        })
    }
}

/// A validated bitrate ladder: renditions sorted by bitrate, no two at the same bitrate.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Ladder {
    renditions: Vec<Rendition>,
}

impl Ladder {
    /// Sorts and validates renditions into a ladder.
    ///
    /// # Errors
    ///
    /// When the list is empty, two renditions share a bitrate, or a rendition has a zero
    /// dimension, bitrate or frame rate, or an empty codec string.
    pub fn new(mut renditions: Vec<Rendition>) -> Result<Self> {
        ensure(!renditions.is_empty(), "ladder", || "no renditions".into())?;
        for r in &renditions {
            r.validate()?;
        }
        renditions.sort_by_key(|r| r.bitrate);
        if let Some(w) = renditions.windows(2).find(|w| w[0].bitrate == w[1].bitrate) {
            return Err(Error::invalid(
                "ladder",
                format!("two renditions at {} bit/s", w[0].bitrate),
            ));
        }
        Ok(Self { renditions })
    }

    /// The renditions, lowest bitrate first.
    pub fn renditions(&self) -> &[Rendition] {
        &self.renditions
    }

    /// Rendition `i` (0 is the lowest bitrate).
    pub fn get(&self, i: usize) -> Option<&Rendition> {
        self.renditions.get(i)
    }

    /// How many renditions.
    pub fn len(&self) -> usize {
        self.renditions.len()
    }

    /// Always false: a ladder has at least one rendition.
    pub fn is_empty(&self) -> bool {
        self.renditions.is_empty()
    }

    /// The bitrates in kbit/s, lowest first: what ABR algorithms choose between.
    pub fn bitrates_kbps(&self) -> Vec<f64> {
        self.renditions
            .iter()
            .map(Rendition::bitrate_kbps)
            .collect()
    }

    /// Apple's HLS Authoring Specification H.264 ladder (item 1.25): nine rungs from
    /// 145 kbit/s at 416x234 to 7800 kbit/s at 1920x1080, 30 fps.
    pub fn apple_hls() -> Self {
        const RUNGS: [(u32, u32, u32, &str); 9] = [
            (416, 234, 145, "avc1.42c015"),
            (640, 360, 365, "avc1.4d401e"),
            (768, 432, 730, "avc1.4d401e"),
            (768, 432, 1100, "avc1.4d401e"),
            (960, 540, 2000, "avc1.4d401f"),
            (1280, 720, 3000, "avc1.4d401f"),
            (1280, 720, 4500, "avc1.4d401f"),
            (1920, 1080, 6000, "avc1.640028"),
            (1920, 1080, 7800, "avc1.640028"),
        ];
        Self::fixed(&RUNGS, FrameRate::integer(30))
    }

    /// Netflix's fixed per-resolution ladder before per-title encoding (2015): ten rungs
    /// from 235 kbit/s at 320x240 to 5800 kbit/s at 1920x1080.
    pub fn netflix_fixed() -> Self {
        const RUNGS: [(u32, u32, u32, &str); 10] = [
            (320, 240, 235, "avc1.42c015"),
            (384, 288, 375, "avc1.42c015"),
            (512, 384, 560, "avc1.4d401e"),
            (512, 384, 750, "avc1.4d401e"),
            (640, 480, 1050, "avc1.4d401e"),
            (720, 480, 1750, "avc1.4d401e"),
            (1280, 720, 2350, "avc1.4d401f"),
            (1280, 720, 3000, "avc1.4d401f"),
            (1920, 1080, 4300, "avc1.640028"),
            (1920, 1080, 5800, "avc1.640028"),
        ];
        Self::fixed(&RUNGS, FrameRate::integer(24))
    }

    /// Pensieve's "envivio" ladder: 300, 750, 1200, 1850, 2850 and 4300 kbit/s, H.264 at
    /// 30000/1001 fps, with the resolutions of its DASH manifest (180p to 1080p).
    pub fn envivio() -> Self {
        const RUNGS: [(u32, u32, u32, &str); 6] = [
            (320, 180, 300, "avc1.4d401e"),
            (640, 360, 750, "avc1.4d401e"),
            (768, 432, 1200, "avc1.4d401e"),
            (1024, 576, 1850, "avc1.4d401e"),
            (1280, 720, 2850, "avc1.4d401e"),
            (1920, 1080, 4300, "avc1.4d401e"),
        ];
        Self::fixed(&RUNGS, FrameRate::new(30000, 1001))
    }

    fn fixed(rungs: &[(u32, u32, u32, &str)], fps: FrameRate) -> Self {
        let renditions = rungs
            .iter()
            .map(|&(w, h, kbps, codecs)| Rendition::new(w, h, kbps * 1000, codecs, fps))
            .collect();
        Self::new(renditions).expect("built-in ladders are valid")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn presets_match_their_sources() {
        assert_eq!(
            Ladder::apple_hls().bitrates_kbps(),
            [
                145.0, 365.0, 730.0, 1100.0, 2000.0, 3000.0, 4500.0, 6000.0, 7800.0
            ]
        );
        assert_eq!(
            Ladder::netflix_fixed().bitrates_kbps(),
            [
                235.0, 375.0, 560.0, 750.0, 1050.0, 1750.0, 2350.0, 3000.0, 4300.0, 5800.0
            ]
        );
        assert_eq!(
            Ladder::envivio().bitrates_kbps(),
            [300.0, 750.0, 1200.0, 1850.0, 2850.0, 4300.0]
        );
        let top = Ladder::apple_hls().get(8).cloned().unwrap();
        assert_eq!((top.width, top.height), (1920, 1080));
        assert_eq!(FrameRate::new(30000, 1001).to_string(), "29.970");
    }

    #[track_caller]
    fn check_invalid(renditions: Vec<Rendition>, fragment: &str) {
        let e = Ladder::new(renditions).unwrap_err();
        assert!(e.is_invalid(), "{e}");
        assert!(e.to_string().contains(fragment), "{e} lacks {fragment}");
    }

    #[test]
    fn bad_ladders_are_refused() {
        let r = |w, h, b, fps| Rendition::new(w, h, b, "avc1", FrameRate::integer(fps));
        check_invalid(vec![], "no renditions");
        check_invalid(vec![r(0, 360, 1000, 30)], "zero side");
        check_invalid(vec![r(640, 360, 0, 30)], "bitrate is zero");
        check_invalid(vec![r(640, 360, 1000, 0)], "frame rate");
        check_invalid(
            vec![r(640, 360, 1000, 30), r(1280, 720, 1000, 30)],
            "two renditions",
        );
        check_invalid(
            vec![Rendition::new(640, 360, 1, " ", FrameRate::integer(30))],
            "codec",
        );
    }

    proptest! {
        #[test]
        fn ladders_are_sorted_and_unique(bitrates in proptest::collection::vec(1u32..100_000_000, 1..20)) {
            let renditions: Vec<_> = bitrates
                .iter()
                .map(|b| Rendition::new(640, 360, *b, "avc1", FrameRate::integer(30)))
                .collect();
            let mut unique = bitrates.clone();
            unique.sort_unstable();
            unique.dedup();
            match Ladder::new(renditions) {
                Ok(l) => {
                    prop_assert_eq!(unique.len(), bitrates.len());
                    let got: Vec<u32> = l.renditions().iter().map(|r| r.bitrate).collect();
                    prop_assert_eq!(got, unique);
                }
                Err(e) => {
                    prop_assert!(unique.len() < bitrates.len(), "{}", e);
                }
            }
        }
    }
}
