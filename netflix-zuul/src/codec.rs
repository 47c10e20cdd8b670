//! HTTP/1.1 pieces both sides share: the chunked decoder, the `Date` cache, a connection
//! with bytes already read in front of it.

use bytes::{Buf as _, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue};
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The most a message head (or a chunked body's trailer section) may take.
pub(crate) const MAX_HEAD: usize = 64 * 1024;
/// The most header fields a head may have.
pub(crate) const MAX_HEADERS: usize = 100;
/// The longest chunk-size line accepted in a chunked body.
const MAX_CHUNK_LINE: usize = 4 * 1024;

/// Where a chunked body's decoder is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Chunk {
    /// Before a chunk-size line.
    Size,
    /// Inside a chunk, with this much of it left.
    Data(u64),
    /// After a chunk's data, before its CRLF.
    DataEnd,
    /// After the last chunk: trailer fields, then an empty line.
    Trailers,
    /// The body has ended.
    Done,
}

/// What the decoder found.
#[derive(Debug)]
pub(crate) enum Decoded {
    /// Body bytes.
    Data(Bytes),
    /// The trailer fields (the body has ended).
    Trailers(HeaderMap),
    /// The end of the body.
    End,
    /// More bytes are needed.
    More,
}

/// Decodes what `buf` holds of a chunked body (RFC 9112, section 7.1), taking it off.
pub(crate) fn decode_chunk(buf: &mut BytesMut, state: &mut Chunk) -> Result<Decoded, &'static str> {
    loop {
        match *state {
            Chunk::Done => return Ok(Decoded::End),
            Chunk::Size => {
                let Some(i) = find(buf, b"\r\n") else {
                    if buf.len() > MAX_CHUNK_LINE {
                        return Err("a chunk-size line too long");
                    }
                    return Ok(Decoded::More);
                };
                let line = &buf[..i];
                // Chunk extensions (after `;`, with optional spaces or tabs before it) are
                // ignored. Hex digits only: no sign, no other whitespace, as every reader
                // of the same bytes must find the same size.
                let digits = line.split(|&b| b == b';').next().unwrap_or(line);
                let digits = match digits.iter().rposition(|&b| b != b' ' && b != b'\t') {
                    Some(end) if line.len() > digits.len() || end + 1 == digits.len() => {
                        &digits[..=end]
                    }
                    _ => return Err("a bad chunk size"),
                };
                if digits.is_empty()
                    || digits.len() > 16
                    || !digits.iter().all(u8::is_ascii_hexdigit)
                {
                    return Err("a bad chunk size");
                }
                let size = digits.iter().fold(0u64, |n, &d| {
                    (n << 4) | u64::from((d as char).to_digit(16).unwrap_or(0))
                });
                buf.advance(i + 2);
                *state = if size == 0 {
                    Chunk::Trailers
                } else {
                    Chunk::Data(size)
                };
            }
            Chunk::Data(rem) => {
                if buf.is_empty() {
                    return Ok(Decoded::More);
                }
                let n = rem.min(buf.len() as u64);
                *state = if rem == n {
                    Chunk::DataEnd
                } else {
                    Chunk::Data(rem - n)
                };
                return Ok(Decoded::Data(buf.split_to(n as usize).freeze()));
            }
            Chunk::DataEnd => {
                if buf.len() < 2 {
                    return Ok(Decoded::More);
                }
                if &buf[..2] != b"\r\n" {
                    return Err("a chunk without its CRLF");
                }
                buf.advance(2);
                *state = Chunk::Size;
            }
            Chunk::Trailers => {
                if buf.starts_with(b"\r\n") {
                    buf.advance(2);
                    *state = Chunk::Done;
                    return Ok(Decoded::End);
                }
                let mut slots = [httparse::EMPTY_HEADER; 32];
                return match httparse::parse_headers(buf, &mut slots) {
                    Ok(httparse::Status::Complete((len, fields))) => {
                        let mut trailers = HeaderMap::new();
                        for f in fields {
                            if let (Ok(n), Ok(v)) = (
                                HeaderName::from_bytes(f.name.as_bytes()),
                                HeaderValue::from_bytes(f.value),
                            ) {
                                trailers.append(n, v);
                            }
                        }
                        buf.advance(len);
                        *state = Chunk::Done;
                        Ok(Decoded::Trailers(trailers))
                    }
                    Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => Ok(Decoded::More),
                    _ => Err("a bad trailer section"),
                };
            }
        }
    }
}

/// Notes where each parsed field lies in `buf` (a head is at most 64 KiB: offsets fit in
/// `u32`), so that the values can share the buffer's memory once the parser's borrow ends.
pub(crate) fn spans<'a>(
    fields: &[httparse::Header<'_>],
    buf: &[u8],
    spans: &'a mut Vec<[u32; 4]>,
) -> &'a [[u32; 4]] {
    let base = buf.as_ptr() as usize;
    spans.clear();
    spans.extend(fields.iter().map(|h| {
        [
            (h.name.as_ptr() as usize - base) as u32,
            h.name.len() as u32,
            (h.value.as_ptr() as usize - base) as u32,
            h.value.len() as u32,
        ]
    }));
    spans
}

/// Whether [`headers`] keeps a message's hop-by-hop fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HopByHop {
    Keep,
    /// Left out of the map (a proxy forwards none), with the fields `Connection` names;
    /// they are still noted in the [`Facts`].
    Drop,
}

/// The hop-by-hop fields with standard names (RFC 9110, section 7.6.1), which compare
/// without hashing; `keep-alive` is the one without.
pub(crate) const HOP_BY_HOP_STANDARD: [HeaderName; 7] = [
    http::header::CONNECTION,
    http::header::TRANSFER_ENCODING,
    http::header::UPGRADE,
    http::header::TE,
    http::header::TRAILER,
    http::header::PROXY_AUTHENTICATE,
    http::header::PROXY_AUTHORIZATION,
];

/// `X-Forwarded-Host`: the Host the client asked for.
pub(crate) const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
/// `X-Forwarded-Proto`: the scheme the client used.
pub(crate) const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// `Keep-Alive`, hop-by-hop without a standard name.
pub(crate) const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");

/// The `Connection` options that name no field.
pub(crate) fn is_connection_option(token: &[u8]) -> bool {
    token.is_empty()
        || token.eq_ignore_ascii_case(b"close")
        || token.eq_ignore_ascii_case(b"keep-alive")
        || token.eq_ignore_ascii_case(b"upgrade")
}

/// The fields at `spans` of `head`, the values sharing its memory, with room for `spare`
/// more (those a proxy adds, without growing the map); and the [`Facts`] of the head.
pub(crate) fn headers(
    head: &Bytes,
    spans: &[[u32; 4]],
    spare: usize,
    hop_by_hop: HopByHop,
) -> Result<(HeaderMap, Facts), &'static str> {
    let mut headers = take_header_map(spans.len() + spare);
    let mut facts = Facts::default();
    // Fields that `Connection` names (rare: its usual options name none).
    let mut named: Vec<HeaderName> = Vec::new();
    for &[n, nl, v, vl] in spans {
        let (n, nl, v, vl) = (n as usize, nl as usize, v as usize, vl as usize);
        let name = HeaderName::from_bytes(&head[n..n + nl]).map_err(|_| "a bad field name")?;
        let raw = &head[v..v + vl];
        let kind = Known::of(&name);
        facts.note_known(kind, raw);
        if hop_by_hop == HopByHop::Drop && kind.is_hop_by_hop() {
            if kind == Known::Connection {
                named.extend(
                    raw.split(|&b| b == b',')
                        .map(<[u8]>::trim_ascii)
                        .filter(|t| !is_connection_option(t))
                        .filter_map(|t| HeaderName::from_bytes(t).ok()),
                );
            }
            continue;
        }
        let value = HeaderValue::from_maybe_shared(head.slice(v..v + vl))
            .map_err(|_| "a bad field value")?;
        headers.append(name, value);
    }
    for name in named {
        headers.remove(name);
    }
    Ok((headers, facts))
}

/// What framing and connection handling need from a head, noted while its fields are read,
/// so that none is looked up again.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Facts {
    /// `Content-Length`: absent, a length, or `Err` when invalid or conflicting.
    pub(crate) length: Option<Result<u64, ()>>,
    /// `Transfer-Encoding` is present...
    pub(crate) transfer_encoding: bool,
    /// ...and its last coding is `chunked`.
    pub(crate) chunked_last: bool,
    /// `Connection: close`.
    pub(crate) close: bool,
    /// `Connection: keep-alive`.
    pub(crate) keep_alive: bool,
    /// `Connection: upgrade` with an `Upgrade` field: a protocol switch is asked for.
    pub(crate) conn_upgrade: bool,
    /// `Connection` names a field (one that goes no further than this hop either).
    pub(crate) connection_names: bool,
    /// An `Upgrade` field.
    pub(crate) upgrade: bool,
    /// `Expect: 100-continue`.
    pub(crate) expect_continue: bool,
    /// How many `Host` fields.
    pub(crate) hosts: u8,
}

impl Facts {
    /// The facts of a field map.
    #[cfg(test)]
    pub(crate) fn of(headers: &HeaderMap) -> Self {
        let mut facts = Self::default();
        for (name, value) in headers {
            facts.note_known(Known::of(name), value.as_bytes());
        }
        facts
    }

    /// Notes one field whose name is of `kind` (fields of one name in the order they
    /// came).
    pub(crate) fn note_known(&mut self, kind: Known, value: &[u8]) {
        match kind {
            Known::ContentLength => {
                for part in value.split(|&b| b == b',') {
                    // Digits only: `+5` parses as a number in Rust, and a request read one
                    // way here and another way by the origin is how requests are smuggled.
                    let part = part.trim_ascii();
                    let n = (!part.is_empty()
                        && part.len() <= 19
                        && part.iter().all(u8::is_ascii_digit))
                    .then(|| part.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')));
                    self.length = match (self.length, n) {
                        (_, None) | (Some(Err(())), _) => Some(Err(())),
                        (Some(Ok(l)), Some(n)) if l != n => Some(Err(())),
                        (_, Some(n)) => Some(Ok(n)),
                    };
                }
            }
            Known::TransferEncoding => {
                self.transfer_encoding = true;
                self.chunked_last = value
                    .rsplit(|&b| b == b',')
                    .next()
                    .is_some_and(|t| t.trim_ascii().eq_ignore_ascii_case(b"chunked"));
            }
            Known::Connection => {
                for t in value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                    if t.eq_ignore_ascii_case(b"close") {
                        self.close = true;
                    } else if t.eq_ignore_ascii_case(b"keep-alive") {
                        self.keep_alive = true;
                    } else if t.eq_ignore_ascii_case(b"upgrade") {
                        self.conn_upgrade = true;
                    } else if !t.is_empty() {
                        self.connection_names = true;
                    }
                }
            }
            Known::Upgrade => self.upgrade = true,
            Known::Host => self.hosts = self.hosts.saturating_add(1),
            Known::Expect => {
                self.expect_continue = value.trim_ascii().eq_ignore_ascii_case(b"100-continue");
            }
            Known::KeepAlive | Known::OtherHopByHop | Known::Date | Known::Other => {}
        }
    }

    /// Whether the connection may carry another exchange after this message.
    pub(crate) fn keep_alive(&self, version: u8) -> bool {
        if version == 0 {
            self.keep_alive
        } else {
            !self.close
        }
    }

    /// Whether the message asks to switch protocols.
    pub(crate) fn is_upgrade(&self) -> bool {
        self.upgrade && self.conn_upgrade
    }
}

/// The fields whose names framing, connection handling and forwarding look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Known {
    ContentLength,
    TransferEncoding,
    Connection,
    Upgrade,
    Host,
    Expect,
    Date,
    KeepAlive,
    /// `TE`, `Trailer`, `Proxy-Authenticate`, `Proxy-Authorization`.
    OtherHopByHop,
    Other,
}

impl Known {
    /// The kind of a field name as it came on the wire (any case): its length first, so
    /// that most names are told apart without looking at their bytes.
    pub(crate) fn of_bytes(name: &[u8]) -> Self {
        // A token byte ORed with 0x20 equals a lowercase letter or `-` only if it is that
        // letter in either case, or that `-` (httparse lets only token bytes into a name):
        // one branch-free pass instead of a comparison a byte.
        let is = |known: &[u8]| {
            name.iter()
                .zip(known)
                .fold(0u8, |d, (&a, &b)| d | ((a | 0x20) ^ b))
                == 0
        };
        match name.len() {
            2 if is(b"te") => Self::OtherHopByHop,
            4 if is(b"host") => Self::Host,
            4 if is(b"date") => Self::Date,
            6 if is(b"expect") => Self::Expect,
            7 if is(b"upgrade") => Self::Upgrade,
            7 if is(b"trailer") => Self::OtherHopByHop,
            10 if is(b"connection") => Self::Connection,
            10 if is(b"keep-alive") => Self::KeepAlive,
            14 if is(b"content-length") => Self::ContentLength,
            17 if is(b"transfer-encoding") => Self::TransferEncoding,
            18 if is(b"proxy-authenticate") => Self::OtherHopByHop,
            19 if is(b"proxy-authorization") => Self::OtherHopByHop,
            _ => Self::Other,
        }
    }

    /// The kind of a parsed name (standard names compare without looking at bytes).
    pub(crate) fn of(name: &HeaderName) -> Self {
        use http::header;
        if *name == header::CONTENT_LENGTH {
            Self::ContentLength
        } else if *name == header::TRANSFER_ENCODING {
            Self::TransferEncoding
        } else if *name == header::CONNECTION {
            Self::Connection
        } else if *name == header::UPGRADE {
            Self::Upgrade
        } else if *name == header::HOST {
            Self::Host
        } else if *name == header::EXPECT {
            Self::Expect
        } else if *name == header::DATE {
            Self::Date
        } else if *name == KEEP_ALIVE {
            Self::KeepAlive
        } else if HOP_BY_HOP_STANDARD.contains(name) {
            Self::OtherHopByHop
        } else {
            Self::Other
        }
    }

    /// Whether a proxy forwards no field of this kind (RFC 9110, section 7.6.1).
    pub(crate) fn is_hop_by_hop(self) -> bool {
        matches!(
            self,
            Self::Connection
                | Self::TransferEncoding
                | Self::Upgrade
                | Self::KeepAlive
                | Self::OtherHopByHop
        )
    }
}

/// An origin's response head passed on as it came, when nothing between the origin and
/// the client looks at its fields (no outbound filter, our own HTTP/1.1 connection to the
/// client): no header map is built, and the fields are copied straight into the client's
/// answer, as nginx does. The names keep the origin's case; hop-by-hop fields (and those
/// its `Connection` names) are left out.
#[derive(Debug)]
pub(crate) struct RawHead {
    /// The whole head, as read.
    head: Bytes,
    /// Where each forwarded field lies in `head` (name start and length, value start and
    /// length). `Content-Length` is not among them: the writer frames the body itself.
    fields: Vec<[u32; 4]>,
    /// The head's `Content-Length`, when it has one (valid or not).
    length: Option<Result<u64, ()>>,
    /// The head has a `Date`.
    dated: bool,
}

impl RawHead {
    /// The forwarded fields of `head` at `spans` (left with the rest), and the head's
    /// [`Facts`]. The spans are checked already: httparse allows in a name only token
    /// bytes, and in a value only what [`HeaderValue`] does (visible bytes, spaces, tabs
    /// and obs-text).
    pub(crate) fn new(head: Bytes, spans: &[[u32; 4]]) -> (Self, Facts) {
        let mut facts = Facts::default();
        let mut dated = false;
        let mut fields = take_spare(|s| &mut s.spans).unwrap_or_default();
        for &span @ [n, nl, v, vl] in spans {
            let (n, nl, v, vl) = (n as usize, nl as usize, v as usize, vl as usize);
            let kind = Known::of_bytes(&head[n..n + nl]);
            facts.note_known(kind, &head[v..v + vl]);
            match kind {
                Known::ContentLength => continue,
                Known::Date => dated = true,
                k if k.is_hop_by_hop() => continue,
                _ => {}
            }
            fields.push(span);
        }
        if facts.connection_names {
            // (Rare: the usual `Connection` options name no field.)
            let names: Vec<&[u8]> = spans
                .iter()
                .filter(|&&[n, nl, ..]| {
                    Known::of_bytes(&head[n as usize..(n + nl) as usize]) == Known::Connection
                })
                .flat_map(|&[_, _, v, vl]| {
                    head[v as usize..(v + vl) as usize].split(|&b| b == b',')
                })
                .map(<[u8]>::trim_ascii)
                .filter(|t| !is_connection_option(t))
                .collect();
            fields.retain(|&[n, nl, ..]| {
                let name = &head[n as usize..(n + nl) as usize];
                !names.iter().any(|t| t.eq_ignore_ascii_case(name))
            });
        }
        (
            Self {
                head,
                fields,
                length: facts.length,
                dated,
            },
            facts,
        )
    }

    /// The head's `Content-Length`, when it has one (`Err` when it is not valid).
    pub(crate) fn length(&self) -> Option<Result<u64, ()>> {
        self.length
    }

    /// Whether the head has a `Date`.
    pub(crate) fn dated(&self) -> bool {
        self.dated
    }

    /// The forwarded fields: name (as it came) and value.
    pub(crate) fn fields(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.fields.iter().map(|&[n, nl, v, vl]| {
            let (n, nl, v, vl) = (n as usize, nl as usize, v as usize, vl as usize);
            (&self.head[n..n + nl], &self.head[v..v + vl])
        })
    }
}

impl Drop for RawHead {
    fn drop(&mut self) {
        // The field list serves the next answer on this thread (emptied, as every spare).
        let mut fields = std::mem::take(&mut self.fields);
        if fields.capacity() != 0 && fields.capacity() <= 128 {
            fields.clear();
            keep_spare(|s| &mut s.spans, fields);
        }
    }
}

/// Where `needle` first occurs in `haystack`.
pub(crate) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Appends `n` in decimal.
pub(crate) fn push_decimal(w: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    w.extend_from_slice(&digits[i..]);
}

/// Appends `n` in hexadecimal (a chunk size).
pub(crate) fn push_hex(w: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 16];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b"0123456789abcdef"[(n & 15) as usize];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    w.extend_from_slice(&digits[i..]);
}

/// A connection with bytes already read from it in front (a protocol switch, or the
/// first bytes of an HTTP/2 connection read while looking for HTTP/1.1).
#[derive(Debug)]
pub(crate) struct Prefixed<I> {
    pub(crate) pre: Bytes,
    pub(crate) io: I,
}

impl<I: AsyncRead + Unpin> AsyncRead for Prefixed<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if !this.pre.is_empty() {
            let n = this.pre.len().min(buf.remaining());
            buf.put_slice(&this.pre[..n]);
            this.pre.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Prefixed<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// What each thread keeps for reuse, at most this many of each kind.
const SPARES_KEPT: usize = 64;

/// Buffers and header maps done with, per thread, for the next busy connection: an idle
/// connection holds no buffer, a busy one pays no allocation for them, and a header map
/// costs two allocations to build and two frees to drop.
struct Spares {
    reads: Vec<BytesMut>,
    writes: Vec<Vec<u8>>,
    maps: Vec<HeaderMap>,
    spans: Vec<Vec<[u32; 4]>>,
}

thread_local! {
    static SPARES: std::cell::RefCell<Spares> = const {
        std::cell::RefCell::new(Spares { reads: Vec::new(), writes: Vec::new(), maps: Vec::new(), spans: Vec::new() })
    };
}

/// A spare of one kind, if this thread has one.
fn take_spare<T>(kind: fn(&mut Spares) -> &mut Vec<T>) -> Option<T> {
    SPARES.with(|s| kind(&mut s.borrow_mut()).pop())
}

/// Keeps `item` as a spare of its kind, unless the thread has enough of them.
fn keep_spare<T>(kind: fn(&mut Spares) -> &mut Vec<T>, item: T) {
    SPARES.with(|s| {
        let mut s = s.borrow_mut();
        let kept = kind(&mut s);
        if kept.len() < SPARES_KEPT {
            kept.push(item);
        }
    });
}

/// A read buffer with at least `room` bytes free: a spare one if there is one.
pub(crate) fn take_read_buffer(room: usize) -> BytesMut {
    let mut b = take_spare(|s| &mut s.reads).unwrap_or_default();
    b.reserve(room);
    b
}

/// Keeps an emptied read buffer for reuse.
pub(crate) fn give_read_buffer(mut b: BytesMut) {
    if b.capacity() == 0 || b.capacity() > 64 * 1024 {
        return;
    }
    b.clear();
    keep_spare(|s| &mut s.reads, b);
}

/// A write buffer: a spare one if there is one.
pub(crate) fn take_write_buffer() -> Vec<u8> {
    take_spare(|s| &mut s.writes).unwrap_or_else(|| Vec::with_capacity(1024))
}

/// Keeps a write buffer for reuse.
pub(crate) fn give_write_buffer(mut b: Vec<u8>) {
    if b.capacity() == 0 || b.capacity() > 256 * 1024 {
        return;
    }
    b.clear();
    keep_spare(|s| &mut s.writes, b);
}

/// An empty header map with room for `n` fields: a spare one if there is one.
pub(crate) fn take_header_map(n: usize) -> HeaderMap {
    match take_spare(|s| &mut s.maps) {
        Some(mut m) => {
            m.reserve(n);
            m
        }
        None => HeaderMap::with_capacity(n),
    }
}

/// Keeps a header map (a message's, once it is done with) for reuse.
pub(crate) fn give_header_map(mut m: HeaderMap) {
    // (An empty map has no storage; a very large one is not worth keeping.)
    if m.capacity() == 0 || m.capacity() > 128 {
        return;
    }
    m.clear();
    keep_spare(|s| &mut s.maps, m);
}

thread_local! {
    /// The `Date` value of the current second, per thread (formatting costs more than
    /// looking at the clock).
    static DATE: std::cell::RefCell<(u64, [u8; 29])> = const { std::cell::RefCell::new((0, [0; 29])) };
}

/// Appends an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) for now.
pub(crate) fn push_date(w: &mut Vec<u8>) {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    DATE.with(|d| {
        let mut d = d.borrow_mut();
        if d.0 != secs || d.1[0] == 0 {
            d.1 = imf_fixdate(secs);
            d.0 = secs;
        }
        w.extend_from_slice(&d.1);
    });
}

fn imf_fixdate(secs: u64) -> [u8; 29] {
    const DAYS: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (h, m, s) = (rem / 3600, rem / 60 % 60, rem % 60);
    // Civil from days (Howard Hinnant's algorithm), for days since 1970-01-01.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let mut out = [0u8; 29];
    let two = |n: u64| [b'0' + (n / 10) as u8, b'0' + (n % 10) as u8];
    out[..3].copy_from_slice(DAYS[(days % 7) as usize]);
    out[3..5].copy_from_slice(b", ");
    out[5..7].copy_from_slice(&two(day as u64));
    out[7] = b' ';
    out[8..11].copy_from_slice(MONTHS[(month - 1) as usize]);
    out[11] = b' ';
    let y = year.clamp(0, 9999) as u64;
    out[12..16].copy_from_slice(&[
        b'0' + (y / 1000) as u8,
        b'0' + (y / 100 % 10) as u8,
        b'0' + (y / 10 % 10) as u8,
        b'0' + (y % 10) as u8,
    ]);
    out[16] = b' ';
    out[17..19].copy_from_slice(&two(h));
    out[19] = b':';
    out[20..22].copy_from_slice(&two(m));
    out[22] = b':';
    out[23..25].copy_from_slice(&two(s));
    out[25..29].copy_from_slice(b" GMT");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies_decode_in_any_split() {
        let wire = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nx-sum: 1\r\n\r\nNEXT";
        // Fed one byte at a time, and all at once: the same bytes and trailers.
        for step in [1, wire.len()] {
            let mut buf = BytesMut::new();
            let mut state = Chunk::Size;
            let mut body = Vec::new();
            let mut trailers = None;
            let mut fed = 0;
            loop {
                match decode_chunk(&mut buf, &mut state).unwrap() {
                    Decoded::Data(d) => body.extend_from_slice(&d),
                    Decoded::Trailers(t) => trailers = Some(t),
                    Decoded::End => break,
                    Decoded::More => {
                        let next = (fed + step).min(wire.len());
                        buf.extend_from_slice(&wire[fed..next]);
                        fed = next;
                    }
                }
                if state == Chunk::Done {
                    break;
                }
            }
            assert_eq!(body, b"hello world");
            assert_eq!(trailers.unwrap()["x-sum"], "1");
            assert!(b"NEXT".starts_with(&buf), "only the next message is left");
        }
        for bad in [
            &b"zz\r\n"[..],
            b"5\r\nhelloXX",
            b"\r\n",
            b"+5\r\nhello\r\n",
            b" 5\r\nhello\r\n",
            b"5 \r\nhello\r\n",
        ] {
            let mut buf = BytesMut::from(bad);
            let mut state = Chunk::Size;
            let r = (0..4).try_for_each(|_| decode_chunk(&mut buf, &mut state).map(drop));
            assert!(r.is_err(), "{bad:?}");
        }
    }

    #[test]
    fn spaces_before_an_extension_are_allowed() {
        let mut buf = BytesMut::from(&b"5 ;name=v\r\nhello\r\n0\r\n\r\n"[..]);
        let mut state = Chunk::Size;
        match decode_chunk(&mut buf, &mut state).unwrap() {
            Decoded::Data(d) => assert_eq!(&d[..], b"hello"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            decode_chunk(&mut buf, &mut state).unwrap(),
            Decoded::End
        ));
    }

    #[test]
    fn dates_are_imf_fixdates() {
        assert_eq!(&imf_fixdate(784_111_777), b"Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(&imf_fixdate(0), b"Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(
            &imf_fixdate(1_709_164_800),
            b"Thu, 29 Feb 2024 00:00:00 GMT"
        );
        let mut w = Vec::new();
        push_hex(&mut w, 0x1f40);
        push_decimal(&mut w, 907);
        assert_eq!(w, b"1f40907");
    }
}
