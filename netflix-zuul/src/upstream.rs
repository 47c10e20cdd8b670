//! HTTP/1.1 to origin servers, driven by the request's own task.
//!
//! A general-purpose client (hyper-util's) runs every connection as a task of its own and
//! passes requests and responses to it through channels: task wake-ups, a lock and a hash
//! lookup for every request. A proxy knows which server it calls, so here, as in pingora,
//! each server keeps a stack of idle connections, and the request's task checks one out,
//! writes the request, reads the answer and puts the connection back itself. A body that
//! streams carries its connection along and returns it when it has been read to the end;
//! a body dropped before its end closes the connection (its bytes would be out of step).
//!
//! A connection taken from the pool is first checked without a system call (its
//! readiness, which the runtime keeps): one the origin closed while it was idle is
//! dropped. If a reused connection still fails before any byte of the answer, the origin
//! closed it at the same moment (the keep-alive race); an idempotent request with a
//! replayable body is then sent once more on a new connection.

use crate::body::{self, Body};
use crate::codec::{
    Chunk, Decoded, Facts, MAX_HEAD, MAX_HEADERS, Prefixed, RawHead, decode_chunk, push_decimal,
    push_hex,
};
use crate::error::{Error, ErrorKind, ErrorSource};
use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode, Version, header};
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt as _;
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::future::Future as _;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// The least room made in the read buffer before a read.
const READ_ROOM: usize = 8 * 1024;
/// Bodies up to this size are copied behind the request head: one write.
const COALESCE: usize = 16 * 1024;

/// A request to send: the head's parts (borrowed: every attempt of a request sends the
/// same ones, with no copy) and its body.
pub(crate) struct Outgoing<'a> {
    pub(crate) method: &'a Method,
    pub(crate) path: &'a http::uri::PathAndQuery,
    pub(crate) headers: &'a HeaderMap,
    pub(crate) body: OutBody,
    /// What the proxy changes as the head is written.
    pub(crate) proxying: Proxying,
    /// Nothing will look at the answer's fields: its head comes back as a [`RawHead`],
    /// with no header map built.
    pub(crate) raw_answer: bool,
}

/// An origin's answer: the response, and its head as it came when that was asked for
/// (the response's header map is then empty).
pub(crate) type Answer = (Response<Body>, Option<RawHead>);

/// What a proxy changes in a request head, done as the head is written rather than in the
/// header map (no field removed or inserted there): hop-by-hop fields are left out (RFC
/// 9110, section 7.6.1: those named in `Connection` too), and `X-Forwarded-Host` and
/// `X-Forwarded-Proto` replace any the client sent.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Proxying {
    /// The request asks to switch protocols: its `Upgrade` goes through, with
    /// `Connection: upgrade`.
    pub(crate) upgrade: bool,
    /// Add `X-Forwarded-Host` (the request's Host) and `X-Forwarded-Proto: http`.
    pub(crate) forwarded: bool,
}

/// A request body: whole (it can be sent again) or streaming.
pub(crate) enum OutBody {
    /// All of it, in memory.
    Full(Bytes),
    /// Read from the client as it is sent on.
    Stream(Body),
}

/// One server's connections: the idle ones, and how to open more.
#[derive(Debug, Clone)]
pub(crate) struct Pool(Arc<PoolInner>);

#[derive(Debug)]
struct PoolInner {
    addr: SocketAddr,
    /// The `Host` of requests that have none.
    host: HeaderValue,
    /// Idle connections in shards, one a thread (by [`shard`]), the most recently used
    /// at the back of each: a thread takes back the connections it used last, so a
    /// socket stays warm in one core's caches and no lock is fought over. A thread whose
    /// shard is empty takes from the others. A connection opened by a thread that keeps
    /// to its own (see [`keep_connections_local`]) is used by that thread only.
    idle: Box<[Shard]>,
    /// No connection is kept idle while this many or more are open.
    max_idle: usize,
    /// Connections open now (idle or in use).
    open: Arc<AtomicUsize>,
    idle_timeout: Duration,
    connect_timeout: Duration,
    opened: AtomicU64,
}

/// One shard of a pool's idle connections, on a cache line of its own.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Shard {
    idle: Mutex<VecDeque<(Box<Conn>, Instant)>>,
}

/// Shards a pool has (threads beyond share them).
const SHARDS: usize = 8;

thread_local! {
    /// This thread's shard of every pool.
    static SHARD: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
    /// Set when this thread keeps to its own origin connections (a `Workers` thread: its
    /// connections are registered with its own runtime, which another thread's would not
    /// poll while it is busy): the owner its connections are marked with. 0 otherwise.
    static OWNER: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Who may use the connections the calling thread opens: itself only, or (0) any thread.
pub(crate) fn owner() -> u64 {
    OWNER.with(std::cell::Cell::get)
}

/// The calling thread's shard.
fn shard() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    SHARD.with(|s| match s.get() {
        Some(i) => i,
        None => {
            let i = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
            s.set(Some(i));
            i
        }
    })
}

/// Makes the calling thread use only the origin connections it opened itself (for
/// threads that each run a runtime of their own).
pub(crate) fn keep_connections_local() {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    OWNER.with(|o| {
        if o.get() == 0 {
            o.set(NEXT.fetch_add(1, Ordering::Relaxed));
        }
    });
}

/// Counts a connection among its pool's open ones while it lives.
#[derive(Debug)]
struct Counted(Arc<AtomicUsize>);

impl Counted {
    fn new(open: &Arc<AtomicUsize>) -> Self {
        open.fetch_add(1, Ordering::Relaxed);
        Self(open.clone())
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A connection and its buffers, which it keeps from one request to the next.
#[derive(Debug)]
struct Conn {
    io: TcpStream,
    rbuf: BytesMut,
    wbuf: Vec<u8>,
    /// Where the last head's fields were (kept to spare an allocation a response).
    spans: Vec<[u32; 4]>,
    /// The exchange's timeout, set again for each (moving a deadline later costs the
    /// runtime's timer wheel nothing, where a new timer a request would register one).
    timer: Pin<Box<tokio::time::Sleep>>,
    /// Who may use it (see [`owner`]).
    owner: u64,
    /// When its last exchange began: it has been idle since no earlier than that (a bound
    /// taken from the time read for the request, not from another clock read on return).
    used: Instant,
    _open: Counted,
}

/// A failed exchange, and whether it may go again on a new connection.
struct Failed {
    error: Error,
    /// Nothing of an answer arrived and the request may safely be sent again.
    stale: bool,
}

impl Conn {
    /// Whether the connection is still open with nothing unread, as far as the runtime
    /// knows: no system call unless it has seen the socket become readable.
    fn alive(&self) -> bool {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match self.io.poll_read_ready(&mut cx) {
            Poll::Pending => true,
            Poll::Ready(Err(_)) => false,
            // Readable: the origin closed it, sent something unasked, or the readiness is
            // left over from the last answer. One look tells which.
            Poll::Ready(Ok(())) => {
                let mut probe = [0u8; 1];
                matches!(self.io.try_read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
            }
        }
    }

    /// Reads what is there into the read buffer; `Ok(0)` at the end of the stream.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<usize>> {
        if self.rbuf.capacity() - self.rbuf.len() < READ_ROOM / 2 {
            self.rbuf.reserve(READ_ROOM);
        }
        std::pin::pin!(self.io.read_buf(&mut self.rbuf)).poll(cx)
    }
}

impl Pool {
    /// A pool for the server at `addr`.
    pub(crate) fn new(
        addr: SocketAddr,
        max_idle: usize,
        idle_timeout: Duration,
        connect_timeout: Duration,
    ) -> Self {
        let host = HeaderValue::from_str(&addr.to_string()).expect("an address is a header value");
        Self(Arc::new(PoolInner {
            addr,
            host,
            idle: (0..SHARDS).map(|_| Shard::default()).collect(),
            max_idle,
            open: Arc::default(),
            idle_timeout,
            connect_timeout,
            opened: AtomicU64::new(0),
        }))
    }

    /// Connections opened so far.
    pub(crate) fn opened(&self) -> u64 {
        self.0.opened.load(Ordering::Relaxed)
    }

    /// Idle connections now.
    pub(crate) fn idle(&self) -> usize {
        self.0.idle.iter().map(|s| s.idle.lock().len()).sum()
    }

    /// Closes idle connections that have been idle too long or that the origin closed.
    pub(crate) fn sweep(&self) {
        let now = Instant::now();
        let mut closed = 0;
        for shard in &self.0.idle {
            let dropped: Vec<Box<Conn>> = {
                let mut idle = shard.idle.lock();
                let (keep, drop): (VecDeque<_>, VecDeque<_>) =
                    idle.drain(..).partition(|(c, since)| {
                        now.duration_since(*since) < self.0.idle_timeout && c.alive()
                    });
                *idle = keep;
                drop.into_iter().map(|(c, _)| c).collect()
            };
            closed += dropped.len();
        }
        if closed > 0 {
            tracing::debug!(server = %self.0.addr, closed, "idle origin connections closed");
        }
    }

    /// An idle connection that is still open and that this thread may use, if there is
    /// one (`now` is the time): from this thread's shard first, then (for a thread that
    /// does not keep to its own) from the others.
    fn checkout(&self, now: Instant) -> Option<Box<Conn>> {
        let (own, me) = (shard(), owner());
        if let Some(c) = self.checkout_from(own, now, me) {
            return Some(c);
        }
        if me != 0 {
            return None; // its connections are all in its own shard
        }
        (1..SHARDS).find_map(|i| self.checkout_from((own + i) % SHARDS, now, me))
    }

    fn checkout_from(&self, shard: usize, now: Instant, me: u64) -> Option<Box<Conn>> {
        let mut idle = self.0.idle[shard].idle.lock();
        // The oldest are at the front: those past the idle timeout go first.
        while idle
            .front()
            .is_some_and(|(_, since)| now.duration_since(*since) >= self.0.idle_timeout)
        {
            idle.pop_front();
        }
        // The most recently used of those it may use (threads share a shard only when
        // there are more of them than shards).
        let mut i = idle.len();
        while i > 0 {
            i -= 1;
            if idle[i].0.owner != me {
                continue;
            }
            let (conn, _) = idle.remove(i)?;
            if conn.alive() {
                return Some(conn);
            }
        }
        None
    }

    fn checkin(&self, conn: Box<Conn>) {
        if !conn.rbuf.is_empty() {
            return; // bytes nobody asked for: the connection is out of step
        }
        // (A load of a counter that changes only as connections open and close.)
        if self.0.open.load(Ordering::Relaxed) > self.0.max_idle {
            return; // more are open than the cap: this one closes
        }
        // Idle since its exchange began, at the latest (an exchange longer than the idle
        // timeout has it closed early, never kept too long).
        let since = conn.used;
        self.0.idle[shard()].idle.lock().push_back((conn, since));
    }

    async fn connect(&self) -> Result<Box<Conn>, Error> {
        let addr = self.0.addr;
        let connect_error = |what: String| {
            Error::new(
                ErrorKind::Connect,
                ErrorSource::Upstream,
                format!("connecting to {addr}: {what}"),
            )
        };
        let io = match tokio::time::timeout(self.0.connect_timeout, TcpStream::connect(addr)).await
        {
            Ok(Ok(io)) => io,
            Ok(Err(e)) => return Err(connect_error(e.to_string()).with_cause(e)),
            Err(_) => {
                return Err(connect_error(format!(
                    "no answer in {:?}",
                    self.0.connect_timeout
                )));
            }
        };
        let _ = io.set_nodelay(true);
        self.0.opened.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        Ok(Box::new(Conn {
            io,
            rbuf: BytesMut::with_capacity(READ_ROOM),
            wbuf: Vec::with_capacity(1024),
            spans: Vec::with_capacity(16),
            timer: Box::pin(tokio::time::sleep_until(now)),
            owner: owner(),
            used: now,
            _open: Counted::new(&self.0.open),
        }))
    }

    /// Sends `req` and reads the answer's head (and a body of up to `small` bytes whole),
    /// within `timeout` of writing the request.
    pub(crate) async fn send(
        &self,
        req: Outgoing<'_>,
        small: u64,
        (started, timeout, deadline): (Instant, Duration, Instant),
    ) -> Result<Answer, Error> {
        let Outgoing {
            method,
            path,
            headers,
            body,
            proxying,
            raw_answer,
        } = req;
        let idempotent = crate::proxy::idempotent(method);
        let mut body = body;
        // The time (read by the caller as it started the attempt; again for a second try).
        let mut now = started;
        loop {
            let (conn, reused) = match self.checkout(now) {
                Some(c) => (c, true),
                // Boxed for the same reason: connections are opened rarely.
                None => {
                    let c = Box::pin(self.connect()).await?;
                    // The read timeout counts from the request, not from before the
                    // connection was made.
                    now = Instant::now();
                    (c, false)
                }
            };
            // A whole body stays for another try; a stream can go only once.
            let (this_body, again) = match body {
                OutBody::Full(b) => (OutBody::Full(b.clone()), Some(b)),
                stream => (stream, None),
            };
            match self
                .exchange(
                    conn,
                    (method, path, headers, proxying),
                    this_body,
                    (small, now, timeout, deadline, raw_answer),
                )
                .await
            {
                Ok(res) => return Ok(res),
                Err(f) if f.stale && reused && idempotent => match again {
                    Some(b) => {
                        tracing::debug!(server = %self.0.addr, error = %f.error, "a pooled connection was closed under the request; sending it on a new one");
                        body = OutBody::Full(b);
                        now = Instant::now();
                    }
                    None => return Err(f.error),
                },
                Err(f) => return Err(f.error),
            }
        }
    }

    async fn exchange(
        &self,
        mut conn: Box<Conn>,
        (method, path, headers, proxying): (
            &Method,
            &http::uri::PathAndQuery,
            &HeaderMap,
            Proxying,
        ),
        body: OutBody,
        (small, now, timeout, deadline, raw): (u64, Instant, Duration, Instant, bool),
    ) -> Result<Answer, Failed> {
        let addr = self.0.addr;
        conn.used = now;
        conn.timer.as_mut().reset(now + timeout);
        let timed_out = || Failed {
            error: Error::new(
                ErrorKind::ReadTimeout,
                ErrorSource::Upstream,
                format!("origin server {addr} did not answer in {timeout:?}"),
            ),
            stale: false,
        };
        conn.wbuf.clear();
        let mut early = false;
        let head = match body {
            OutBody::Full(b) => {
                encode_head(
                    &mut conn.wbuf,
                    (method, path, headers, proxying),
                    &self.0.host,
                    Framing::Full(b.len()),
                );
                let written = if b.len() <= COALESCE {
                    conn.wbuf.extend_from_slice(&b);
                    conn.io.write_all(&conn.wbuf).await
                } else {
                    match conn.io.write_all(&conn.wbuf).await {
                        Ok(()) => conn.io.write_all(&b).await,
                        e => e,
                    }
                };
                if let Err(e) = written {
                    // Nothing was answered, and an origin that closed will not act on
                    // half a request.
                    return Err(Failed {
                        error: reset(addr, "writing the request", e),
                        stale: true,
                    });
                }
                before(
                    read_head(&mut conn.io, &mut conn.rbuf, &mut conn.spans, addr, raw),
                    conn.timer.as_mut(),
                    timed_out,
                )
                .await?
            }
            OutBody::Stream(b) => {
                let declared = body::content_length(headers);
                let framing = match declared {
                    Some(_) => Framing::Declared,
                    None => Framing::Chunked,
                };
                encode_head(
                    &mut conn.wbuf,
                    (method, path, headers, proxying),
                    &self.0.host,
                    framing,
                );
                if let Err(e) = conn.io.write_all(&conn.wbuf).await {
                    return Err(Failed {
                        error: reset(addr, "writing the request", e),
                        stale: false,
                    });
                }
                // The answer may come before the body has all gone (an origin refusing an
                // upload): it is read while the body is sent, and wins.
                let (mut rd, mut wr) = conn.io.split();
                let (rbuf, spans, wbuf) = (&mut conn.rbuf, &mut conn.spans, &mut conn.wbuf);
                let timer = &mut conn.timer;
                let exchange = async {
                    let send = send_body(&mut wr, b, declared, wbuf, addr);
                    let recv = read_head(&mut rd, rbuf, spans, addr, raw);
                    tokio::pin!(send, recv);
                    // The upload may take what the request's deadline leaves (a client
                    // sends at its own pace); the read timeout counts from its end.
                    timer.as_mut().reset(deadline);
                    let sent = tokio::select! {
                        biased;
                        head = &mut recv => return Ok((head?, true)),
                        sent = &mut send => sent,
                        () = timer.as_mut() => {
                            return Err(Failed {
                                error: Error::new(
                                    ErrorKind::Deadline,
                                    ErrorSource::Downstream,
                                    "the upload did not end within the request's deadline",
                                ),
                                stale: false,
                            });
                        }
                    };
                    timer.as_mut().reset(Instant::now() + timeout);
                    match sent {
                        Ok(()) => before(recv.as_mut(), timer.as_mut(), timed_out)
                            .await
                            .map(|h| (h, false)),
                        Err(e) if e.error_source() == ErrorSource::Downstream => Err(Failed {
                            error: e,
                            stale: false,
                        }),
                        // The origin stopped reading: its answer may still be there.
                        Err(e) => match before(recv.as_mut(), timer.as_mut(), timed_out).await {
                            Ok(head) => Ok((head, true)),
                            Err(_) => Err(Failed {
                                error: e,
                                stale: false,
                            }),
                        },
                    }
                };
                // Boxed: uploads are rare, and their state would make every exchange's
                // future larger (and costlier to move).
                let (head, answered_early) = Box::pin(exchange).await?;
                early = answered_early;
                head
            }
        };
        let Head {
            status,
            version,
            headers: res_headers,
            raw,
            facts,
        } = head;
        let mut res = Response::new(body::empty());
        *res.status_mut() = status;
        *res.version_mut() = Version::HTTP_11;
        // Both framings in one answer may be an attempt to desynchronise the connection:
        // it is read by Transfer-Encoding and not used again.
        let keep_alive = !early
            && facts.keep_alive(version)
            && !(facts.transfer_encoding && facts.length.is_some());
        let framing = body_framing(method, status, &facts).map_err(|error| Failed {
            error,
            stale: false,
        })?;
        *res.headers_mut() = res_headers;
        if status == StatusCode::SWITCHING_PROTOCOLS {
            let pre = conn.rbuf.split().freeze();
            res.extensions_mut()
                .insert(UpgradedSlot(Arc::new(Mutex::new(Some(Upgraded {
                    io: conn.io,
                    pre,
                })))));
            return Ok((res, raw));
        }
        let keep_alive = keep_alive && !matches!(framing, BodyFraming::Close);
        match framing {
            BodyFraming::Empty => {
                if keep_alive {
                    self.checkin(conn);
                }
                Ok((res, raw))
            }
            BodyFraming::Length(n) if n <= small || n <= conn.rbuf.len() as u64 => {
                let Conn {
                    io, rbuf, timer, ..
                } = &mut *conn;
                let whole = async {
                    while (rbuf.len() as u64) < n {
                        if rbuf.capacity() - rbuf.len() < READ_ROOM / 2 {
                            rbuf.reserve(READ_ROOM);
                        }
                        if let Ok(0) | Err(_) = io.read_buf(rbuf).await {
                            return Err(Failed {
                                error: Error::new(
                                    ErrorKind::BrokenBody,
                                    ErrorSource::Upstream,
                                    format!(
                                        "origin server {addr} broke off its body ({} of {n} bytes)",
                                        rbuf.len()
                                    ),
                                ),
                                stale: false,
                            });
                        }
                    }
                    Ok(())
                };
                before(whole, timer.as_mut(), timed_out).await?;
                let b = conn.rbuf.split_to(n as usize).freeze();
                if keep_alive {
                    self.checkin(conn);
                }
                *res.body_mut() = body::full(b);
                Ok((res, raw))
            }
            framing => {
                let state = match framing {
                    BodyFraming::Length(n) => State::Length(n),
                    BodyFraming::Chunked => State::Chunked(Chunk::Size),
                    _ => State::Close,
                };
                *res.body_mut() = body::boxed(UpstreamBody {
                    idle: timeout,
                    waiting: false,
                    conn: Some(conn),
                    pool: self.clone(),
                    state,
                    keep_alive,
                });
                Ok((res, raw))
            }
        }
    }
}

/// `fut`, unless `timer` fires first.
async fn before<T>(
    fut: impl std::future::Future<Output = Result<T, Failed>>,
    timer: Pin<&mut tokio::time::Sleep>,
    timed_out: impl FnOnce() -> Failed,
) -> Result<T, Failed> {
    tokio::select! {
        biased;
        r = fut => r,
        () = timer => Err(timed_out()),
    }
}

fn reset(addr: SocketAddr, doing: &str, e: std::io::Error) -> Error {
    Error::new(
        ErrorKind::Reset,
        ErrorSource::Upstream,
        format!("origin server {addr}: {e} while {doing}"),
    )
    .with_cause(e)
}

/// How the request body is framed.
#[derive(Clone, Copy)]
enum Framing {
    /// A body in memory of this length.
    Full(usize),
    /// A stream of the declared `Content-Length` (which the head carries).
    Declared,
    /// A stream of unknown length.
    Chunked,
}

/// Writes a request head: the fields of `headers` as `proxying` says (see [`Proxying`]),
/// `host` when the request has none, and the framing of the body.
fn encode_head(
    w: &mut Vec<u8>,
    (method, path, headers, proxying): (&Method, &http::uri::PathAndQuery, &HeaderMap, Proxying),
    host: &HeaderValue,
    framing: Framing,
) {
    use crate::codec::{HOP_BY_HOP_STANDARD, KEEP_ALIVE, X_FORWARDED_HOST, X_FORWARDED_PROTO};
    w.extend_from_slice(method.as_str().as_bytes());
    w.push(b' ');
    w.extend_from_slice(path.as_str().as_bytes());
    w.extend_from_slice(b" HTTP/1.1\r\n");
    let fields_at = w.len();
    // Fields that `Connection` names are hop-by-hop too. Its usual options name none, so
    // the list is made only when it names some, and then the fields are written again.
    let mut named: Vec<HeaderName> = Vec::new();
    let mut had_length = false;
    let mut request_host = None;
    'fields: loop {
        for (name, value) in headers {
            if HOP_BY_HOP_STANDARD.contains(name) || *name == KEEP_ALIVE {
                if proxying.upgrade && *name == header::UPGRADE {
                    push_field(w, name, value.as_bytes());
                } else if *name == header::CONNECTION && named.is_empty() {
                    let mut listed = connection_names(value.as_bytes()).peekable();
                    if listed.peek().is_some() {
                        named = headers
                            .get_all(header::CONNECTION)
                            .iter()
                            .flat_map(|v| connection_names(v.as_bytes()))
                            .collect();
                        w.truncate(fields_at);
                        (had_length, request_host) = (false, None);
                        continue 'fields;
                    }
                }
                continue;
            }
            if *name == header::CONTENT_LENGTH {
                had_length = true;
                if !matches!(framing, Framing::Declared) {
                    continue;
                }
            } else if *name == header::HOST {
                request_host = Some(value);
            } else if proxying.forwarded
                && (*name == X_FORWARDED_HOST || *name == X_FORWARDED_PROTO)
                || named.contains(name)
            {
                continue;
            }
            push_field(w, name, value.as_bytes());
        }
        break;
    }
    if request_host.is_none() {
        // First, where it is expected (rare: the proxy gives every request its Host).
        let line = [b"host: ", host.as_bytes(), b"\r\n"].concat();
        w.splice(fields_at..fields_at, line);
    }
    if proxying.upgrade {
        w.extend_from_slice(b"connection: upgrade\r\n");
    }
    if proxying.forwarded {
        if let Some(h) = request_host {
            push_field(w, &X_FORWARDED_HOST, h.as_bytes());
        }
        w.extend_from_slice(b"x-forwarded-proto: http\r\n");
    }
    match framing {
        Framing::Full(n) if n > 0 || had_length => {
            w.extend_from_slice(b"content-length: ");
            push_decimal(w, n as u64);
            w.extend_from_slice(b"\r\n");
        }
        Framing::Chunked => w.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        _ => {}
    }
    w.extend_from_slice(b"\r\n");
}

/// The field names in a `Connection` value (its options, such as `close`, left out).
fn connection_names(value: &[u8]) -> impl Iterator<Item = HeaderName> + '_ {
    value
        .split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|t| !crate::codec::is_connection_option(t))
        .filter_map(|t| HeaderName::from_bytes(t).ok())
}

fn push_field(w: &mut Vec<u8>, name: &HeaderName, value: &[u8]) {
    w.extend_from_slice(name.as_str().as_bytes());
    w.extend_from_slice(b": ");
    w.extend_from_slice(value);
    w.extend_from_slice(b"\r\n");
}

/// Sends a streamed request body, framed by its declared length or chunked.
async fn send_body<W: AsyncWrite + Unpin>(
    w: &mut W,
    mut body: Body,
    declared: Option<u64>,
    scratch: &mut Vec<u8>,
    addr: SocketAddr,
) -> Result<(), Error> {
    let client_broke = |e: crate::body::BoxError| {
        Error::new(
            ErrorKind::Reset,
            ErrorSource::Downstream,
            "the client's body broke off",
        )
        .with_cause(e)
    };
    let mut sent = 0u64;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.map_err(client_broke)?.into_data() else {
            continue; // trailers of a request are not passed on
        };
        if data.is_empty() {
            continue;
        }
        sent += data.len() as u64;
        if declared.is_some_and(|d| sent > d) {
            return Err(Error::new(
                ErrorKind::Reset,
                ErrorSource::Downstream,
                "the client sent more than its Content-Length",
            ));
        }
        let written = if declared.is_some() {
            w.write_all(&data).await
        } else {
            scratch.clear();
            push_hex(scratch, data.len() as u64);
            scratch.extend_from_slice(b"\r\n");
            if data.len() <= COALESCE {
                scratch.extend_from_slice(&data);
                scratch.extend_from_slice(b"\r\n");
                w.write_all(scratch).await
            } else {
                match w.write_all(scratch).await {
                    Ok(()) => match w.write_all(&data).await {
                        Ok(()) => w.write_all(b"\r\n").await,
                        e => e,
                    },
                    e => e,
                }
            }
        };
        written.map_err(|e| reset(addr, "sending the request body", e))?;
    }
    if let Some(d) = declared {
        if sent != d {
            return Err(Error::new(
                ErrorKind::Reset,
                ErrorSource::Downstream,
                format!("the client's body ended after {sent} of {d} bytes"),
            ));
        }
    } else {
        w.write_all(b"0\r\n\r\n")
            .await
            .map_err(|e| reset(addr, "ending the request body", e))?;
    }
    Ok(())
}

/// A parsed response head.
struct Head {
    status: StatusCode,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    version: u8,
    /// Empty when the head is kept as it came.
    headers: HeaderMap,
    raw: Option<RawHead>,
    facts: Facts,
}

/// Reads a final response head (1xx answers other than 101 are skipped).
async fn read_head<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut BytesMut,
    spans: &mut Vec<[u32; 4]>,
    addr: SocketAddr,
    raw: bool,
) -> Result<Head, Failed> {
    let mut got_bytes = false;
    loop {
        if !buf.is_empty() {
            got_bytes = true;
            match parse_head(buf, spans, raw) {
                Ok(Some(head))
                    if head.status.is_informational()
                        && head.status != StatusCode::SWITCHING_PROTOCOLS =>
                {
                    continue;
                }
                Ok(Some(head)) => return Ok(head),
                Ok(None) if buf.len() >= MAX_HEAD => {
                    return Err(Failed {
                        error: bad_response(addr, "a response head over 64 KiB"),
                        stale: false,
                    });
                }
                Ok(None) => {}
                Err(error) => {
                    return Err(Failed {
                        error,
                        stale: false,
                    });
                }
            }
        }
        if buf.capacity() - buf.len() < READ_ROOM / 2 {
            buf.reserve(READ_ROOM);
        }
        match r.read_buf(buf).await {
            Ok(0) => {
                return Err(Failed {
                    error: Error::new(
                        // Once the origin has started answering, it has acted on the
                        // request: only an idempotent one may go again.
                        if got_bytes {
                            ErrorKind::BrokenBody
                        } else {
                            ErrorKind::Reset
                        },
                        ErrorSource::Upstream,
                        format!(
                            "origin server {addr} closed the connection before {}",
                            if got_bytes {
                                "the end of its response head"
                            } else {
                                "answering"
                            }
                        ),
                    ),
                    stale: !got_bytes,
                });
            }
            Ok(_) => {}
            Err(e) => {
                let mut error = reset(addr, "reading the response", e);
                if got_bytes {
                    error = Error::new(
                        ErrorKind::BrokenBody,
                        ErrorSource::Upstream,
                        format!("origin server {addr} broke off its response head"),
                    )
                    .with_cause(error);
                }
                return Err(Failed {
                    error,
                    stale: !got_bytes,
                });
            }
        }
    }
}

fn bad_response(addr: SocketAddr, what: &str) -> Error {
    Error::new(
        ErrorKind::BrokenBody,
        ErrorSource::Upstream,
        format!("origin server {addr} sent {what}"),
    )
}

/// Parses a response head at the start of `buf` and takes it off; `Ok(None)` while it is
/// incomplete. With `raw`, a final answer's head is kept as it came (a protocol switch's
/// is parsed into a map: the gateway looks at it).
fn parse_head(
    buf: &mut BytesMut,
    spans: &mut Vec<[u32; 4]>,
    raw: bool,
) -> Result<Option<Head>, Error> {
    // Uninitialised slots: zeroing 100 of them would cost more than the parse.
    let mut slots = [std::mem::MaybeUninit::<httparse::Header<'_>>::uninit(); MAX_HEADERS];
    let mut res = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut res, buf, &mut slots);
    let len = match parsed {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => {
            return Err(Error::new(
                ErrorKind::BrokenBody,
                ErrorSource::Upstream,
                format!("origin sent a bad response head: {e}"),
            ));
        }
    };
    let status = StatusCode::from_u16(res.code.unwrap_or(0)).map_err(|e| {
        Error::new(
            ErrorKind::BrokenBody,
            ErrorSource::Upstream,
            "origin sent a bad status",
        )
        .with_cause(e)
    })?;
    let version = res.version.unwrap_or(1);
    // Where each field is, so that the values can share the head's memory once the
    // parser's borrow of the buffer ends.
    let spans_taken = crate::codec::spans(res.headers, buf, spans);
    let head = buf.split_to(len).freeze();
    if raw && !status.is_informational() {
        let (raw, facts) = RawHead::new(head, spans_taken);
        return Ok(Some(Head {
            status,
            version,
            headers: HeaderMap::new(),
            raw: Some(raw),
            facts,
        }));
    }
    // A proxy forwards no hop-by-hop field, so they are left out here, where they cost
    // nothing, rather than removed later; a protocol switch keeps its `Upgrade`.
    let hop_by_hop = if status == StatusCode::SWITCHING_PROTOCOLS {
        crate::codec::HopByHop::Keep
    } else {
        crate::codec::HopByHop::Drop
    };
    let (headers, facts) =
        crate::codec::headers(&head, spans_taken, 0, hop_by_hop).map_err(|what| {
            Error::new(
                ErrorKind::BrokenBody,
                ErrorSource::Upstream,
                format!("origin sent {what}"),
            )
        })?;
    Ok(Some(Head {
        status,
        version,
        headers,
        raw: None,
        facts,
    }))
}

/// How a response body is delimited (RFC 9112, section 6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyFraming {
    Empty,
    Length(u64),
    Chunked,
    /// Until the origin closes the connection.
    Close,
}

fn body_framing(method: &Method, status: StatusCode, facts: &Facts) -> Result<BodyFraming, Error> {
    if *method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Ok(BodyFraming::Empty);
    }
    if facts.transfer_encoding {
        // Chunked only when it is the last coding; otherwise the body runs to the close.
        return Ok(if facts.chunked_last {
            BodyFraming::Chunked
        } else {
            BodyFraming::Close
        });
    }
    match facts.length {
        Some(Ok(0)) => Ok(BodyFraming::Empty),
        Some(Ok(n)) => Ok(BodyFraming::Length(n)),
        None => Ok(BodyFraming::Close),
        Some(Err(())) => Err(Error::new(
            ErrorKind::BrokenBody,
            ErrorSource::Upstream,
            "origin sent an invalid or conflicting Content-Length",
        )),
    }
}

/// Where a streamed response body is.
#[derive(Debug, Clone, Copy)]
enum State {
    Length(u64),
    Chunked(Chunk),
    Close,
    Done,
}

/// A response body read from its connection as the client takes it.
#[derive(Debug)]
struct UpstreamBody {
    conn: Option<Box<Conn>>,
    pool: Pool,
    state: State,
    keep_alive: bool,
    /// How long the origin may send nothing before the body is given up.
    idle: Duration,
    /// Whether the connection's timer is set for the current wait.
    waiting: bool,
}

impl UpstreamBody {
    /// The body ended: the connection goes back to the pool if it may.
    fn finish(&mut self) {
        self.state = State::Done;
        if let Some(conn) = self.conn.take() {
            if self.keep_alive {
                self.pool.checkin(conn);
            }
        }
    }

    fn broken(&mut self, what: String) -> Error {
        self.conn = None;
        self.state = State::Done;
        Error::new(
            ErrorKind::BrokenBody,
            ErrorSource::Upstream,
            format!("origin server {} {what}", self.pool.0.addr),
        )
    }
}

impl http_body::Body for UpstreamBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = self.get_mut();
        loop {
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(None);
            };
            match this.state {
                State::Done => return Poll::Ready(None),
                State::Length(0) => {
                    this.finish();
                    return Poll::Ready(None);
                }
                State::Length(rem) if !conn.rbuf.is_empty() => {
                    let n = rem.min(conn.rbuf.len() as u64);
                    let data = conn.rbuf.split_to(n as usize).freeze();
                    this.state = State::Length(rem - n);
                    if rem == n {
                        // The end: hyper may not ask again once the size says so.
                        this.finish();
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                State::Close if !conn.rbuf.is_empty() => {
                    return Poll::Ready(Some(Ok(Frame::data(conn.rbuf.split().freeze()))));
                }
                State::Chunked(mut chunk) => {
                    let decoded = decode_chunk(&mut conn.rbuf, &mut chunk);
                    this.state = State::Chunked(chunk);
                    match decoded {
                        Ok(Decoded::Data(data)) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                        Ok(Decoded::Trailers(t)) => {
                            this.finish();
                            return Poll::Ready(Some(Ok(Frame::trailers(t))));
                        }
                        Ok(Decoded::End) => {
                            this.finish();
                            return Poll::Ready(None);
                        }
                        Ok(Decoded::More) => {}
                        Err(what) => {
                            let e = this.broken(format!("sent {what}"));
                            return Poll::Ready(Some(Err(e)));
                        }
                    }
                }
                State::Length(_) | State::Close => {}
            }
            // More bytes are needed.
            let filled = match conn.poll_fill(cx) {
                Poll::Ready(r) => {
                    this.waiting = false;
                    r
                }
                Poll::Pending => {
                    // The origin must keep sending: the read timeout counts from the last
                    // bytes that came.
                    if !this.waiting {
                        conn.timer.as_mut().reset(Instant::now() + this.idle);
                        this.waiting = true;
                    }
                    if conn.timer.as_mut().poll(cx).is_ready() {
                        let e = this.broken(format!("sent nothing for {:?}", this.idle));
                        return Poll::Ready(Some(Err(e)));
                    }
                    return Poll::Pending;
                }
            };
            match filled {
                Ok(0) if matches!(this.state, State::Close) => {
                    this.conn = None;
                    this.state = State::Done;
                    return Poll::Ready(None);
                }
                Ok(0) => {
                    let e = this.broken("closed the connection before the end of the body".into());
                    return Poll::Ready(Some(Err(e)));
                }
                Ok(_) => {}
                Err(e) => {
                    let err = this.broken(format!("broke off its body: {e}"));
                    return Poll::Ready(Some(Err(err.with_cause(e))));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.state, State::Done | State::Length(0))
    }

    fn size_hint(&self) -> SizeHint {
        match self.state {
            State::Length(n) => SizeHint::with_exact(n),
            State::Done => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}

/// The origin's side of a protocol switch (101): its connection, with what it sent after
/// the head.
pub(crate) type Upgraded = Prefixed<TcpStream>;

/// Carries an [`Upgraded`] connection in a response's extensions (which must be `Clone`).
#[derive(Debug, Clone)]
pub(crate) struct UpgradedSlot(pub(crate) Arc<Mutex<Option<Upgraded>>>);

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderName;

    /// Runs `f` on a new thread whose shard is `shard`.
    fn on_shard<T: Send + 'static>(shard: usize, f: impl FnOnce() -> T + Send + 'static) -> T {
        std::thread::spawn(move || {
            SHARD.with(|s| s.set(Some(shard)));
            f()
        })
        .join()
        .unwrap()
    }

    /// A server that accepts connections and holds them open, saying nothing.
    async fn holding_server() -> SocketAddr {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((s, _)) = l.accept().await {
                open.push(s);
            }
        });
        addr
    }

    #[tokio::test]
    async fn idle_connections_stay_with_their_thread_unless_another_has_none() {
        let addr = holding_server().await;
        let pool = Pool::new(addr, 8, Duration::from_secs(60), Duration::from_secs(1));
        let (a, b) = (pool.connect().await.unwrap(), pool.connect().await.unwrap());
        let now = Instant::now();
        let p = pool.clone();
        on_shard(0, move || {
            p.checkin(a);
            p.checkin(b);
        });
        assert_eq!(pool.idle(), 2);
        // A thread that keeps to its own connections gets none of another's...
        let p = pool.clone();
        assert!(on_shard(1, move || {
            keep_connections_local();
            p.checkout(now).is_none()
        }));
        // ...one that does not takes one when its own shard is empty...
        let p = pool.clone();
        let taken = on_shard(2, move || p.checkout(now)).expect("taken from shard 0");
        // ...and gets back the one it used last, before anyone else's.
        let p = pool.clone();
        on_shard(2, move || {
            p.checkin(taken);
            let again = p.checkout(now).unwrap();
            assert_eq!(p.0.idle[0].idle.lock().len(), 1, "shard 0's is left alone");
            drop(again);
        });
        assert_eq!(pool.idle(), 1);
        assert_eq!(pool.opened(), 2);
        // A connection opened by a thread that keeps to its own (on a runtime of its own)
        // is used by that thread only: not by another on its shard, nor by a stealer.
        let p = pool.clone();
        let local_owner = on_shard(3, move || {
            keep_connections_local();
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let c = p.connect().await.unwrap();
                p.checkin(c);
            });
            owner()
        });
        assert_ne!(local_owner, 0);
        assert_eq!((pool.idle(), pool.opened()), (2, 3));
        let p = pool.clone();
        on_shard(3, move || {
            let c = p.checkout(now).expect("the shared one, from shard 0");
            assert_eq!(c.owner, 0);
            p.checkin(c);
        });
        let p = pool.clone();
        let c = on_shard(4, move || p.checkout(now)).expect("the shared one, from shard 3");
        assert_eq!(c.owner, 0);
        let p = pool.clone();
        assert!(
            on_shard(4, move || p.checkout(now).is_none()),
            "not the local one"
        );
        assert_eq!(pool.idle(), 1);
    }

    #[tokio::test]
    async fn no_connection_is_kept_idle_beyond_the_cap() {
        let addr = holding_server().await;
        let pool = Pool::new(addr, 2, Duration::from_secs(60), Duration::from_secs(1));
        let mut conns = Vec::new();
        for _ in 0..3 {
            conns.push(pool.connect().await.unwrap());
        }
        // Three open, the cap two: the first back closes, the others stay.
        for c in conns {
            pool.checkin(c);
        }
        assert_eq!(pool.idle(), 2);
        assert_eq!(pool.0.open.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn framing_follows_rfc_9112() {
        let h = |pairs: &[(&str, &str)]| {
            let mut m = HeaderMap::new();
            for (k, v) in pairs {
                m.append(
                    HeaderName::from_bytes(k.as_bytes()).unwrap(),
                    v.parse().unwrap(),
                );
            }
            Facts::of(&m)
        };
        let get = Method::GET;
        let ok = StatusCode::OK;
        assert_eq!(
            body_framing(&Method::HEAD, ok, &h(&[("content-length", "5")])).unwrap(),
            BodyFraming::Empty
        );
        assert_eq!(
            body_framing(&get, StatusCode::NOT_MODIFIED, &h(&[])).unwrap(),
            BodyFraming::Empty
        );
        assert_eq!(
            body_framing(&get, ok, &h(&[("content-length", "5")])).unwrap(),
            BodyFraming::Length(5)
        );
        assert_eq!(
            body_framing(&get, ok, &h(&[("content-length", "5, 5")])).unwrap(),
            BodyFraming::Length(5)
        );
        assert!(
            body_framing(
                &get,
                ok,
                &h(&[("content-length", "5"), ("content-length", "6")])
            )
            .is_err()
        );
        assert!(body_framing(&get, ok, &h(&[("content-length", "-1")])).is_err());
        assert!(
            body_framing(&get, ok, &h(&[("content-length", "+5")])).is_err(),
            "a sign is not a digit"
        );
        assert_eq!(
            body_framing(
                &get,
                ok,
                &h(&[
                    ("transfer-encoding", "gzip, chunked"),
                    ("content-length", "5")
                ])
            )
            .unwrap(),
            BodyFraming::Chunked
        );
        assert_eq!(
            body_framing(&get, ok, &h(&[("transfer-encoding", "gzip")])).unwrap(),
            BodyFraming::Close
        );
        assert_eq!(body_framing(&get, ok, &h(&[])).unwrap(), BodyFraming::Close);
    }

    #[test]
    fn heads_parse_in_place_and_keep_the_rest() {
        let mut buf =
            BytesMut::from(&b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A: b\r\n\r\nhiHTTP"[..]);
        let spans = &mut Vec::new();
        let head = parse_head(&mut buf, spans, false).unwrap().unwrap();
        assert_eq!(head.status, 200);
        assert_eq!(head.headers["x-a"], "b");
        assert_eq!(&buf[..], b"hiHTTP");
        let mut partial = BytesMut::from(&b"HTTP/1.1 200 OK\r\nContent-"[..]);
        assert!(parse_head(&mut partial, spans, false).unwrap().is_none());
        assert_eq!(partial.len(), 25, "an incomplete head is left in place");
        assert!(
            parse_head(
                &mut BytesMut::from(&b"HTTP/1.1 2x0 OK\r\n\r\n"[..]),
                spans,
                false
            )
            .is_err()
        );
    }

    #[test]
    fn raw_heads_keep_what_is_forwarded_as_it_came() {
        let mut buf = BytesMut::from(
            &b"HTTP/1.1 200 OK\r\nServer: o\r\nConnection: keep-alive, X-Secret\r\nX-Secret: s\r\nKeep-Alive: timeout=5\r\nContent-Length: 2\r\nX-A: b\r\nTE: trailers\r\n\r\nhi"[..],
        );
        let spans = &mut Vec::new();
        let head = parse_head(&mut buf, spans, true).unwrap().unwrap();
        assert!(head.headers.is_empty(), "no map is built");
        assert_eq!(head.facts.length, Some(Ok(2)));
        assert!(head.facts.keep_alive);
        let raw = head.raw.expect("the head as it came");
        let fields: Vec<(&[u8], &[u8])> = raw.fields().collect();
        assert_eq!(
            fields,
            [(&b"Server"[..], &b"o"[..]), (b"X-A", b"b")],
            "hop-by-hop fields, and the one Connection names, are left out; names keep their case"
        );
        assert_eq!(raw.length(), Some(Ok(2)), "the length is kept aside");
        assert!(!raw.dated());
        let dated = parse_head(
            &mut BytesMut::from(&b"HTTP/1.1 204 No Content\r\nDATE: x\r\n\r\n"[..]),
            spans,
            true,
        );
        let raw = dated.unwrap().unwrap().raw.unwrap();
        assert!(raw.dated() && raw.length().is_none());
        assert_eq!(&buf[..], b"hi");
        // A protocol switch is parsed into a map even so (the gateway looks at it).
        let mut switch = BytesMut::from(
            &b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n"[..],
        );
        let head = parse_head(&mut switch, spans, true).unwrap().unwrap();
        assert!(head.raw.is_none());
        assert_eq!(head.headers["upgrade"], "websocket");
    }

    #[test]
    fn request_heads_are_framed() {
        let mut w = Vec::new();
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("99"));
        h.insert("x-a", HeaderValue::from_static("b"));
        let host = HeaderValue::from_static("10.0.0.1:80");
        let pq = http::uri::PathAndQuery::from_static("/p?q=1");
        encode_head(
            &mut w,
            (&Method::POST, &pq, &h, Proxying::default()),
            &host,
            Framing::Full(3),
        );
        assert_eq!(
            String::from_utf8(w.clone()).unwrap(),
            "POST /p?q=1 HTTP/1.1\r\nhost: 10.0.0.1:80\r\nx-a: b\r\ncontent-length: 3\r\n\r\n"
        );
        w.clear();
        h.remove(header::CONTENT_LENGTH);
        encode_head(
            &mut w,
            (&Method::PUT, &pq, &h, Proxying::default()),
            &host,
            Framing::Chunked,
        );
        assert!(
            String::from_utf8(w.clone())
                .unwrap()
                .ends_with("x-a: b\r\ntransfer-encoding: chunked\r\n\r\n")
        );
        w.clear();
        encode_head(
            &mut w,
            (&Method::GET, &pq, &h, Proxying::default()),
            &host,
            Framing::Full(0),
        );
        assert!(
            !String::from_utf8(w.clone())
                .unwrap()
                .contains("content-length")
        );
        // Proxying: hop-by-hop fields out (those Connection names too), an upgrade kept,
        // X-Forwarded-* replaced, the request's own Host first where it was.
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("site"));
        // (Named before it comes: the fields are written again without it.)
        h.insert("x-early", HeaderValue::from_static("0"));
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("Upgrade, X-Hop, x-early"),
        );
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert("x-hop", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("5"));
        h.insert("x-forwarded-proto", HeaderValue::from_static("spoofed"));
        h.insert("x-end", HeaderValue::from_static("2"));
        let proxying = Proxying {
            upgrade: true,
            forwarded: true,
        };
        w.clear();
        encode_head(
            &mut w,
            (&Method::GET, &pq, &h, proxying),
            &host,
            Framing::Full(0),
        );
        assert_eq!(
            String::from_utf8(w.clone()).unwrap(),
            "GET /p?q=1 HTTP/1.1\r\nhost: site\r\nupgrade: websocket\r\nx-end: 2\r\n\
             connection: upgrade\r\nx-forwarded-host: site\r\nx-forwarded-proto: http\r\n\r\n"
        );
        let mut d = Vec::new();
        push_decimal(&mut d, 0);
        push_decimal(&mut d, 1_234_567);
        assert_eq!(d, b"01234567");
    }
}
