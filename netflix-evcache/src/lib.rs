//! EVCache's replicated memcached client, in async Rust.
//!
//! [EVCache](https://github.com/Netflix/EVCache) keeps a full copy of the cache in every
//! availability zone: each zone is a *server group* of memcached nodes, keys are sharded
//! over a group's nodes by ketama consistent hashing, writes go to every copy and reads go
//! to the nearest one, falling back to the others. This crate is that client over real
//! memcached servers, speaking memcached's meta protocol on pipelined connections.
//!
//! | module | what it does |
//! |---|---|
//! | [`ketama`] | the ring, compatible with spymemcached, EVCache and libmemcached |
//! | [`topology`] | server groups and nodes; `<APP>-NODES` strings |
//! | [`EvCache`] | reads with zone fallback, writes with [`Latch`]es, add repair, counter reconciliation |
//! | [`node`] | per-node connections, timeouts, fail-fast and TKO |
//! | [`local`] | real memcached processes on free loopback ports, for tests and examples |
//!
//! # Example
//!
//! ```no_run
//! use netflix_evcache::{EvCache, Policy};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let cache = EvCache::builder("EVCACHE_MOVIES")
//!     .nodes("zone-a=127.0.0.1:11211;zone-b=127.0.0.1:11212;zone-c=127.0.0.1:11213")?
//!     .local_zone("zone-a")
//!     .latch(Policy::Quorum)
//!     .build()?;
//! cache.set("session:42", b"{\"plan\":\"premium\"}".as_slice(), None).await?;
//! let session = cache.get("session:42").await?;
//! assert!(session.is_some());
//! # Ok(()) }
//! ```
#![doc(test(attr(deny(warnings))))]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod client;
pub mod codec;
#[cfg(feature = "serde")]
mod config;
mod conn;
pub mod discovery;
mod error;
pub mod ketama;
mod latch;
pub mod local;
pub mod metrics;
pub mod near;
pub mod node;
mod protocol;
mod text;
pub mod topology;

pub use client::{Builder, EvCache, KeyHashing, Lease, MAX_KEY_LEN};
pub use codec::CodecConfig;
pub use error::{Error, Result};
pub use latch::{CopyResult, Latch, Outcome, Policy};
pub use metrics::Metrics;
pub use near::{HotKeys, NearCache};
pub use node::{Health, NodeConfig, Protocol};
pub use protocol::{ProtocolError, ServerErrorKind};
pub use topology::{ServerGroup, Topology};
