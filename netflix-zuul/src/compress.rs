//! gzip for responses of configured content types, as an outbound filter.
//!
//! A response is compressed when the client accepts gzip, it is not encoded already, its
//! content type starts with one of the configured types, and its length is known and
//! between `min_size` and `max_size` (it is buffered, compressed, and its `Content-Length`
//! fixed; larger or unsized bodies stream as they are).
//!
//! ```
//! use netflix_zuul::compress::Gzip;
//! use netflix_zuul::filter::FilterChain;
//!
//! let chain = FilterChain::builder()
//!     .outbound(Gzip::new(["application/json", "text/", "application/vnd.apple.mpegurl"]))
//!     .build()?;
//! assert_eq!(chain.outbound_names(), ["gzip"]);
//! # Ok::<(), netflix_zuul::Error>(())
//! ```

use crate::body::{self, Body};
use crate::context::Context;
use crate::error::{Error, ErrorKind, ErrorSource, Result};
use crate::filter::{OutboundFilter, Step};
use flate2::Compression;
use flate2::write::GzEncoder;
use http::{HeaderValue, Response, header};
use std::io::Write as _;

/// The gzip outbound filter (see the module docs).
#[derive(Debug, Clone)]
pub struct Gzip {
    types: Vec<String>,
    min_size: u64,
    max_size: u64,
    level: u32,
}

impl Gzip {
    /// Compresses responses whose content type starts with one of `types`; bodies of 1 KiB
    /// to 4 MiB, level 6.
    pub fn new<'a>(types: impl IntoIterator<Item = &'a str>) -> Self {
        Self {
            types: types.into_iter().map(str::to_ascii_lowercase).collect(),
            min_size: 1024,
            max_size: 4 << 20,
            level: 6,
        }
    }

    /// Sets the size range compressed.
    #[must_use]
    pub fn sizes(mut self, min: u64, max: u64) -> Self {
        self.min_size = min;
        self.max_size = max;
        self
    }

    fn wanted(&self, res: &Response<Body>, ctx: &Context) -> bool {
        let accepts = ctx
            .accept_encoding
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(',').any(|e| {
                    let mut parts = e.trim().split(';');
                    let name = parts.next().unwrap_or("").trim();
                    let q0 = parts.any(|p| p.trim().replace(' ', "") == "q=0");
                    (name.eq_ignore_ascii_case("gzip") || name == "*") && !q0
                })
            });
        let h = res.headers();
        let typed = h
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| {
                self.types
                    .iter()
                    .any(|t| ct.to_ascii_lowercase().starts_with(t))
            });
        let len = body::content_length(h);
        accepts
            && typed
            && !h.contains_key(header::CONTENT_ENCODING)
            && len.is_some_and(|l| (self.min_size..=self.max_size).contains(&l))
    }
}

impl OutboundFilter for Gzip {
    fn name(&self) -> &str {
        "gzip"
    }

    fn order(&self) -> i32 {
        1000
    }

    fn should_filter(&self, res: &Response<Body>, ctx: &Context) -> bool {
        self.wanted(res, ctx)
    }

    fn apply<'a>(
        &'a self,
        res: &'a mut Response<Body>,
        _ctx: &'a mut Context,
    ) -> Step<'a, Result<()>> {
        Step::Async(Box::pin(async move {
            let b = std::mem::replace(res.body_mut(), body::empty());
            let Some(bytes) = body::read_to_cap(b, self.max_size as usize)
                .await
                .map_err(|e| {
                    Error::new(
                        ErrorKind::Reset,
                        ErrorSource::Upstream,
                        "the origin's body broke off",
                    )
                    .with_cause(e)
                })?
            else {
                return Err(Error::new(
                    ErrorKind::Filter,
                    ErrorSource::Internal,
                    "a body longer than its Content-Length",
                ));
            };
            let mut enc = GzEncoder::new(
                Vec::with_capacity(bytes.len() / 3),
                Compression::new(self.level),
            );
            enc.write_all(&bytes)
                .and_then(|()| enc.finish())
                .map(|gz| {
                    body::replace(res, gz.into());
                    res.headers_mut()
                        .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
                    res.headers_mut()
                        .append(header::VARY, HeaderValue::from_static("accept-encoding"));
                })
                .map_err(|e| {
                    Error::new(ErrorKind::Filter, ErrorSource::Internal, "gzip failed")
                        .with_cause(e)
                })
        }))
    }
}
