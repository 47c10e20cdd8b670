//! [`HttpUpstream`]: another appliance, a parent tier or the origin, over HTTP.

use crate::fill::{BoxFuture, Fetched, FillError, Upstream};
use crate::http::range::{ByteRange, parse_http_date};
use crate::http::sign::UrlSigner;
use crate::store::{ObjectMeta, Sha};
use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::{BodyExt as _, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The request header that marks a fill between tiers. Its value is `tier` or `peer`; an
/// appliance asked by a `peer` does not ask its own peers in turn (no loops), and every
/// fill request gets whole, checked bytes with a `Content-Digest`.
pub const FILL_HEADER: &str = "x-oca-fill";

/// An upstream reached over HTTP/1.1 with pooled keep-alive connections.
#[derive(Debug, Clone)]
pub struct HttpUpstream {
    name: String,
    authority: String,
    role: &'static str,
    signer: Option<UrlSigner>,
    client: Client<HttpConnector, Empty<Bytes>>,
}

impl HttpUpstream {
    /// A parent tier or origin at `addr`.
    pub fn new(name: impl Into<String>, addr: SocketAddr) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(Duration::from_millis(500)));
        connector.set_nodelay(true);
        Self {
            name: name.into(),
            authority: addr.to_string(),
            role: "tier",
            signer: None,
            client: Client::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(30))
                .build(connector),
        }
    }

    /// A peer in the same cluster: it fills from its own tiers, never from its peers.
    pub fn peer(name: impl Into<String>, addr: SocketAddr) -> Self {
        Self {
            role: "peer",
            ..Self::new(name, addr)
        }
    }

    /// Signs every request with `signer` (when the upstream checks signed URLs).
    #[must_use]
    pub fn signed(mut self, signer: UrlSigner) -> Self {
        self.signer = Some(signer);
        self
    }

    fn request(
        &self,
        method: Method,
        path: &str,
        range: Option<ByteRange>,
    ) -> Request<Empty<Bytes>> {
        let path = encode_path(path);
        let query = self
            .signer
            .as_ref()
            .map(|s| {
                format!(
                    "?{}",
                    s.sign(&path, SystemTime::now() + Duration::from_secs(300))
                )
            })
            .unwrap_or_default();
        let mut b = Request::builder()
            .method(method)
            .uri(format!("http://{}{}{}", self.authority, path, query))
            .header(FILL_HEADER, self.role);
        if let Some(r) = range {
            b = b.header(header::RANGE, format!("bytes={}-{}", r.start, r.end - 1));
        }
        b.body(Empty::new()).expect("a valid request")
    }

    fn failed(&self, what: impl std::fmt::Display) -> FillError {
        FillError::Exhausted(format!("{}: {what}", self.name))
    }
}

impl Upstream for HttpUpstream {
    fn name(&self) -> &str {
        &self.name
    }

    fn head<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Result<ObjectMeta, FillError>> {
        Box::pin(async move {
            let res = self
                .client
                .request(self.request(Method::HEAD, path, None))
                .await
                .map_err(|e| self.failed(e))?;
            match res.status() {
                StatusCode::OK => meta_from(path, res.headers(), None)
                    .ok_or_else(|| self.failed("a HEAD without length or validators")),
                StatusCode::NOT_FOUND => Err(FillError::NotFound),
                s => Err(self.failed(format!("HEAD answered {s}"))),
            }
        })
    }

    fn get<'a>(
        &'a self,
        path: &'a str,
        range: ByteRange,
    ) -> BoxFuture<'a, Result<Fetched, FillError>> {
        Box::pin(async move {
            let res = self
                .client
                .request(self.request(Method::GET, path, Some(range)))
                .await
                .map_err(|e| self.failed(e))?;
            let status = res.status();
            if status == StatusCode::NOT_FOUND {
                return Err(FillError::NotFound);
            }
            let (sent, meta) = match status {
                StatusCode::PARTIAL_CONTENT => {
                    let (sent, total) = res
                        .headers()
                        .get(header::CONTENT_RANGE)
                        .and_then(|v| v.to_str().ok())
                        .and_then(parse_content_range)
                        .ok_or_else(|| self.failed("206 without a Content-Range"))?;
                    (sent, meta_from(path, res.headers(), Some(total)))
                }
                StatusCode::OK => {
                    let meta = meta_from(path, res.headers(), None);
                    let len = meta.as_ref().map_or(0, |m| m.len);
                    (ByteRange { start: 0, end: len }, meta)
                }
                s => return Err(self.failed(format!("GET answered {s}"))),
            };
            let meta = meta.ok_or_else(|| self.failed("an answer without validators"))?;
            let digest = content_digest(res.headers());
            Ok(Fetched {
                meta,
                range: sent,
                digest,
                body: res.into_body().map_err(|e| Box::new(e) as _).boxed(),
            })
        })
    }

    fn digest<'a>(
        &'a self,
        path: &'a str,
        range: ByteRange,
    ) -> BoxFuture<'a, Result<Sha, FillError>> {
        Box::pin(async move {
            let res = self
                .client
                .request(self.request(Method::HEAD, path, Some(range)))
                .await
                .map_err(|e| self.failed(e))?;
            content_digest(res.headers())
                .ok_or_else(|| self.failed(format!("no digest in a {} HEAD", res.status())))
        })
    }
}

/// Percent-encodes what is not unreserved or `/` in a path.
pub(crate) fn encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len() + 1);
    if !path.starts_with('/') {
        out.push('/');
    }
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `bytes a-b/total` -> (range, total).
pub(crate) fn parse_content_range(v: &str) -> Option<(ByteRange, u64)> {
    let rest = v.trim().strip_prefix("bytes ")?;
    let (span, total) = rest.split_once('/')?;
    let (a, b) = span.split_once('-')?;
    let (start, last, total): (u64, u64, u64) =
        (a.parse().ok()?, b.parse().ok()?, total.parse().ok()?);
    (start <= last && last < total).then_some((
        ByteRange {
            start,
            end: last + 1,
        },
        total,
    ))
}

/// The SHA-256 in a `Content-Digest: sha-256=:<base64>:` header.
pub(crate) fn content_digest(h: &HeaderMap) -> Option<Sha> {
    let v = h.get("content-digest")?.to_str().ok()?;
    v.split(',').find_map(|item| {
        let b64 = item.trim().strip_prefix("sha-256=:")?.strip_suffix(':')?;
        let bytes = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
        bytes.try_into().ok()
    })
}

/// The `Content-Digest` value for a SHA-256.
pub(crate) fn digest_header(sha: &Sha) -> String {
    format!(
        "sha-256=:{}:",
        base64::engine::general_purpose::STANDARD.encode(sha)
    )
}

fn meta_from(path: &str, h: &HeaderMap, total: Option<u64>) -> Option<ObjectMeta> {
    let len = match total {
        Some(t) => t,
        None => h.get(header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()?,
    };
    let etag = h.get(header::ETAG)?.to_str().ok()?.to_string();
    let last_modified = h
        .get(header::LAST_MODIFIED)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_http_date)
        .unwrap_or(UNIX_EPOCH);
    Some(ObjectMeta {
        path: path.trim_start_matches('/').to_string(),
        len,
        etag,
        last_modified,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_parse() {
        assert_eq!(
            parse_content_range("bytes 0-99/1000"),
            Some((ByteRange { start: 0, end: 100 }, 1000))
        );
        assert_eq!(parse_content_range("bytes 5-4/1000"), None);
        assert_eq!(parse_content_range("bytes 0-1000/1000"), None);
        assert_eq!(parse_content_range("bytes */1000"), None);
        let sha = crate::store::sha256(b"abc");
        let mut h = HeaderMap::new();
        h.insert("content-digest", digest_header(&sha).parse().unwrap());
        assert_eq!(content_digest(&h), Some(sha));
        assert_eq!(encode_path("a b/c%.m4s"), "/a%20b/c%25.m4s");
    }
}
