//! Bitrate ladders, ABR algorithms, a trace-driven playback simulator, and HLS/DASH manifests.
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
