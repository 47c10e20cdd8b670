//! Bitrate ladders, ABR algorithms, a trace-driven playback simulator, and HLS/DASH
//! manifests: what a player team and an encoding team share.
//!
//! | module | what it gives | after |
//! |---|---|---|
//! | [`ladder`] | renditions and validated ladders; Apple HLS, Netflix fixed and Pensieve envivio presets | HLS Authoring Spec, Netflix Tech Blog 2015 |
//! | [`per_title`] | the rate-quality convex hull across resolutions, rungs by quality or bitrate steps | Netflix per-title encoding |
//! | [`bd`] | Bjøntegaard delta rate and quality (cubic, PCHIP, Akima) | VCEG-M33, JCTVC-L1100 |
//! | [`estimate`] | throughput estimators behind one trait | hls.js, dash.js, MPC |
//! | [`abr`] | ABR algorithms behind one IO-free trait, and Sage, ours | BBA, BOLA, MPC, dash.js |
//! | [`sim`] | trace-driven simulation: Pensieve's exactly, and a general player model | hongzimao/pensieve |
//! | [`qoe`] | QoE_lin, QoE_log, QoE_HD | MPC, Pensieve |
//! | [`trace`], [`video`] | network traces, per-chunk sizes | Mahimahi, Pensieve |
//! | [`manifest`] | HLS playlists and DASH MPDs, rendered and parsed | RFC 8216, ISO/IEC 23009-1 |
//!
//! # Example
//!
//! RobustMPC and Sage over two traces in Pensieve's simulator:
//!
//! ```
//! use netflix_abr::abr::{Flavor, by_name};
//! use netflix_abr::sim::{Summary, pensieve};
//! use netflix_abr::trace::Trace;
//! use netflix_abr::video::Video;
//!
//! // Mahimahi-style traces: "time_s throughput_Mbps" per line.
//! let traces = vec![
//!     Trace::parse("steady", "0 4.0\n300 4.0\n")?,
//!     Trace::parse("tunnel", "0 3.0\n40 3.0\n55 0.05\n300 2.5\n")?,
//! ];
//! let video = Video::envivio(); // 6 rungs, 48 four-second VBR chunks
//! for name in ["robust-mpc", "sage"] {
//!     let mut abr = by_name(name, &video, Flavor::Pensieve)?;
//!     let sessions = pensieve::run(&traces, &video, &mut abr, &Default::default())?;
//!     let summary = Summary::of(name, &sessions);
//!     assert_eq!(summary.chunks, 96);
//!     assert!(summary.mean_qoe_per_chunk > 0.5, "{summary:?}");
//! }
//! # Ok::<(), netflix_abr::Error>(())
//! ```
//!
//! The algorithms read no clock and do no IO: a real player feeds [`abr::Abr::on_download`]
//! and asks [`abr::Abr::choose`] exactly as the simulator does. The example `abr_sim` runs
//! any algorithm over a directory of traces from the command line.
//!
//! # Feature flags
//!
//! | feature | enables |
//! |---|---|
//! | `serde` | `Serialize`/`Deserialize` for ladders, traces, videos, QoE metrics, manifests and simulation results |
//! | `full` | every feature |
#![doc(test(attr(deny(warnings))))]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod abr;
pub mod bd;
mod error;
pub mod estimate;
pub mod ladder;
pub mod manifest;
pub mod per_title;
pub mod qoe;
pub mod sim;
pub mod trace;
pub mod video;

pub use crate::error::{Error, ErrorKind, Result};
