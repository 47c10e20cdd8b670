//! Chunked parallel ladder transcoding with real ffmpeg.
//!
//! One mezzanine file becomes every rung of a bitrate ladder: probed, cut into chunks,
//! encoded chunk by chunk in parallel (each chunk decoded once and fanned out to every
//! rung), validated, merged without re-encoding, packaged as CMAF segments with HLS and
//! DASH manifests (from [`netflix_abr`]), measured (PSNR, SSIM) and published.
//!
//! ffmpeg and ffprobe run as child processes, as in av1an and production pipelines: no C
//! bindings, and a crashed encoder cannot take the job down with it.
//!
//! ```text
//! probe ─► ladder ─► chunk plan ─► workers × ffmpeg (decode once, split, scale, encode
//!   │        (fixed, per-title)      every rung) ─► validate ─► journal (crash-safe)
//!   │                                                    │
//!   └─ VFR / interlaced refused unless allowed           ▼
//!                      publish ◄─ quality ◄─ package (CMAF, HLS, DASH) ◄─ merge
//! ```
//!
//! # Example
//!
//! ```no_run
//! use netflix_transcode::{Cancel, Codec, Event, Job, LadderSpec, Tools, Transcoder};
//!
//! # async fn f() -> netflix_transcode::Result<()> {
//! let transcoder = Transcoder::new(Tools::from_path()?);
//! let job = Job::new("mezzanine.mp4", "origin/title-1")
//!     .ladder(LadderSpec::Apple)
//!     .codec(Codec::X264)
//!     .segment_seconds(4.0);
//! let report = transcoder
//!     .run(&job, |e: &Event| tracing::info!(?e), &Cancel::new())
//!     .await?;
//! for r in &report.renditions {
//!     println!("{}x{} {} peak {} bit/s, PSNR {:?}", r.rendition.width, r.rendition.height,
//!         r.rendition.codecs, r.peak_bandwidth, r.psnr);
//! }
//! # Ok(()) }
//! ```
//!
//! # Guarantees
//!
//! * **Alignment.** Every rendition has the same keyframe times, and every segment starts
//!   with an IDR (closed GOP) frame, for each codec ([`codec`] lists the flags).
//! * **Exact frames.** The chunks' frames add up to the source's, and every chunk is
//!   checked: exit status, frame count, duration, full decode, keyframes.
//! * **Resume.** After a crash (even `kill -9`), running the same job again re-encodes only
//!   unfinished chunks, and the outputs are byte-identical to an uninterrupted run.
//! * **Cancel.** [`Cancel::cancel`] kills every child process and waits for it, and removes
//!   temporary files.
//!
//! # Setup
//!
//! ffmpeg 5.1 or newer with libx264 (and libx265, libvpx, libsvtav1, libaom for the other
//! codecs) must be on `PATH`; in this repository `scripts/setup.sh test` installs it.
//! Without it, [`Tools::from_path`] returns [`Error::ToolMissing`] naming that command.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod cancel;
pub mod codec;
mod error;
pub mod job;
pub mod journal;
pub mod mp4;
mod package;
pub mod per_title;
mod pipeline;
pub mod plan;
pub mod probe;
pub mod progress;
pub mod publish;
pub mod quality;
mod tools;

pub use crate::cancel::Cancel;
pub use crate::codec::{Codec, Encoder, RateControl};
pub use crate::error::{Error, Result, SETUP_COMMAND};
pub use crate::job::{ChunkHook, Job, LadderSpec, PerTitle};
pub use crate::pipeline::{RenditionReport, Report, Transcoder};
pub use crate::plan::{ChunkPlan, Chunking};
pub use crate::probe::{Source, probe};
pub use crate::progress::{Event, NoProgress, Progress, Stage};
pub use crate::tools::Tools;
