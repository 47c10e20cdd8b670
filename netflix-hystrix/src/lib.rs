//! Hystrix and resilience4j semantics as tower layers.
#![doc(test(attr(deny(warnings))))]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod breaker;
pub mod bulkhead;
pub mod cache;
pub mod classify;
pub mod collapser;
pub mod config;
mod error;
pub mod fallback;
pub mod keys;
pub mod limit;
pub mod metrics;
pub mod pool;
pub mod registry;
#[cfg(feature = "stream")]
#[cfg_attr(docsrs, doc(cfg(feature = "stream")))]
pub mod stream;
mod sync;
pub mod timeout;

pub use crate::error::{BoxError, Error, ErrorKind, Result};
