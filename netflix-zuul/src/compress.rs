//! gzip and brotli for responses of configured content types, as outbound filters.
//!
//! A response is compressed when the client accepts the encoding (with a non-zero
//! quality), it is not encoded already, its content type starts with one of the configured
//! types, and its length is known and between `min_size` and `max_size` (it is buffered,
//! compressed, and its `Content-Length` fixed; larger or unsized bodies stream as they
//! are). Register [`Brotli`] and [`Gzip`] together: brotli runs first, and a response it
//! encoded is left alone by gzip, so clients that accept `br` get it and the others gzip.
//!
//! ```
//! use netflix_zuul::compress::{Brotli, Gzip};
//! use netflix_zuul::filter::FilterChain;
//!
//! let types = ["application/json", "text/", "application/vnd.apple.mpegurl"];
//! let chain = FilterChain::builder()
//!     .outbound(Brotli::new(types))
//!     .outbound(Gzip::new(types))
//!     .build()?;
//! assert_eq!(chain.outbound_names(), ["brotli", "gzip"]);
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

/// An encoding the filters produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Gzip,
    Brotli,
}

impl Encoding {
    fn token(self) -> &'static str {
        match self {
            Encoding::Gzip => "gzip",
            Encoding::Brotli => "br",
        }
    }
}

/// What both filters are configured with.
#[derive(Debug, Clone)]
struct Settings {
    types: Vec<String>,
    min_size: u64,
    max_size: u64,
    level: u32,
}

impl Settings {
    fn new<'a>(types: impl IntoIterator<Item = &'a str>, level: u32) -> Self {
        Self {
            types: types.into_iter().map(str::to_ascii_lowercase).collect(),
            min_size: 1024,
            max_size: 4 << 20,
            level,
        }
    }

    fn wanted(&self, encoding: Encoding, res: &Response<Body>, ctx: &Context) -> bool {
        let accepts = ctx
            .accept_encoding
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(',').any(|e| {
                    let mut parts = e.trim().split(';');
                    let name = parts.next().unwrap_or("").trim();
                    let q0 = parts.any(|p| {
                        p.trim()
                            .replace(' ', "")
                            .strip_prefix("q=")
                            .and_then(|q| q.parse::<f32>().ok())
                            .is_some_and(|q| q <= 0.0)
                    });
                    (name.eq_ignore_ascii_case(encoding.token()) || name == "*") && !q0
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

    async fn encode(&self, encoding: Encoding, res: &mut Response<Body>) -> Result<()> {
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
        let encoded = match encoding {
            Encoding::Gzip => {
                let mut enc = GzEncoder::new(
                    Vec::with_capacity(bytes.len() / 3),
                    Compression::new(self.level),
                );
                enc.write_all(&bytes).and_then(|()| enc.finish())
            }
            Encoding::Brotli => {
                let mut out = Vec::with_capacity(bytes.len() / 3);
                let params = brotli::enc::BrotliEncoderParams {
                    quality: self.level as i32,
                    ..Default::default()
                };
                brotli::BrotliCompress(&mut &bytes[..], &mut out, &params).map(|_| out)
            }
        };
        let encoded = encoded.map_err(|e| {
            Error::new(
                ErrorKind::Filter,
                ErrorSource::Internal,
                format!("{} failed", encoding.token()),
            )
            .with_cause(e)
        })?;
        body::replace(res, encoded.into());
        res.headers_mut().insert(
            header::CONTENT_ENCODING,
            HeaderValue::from_static(encoding.token()),
        );
        res.headers_mut()
            .append(header::VARY, HeaderValue::from_static("accept-encoding"));
        Ok(())
    }
}

/// The gzip outbound filter (see the module docs).
#[derive(Debug, Clone)]
pub struct Gzip(Settings);

impl Gzip {
    /// Compresses responses whose content type starts with one of `types`; bodies of 1 KiB
    /// to 4 MiB, level 6.
    pub fn new<'a>(types: impl IntoIterator<Item = &'a str>) -> Self {
        Self(Settings::new(types, 6))
    }

    /// Sets the size range compressed.
    #[must_use]
    pub fn sizes(mut self, min: u64, max: u64) -> Self {
        self.0.min_size = min;
        self.0.max_size = max;
        self
    }
}

/// The brotli outbound filter (see the module docs); order 999, just before gzip.
#[derive(Debug, Clone)]
pub struct Brotli(Settings);

impl Brotli {
    /// Compresses responses whose content type starts with one of `types`; bodies of 1 KiB
    /// to 4 MiB, quality 5 (brotli's range is 0 to 11; 5 is about as fast as gzip's 6 and
    /// smaller).
    pub fn new<'a>(types: impl IntoIterator<Item = &'a str>) -> Self {
        Self(Settings::new(types, 5))
    }

    /// Sets the size range compressed.
    #[must_use]
    pub fn sizes(mut self, min: u64, max: u64) -> Self {
        self.0.min_size = min;
        self.0.max_size = max;
        self
    }

    /// Sets the quality, 0 to 11.
    #[must_use]
    pub fn quality(mut self, quality: u32) -> Self {
        self.0.level = quality.min(11);
        self
    }
}

impl OutboundFilter for Brotli {
    fn name(&self) -> &str {
        "brotli"
    }

    fn order(&self) -> i32 {
        999
    }

    fn should_filter(&self, res: &Response<Body>, ctx: &Context) -> bool {
        self.0.wanted(Encoding::Brotli, res, ctx)
    }

    fn apply<'a>(
        &'a self,
        res: &'a mut Response<Body>,
        _ctx: &'a mut Context,
    ) -> Step<'a, Result<()>> {
        Step::Async(Box::pin(self.0.encode(Encoding::Brotli, res)))
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
        self.0.wanted(Encoding::Gzip, res, ctx)
    }

    fn apply<'a>(
        &'a self,
        res: &'a mut Response<Body>,
        _ctx: &'a mut Context,
    ) -> Step<'a, Result<()>> {
        Step::Async(Box::pin(self.0.encode(Encoding::Gzip, res)))
    }
}
