//! Encoders and their keyframe policies.
//!
//! Every encoder is set up so that the frames the [plan](crate::plan) names, and only
//! those, are keyframes, and every keyframe is a closed-GOP random access point (an IDR
//! frame for H.264 and HEVC, a key frame for VP9 and AV1):
//!
//! | codec | keyframes | closed GOP | threads |
//! |---|---|---|---|
//! | libx264 | `-g N -keyint_min N -sc_threshold 0`, forced every N | x264's default (no open GOP) | `-threads` |
//! | libx265 | `keyint=N:min-keyint=N:scenecut=0`, forced every N | `open-gop=0` | `pools`, `frame-threads` |
//! | libvpx-vp9 | `-g N -keyint_min N`, forced every N | key frames always are | `-threads`, `-row-mt 0` |
//! | libsvtav1 | `-g N` and `scd=0` (SVT-AV1 ignores forced keyframes) | key-frame refresh | `lp` |
//! | libaom-av1 | `-g N -keyint_min N` (forcing adds a second keyframe) | key frames always are | `-threads`, `-row-mt 0` |
//!
//! Thread counts are always set explicitly, and every output is written with ffmpeg's
//! bit-exact flags, so encoding the same chunk twice gives the same bytes.

use std::fmt;
use std::str::FromStr;

/// A video encoder.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[non_exhaustive]
pub enum Codec {
    /// H.264 with libx264 (the default).
    #[default]
    X264,
    /// HEVC with libx265.
    X265,
    /// VP9 with libvpx.
    Vp9,
    /// AV1 with SVT-AV1.
    SvtAv1,
    /// AV1 with libaom.
    Aom,
}

impl Codec {
    /// Every codec.
    pub const ALL: [Codec; 5] = [
        Codec::X264,
        Codec::X265,
        Codec::Vp9,
        Codec::SvtAv1,
        Codec::Aom,
    ];

    /// The name the CLI takes: `x264`, `x265`, `vp9`, `svt-av1` or `aom`.
    pub fn name(self) -> &'static str {
        match self {
            Codec::X264 => "x264",
            Codec::X265 => "x265",
            Codec::Vp9 => "vp9",
            Codec::SvtAv1 => "svt-av1",
            Codec::Aom => "aom",
        }
    }

    /// ffmpeg's encoder name.
    pub fn encoder(self) -> &'static str {
        match self {
            Codec::X264 => "libx264",
            Codec::X265 => "libx265",
            Codec::Vp9 => "libvpx-vp9",
            Codec::SvtAv1 => "libsvtav1",
            Codec::Aom => "libaom-av1",
        }
    }

    /// A speed preset that trades little quality for speed: what [`Encoder::new`] uses.
    pub fn default_preset(self) -> &'static str {
        match self {
            Codec::X264 => "medium",
            Codec::X265 => "fast",
            Codec::Vp9 => "4",
            Codec::SvtAv1 => "8",
            Codec::Aom => "6",
        }
    }

    /// The fastest preset, for tests and previews.
    pub fn fastest_preset(self) -> &'static str {
        match self {
            Codec::X264 | Codec::X265 => "ultrafast",
            Codec::Vp9 | Codec::Aom => "8",
            Codec::SvtAv1 => "12",
        }
    }

    /// The constant-quality value used when none is given (each encoder's own scale).
    pub fn default_crf(self) -> u8 {
        match self {
            Codec::X264 => 23,
            Codec::X265 => 28,
            Codec::Vp9 => 33,
            Codec::SvtAv1 => 35,
            Codec::Aom => 32,
        }
    }
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A codec name that is not one of [`Codec::ALL`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownCodec(pub String);

impl fmt::Display for UnknownCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown codec `{}` (expected x264, x265, vp9, svt-av1 or aom)",
            self.0
        )
    }
}

impl std::error::Error for UnknownCodec {}

impl FromStr for Codec {
    type Err = UnknownCodec;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "x264" | "h264" | "libx264" | "avc" => Ok(Codec::X264),
            "x265" | "h265" | "hevc" | "libx265" => Ok(Codec::X265),
            "vp9" | "libvpx-vp9" => Ok(Codec::Vp9),
            "svt-av1" | "svtav1" | "libsvtav1" => Ok(Codec::SvtAv1),
            "aom" | "libaom" | "libaom-av1" => Ok(Codec::Aom),
            _ => Err(UnknownCodec(s.to_string())),
        }
    }
}

/// How bits are spent on each rung.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum RateControl {
    /// Constant quality (`crf`, or the codec's default), capped at `cap` times the rung's
    /// bitrate over a buffer of `buffer_seconds` of it: what streaming services use, and
    /// what makes chunked encodes match a whole-file encode.
    CappedCrf {
        /// The quality value; `None` for [`Codec::default_crf`].
        crf: Option<u8>,
        /// The peak rate as a multiple of the rung's bitrate.
        cap: f64,
        /// The rate-control buffer in seconds at the rung's bitrate.
        buffer_seconds: f64,
    },
    /// An average bitrate equal to the rung's, peaking at `cap` times it.
    Bitrate {
        /// The peak rate as a multiple of the rung's bitrate.
        cap: f64,
        /// The rate-control buffer in seconds at the rung's bitrate.
        buffer_seconds: f64,
    },
}

impl Default for RateControl {
    fn default() -> Self {
        RateControl::CappedCrf {
            crf: None,
            cap: 1.5,
            buffer_seconds: 2.0,
        }
    }
}

/// A codec with its settings.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Encoder {
    /// The codec.
    pub codec: Codec,
    /// The speed preset, in the encoder's own terms (`medium`, `8`...).
    pub preset: String,
    /// How bits are spent.
    pub rate_control: RateControl,
    /// Threads per encoder instance (1 by default). Fixed, so that outputs are
    /// reproducible, which crash-safe resume relies on: with more than one thread, x264
    /// with a rate-control buffer (maxrate/bufsize) and SVT-AV1 are not bit-exact from run
    /// to run, so keep 1 for those and add workers instead.
    pub threads: u32,
}

impl Encoder {
    /// `codec` at its default preset, capped CRF, one thread.
    pub fn new(codec: Codec) -> Self {
        Self {
            codec,
            preset: codec.default_preset().into(),
            rate_control: RateControl::default(),
            threads: 1,
        }
    }

    /// Sets the preset.
    pub fn preset(mut self, preset: impl Into<String>) -> Self {
        self.preset = preset.into();
        self
    }

    /// Sets the rate control.
    pub fn rate_control(mut self, rc: RateControl) -> Self {
        self.rate_control = rc;
        self
    }

    /// Sets the threads per encoder (at least 1).
    pub fn threads(mut self, threads: u32) -> Self {
        self.threads = threads.max(1);
        self
    }

    /// The ffmpeg output arguments that encode one rung at `bitrate` bit/s with a keyframe
    /// every `gop` frames (and at frame 0), for an output stream selected as `:v:0` of its
    /// output file.
    pub fn args(&self, bitrate: u32, gop: u64) -> Vec<String> {
        let mut a: Vec<String> = Vec::new();
        let mut push = |s: &[&str]| a.extend(s.iter().map(|x| (*x).to_string()));
        let t = self.threads.to_string();
        let g = gop.to_string();
        let force = format!("expr:eq(mod(n,{gop}),0)");
        let (crf, cap, buf) = match self.rate_control {
            RateControl::CappedCrf {
                crf,
                cap,
                buffer_seconds,
            } => (
                Some(crf.unwrap_or(self.codec.default_crf())),
                cap,
                buffer_seconds,
            ),
            RateControl::Bitrate {
                cap,
                buffer_seconds,
            } => (None, cap, buffer_seconds),
        };
        let kbps = |x: f64| format!("{}k", ((f64::from(bitrate) * x) / 1000.0).round().max(1.0));
        let maxrate = kbps(cap.max(1.0));
        let bufsize = kbps(buf.max(0.1));
        let avg = kbps(1.0);
        push(&["-c:v", self.codec.encoder()]);
        match self.codec {
            Codec::X264 => {
                push(&["-preset", &self.preset, "-threads", &t]);
                push(&["-g", &g, "-keyint_min", &g, "-sc_threshold", "0"]);
                push(&["-force_key_frames", &force]);
                push(&["-x264-params", "open-gop=0:scenecut=0"]);
                match crf {
                    Some(c) => push(&["-crf", &c.to_string()]),
                    None => push(&["-b:v", &avg]),
                }
                push(&["-maxrate", &maxrate, "-bufsize", &bufsize]);
            }
            Codec::X265 => {
                push(&["-preset", &self.preset]);
                let mut p = format!(
                    "keyint={gop}:min-keyint={gop}:scenecut=0:open-gop=0:frame-threads={}:pools={}:info=0:log-level=error",
                    self.threads.min(16),
                    self.threads
                );
                if self.threads == 1 {
                    p.push_str(":no-wpp=1");
                }
                let vbv_max = (f64::from(bitrate) * cap.max(1.0) / 1000.0).round();
                let vbv_buf = (f64::from(bitrate) * buf.max(0.1) / 1000.0).round();
                p.push_str(&format!(":vbv-maxrate={vbv_max}:vbv-bufsize={vbv_buf}"));
                match crf {
                    Some(c) => p.push_str(&format!(":crf={c}")),
                    None => p.push_str(&format!(
                        ":bitrate={}",
                        (f64::from(bitrate) / 1000.0).round()
                    )),
                }
                push(&["-force_key_frames", &force]);
                push(&["-x265-params", &p, "-tag:v", "hvc1"]);
            }
            Codec::Vp9 => {
                push(&["-deadline", "good", "-cpu-used", &self.preset]);
                push(&["-threads", &t, "-row-mt", "0", "-tile-columns", "0"]);
                push(&["-g", &g, "-keyint_min", &g, "-force_key_frames", &force]);
                match crf {
                    // Constrained quality: -b:v is the cap.
                    Some(c) => push(&["-crf", &c.to_string(), "-b:v", &maxrate]),
                    None => push(&["-b:v", &avg, "-maxrate", &maxrate, "-bufsize", &bufsize]),
                }
            }
            Codec::SvtAv1 => {
                push(&["-preset", &self.preset, "-g", &g]);
                // Only lp=1 is deterministic in SVT-AV1 1.4; irefresh-type=2 makes every
                // keyframe a closed-GOP key frame (1 gives forward key frames).
                let p = format!("scd=0:lp={}:irefresh-type=2", self.threads);
                match crf {
                    Some(c) => push(&["-crf", &c.to_string()]),
                    None => push(&["-b:v", &avg]),
                }
                push(&["-svtav1-params", &p]);
            }
            Codec::Aom => {
                // libaom's good-quality usage takes speeds 0-6; 7 and up are realtime.
                let usage = if self.preset.parse::<u32>().is_ok_and(|p| p >= 7) {
                    "realtime"
                } else {
                    "good"
                };
                push(&["-cpu-used", &self.preset, "-usage", usage]);
                push(&["-threads", &t, "-row-mt", "0", "-tiles", "1x1"]);
                // No forced keyframes: libaom flags the frame after a forced one as a
                // keyframe too. -g with -keyint_min places them exactly.
                push(&["-g", &g, "-keyint_min", &g]);
                match crf {
                    Some(c) => push(&["-crf", &c.to_string(), "-b:v", &maxrate]),
                    None => push(&["-b:v", &avg, "-maxrate", &maxrate, "-bufsize", &bufsize]),
                }
            }
        }
        push(&["-pix_fmt", "yuv420p", "-flags:v", "+bitexact"]);
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for c in Codec::ALL {
            assert_eq!(c.name().parse::<Codec>().unwrap(), c);
        }
        assert!("mpeg2".parse::<Codec>().is_err());
    }

    #[test]
    fn every_codec_pins_threads_and_gop() {
        for c in Codec::ALL {
            let a = Encoder::new(c).args(1_000_000, 48).join(" ");
            assert!(a.contains("48"), "{c}: {a}");
            assert!(a.contains("bitexact"), "{c}: {a}");
        }
    }
}
