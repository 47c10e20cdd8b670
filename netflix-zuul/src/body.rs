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

/// Reads a whole body, up to `cap` bytes. `Ok(None)` when it is longer (what was read is
/// lost: call this only when the length is known to fit, or when the response will be
/// replaced anyway).
///
/// # Errors
///
/// The body's own error.
pub async fn read_to_cap(body: Body, cap: usize) -> Result<Option<bytes::Bytes>, BoxError> {
    let mut body = body;
    let mut buf = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            if buf.len() + data.len() > cap {
                return Ok(None);
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(Some(buf.freeze()))
}

/// Replaces a response's body with `bytes` and sets its `Content-Length` to match (what
/// a filter that changes the body must do).
pub fn replace(res: &mut http::Response<Body>, bytes: bytes::Bytes) {
    res.headers_mut()
        .insert(http::header::CONTENT_LENGTH, bytes.len().into());
    res.headers_mut().remove(http::header::TRANSFER_ENCODING);
    *res.body_mut() = full(bytes);
}

/// The `Content-Length` of a message, when it has a valid one.
pub fn content_length(h: &http::HeaderMap) -> Option<u64> {
    h.get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}
