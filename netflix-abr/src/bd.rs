//! Bjøntegaard delta: the average bitrate (or quality) difference between two rate-quality
//! curves.
//!
//! [`bd_rate`] answers "how many percent more or fewer bits does the test encoder need for
//! the same quality as the anchor?" (negative: the test saves bits). [`bd_quality`] answers
//! "how much better is the test at the same bitrate?" (BD-PSNR when quality is PSNR).
//!
//! Each curve is modelled as log-rate against quality (or the reverse), integrated over the
//! quality range both curves cover, and the average gap converted back to a ratio:
//! `BD-rate = (10^avg − 1) × 100 %`. Three models are offered, as in the reference
//! implementations:
//!
//! | [`Interpolation`] | model | used by |
//! |---|---|---|
//! | `Cubic` | least-squares cubic polynomial (exact through 4 points) | VCEG-M33 (2001), the original Excel sheet |
//! | `Pchip` | piecewise cubic Hermite, monotone slopes | JCT-VC / JVET common test conditions, Netflix vmaf |
//! | `Akima` | piecewise cubic Hermite, Akima slopes | FAU's `bjontegaard` package recommendation |
//!
//! The tests check all three against published figures (VCEG-M33's own example, the JCT-VC
//! cases of Netflix vmaf's test suite) to at least six decimals.
//!
//! # Example
//!
//! ```
//! use netflix_abr::bd::{bd_rate, Interpolation};
//!
//! // (kbit/s, PSNR dB): the test encoder reaches each quality at 90% of the bits.
//! let anchor = [(1000.0, 34.0), (2000.0, 37.0), (4000.0, 40.0), (8000.0, 42.0)];
//! let test = [(900.0, 34.0), (1800.0, 37.0), (3600.0, 40.0), (7200.0, 42.0)];
//! let saving = bd_rate(&anchor, &test, Interpolation::Pchip)?;
//! assert!((saving - (-10.0)).abs() < 1e-9);
//! # Ok::<(), netflix_abr::Error>(())
//! ```

use crate::error::{Error, Result, ensure};

/// How each rate-quality curve is modelled between its points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Interpolation {
    /// A least-squares cubic polynomial (VCEG-M33).
    Cubic,
    /// Piecewise cubic Hermite with Fritsch–Carlson monotone slopes (JCT-VC/JVET, vmaf).
    #[default]
    Pchip,
    /// Piecewise cubic Hermite with Akima slopes.
    Akima,
}

/// The average bitrate difference of `test` against `anchor` at equal quality, in percent.
///
/// Points are `(bitrate, quality)` in any order; bitrates must be positive.
///
/// # Errors
///
/// When a curve has too few points (4 for `Cubic`, 2 otherwise), a value is not finite or a
/// bitrate not positive, two points of a curve share a quality, or the curves' quality
/// ranges do not overlap.
pub fn bd_rate(anchor: &[(f64, f64)], test: &[(f64, f64)], method: Interpolation) -> Result<f64> {
    let a = curve(anchor, method, Axis::RateOverQuality)?;
    let t = curve(test, method, Axis::RateOverQuality)?;
    let avg = average_gap(&a, &t)?;
    Ok((10f64.powf(avg) - 1.0) * 100.0)
}

/// The average quality difference of `test` against `anchor` at equal bitrate (BD-PSNR
/// when quality is PSNR), in quality units.
///
/// # Errors
///
/// As for [`bd_rate`], with bitrates (instead of qualities) required to be distinct.
pub fn bd_quality(
    anchor: &[(f64, f64)],
    test: &[(f64, f64)],
    method: Interpolation,
) -> Result<f64> {
    let a = curve(anchor, method, Axis::QualityOverRate)?;
    let t = curve(test, method, Axis::QualityOverRate)?;
    average_gap(&a, &t)
}

#[derive(Clone, Copy)]
enum Axis {
    /// x = quality, y = log10(rate).
    RateOverQuality,
    /// x = log10(rate), y = quality.
    QualityOverRate,
}

/// One modelled curve: x sorted ascending, and the model.
struct Curve {
    x: Vec<f64>,
    model: Model,
}

enum Model {
    /// Coefficients c0..c3 of a polynomial in u = (x − center) / scale.
    Poly {
        c: [f64; 4],
        center: f64,
        scale: f64,
    },
    /// Node values and slopes of a piecewise cubic Hermite.
    Hermite { y: Vec<f64>, d: Vec<f64> },
}

fn curve(points: &[(f64, f64)], method: Interpolation, axis: Axis) -> Result<Curve> {
    let min = if method == Interpolation::Cubic { 4 } else { 2 };
    ensure(points.len() >= min, "rate-quality curve", || {
        format!("{} points; {method:?} needs at least {min}", points.len())
    })?;
    let mut xy = Vec::with_capacity(points.len());
    for &(rate, q) in points {
        ensure(
            rate.is_finite() && rate > 0.0 && q.is_finite(),
            "rate-quality curve",
            || {
                format!(
                    "point ({rate}, {q}) is not a positive finite bitrate with a finite quality"
                )
            },
        )?;
        let lr = rate.log10();
        xy.push(match axis {
            Axis::RateOverQuality => (q, lr),
            Axis::QualityOverRate => (lr, q),
        });
    }
    xy.sort_by(|a, b| a.0.total_cmp(&b.0));
    if xy.windows(2).any(|w| w[0].0 == w[1].0) {
        return Err(Error::invalid(
            "rate-quality curve",
            "two points share the same value on the integration axis",
        ));
    }
    let (x, y): (Vec<f64>, Vec<f64>) = xy.into_iter().unzip();
    let model = match method {
        Interpolation::Cubic => poly_fit(&x, &y)?,
        Interpolation::Pchip => Model::Hermite {
            d: pchip_slopes(&x, &y),
            y,
        },
        Interpolation::Akima => Model::Hermite {
            d: akima_slopes(&x, &y),
            y,
        },
    };
    Ok(Curve { x, model })
}

fn average_gap(a: &Curve, t: &Curve) -> Result<f64> {
    let lo = a.x[0].max(t.x[0]);
    let hi = a.x[a.x.len() - 1].min(t.x[t.x.len() - 1]);
    ensure(hi > lo, "rate-quality curves", || {
        "their ranges do not overlap".into()
    })?;
    Ok((integral(t, lo, hi) - integral(a, lo, hi)) / (hi - lo))
}

fn integral(c: &Curve, lo: f64, hi: f64) -> f64 {
    match &c.model {
        Model::Poly {
            c: k,
            center,
            scale,
        } => {
            let prim = |x: f64| {
                let u = (x - center) / scale;
                scale
                    * (k[0] * u
                        + k[1] * u * u / 2.0
                        + k[2] * u.powi(3) / 3.0
                        + k[3] * u.powi(4) / 4.0)
            };
            prim(hi) - prim(lo)
        }
        Model::Hermite { y, d } => {
            let x = &c.x;
            let mut total = 0.0;
            for k in 0..x.len() - 1 {
                let (x0, x1) = (x[k], x[k + 1]);
                let (a, b) = (lo.max(x0), hi.min(x1));
                if b <= a {
                    continue;
                }
                let h = x1 - x0;
                let delta = (y[k + 1] - y[k]) / h;
                let ck = (3.0 * delta - 2.0 * d[k] - d[k + 1]) / h;
                let bk = (d[k] - 2.0 * delta + d[k + 1]) / (h * h);
                let (s0, s1) = (a - x0, b - x0);
                total += (s1 - s0) * y[k]
                    + (s1 * s1 - s0 * s0) * d[k] / 2.0
                    + (s1.powi(3) - s0.powi(3)) * ck / 3.0
                    + (s1.powi(4) - s0.powi(4)) * bk / 4.0;
            }
            total
        }
    }
}

/// Least-squares cubic through the points, fitted on centred and scaled x so that the normal
/// equations stay well conditioned (the same polynomial `numpy.polyfit(x, y, 3)` finds).
fn poly_fit(x: &[f64], y: &[f64]) -> Result<Model> {
    let n = x.len() as f64;
    let center = x.iter().sum::<f64>() / n;
    let scale = (x.iter().map(|v| (v - center).powi(2)).sum::<f64>() / n)
        .sqrt()
        .max(f64::MIN_POSITIVE);
    // Normal equations: (VᵀV) c = Vᵀy with V = [1 u u² u³].
    let mut m = [[0.0f64; 5]; 4];
    for (&xi, &yi) in x.iter().zip(y) {
        let u = (xi - center) / scale;
        let pw = [1.0, u, u * u, u * u * u];
        for r in 0..4 {
            for c in 0..4 {
                m[r][c] += pw[r] * pw[c];
            }
            m[r][4] += pw[r] * yi;
        }
    }
    // Gaussian elimination with partial pivoting.
    for col in 0..4 {
        let pivot = (col..4)
            .max_by(|&a, &b| m[a][col].abs().total_cmp(&m[b][col].abs()))
            .expect("rows remain");
        if m[pivot][col].abs() < 1e-12 {
            return Err(Error::invalid(
                "rate-quality curve",
                "points do not determine a cubic",
            ));
        }
        m.swap(col, pivot);
        for r in 0..4 {
            if r != col {
                let f = m[r][col] / m[col][col];
                let pivot_row = m[col];
                for (x, p) in m[r][col..].iter_mut().zip(&pivot_row[col..]) {
                    *x -= f * p;
                }
            }
        }
    }
    let c = [0, 1, 2, 3].map(|i| m[i][4] / m[i][i]);
    Ok(Model::Poly { c, center, scale })
}

/// Node slopes of the monotone piecewise cubic (scipy's `PchipInterpolator`, Moler's
/// `pchiptx`).
fn pchip_slopes(x: &[f64], y: &[f64]) -> Vec<f64> {
    let n = x.len();
    let h: Vec<f64> = (0..n - 1).map(|k| x[k + 1] - x[k]).collect();
    let delta: Vec<f64> = (0..n - 1).map(|k| (y[k + 1] - y[k]) / h[k]).collect();
    if n == 2 {
        return vec![delta[0], delta[0]];
    }
    let mut d = vec![0.0; n];
    for k in 1..n - 1 {
        let (a, b) = (delta[k - 1], delta[k]);
        if a * b > 0.0 {
            let w1 = 2.0 * h[k] + h[k - 1];
            let w2 = h[k] + 2.0 * h[k - 1];
            d[k] = (w1 + w2) / (w1 / a + w2 / b);
        }
    }
    let end = |h0: f64, h1: f64, d0: f64, d1: f64| {
        let mut s = ((2.0 * h0 + h1) * d0 - h0 * d1) / (h0 + h1);
        if s.signum() != d0.signum() || d0 == 0.0 {
            s = 0.0;
        } else if d0.signum() != d1.signum() && s.abs() > 3.0 * d0.abs() {
            s = 3.0 * d0;
        }
        s
    };
    d[0] = end(h[0], h[1], delta[0], delta[1]);
    d[n - 1] = end(h[n - 2], h[n - 3], delta[n - 2], delta[n - 3]);
    d
}

/// Node slopes of Akima's piecewise cubic (scipy's `Akima1DInterpolator`).
fn akima_slopes(x: &[f64], y: &[f64]) -> Vec<f64> {
    let n = x.len();
    let m: Vec<f64> = (0..n - 1)
        .map(|k| (y[k + 1] - y[k]) / (x[k + 1] - x[k]))
        .collect();
    if n == 2 {
        return vec![m[0], m[0]];
    }
    // Extend the segment slopes by two on each side: ext[i + 2] = m[i].
    let mut ext = vec![0.0; n + 3];
    ext[2..n + 1].copy_from_slice(&m);
    ext[1] = 2.0 * ext[2] - ext[3];
    ext[0] = 2.0 * ext[1] - ext[2];
    ext[n + 1] = 2.0 * ext[n] - ext[n - 1];
    ext[n + 2] = 2.0 * ext[n + 1] - ext[n];
    let f1: Vec<f64> = (0..n).map(|i| (ext[i + 3] - ext[i + 2]).abs()).collect();
    let f2: Vec<f64> = (0..n).map(|i| (ext[i + 1] - ext[i]).abs()).collect();
    let fmax = f1
        .iter()
        .zip(&f2)
        .map(|(a, b)| a + b)
        .fold(0.0f64, f64::max);
    (0..n)
        .map(|i| {
            let (a, b) = (f1[i], f2[i]);
            let (ml, mr) = (ext[i + 1], ext[i + 2]);
            if a + b <= 1e-9 * fmax {
                (ml + mr) / 2.0
            } else {
                (a * ml + b * mr) / (a + b)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use Interpolation::*;

    fn zip(rates: &[f64], qualities: &[f64]) -> Vec<(f64, f64)> {
        rates
            .iter()
            .copied()
            .zip(qualities.iter().copied())
            .collect()
    }

    #[track_caller]
    fn check(
        anchor: &[(f64, f64)],
        test: &[(f64, f64)],
        method: Interpolation,
        rate: f64,
        quality: f64,
        tol: f64,
    ) {
        let r = bd_rate(anchor, test, method).unwrap();
        let q = bd_quality(anchor, test, method).unwrap();
        assert!((r - rate).abs() < tol, "{method:?} BD-rate {r} != {rate}");
        assert!(
            (q - quality).abs() < tol,
            "{method:?} BD-quality {q} != {quality}"
        );
    }

    /// VCEG-M33's own example, as asserted by tbr/bjontegaard_cpp's example.cpp.
    #[test]
    fn vceg_m33_example() {
        let a = zip(
            &[90.33, 181.03, 332.99, 547.79],
            &[27.95, 31.17, 34.44, 38.11],
        );
        let b = zip(
            &[127.1719, 186.14, 307.2924, 481.5588],
            &[29.9286, 32.4165, 34.7013, 37.4561],
        );
        check(&a, &b, Cubic, -13.261773, 0.800713, 5e-7);
        check(&a, &b, Pchip, -13.292524, 0.809132, 5e-7);
        check(&a, &b, Akima, -13.343473, 0.807638, 5e-7);
    }

    /// Nine points, a least-squares cubic (bjontegaard_cpp's ETRO example).
    #[test]
    fn etro_nine_points() {
        let a = zip(
            &[
                2.99899, 1.99884, 1.49673, 0.99707, 0.745941, 0.596436, 0.495148, 0.29425, 0.244049,
            ],
            &[
                48.6681, 43.8357, 41.3982, 38.0124, 35.5122, 33.8673, 32.6658, 29.4505, 28.484,
            ],
        );
        let b = zip(
            &[
                2.997253, 1.968292, 1.472565, 0.994965, 0.748871, 0.58902, 0.499176, 0.296753,
                0.249634,
            ],
            &[
                48.5637, 43.7318, 41.2727, 38.0001, 35.6375, 33.9057, 32.8318, 29.6851, 28.8244,
            ],
        );
        check(&a, &b, Cubic, -0.903450, 0.072297, 5e-7);
        check(&a, &b, Pchip, -0.890373, 0.071491, 5e-7);
        check(&a, &b, Akima, -0.902039, 0.071514, 5e-7);
    }

    /// The JCT-VC cases of Netflix vmaf's BD-rate tests (PCHIP, given as fractions).
    #[test]
    fn jctvc_cases_match_vmaf() {
        let a = zip(
            &[108048.8736, 61279.976, 33905.6656, 18883.6928],
            &[43.6471, 40.3953, 37.247, 34.2911],
        );
        let b = zip(
            &[108061.2784, 61299.9936, 33928.7472, 18910.912],
            &[43.6768, 40.4232, 37.2761, 34.3147],
        );
        let r = bd_rate(&a, &b, Pchip).unwrap() / 100.0;
        assert!((r - -0.00465215420752807).abs() < 1e-12, "{r}");
        let a = zip(
            &[40433.8848, 7622.7456, 2394.488, 1017.6184],
            &[37.5761, 35.3756, 33.8977, 32.0603],
        );
        let b = zip(
            &[40370.12, 7587.0024, 2390.0944, 1017.0984],
            &[37.5982, 35.4025, 33.9194, 32.0822],
        );
        let r = bd_rate(&a, &b, Pchip).unwrap() / 100.0;
        assert!((r - -0.018779823450567612).abs() < 1e-12, "{r}");
        check(&a, &b, Cubic, -1.910169, 0.028704, 5e-7);
        check(&a, &b, Akima, -1.865132, 0.028075, 5e-7);
    }

    /// Six points where the models disagree (FAU's third example).
    #[test]
    fn six_points_show_the_models_differ() {
        let a = zip(
            &[82472.76, 26875.24, 9487.76, 4593.6, 3600.0, 2900.0],
            &[43.825, 41.404, 40.037, 38.615, 36.5, 35.1],
        );
        let b = zip(
            &[99896.96, 33952.04, 9787.8, 4469.0, 4040.0, 3300.0],
            &[44.731, 41.875, 40.121, 38.651, 37.0, 36.5],
        );
        check(&a, &b, Cubic, -0.639289, 0.103581, 5e-7);
        check(&a, &b, Pchip, -2.952802, 0.089536, 5e-7);
        check(&a, &b, Akima, -2.526920, 0.050889, 5e-7);
    }

    #[test]
    fn scaled_rates_and_shifted_quality() {
        let a = zip(&[1000.0, 2000.0, 4000.0, 8000.0], &[34.0, 37.0, 40.0, 42.0]);
        let b: Vec<_> = a.iter().map(|(r, q)| (r * 0.9, *q)).collect();
        for m in [Cubic, Pchip, Akima] {
            assert!((bd_rate(&a, &b, m).unwrap() + 10.0).abs() < 1e-9);
            assert_eq!(bd_rate(&a, &a, m).unwrap(), 0.0);
        }
        let c: Vec<_> = a.iter().map(|(r, q)| (*r, q + 1.5)).collect();
        for m in [Cubic, Pchip, Akima] {
            assert!((bd_quality(&a, &c, m).unwrap() - 1.5).abs() < 1e-9);
        }
    }

    #[test]
    fn bad_curves_are_errors() {
        let a = zip(&[1000.0, 2000.0, 4000.0, 8000.0], &[34.0, 37.0, 40.0, 42.0]);
        let far: Vec<_> = a.iter().map(|(r, q)| (*r, q + 100.0)).collect();
        assert!(
            bd_rate(&a, &far, Pchip)
                .unwrap_err()
                .to_string()
                .contains("overlap")
        );
        assert!(bd_rate(&a[..3], &a, Cubic).unwrap_err().is_invalid());
        assert!(bd_rate(&[(0.0, 30.0), (10.0, 40.0)], &a, Pchip).is_err());
        assert!(bd_rate(&[(f64::NAN, 30.0), (10.0, 40.0)], &a, Pchip).is_err());
        assert!(bd_rate(&[(5.0, 30.0), (10.0, 30.0)], &a, Pchip).is_err());
    }
}
