//! The gateway's body type: any body, boxed, so filters and endpoints can replace it.

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty, Full};

/// A boxed error, as bodies and origins return them.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body of every request and response that passes through the gateway.
pub type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>;

/// A body of `bytes`.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// An empty body.
pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// Boxes any body whose error converts into [`BoxError`].
pub fn boxed<B>(body: B) -> Body
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    body.map_err(Into::into).boxed_unsync()
}
