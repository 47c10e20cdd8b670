//! Zuul 2's filter-chain gateway on hyper and tower.
//!
//! Every request enters here: inbound filters decide, route and decorate; exactly one
//! endpoint answers (a proxy to an origin, or a static response); outbound filters edit
//! the response.
//!
//! | module | what it does |
//! |---|---|
//! | [`compress`] | brotli and gzip of responses of configured content types (buffered up to a cap, Content-Length fixed) |
//! | [`filter`] | inbound and outbound filters (name, order, `should_filter`, sync or async `apply`), chains checked when built, switches at run time |
//! | [`phases`] | one object with a typed per-request context and a method per phase (as pingora's `ProxyHttp`) |
//! | [`route`] | routing by host, path (exact, prefix, pattern), method and headers, from a JSON route table |
//! | [`proxy`] | origins: load balancing (P2C peak EWMA, round robin, weighted, consistent hash), outlier ejection, timeouts, Zuul's retry rules within a budget |
//! | [`traffic`] | canary and weighted splits (sticky), shadow traffic, bad-request filtering, rate limiting per key, load shedding by priority |
//! | [`metrics`] | per-route counters and latency histograms; the gateway renders them, with the origins', for Prometheus |
//! | [`gateway`] | the request lifecycle, reloads, serving with a graceful drain; `metrics` and `hystrix_stream` endpoints |
//! | [`workers`] | serving on several threads, one single-threaded runtime and listening socket each (as nginx's worker processes) |
//!
//! # Feature flags
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `tls` | no | TLS for clients with rustls and ALPN (`tls::TlsConfig`, `Gateway::serve_tls`) |
//!
//! # Example
//!
//! ```no_run
//! use netflix_zuul::filter::{FilterChain, inbound_fn, Flow};
//! use netflix_zuul::route::RouteTable;
//! use netflix_zuul::Gateway;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let routes = RouteTable::from_json(r#"{
//!     "origins": { "api": { "servers": ["127.0.0.1:8081"] } },
//!     "routes": [ { "name": "api", "path_prefix": "/api/", "endpoint": { "proxy": "api" } } ]
//! }"#)?;
//! let chain = FilterChain::builder()
//!     .inbound(inbound_fn("block-bots", 0, |req, _ctx| {
//!         match req.headers().get("user-agent") {
//!             Some(ua) if ua.as_bytes().starts_with(b"BadBot") => Flow::respond(403, "no"),
//!             _ => Flow::Continue,
//!         }
//!     }))
//!     .build()?;
//! let gateway = Gateway::new(routes, chain)?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! gateway.serve(listener, std::future::pending()).await?;
//! # Ok(()) }
//! ```
#![doc(test(attr(deny(warnings))))]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod body;
mod codec;
pub mod compress;
mod context;
mod downstream;
mod error;
pub mod filter;
pub mod gateway;
pub mod metrics;
pub mod phases;
pub mod proxy;
pub mod route;
#[cfg(feature = "tls")]
#[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
pub mod tls;
pub mod traffic;
mod upstream;
pub mod workers;

pub use body::Body;
pub use context::{Attempts, Context, Passport};
pub use error::{Error, ErrorKind, ErrorSource, Result};
pub use gateway::Gateway;
