//! HTTP/1.1 from clients: each connection's loop, as pingora runs it.
//!
//! A general server (hyper's) runs a dispatcher state machine per connection, hands the
//! request body over through a channel and keeps its buffers as long as the connection
//! lives. A gateway pays for every instruction on every request, so here the loop reads a
//! head (httparse; the fields share the read buffer), calls the gateway, and writes the
//! answer's head and body, a small body in the same write as its head. An idle keep-alive
//! connection holds no buffer: it waits for readability, then takes one.
//!
//! A request body is read from the connection while the gateway handles the request; when
//! the answer is ready the loop takes the connection back, skips what is left of a small
//! body (a larger one closes the connection after the answer, with a lingering close, so
//! that the client still reads it). HTTP/2 (the preface, with prior knowledge or after
//! ALPN) goes to hyper.

use crate::body::{self, Body};
use crate::codec::{
    Chunk, Decoded, Facts, MAX_HEAD, MAX_HEADERS, Prefixed, RawHead, decode_chunk,
    give_read_buffer, give_write_buffer, push_date, push_decimal, push_hex, take_read_buffer,
    take_write_buffer,
};
use crate::error::{Error, ErrorKind, ErrorSource};
use crate::gateway::Gateway;
use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri, Version, header};
use http_body::{Body as _, Frame, SizeHint};
use http_body_util::BodyExt as _;
use parking_lot::Mutex;
use std::future::{Future, poll_fn};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::{oneshot, watch};

/// What an HTTP/2 connection starts with.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// The room made in the read buffer before a read.
const READ_ROOM: usize = 4 * 1024;
/// An idle keep-alive connection is closed after this long, give or take as much again
/// (nginx's `keepalive_timeout` is 75 s).
const KEEP_ALIVE: Duration = Duration::from_secs(75);
/// A request head must arrive whole within this long of its first byte.
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);
/// Body bytes up to this size go out in the same write as what precedes them.
const COALESCE: usize = 16 * 1024;
/// What is left of a request body the gateway did not read is skipped, up to this much,
/// to keep the connection; beyond it the connection closes after the answer.
const DISCARD: u64 = 64 * 1024;

/// A connection the loop can serve.
pub(crate) trait ServerIo: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// Whether [`poll_idle`](Self::poll_idle) waits for readability (so that an idle
    /// connection can hold no buffer).
    const WAITS: bool = false;

    /// Ready when a read would make progress.
    fn poll_idle(&self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let _ = cx;
        Poll::Ready(Ok(()))
    }
}

impl ServerIo for TcpStream {
    const WAITS: bool = true;

    fn poll_idle(&self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.poll_read_ready(cx)
    }
}

#[cfg(feature = "tls")]
impl ServerIo for tokio_rustls::server::TlsStream<TcpStream> {}

/// Any connection, boxed: the client's side of a protocol switch.
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// The client's side of a protocol switch, handed over once the 101 has gone out. It
/// travels in the request's extensions (which must be `Clone`).
#[derive(Clone)]
pub(crate) struct ClientUpgrade(pub(crate) Arc<Mutex<Option<UpgradeReceiver>>>);

/// Where the client's side of a protocol switch arrives.
pub(crate) type UpgradeReceiver = oneshot::Receiver<Box<dyn Io>>;

/// How a connection's loop ended.
pub(crate) enum Outcome<I> {
    /// Closed.
    Done,
    /// It speaks HTTP/2: the bytes read so far, and the connection.
    Http2(Prefixed<I>),
}

/// The connection, with its read buffer.
struct ConnIo<I> {
    io: I,
    rbuf: BytesMut,
}

/// How much of a request body is left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyLeft {
    Length(u64),
    Chunked(Chunk),
    Done,
}

/// A request body and the connection it is read from, shared by the body and the loop.
struct Shared<I> {
    /// `None` once the loop has taken the connection back to answer.
    conn: Option<ConnIo<I>>,
    left: BodyLeft,
}

/// A request body, read from the connection as the gateway takes it.
struct RequestBody<I> {
    shared: Arc<Mutex<Shared<I>>>,
}

fn client_error(what: impl Into<String>) -> Error {
    Error::new(ErrorKind::Reset, ErrorSource::Downstream, what)
}

impl<I: ServerIo> http_body::Body for RequestBody<I> {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let mut guard = self.shared.lock();
        let Shared { conn, left } = &mut *guard;
        loop {
            match *left {
                BodyLeft::Done => return Poll::Ready(None),
                BodyLeft::Length(0) => {
                    *left = BodyLeft::Done;
                    return Poll::Ready(None);
                }
                _ => {}
            }
            let Some(c) = conn.as_mut() else {
                return Poll::Ready(Some(Err(client_error(
                    "the request body was read after the answer began",
                ))));
            };
            match left {
                BodyLeft::Length(rem) if !c.rbuf.is_empty() => {
                    let n = (*rem).min(c.rbuf.len() as u64);
                    *left = if n == *rem {
                        BodyLeft::Done
                    } else {
                        BodyLeft::Length(*rem - n)
                    };
                    return Poll::Ready(Some(Ok(Frame::data(
                        c.rbuf.split_to(n as usize).freeze(),
                    ))));
                }
                BodyLeft::Chunked(state) => match decode_chunk(&mut c.rbuf, state) {
                    Ok(Decoded::Data(d)) => return Poll::Ready(Some(Ok(Frame::data(d)))),
                    Ok(Decoded::Trailers(t)) => {
                        *left = BodyLeft::Done;
                        return Poll::Ready(Some(Ok(Frame::trailers(t))));
                    }
                    Ok(Decoded::End) => {
                        *left = BodyLeft::Done;
                        return Poll::Ready(None);
                    }
                    Ok(Decoded::More) => {}
                    Err(what) => {
                        *conn = None;
                        return Poll::Ready(Some(Err(client_error(format!(
                            "the client sent {what}"
                        )))));
                    }
                },
                _ => {}
            }
            if c.rbuf.capacity() - c.rbuf.len() < READ_ROOM / 2 {
                c.rbuf.reserve(READ_ROOM);
            }
            let read = ready!(std::pin::pin!(c.io.read_buf(&mut c.rbuf)).poll(cx));
            match read {
                Ok(0) => {
                    *conn = None;
                    return Poll::Ready(Some(Err(client_error(
                        "the client closed the connection before the end of its body",
                    ))));
                }
                Ok(_) => {}
                Err(e) => {
                    *conn = None;
                    return Poll::Ready(Some(Err(client_error(format!(
                        "reading the request body: {e}"
                    ))
                    .with_cause(e))));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(
            self.shared.lock().left,
            BodyLeft::Done | BodyLeft::Length(0)
        )
    }

    fn size_hint(&self) -> SizeHint {
        match self.shared.lock().left {
            BodyLeft::Length(n) => SizeHint::with_exact(n),
            BodyLeft::Done => SizeHint::with_exact(0),
            BodyLeft::Chunked(_) => SizeHint::default(),
        }
    }
}

/// A parsed request head.
struct Head {
    method: Method,
    uri: Uri,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    version: u8,
    headers: HeaderMap,
    facts: Facts,
}

/// A request that cannot be served, and why.
struct Refusal(StatusCode, &'static str);

/// Parses a request head at the start of `buf` and takes it off; `Ok(None)` while it is
/// incomplete.
fn parse_head(buf: &mut BytesMut, spans: &mut Vec<[u32; 4]>) -> Result<Option<Head>, Refusal> {
    let mut slots = [std::mem::MaybeUninit::<httparse::Header<'_>>::uninit(); MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(buf, &mut slots) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(Refusal(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "too many header fields",
            ));
        }
        Err(_) => return Err(Refusal(StatusCode::BAD_REQUEST, "a malformed request head")),
    };
    let method = Method::from_bytes(req.method.unwrap_or("").as_bytes())
        .map_err(|_| Refusal(StatusCode::BAD_REQUEST, "a bad method"))?;
    let version = req.version.unwrap_or(1);
    let path = req.path.unwrap_or("");
    let base = buf.as_ptr() as usize;
    let path_at = (path.as_ptr() as usize - base, path.len());
    let taken = crate::codec::spans(req.headers, buf, spans);
    let head = buf.split_to(len).freeze();
    let uri = Uri::from_maybe_shared(head.slice(path_at.0..path_at.0 + path_at.1))
        .map_err(|_| Refusal(StatusCode::BAD_REQUEST, "a bad request target"))?;
    let (headers, facts) = crate::codec::headers(&head, taken, 4, crate::codec::HopByHop::Keep)
        .map_err(|what| Refusal(StatusCode::BAD_REQUEST, what))?;
    Ok(Some(Head {
        method,
        uri,
        version,
        headers,
        facts,
    }))
}

/// How a request body is delimited (RFC 9112, section 6.3); what would let a request be
/// read two ways is refused (request smuggling).
fn body_left(facts: &Facts) -> Result<BodyLeft, Refusal> {
    if facts.transfer_encoding {
        if facts.length.is_some() {
            return Err(Refusal(
                StatusCode::BAD_REQUEST,
                "both Content-Length and Transfer-Encoding",
            ));
        }
        return if facts.chunked_last {
            Ok(BodyLeft::Chunked(Chunk::Size))
        } else {
            Err(Refusal(
                StatusCode::BAD_REQUEST,
                "a Transfer-Encoding that does not end in chunked",
            ))
        };
    }
    match facts.length {
        None | Some(Ok(0)) => Ok(BodyLeft::Done),
        Some(Ok(n)) => Ok(BodyLeft::Length(n)),
        Some(Err(())) => Err(Refusal(
            StatusCode::BAD_REQUEST,
            "an invalid or conflicting Content-Length",
        )),
    }
}

/// What reading a request head came to.
#[allow(
    clippy::large_enum_variant,
    reason = "returned once a request and taken apart at once: a box would be an allocation a request"
)]
enum HeadRead {
    Head(Head),
    Http2,
    Closed,
    Refused(Refusal),
}

/// A connection's write buffer and its idle timer.
struct Idle<'a> {
    wbuf: &'a mut Vec<u8>,
    /// Fires at most every [`KEEP_ALIVE`]: an idle connection closes when it fires twice
    /// with no request between (so after 75 to 150 s), which spares arming a timer for
    /// every request.
    timer: Pin<&'a mut tokio::time::Sleep>,
    served: u64,
    seen: &'a mut u64,
}

impl Idle<'_> {
    /// Whether the connection has been idle long enough to close; if not, the timer is
    /// set again.
    fn expired(&mut self) -> bool {
        if self.served == *self.seen {
            return true;
        }
        *self.seen = self.served;
        self.timer
            .as_mut()
            .reset(tokio::time::Instant::now() + KEEP_ALIVE);
        false
    }
}

async fn read_head<I: ServerIo>(
    io: &mut I,
    rbuf: &mut BytesMut,
    spans: &mut Vec<[u32; 4]>,
    drain: &watch::Receiver<bool>,
    mut drained: Pin<&mut impl Future<Output = ()>>,
    first: bool,
    idle: &mut Idle<'_>,
) -> HeadRead {
    // Set when part of a head has come: the rest must follow by then, however slowly it
    // trickles in.
    let mut head_deadline: Option<tokio::time::Instant> = None;
    // The runtime has just said the socket is readable (no need to ask again).
    let mut readable = false;
    loop {
        if !rbuf.is_empty() {
            let n = rbuf.len().min(H2_PREFACE.len());
            if first && rbuf[..n] == H2_PREFACE[..n] {
                if n == H2_PREFACE.len() {
                    return HeadRead::Http2;
                }
                // Not enough yet to tell.
            } else {
                match parse_head(rbuf, spans) {
                    Ok(Some(head)) => return HeadRead::Head(head),
                    Ok(None) if rbuf.len() >= MAX_HEAD => {
                        return HeadRead::Refused(Refusal(
                            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                            "a request head over 64 KiB",
                        ));
                    }
                    Ok(None) => {}
                    Err(r) => return HeadRead::Refused(r),
                }
            }
        }
        let read = if rbuf.is_empty() {
            // Idle between requests.
            if *drain.borrow() {
                return HeadRead::Closed;
            }
            if I::WAITS {
                // A read is tried only when the runtime has seen the socket readable (no
                // system call for nothing); readiness can be stale, so a read that would
                // block goes back to waiting, where the drain and the timer are watched.
                let ready_now = std::mem::take(&mut readable)
                    || poll_fn(|cx| Poll::Ready(io.poll_idle(cx).is_ready())).await;
                let attempt = if ready_now {
                    if rbuf.capacity() == 0 {
                        *rbuf = take_read_buffer(READ_ROOM);
                    } else if rbuf.capacity() - rbuf.len() < READ_ROOM / 2 {
                        rbuf.reserve(READ_ROOM);
                    }
                    poll_fn(|cx| match std::pin::pin!(io.read_buf(rbuf)).poll(cx) {
                        Poll::Ready(r) => Poll::Ready(Some(r)),
                        Poll::Pending => Poll::Ready(None),
                    })
                    .await
                } else {
                    None
                };
                match attempt {
                    Some(read) => read,
                    None => {
                        // Waiting: the buffers go to the next busy connection meanwhile.
                        give_read_buffer(std::mem::take(rbuf));
                        give_write_buffer(std::mem::take(idle.wbuf));
                        tokio::select! {
                            biased;
                            r = poll_fn(|cx| io.poll_idle(cx)) => if r.is_err() {
                                return HeadRead::Closed;
                            } else {
                                readable = true;
                            },
                            () = drained.as_mut() => return HeadRead::Closed,
                            () = idle.timer.as_mut() => if idle.expired() {
                                return HeadRead::Closed;
                            },
                        }
                        continue;
                    }
                }
            } else {
                if rbuf.capacity() - rbuf.len() < READ_ROOM / 2 {
                    rbuf.reserve(READ_ROOM);
                }
                tokio::select! {
                    biased;
                    r = io.read_buf(rbuf) => r,
                    () = drained.as_mut() => return HeadRead::Closed,
                    () = idle.timer.as_mut() => if idle.expired() {
                        return HeadRead::Closed;
                    } else {
                        continue;
                    },
                }
            }
        } else {
            // Part of a head is here: the rest must follow soon.
            if rbuf.capacity() - rbuf.len() < READ_ROOM / 2 {
                rbuf.reserve(READ_ROOM);
            }
            let until =
                *head_deadline.get_or_insert_with(|| tokio::time::Instant::now() + HEAD_TIMEOUT);
            match tokio::time::timeout_at(until, io.read_buf(rbuf)).await {
                Ok(r) => r,
                Err(_) => {
                    return HeadRead::Refused(Refusal(
                        StatusCode::REQUEST_TIMEOUT,
                        "the request head did not arrive in time",
                    ));
                }
            }
        };
        match read {
            Ok(0) | Err(_) => return HeadRead::Closed,
            Ok(_) => {}
        }
    }
}

/// Serves HTTP/1.1 on `io` until the client or the gateway closes it, or it turns out to
/// speak HTTP/2.
pub(crate) async fn serve<I: ServerIo>(
    gateway: Gateway,
    io: I,
    peer: SocketAddr,
    drain: watch::Receiver<bool>,
) -> Outcome<I> {
    // Completes when the drain starts. One future for the connection's life, so that
    // waiting for the next request registers no new waiter each time.
    let mut watch = drain.clone();
    let mut drained = std::pin::pin!(async move {
        let _ = watch.wait_for(|d| *d).await;
    });
    let mut conn = ConnIo {
        io,
        rbuf: BytesMut::new(),
    };
    let mut wbuf: Vec<u8> = Vec::new();
    let mut spans: Vec<[u32; 4]> = Vec::new();
    let mut first = true;
    let timer = tokio::time::sleep(KEEP_ALIVE);
    tokio::pin!(timer);
    let (mut served, mut seen) = (0u64, 0u64);
    loop {
        let mut idle = Idle {
            wbuf: &mut wbuf,
            timer: timer.as_mut(),
            served,
            seen: &mut seen,
        };
        let head = match read_head(
            &mut conn.io,
            &mut conn.rbuf,
            &mut spans,
            &drain,
            drained.as_mut(),
            first,
            &mut idle,
        )
        .await
        {
            HeadRead::Head(h) => h,
            HeadRead::Http2 => {
                return Outcome::Http2(Prefixed {
                    pre: conn.rbuf.split().freeze(),
                    io: conn.io,
                });
            }
            HeadRead::Closed => return Outcome::Done,
            HeadRead::Refused(Refusal(status, why)) => {
                tracing::debug!(%peer, %status, why, "request refused");
                refuse(&mut conn.io, status, why).await;
                return Outcome::Done;
            }
        };
        first = false;
        served += 1;
        // One Host (RFC 9112, section 3.2): none, or two that could route one way and be
        // read another, is refused. An absolute-form target's authority wins over it.
        let hosts = head.facts.hosts;
        if hosts > 1 || (head.version == 1 && hosts == 0) {
            refuse(
                &mut conn.io,
                StatusCode::BAD_REQUEST,
                "a request needs exactly one Host",
            )
            .await;
            return Outcome::Done;
        }
        let mut head = head;
        if let Some(authority) = head.uri.authority() {
            if let Ok(v) = http::HeaderValue::from_str(authority.as_str()) {
                head.headers.insert(header::HOST, v);
            }
        }
        let left = match body_left(&head.facts) {
            Ok(l) => l,
            Err(Refusal(status, why)) => {
                tracing::debug!(%peer, %status, why, "request refused");
                refuse(&mut conn.io, status, why).await;
                return Outcome::Done;
            }
        };
        let mut keep_alive = head.facts.keep_alive(head.version);
        let is_head = head.method == Method::HEAD;
        let version = head.version;
        if left != BodyLeft::Done
            && head.facts.expect_continue
            && conn
                .io
                .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                .await
                .is_err()
        {
            return Outcome::Done;
        }
        let upgrade = head
            .facts
            .is_upgrade()
            .then(oneshot::channel::<Box<dyn Io>>);
        let mut req = Request::new(body::empty());
        *req.method_mut() = head.method;
        *req.uri_mut() = head.uri;
        *req.version_mut() = if version == 0 {
            Version::HTTP_10
        } else {
            Version::HTTP_11
        };
        *req.headers_mut() = head.headers;
        let (upgrade_tx, upgrade_rx) = match upgrade {
            Some((tx, rx)) => (Some(tx), Some(rx)),
            None => (None, None),
        };
        if let Some(rx) = upgrade_rx {
            req.extensions_mut()
                .insert(ClientUpgrade(Arc::new(Mutex::new(Some(rx)))));
        }
        // The answer. A request with a body lends the connection to the body meanwhile.
        // (A proxied answer's head may come as the origin wrote it: written from there.)
        let mut raw = None;
        let (res, left) = if left == BodyLeft::Done {
            (
                gateway.answer(req, Some(peer), Some(&mut raw)).await,
                BodyLeft::Done,
            )
        } else {
            let shared = Arc::new(Mutex::new(Shared {
                conn: Some(conn),
                left,
            }));
            *req.body_mut() = body::boxed(RequestBody {
                shared: shared.clone(),
            });
            let res = gateway.answer(req, Some(peer), Some(&mut raw)).await;
            let mut s = shared.lock();
            let Some(back) = s.conn.take() else {
                // The body broke off, and the connection with it.
                return Outcome::Done;
            };
            conn = back;
            (res, s.left)
        };
        let mut linger = false;
        let mut discard = 0;
        match left {
            BodyLeft::Done => {}
            BodyLeft::Length(n) if n <= DISCARD => discard = n,
            _ => {
                keep_alive = false;
                linger = true;
            }
        }
        if *drain.borrow() {
            keep_alive = false;
        }
        let status = res.status();
        if wbuf.capacity() == 0 {
            wbuf = take_write_buffer();
        }
        let written = write_response(
            &mut conn.io,
            &mut wbuf,
            (res, raw),
            is_head,
            version,
            keep_alive,
        )
        .await;
        // A protocol switch hands the connection over whatever keep-alive would have said
        // (the client has its 101).
        if status == StatusCode::SWITCHING_PROTOCOLS && written.is_ok() {
            if let Some(tx) = upgrade_tx {
                let io: Box<dyn Io> = Box::new(Prefixed {
                    pre: conn.rbuf.split().freeze(),
                    io: conn.io,
                });
                let _ = tx.send(io);
            }
            return Outcome::Done;
        }
        match written {
            Ok(true) => {}
            Ok(false) => {
                if linger {
                    lingering_close(&mut conn.io).await;
                }
                return Outcome::Done;
            }
            Err(()) => return Outcome::Done,
        }
        // What the gateway left of a small body is skipped.
        while discard > 0 {
            if conn.rbuf.is_empty() {
                conn.rbuf.reserve(READ_ROOM);
                match tokio::time::timeout(HEAD_TIMEOUT, conn.io.read_buf(&mut conn.rbuf)).await {
                    Ok(Ok(n)) if n > 0 => {}
                    _ => return Outcome::Done,
                }
            }
            let n = discard.min(conn.rbuf.len() as u64);
            let _ = conn.rbuf.split_to(n as usize);
            discard -= n;
        }
    }
}

/// Answers a request that cannot be served, and closes.
async fn refuse<I: ServerIo>(io: &mut I, status: StatusCode, why: &str) {
    let mut w = Vec::with_capacity(128);
    w.extend_from_slice(b"HTTP/1.1 ");
    w.extend_from_slice(status.as_str().as_bytes());
    w.push(b' ');
    w.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    w.extend_from_slice(b"\r\ncontent-type: text/plain\r\nconnection: close\r\ncontent-length: ");
    push_decimal(&mut w, why.len() as u64 + 1);
    w.extend_from_slice(b"\r\ndate: ");
    push_date(&mut w);
    w.extend_from_slice(b"\r\n\r\n");
    w.extend_from_slice(why.as_bytes());
    w.push(b'\n');
    let _ = io.write_all(&w).await;
    let _ = io.shutdown().await;
}

/// Reads and drops what the client still sends (up to 2 s and 8 MiB) before closing, so
/// that a close with unread data, a reset, does not destroy the answer it has not yet
/// read.
async fn lingering_close<I: ServerIo>(io: &mut I) {
    let _ = io.shutdown().await;
    let mut sink = vec![0u8; 16 * 1024];
    let mut total = 0usize;
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while total < 8 << 20 {
            match io.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    })
    .await;
}

/// A client that takes none of an answer for this long is given up on (nginx's
/// `send_timeout`).
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);

/// Writes all of `buf`. The usual write completes at once and arms no timer; one the
/// client's window holds up waits at most [`WRITE_TIMEOUT`].
async fn send_all<I: ServerIo>(io: &mut I, buf: &[u8]) -> Result<(), ()> {
    let mut write = std::pin::pin!(io.write_all(buf));
    let at_once = poll_fn(|cx| match write.as_mut().poll(cx) {
        Poll::Ready(r) => Poll::Ready(Some(r)),
        Poll::Pending => Poll::Ready(None),
    })
    .await;
    match at_once {
        Some(r) => r.map_err(drop),
        None => match tokio::time::timeout(WRITE_TIMEOUT, write).await {
            Ok(r) => r.map_err(drop),
            Err(_) => Err(()),
        },
    }
}

/// How a response body is delimited on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    None,
    Length(u64),
    Chunked,
    Close,
}

/// A frame if the body has one ready now (without registering interest otherwise).
fn frame_now(body: &mut Body) -> Option<Option<Result<Frame<Bytes>, body::BoxError>>> {
    let mut cx = Context::from_waker(std::task::Waker::noop());
    match Pin::new(body).poll_frame(&mut cx) {
        Poll::Ready(f) => Some(f),
        Poll::Pending => None,
    }
}

/// Writes an answer (its fields from the head as the origin wrote it, when that is given,
/// else from its map). `Ok(keep_alive)`; `Err` when the connection must close at once (the
/// client went away, or the body broke off: the client must not see it as complete).
async fn write_response<I: ServerIo>(
    io: &mut I,
    w: &mut Vec<u8>,
    (res, raw): (Response<Body>, Option<RawHead>),
    is_head: bool,
    version: u8,
    keep_alive: bool,
) -> Result<bool, ()> {
    let (mut parts, mut body) = res.into_parts();
    let status = parts.status;
    let no_body = is_head
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let framing = if no_body {
        Framing::None
    } else if let Some(n) = body.size_hint().exact() {
        Framing::Length(n)
    } else if version == 1 {
        Framing::Chunked
    } else {
        Framing::Close
    };
    let keep_alive = keep_alive && framing != Framing::Close;
    let upgrade = status == StatusCode::SWITCHING_PROTOCOLS;
    w.clear();
    w.reserve(512);
    w.extend_from_slice(b"HTTP/1.1 ");
    w.extend_from_slice(status.as_str().as_bytes());
    w.push(b' ');
    w.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    w.extend_from_slice(b"\r\n");
    let mut dated = false;
    let mut has_length = false;
    if let Some(raw) = &raw {
        // (Hop-by-hop fields were left out as the head was read, and `Content-Length`
        // is kept aside.)
        for (name, value) in raw.fields() {
            w.extend_from_slice(name);
            w.extend_from_slice(b": ");
            w.extend_from_slice(value);
            w.extend_from_slice(b"\r\n");
        }
        dated = raw.dated();
        if let Some(length) = raw.length() {
            has_length = true;
            // The length a GET would have had, for an answer without a body.
            if let (true, Ok(n)) = (no_body, length) {
                w.extend_from_slice(b"content-length: ");
                push_decimal(w, n);
                w.extend_from_slice(b"\r\n");
            }
        }
    }
    drop(raw);
    for (name, value) in &parts.headers {
        if *name == header::CONTENT_LENGTH {
            has_length = true;
            if !no_body {
                continue; // the body's own length is written below
            }
        } else if *name == header::TRANSFER_ENCODING
            || (*name == header::CONNECTION && !upgrade)
            || *name == crate::codec::KEEP_ALIVE
        {
            continue;
        } else if *name == header::DATE {
            dated = true;
        }
        w.extend_from_slice(name.as_str().as_bytes());
        w.extend_from_slice(b": ");
        w.extend_from_slice(value.as_bytes());
        w.extend_from_slice(b"\r\n");
    }
    crate::codec::give_header_map(std::mem::take(&mut parts.headers));
    match framing {
        Framing::Length(n) => {
            w.extend_from_slice(b"content-length: ");
            push_decimal(w, n);
            w.extend_from_slice(b"\r\n");
        }
        Framing::Chunked => w.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        // HEAD: the length a GET would have had, when the answer does not say it and the
        // body knows it (an empty body says nothing: a proxied HEAD answer has none).
        Framing::None if is_head && !has_length => {
            if let Some(n) = body.size_hint().exact().filter(|&n| n > 0) {
                w.extend_from_slice(b"content-length: ");
                push_decimal(w, n);
                w.extend_from_slice(b"\r\n");
            }
        }
        Framing::None | Framing::Close => {}
    }
    if !upgrade {
        if !keep_alive {
            w.extend_from_slice(b"connection: close\r\n");
        } else if version == 0 {
            w.extend_from_slice(b"connection: keep-alive\r\n");
        }
    }
    if !dated {
        w.extend_from_slice(b"date: ");
        push_date(w);
        w.extend_from_slice(b"\r\n");
    }
    w.extend_from_slice(b"\r\n");
    // No body, or one known to be empty (its head is all there is to send).
    if matches!(framing, Framing::None | Framing::Length(0)) {
        send_all(io, w).await?;
        io.flush().await.map_err(drop)?;
        return Ok(keep_alive);
    }
    let mut sent = 0u64;
    loop {
        let next = match frame_now(&mut body) {
            Some(f) => f,
            None => {
                // Nothing more yet: what is written so far goes out meanwhile.
                if !w.is_empty() {
                    send_all(io, w).await?;
                    io.flush().await.map_err(drop)?;
                    w.clear();
                }
                body.frame().await
            }
        };
        let frame = match next {
            None => break,
            Some(Ok(frame)) => frame,
            Some(Err(e)) => {
                // What came is passed on; the close tells the client the rest never will.
                tracing::debug!(error = %e, "response body broke off");
                let _ = send_all(io, w).await;
                return Err(());
            }
        };
        let Ok(data) = frame.into_data() else {
            continue; // trailers are not passed on over HTTP/1.1
        };
        if data.is_empty() {
            continue;
        }
        sent += data.len() as u64;
        if matches!(framing, Framing::Length(n) if sent > n) {
            tracing::warn!("a response body longer than its length: connection closed");
            let _ = send_all(io, w).await;
            return Err(());
        }
        if framing == Framing::Chunked {
            push_hex(w, data.len() as u64);
            w.extend_from_slice(b"\r\n");
        }
        if data.len() <= COALESCE {
            w.extend_from_slice(&data);
        } else {
            send_all(io, w).await?;
            w.clear();
            send_all(io, &data).await?;
        }
        if framing == Framing::Chunked {
            w.extend_from_slice(b"\r\n");
        }
        if w.len() >= 4 * COALESCE {
            send_all(io, w).await?;
            w.clear();
        }
    }
    if matches!(framing, Framing::Length(n) if sent != n) {
        tracing::warn!("a response body shorter than its length: connection closed");
        let _ = send_all(io, w).await;
        return Err(());
    }
    if framing == Framing::Chunked {
        w.extend_from_slice(b"0\r\n\r\n");
    }
    send_all(io, w).await?;
    io.flush().await.map_err(drop)?;
    w.clear();
    Ok(keep_alive)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(raw: &[u8]) -> Result<Option<Head>, Refusal> {
        parse_head(&mut BytesMut::from(raw), &mut Vec::new())
    }

    #[test]
    fn request_heads_parse_and_frame() {
        let h = head(b"POST /a?b=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
            .ok()
            .flatten()
            .unwrap();
        assert_eq!(
            (h.method, h.uri.to_string(), h.version),
            (Method::POST, "/a?b=1".into(), 1)
        );
        assert_eq!(body_left(&h.facts).ok(), Some(BodyLeft::Length(3)));
        assert_eq!(h.facts, Facts::of(&h.headers));
        assert!(
            head(b"GET / HTTP/1.1\r\nHost: x\r\n")
                .ok()
                .unwrap()
                .is_none()
        );
        assert!(head(b"GET / HTTP/1.1\r\nHo st: x\r\n\r\n").is_err());
        let mut h = HeaderMap::new();
        h.insert(header::TRANSFER_ENCODING, "gzip, chunked".parse().unwrap());
        assert_eq!(
            body_left(&Facts::of(&h)).ok(),
            Some(BodyLeft::Chunked(Chunk::Size))
        );
        h.insert(header::CONTENT_LENGTH, "3".parse().unwrap());
        assert!(
            body_left(&Facts::of(&h)).is_err(),
            "both framings: smuggling"
        );
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_LENGTH, "+3".parse().unwrap());
        assert!(body_left(&Facts::of(&h)).is_err(), "a sign is not a digit");
        let mut h = HeaderMap::new();
        h.insert(header::TRANSFER_ENCODING, "gzip".parse().unwrap());
        assert!(body_left(&Facts::of(&h)).is_err());
        let mut h = HeaderMap::new();
        h.append(header::CONTENT_LENGTH, "3".parse().unwrap());
        h.append(header::CONTENT_LENGTH, "4".parse().unwrap());
        assert!(body_left(&Facts::of(&h)).is_err());
    }
}
