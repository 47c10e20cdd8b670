//! An Open Connect edge in Rust.
//!
//! Netflix's Open Connect appliances (OCAs) sit inside ISPs and serve the video: the
//! nearest appliance answers byte-range requests for segments from a memory and disk
//! cache, popular titles are placed there before anyone asks, files are spread over a
//! cluster by consistent hashing, and a steering service tells each client which
//! appliances to use. This crate is those parts.
//!
//! | module | what it does |
//! |---|---|
//! | [`server`] | the segment server: GET and HEAD, RFC 9110 ranges and conditionals, HTTP/1.1 and HTTP/2, signed URLs, sessions and drain |
//! | [`store`] | the chunk store: memory and disk tiers of checksummed chunks, a crash-safe disk index, pinned content |
//! | [`fill`] | single-flight fill with read-while-writer, tiers with escalation, resumable ranged fill, checksums |
//! | [`policy`] | eviction: LRU, S3-FIFO, SIEVE, W-TinyLFU, the adaptive default, and Belady's MIN for replay |
//! | [`trace`] | cache traces (text and libCacheSim's binary format) and their replay |
//! | [`placement`] | titles to the appliances of a cluster: weighted rendezvous hashing, copies on distinct hosts, bounded loads |
//! | [`proactive`] | the daily fill manifest, filled off-peak under a rate cap |
//! | [`steering`] | client IP to cluster to a ranked list of signed URLs; content and health misses; liveness |
//! | [`control`] | health reports, manifests and steering over HTTP; loss of the control plane |
//! | [`local`] | a whole topology on loopback (origin, regional tier, clusters, control plane) |
//! | [`http`] | ranges, URL signing and the HTTP fill client |
//!
//! The data path: a player asks [`steering`] for a title and gets signed URLs of the
//! appliances that hold it; it fetches segments from the first that answers. The
//! appliance's [`server`] serves from its [`store`], or from a [`fill`] of the chunk from a
//! peer, the regional tier or the origin.
//!
//! # Example
//!
//! ```
//! use netflix_oca::policy::PolicyKind;
//! use netflix_oca::trace::{self, Capacity, Request};
//!
//! // Ten popular objects, then each asked for again between scans of 30 new ones.
//! let mut ids: Vec<u64> = (0..50).map(|i| i % 10).collect();
//! for round in 0..100 {
//!     ids.extend(0..10);
//!     ids.extend((0..30).map(|s| 1_000 + round * 30 + s));
//! }
//! let requests: Vec<Request> =
//!     ids.iter().enumerate().map(|(t, &id)| Request { time: t as u64, id, size: 1 }).collect();
//! let lru = trace::replay(&requests, PolicyKind::Lru, 20, Capacity::Objects);
//! let ours = trace::replay(&requests, PolicyKind::Default, 20, Capacity::Objects);
//! assert!(ours.miss_ratio() < lru.miss_ratio() - 0.2);
//! ```
//!
//! # Feature flags
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `xz` | yes | reading xz-compressed traces (pure Rust) |
#![doc(test(attr(deny(warnings))))]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod control;
pub mod fill;
pub mod http;
pub mod local;
pub mod placement;
pub mod policy;
pub mod proactive;
pub mod server;
pub mod steering;
pub mod store;
pub mod trace;
