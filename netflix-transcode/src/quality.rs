//! Objective quality of a rendition against its source, with ffmpeg's own filters.
//!
//! A [`Metric`] names an ffmpeg filter that compares a distorted stream with a reference
//! and says how to read its summary line. The rendition is scaled back to the source's
//! size (bicubic, as Netflix's per-title work does) before the comparison. [`Psnr`] and
//! [`Ssim`] are always available; [`Vmaf`] plugs in where ffmpeg was built with libvmaf.
//!
//! ```
//! use netflix_transcode::quality::{Metric, Psnr, Ssim};
//! let line = "[Parsed_psnr_2 @ 0x5] PSNR y:40.1 u:44.0 v:44.2 average:41.02 min:38.5 max:45.0";
//! assert_eq!(Psnr.parse(line), Some(41.02));
//! let line = "[Parsed_ssim_2 @ 0x5] SSIM Y:0.98 (17.0) U:0.99 (20.0) V:0.99 (20.0) All:0.985 (18.2)";
//! assert_eq!(Ssim.parse(line), Some(0.985));
//! ```

use crate::cancel::Cancel;
use crate::error::{Error, Result};
use crate::tools::{Tools, run};
use std::path::Path;

/// An ffmpeg comparison filter and how to read its result.
pub trait Metric: Send + Sync {
    /// A short name: `psnr`, `ssim`, `vmaf`.
    fn name(&self) -> &str;
    /// The filter (with options) that takes `[distorted][reference]`.
    fn filter(&self) -> String;
    /// The value from ffmpeg's stderr, if the summary is there.
    fn parse(&self, stderr: &str) -> Option<f64>;
}

/// Peak signal-to-noise ratio in dB, averaged over Y, U and V as ffmpeg weights them.
#[derive(Debug, Clone, Copy, Default)]
pub struct Psnr;

impl Metric for Psnr {
    fn name(&self) -> &str {
        "psnr"
    }
    fn filter(&self) -> String {
        "psnr=shortest=1".into()
    }
    fn parse(&self, stderr: &str) -> Option<f64> {
        last_value(stderr, " PSNR ", "average:")
    }
}

/// Structural similarity (0 to 1), over all planes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ssim;

impl Metric for Ssim {
    fn name(&self) -> &str {
        "ssim"
    }
    fn filter(&self) -> String {
        "ssim=shortest=1".into()
    }
    fn parse(&self, stderr: &str) -> Option<f64> {
        last_value(stderr, " SSIM ", "All:")
    }
}

/// Netflix's VMAF (0 to 100), through ffmpeg's `libvmaf` filter.
#[derive(Debug, Clone, Default)]
pub struct Vmaf {
    /// Extra `libvmaf` options, such as `model=version=vmaf_v0.6.1`.
    pub options: String,
}

impl Vmaf {
    /// VMAF, if this ffmpeg has the `libvmaf` filter.
    ///
    /// # Errors
    ///
    /// When ffmpeg cannot be run.
    pub async fn detect(tools: &Tools) -> Result<Option<Self>> {
        Ok(tools.has_filter("libvmaf").await?.then(Self::default))
    }
}

impl Metric for Vmaf {
    fn name(&self) -> &str {
        "vmaf"
    }
    fn filter(&self) -> String {
        if self.options.is_empty() {
            "libvmaf=shortest=1".into()
        } else {
            format!("libvmaf=shortest=1:{}", self.options)
        }
    }
    fn parse(&self, stderr: &str) -> Option<f64> {
        last_value(stderr, "VMAF score", "VMAF score:")
            .or_else(|| last_value(stderr, "VMAF score", "VMAF score ="))
    }
}

fn last_value(stderr: &str, marker: &str, key: &str) -> Option<f64> {
    stderr
        .lines()
        .rev()
        .filter(|l| l.contains(marker))
        .find_map(|l| {
            let rest = &l[l.find(key)? + key.len()..];
            let num: String = rest
                .trim_start()
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == '-')
                .collect();
            num.parse().ok().or_else(|| {
                // ffmpeg prints `inf` for identical inputs.
                rest.trim_start()
                    .starts_with("inf")
                    .then_some(f64::INFINITY)
            })
        })
}

/// Measures `metric` for `distorted` against `reference`, scaling `distorted` to
/// `width`x`height` (the reference's size) first. At most `frames` frames are compared
/// when given.
///
/// # Errors
///
/// When ffmpeg fails or prints no summary.
pub async fn measure(
    tools: &Tools,
    metric: &dyn Metric,
    reference: &Path,
    distorted: &Path,
    (width, height): (u32, u32),
    cancel: &Cancel,
) -> Result<f64> {
    let graph = format!(
        "[0:v]scale={width}:{height}:flags=bicubic,format=yuv420p,settb=AVTB,setpts=N[d];\
         [1:v]format=yuv420p,settb=AVTB,setpts=N[r];[d][r]{}",
        metric.filter()
    );
    let args: Vec<std::ffi::OsString> = vec![
        "-nostdin".into(),
        "-hide_banner".into(),
        "-nostats".into(),
        "-i".into(),
        distorted.into(),
        "-i".into(),
        reference.into(),
        "-lavfi".into(),
        graph.into(),
        "-f".into(),
        "null".into(),
        "-".into(),
    ];
    let out = run(tools.ffmpeg(), args, cancel, None).await?;
    let value = metric.parse(&out.stderr_tail);
    match (out.status.success(), value) {
        (true, Some(v)) => Ok(v),
        _ => Err(Error::Step {
            step: "quality",
            reason: format!(
                "{} of {} against {}: {}",
                metric.name(),
                distorted.display(),
                reference.display(),
                if out.status.success() {
                    "no summary line".to_string()
                } else {
                    format!("ffmpeg exited with {}", out.status)
                }
            ),
            stderr_tail: out.stderr_tail,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vmaf_and_infinite_psnr_parse() {
        assert_eq!(
            Vmaf::default().parse("[libvmaf @ 0x1] VMAF score: 93.456"),
            Some(93.456)
        );
        assert_eq!(
            Psnr.parse("[Parsed_psnr_2 @ 0x1] PSNR y:inf u:inf v:inf average:inf min:inf max:inf"),
            Some(f64::INFINITY)
        );
        assert_eq!(Ssim.parse("nothing here"), None);
    }
}
