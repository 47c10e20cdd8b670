//! Per-title ladders: the convex hull of measured rate-quality points, and rungs chosen on it.
//!
//! Encode a title at several resolutions and bitrates, measure quality (PSNR, SSIM, VMAF),
//! and each resolution gives a rate-quality curve. Low resolutions win at low bitrates and
//! high resolutions at high ones, so the best encodes lie on the upper envelope of all the
//! curves: the convex hull in (bitrate, quality). This is Netflix's per-title method
//! ("Per-Title Encode Optimization", 2015); the hull is computed as Netflix's
//! `vmaf/tools/convex_hull.py` does (monotone chain on linear rate and quality, collinear
//! points dropped).
//!
//! Rungs are then picked along the hull by [`Selection`]: evenly spaced quality steps, or a
//! fixed bitrate ratio between neighbours (Apple's former guidance: 1.5 to 2 apart).
//!
//! # Example
//!
//! ```
//! use netflix_abr::per_title::{convex_hull, select, RdPoint, Selection};
//!
//! let points = [
//!     RdPoint::new(640, 360, 375.0, 55.0),
//!     RdPoint::new(640, 360, 750.0, 68.0),
//!     RdPoint::new(1280, 720, 750.0, 62.0), // below the 360p curve at this rate
//!     RdPoint::new(1280, 720, 1750.0, 82.0),
//!     RdPoint::new(1920, 1080, 4300.0, 93.0),
//! ];
//! let hull = convex_hull(&points);
//! assert!(hull.iter().all(|p| !(p.height == 720 && p.bitrate_kbps == 750.0)));
//! let rungs = select(&hull, Selection::BitrateRatio(2.0));
//! assert_eq!(rungs.first().unwrap().bitrate_kbps, 375.0);
//! assert_eq!(rungs.last().unwrap().bitrate_kbps, 4300.0);
//! ```

use crate::error::Result;
use crate::ladder::{FrameRate, Ladder, Rendition};

/// One measured encode: its resolution, bitrate and quality.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct RdPoint {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Bitrate in kbit/s.
    pub bitrate_kbps: f64,
    /// Quality on any scale where higher is better (PSNR, SSIM, VMAF).
    pub quality: f64,
}

impl RdPoint {
    /// Creates a point.
    pub const fn new(width: u32, height: u32, bitrate_kbps: f64, quality: f64) -> Self {
        Self {
            width,
            height,
            bitrate_kbps,
            quality,
        }
    }
}

fn cross(o: &RdPoint, a: &RdPoint, b: &RdPoint) -> f64 {
    (a.bitrate_kbps - o.bitrate_kbps) * (b.quality - o.quality)
        - (a.quality - o.quality) * (b.bitrate_kbps - o.bitrate_kbps)
}

/// The upper convex hull of `points` in (bitrate, quality), lowest bitrate first.
///
/// Points with a non-finite value are left out. A point is kept only if no cheaper point
/// has at least its quality, and only if it lies strictly above the chord between its
/// neighbours on the hull.
pub fn convex_hull(points: &[RdPoint]) -> Vec<RdPoint> {
    let mut pts: Vec<RdPoint> = points
        .iter()
        .copied()
        .filter(|p| p.bitrate_kbps.is_finite() && p.quality.is_finite() && p.bitrate_kbps > 0.0)
        .collect();
    pts.sort_by(|a, b| {
        a.bitrate_kbps
            .total_cmp(&b.bitrate_kbps)
            .then(a.quality.total_cmp(&b.quality))
    });
    pts.dedup_by(|a, b| a.bitrate_kbps == b.bitrate_kbps && a.quality == b.quality);
    // Only points that improve on every cheaper one.
    let mut mono: Vec<RdPoint> = Vec::with_capacity(pts.len());
    for p in pts {
        match mono.last() {
            Some(last) if p.quality < last.quality => {}
            Some(last) if p.bitrate_kbps == last.bitrate_kbps => {
                *mono.last_mut().expect("just matched Some") = p;
            }
            _ => mono.push(p),
        }
    }
    if mono.len() <= 2 {
        return mono;
    }
    // Monotone chain from the highest rate down, as vmaf does.
    let mut hull: Vec<RdPoint> = Vec::with_capacity(mono.len());
    for p in mono.iter().rev() {
        while hull.len() >= 2 && cross(&hull[hull.len() - 2], &hull[hull.len() - 1], p) <= 0.0 {
            hull.pop();
        }
        hull.push(*p);
    }
    hull.reverse();
    hull
}

/// How to pick rungs along a hull.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Selection {
    /// Each rung at least this much better in quality than the one below (for example a
    /// few VMAF points, about one just-noticeable difference).
    QualityStep(f64),
    /// Each rung at least this many times the bitrate of the one below (1.5 to 2 is usual).
    BitrateRatio(f64),
    /// This many rungs at evenly spaced qualities between the hull's lowest and highest.
    EvenQuality(usize),
}

/// Hull points whose bitrates are within this ratio of the first of their run are one
/// choice for [`select`], which takes the best of them.
const SAME_RATE: f64 = 1.1;

/// The hull with each run of points at nearly the same bitrate (within 10% of the run's
/// first) reduced to its best, highest point.
///
/// Trial encodes aimed at one bitrate land a few percent apart, one per resolution, and
/// all of them can lie on the hull: 720p at 150 kbit/s, 540p at 151 and 234p at 153, the
/// quality rising steeply from one to the next. Without this, the cheapest of them (the
/// worst) would become the lowest rung.
fn distinct_rates(hull: &[RdPoint]) -> Vec<RdPoint> {
    let mut out: Vec<RdPoint> = Vec::with_capacity(hull.len());
    let mut run_start = f64::NEG_INFINITY;
    for p in hull {
        match out.last_mut() {
            Some(last) if p.bitrate_kbps <= run_start * SAME_RATE => *last = *p,
            _ => {
                run_start = p.bitrate_kbps;
                out.push(*p);
            }
        }
    }
    out
}

/// Picks rungs on a hull (lowest bitrate first, as [`convex_hull`] returns it).
///
/// Points within 10% of each other in bitrate count as one choice, the best of them (see
/// the example). The lowest and highest such choices are always rungs.
///
/// # Example
///
/// ```
/// use netflix_abr::per_title::{convex_hull, select, RdPoint, Selection};
///
/// // Trials aimed at 150 kbit/s at three sizes, all on the hull (PSNR, dB).
/// let points = [
///     RdPoint::new(1280, 720, 150.0, 27.3),
///     RdPoint::new(960, 540, 151.0, 28.4),
///     RdPoint::new(416, 234, 153.0, 30.0),
///     RdPoint::new(640, 360, 304.0, 31.8),
/// ];
/// let rungs = select(&convex_hull(&points), Selection::BitrateRatio(1.6));
/// assert_eq!((rungs[0].height, rungs[0].bitrate_kbps), (234, 153.0));
/// assert_eq!(rungs.len(), 2);
/// ```
pub fn select(hull: &[RdPoint], selection: Selection) -> Vec<RdPoint> {
    let hull = distinct_rates(hull);
    let (Some(first), Some(last)) = (hull.first(), hull.last()) else {
        return Vec::new();
    };
    let mut rungs = vec![*first];
    match selection {
        Selection::QualityStep(step) => {
            for p in &hull[1..] {
                let below = rungs.last().expect("starts non-empty");
                if p.quality >= below.quality + step {
                    rungs.push(*p);
                }
            }
        }
        Selection::BitrateRatio(ratio) => {
            for p in &hull[1..] {
                let below = rungs.last().expect("starts non-empty");
                if p.bitrate_kbps >= below.bitrate_kbps * ratio {
                    rungs.push(*p);
                }
            }
        }
        Selection::EvenQuality(n) if n >= 2 => {
            for i in 1..n - 1 {
                let target =
                    first.quality + (last.quality - first.quality) * i as f64 / (n - 1) as f64;
                let nearest = hull
                    .iter()
                    .min_by(|a, b| {
                        (a.quality - target)
                            .abs()
                            .total_cmp(&(b.quality - target).abs())
                    })
                    .expect("hull is not empty");
                if rungs.last() != Some(nearest) {
                    rungs.push(*nearest);
                }
            }
        }
        Selection::EvenQuality(_) => {}
    }
    if rungs.last() != Some(last) {
        rungs.push(*last);
    }
    rungs
}

/// Turns chosen rungs into a [`Ladder`] of one codec and frame rate.
///
/// # Errors
///
/// When the rungs do not make a valid ladder (none, or two at the same bitrate).
pub fn ladder(rungs: &[RdPoint], codecs: &str, frame_rate: FrameRate) -> Result<Ladder> {
    Ladder::new(
        rungs
            .iter()
            .map(|p| {
                Rendition::new(
                    p.width,
                    p.height,
                    (p.bitrate_kbps * 1000.0).round() as u32,
                    codecs,
                    frame_rate,
                )
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(h: u32, rate: f64, q: f64) -> RdPoint {
        RdPoint::new(h * 16 / 9, h, rate, q)
    }

    /// The worked example run through Netflix's `convex_hull.py`.
    #[test]
    fn hull_matches_the_vmaf_reference() {
        let pts = [
            p(240, 235.0, 45.0),
            p(240, 375.0, 55.0),
            p(240, 560.0, 61.0),
            p(240, 1050.0, 66.0),
            p(480, 375.0, 50.0),
            p(480, 750.0, 68.0),
            p(480, 1050.0, 74.0),
            p(480, 1750.0, 79.0),
            p(480, 3000.0, 81.0),
            p(720, 1050.0, 70.0),
            p(720, 1750.0, 82.0),
            p(720, 2350.0, 86.0),
            p(720, 3000.0, 88.5),
            p(720, 4300.0, 90.0),
            p(1080, 2350.0, 84.0),
            p(1080, 3000.0, 89.0),
            p(1080, 4300.0, 93.0),
            p(1080, 5800.0, 95.0),
        ];
        let hull: Vec<(f64, f64, u32)> = convex_hull(&pts)
            .iter()
            .map(|p| (p.bitrate_kbps, p.quality, p.height))
            .collect();
        assert_eq!(
            hull,
            [
                (235.0, 45.0, 240),
                (375.0, 55.0, 240),
                (750.0, 68.0, 480),
                (1050.0, 74.0, 480),
                (1750.0, 82.0, 720),
                (2350.0, 86.0, 720),
                (3000.0, 89.0, 1080),
                (4300.0, 93.0, 1080),
                (5800.0, 95.0, 1080),
            ]
        );
        let by_ratio: Vec<f64> = select(&convex_hull(&pts), Selection::BitrateRatio(1.8))
            .iter()
            .map(|p| p.bitrate_kbps)
            .collect();
        assert_eq!(by_ratio, [235.0, 750.0, 1750.0, 4300.0, 5800.0]);
        let by_quality: Vec<f64> = select(&convex_hull(&pts), Selection::QualityStep(10.0))
            .iter()
            .map(|p| p.bitrate_kbps)
            .collect();
        assert_eq!(by_quality, [235.0, 375.0, 750.0, 1750.0, 4300.0, 5800.0]);
        let even = select(&convex_hull(&pts), Selection::EvenQuality(4));
        assert_eq!(even.len(), 4);
        let l = ladder(&even, "avc1.640028", FrameRate::integer(24)).unwrap();
        assert_eq!(l.len(), 4);
    }

    proptest! {
        /// Every input point lies on or under the hull, and the hull is concave and rising.
        #[test]
        fn hull_is_an_upper_concave_envelope(points in proptest::collection::vec((1.0f64..10_000.0, 0.0f64..100.0), 1..40)) {
            let pts: Vec<RdPoint> = points.iter().map(|(r, q)| RdPoint::new(1, 1, *r, *q)).collect();
            let hull = convex_hull(&pts);
            prop_assert!(!hull.is_empty());
            for w in hull.windows(2) {
                prop_assert!(w[1].bitrate_kbps > w[0].bitrate_kbps);
                prop_assert!(w[1].quality >= w[0].quality);
            }
            for w in hull.windows(3) {
                prop_assert!(cross(&w[0], &w[1], &w[2]) < 0.0, "not strictly concave");
            }
            for q in &pts {
                // Under the hull: find the segment spanning q's rate.
                if q.bitrate_kbps < hull[0].bitrate_kbps { continue; }
                let upper = match hull.windows(2).find(|w| w[0].bitrate_kbps <= q.bitrate_kbps && q.bitrate_kbps <= w[1].bitrate_kbps) {
                    Some(w) => w[0].quality + (w[1].quality - w[0].quality) * (q.bitrate_kbps - w[0].bitrate_kbps) / (w[1].bitrate_kbps - w[0].bitrate_kbps),
                    None => hull.last().unwrap().quality,
                };
                prop_assert!(q.quality <= upper + 1e-9, "{:?} above the hull", q);
            }
        }
    }
}
