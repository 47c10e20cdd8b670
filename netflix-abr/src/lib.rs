//! Bitrate ladders, ABR algorithms, a trace-driven playback simulator, and HLS/DASH manifests.
#![doc(test(attr(deny(warnings))))]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod bd;
mod error;
pub mod estimate;
pub mod ladder;
pub mod manifest;
pub mod per_title;

pub use crate::error::{Error, ErrorKind, Result};
