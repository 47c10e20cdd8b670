//! memcached's meta protocol: requests written into a buffer, replies parsed incrementally.
//!
//! Every meta reply is self-describing (`VA <size> <flags>*`, `HD <flags>*`, `EN`, `NF`,
//! `NS`, `EX`, `MN`), so a connection can parse replies without knowing what was asked;
//! a request only says how many replies it expects ([`Expect`]). Replies come back in the
//! order the requests were written, which is what makes pipelining safe.
//!
//! The parser never trusts the server: a length that does not fit, a missing `\r\n`, an
//! unknown reply, a line longer than [`MAX_LINE`] is a [`ProtocolError`], after which the
//! connection is discarded (its position in the byte stream is unknown).

use bytes::{Buf, Bytes, BytesMut};
use std::fmt;

/// The longest reply line accepted (a key of 250 bytes plus flags fits many times over).
pub(crate) const MAX_LINE: usize = 8192;

/// Values larger than this in one reply are refused (memcached's item size limit is at most
/// 1 GiB; anything bigger is garbage).
pub(crate) const MAX_VALUE: usize = 1 << 30;

/// How many replies a request produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expect {
    /// Exactly one reply.
    One,
    /// Replies until `MN` (quiet-mode batches): the `MN` is not returned.
    UntilMn,
}

/// One reply, its flags parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reply {
    /// `VA`: a value (or, for `ma ... v`, a number).
    Value(Meta, Bytes),
    /// `HD`: success without a value.
    Done(Meta),
    /// `EN`: a miss.
    Miss,
    /// `NF`: not found.
    NotFound,
    /// `NS`: not stored.
    NotStored,
    /// `EX`: the CAS did not match.
    Exists,
    /// `MN`: the end of a quiet batch.
    Noop,
    /// `CLIENT_ERROR`, `SERVER_ERROR` or `ERROR`, with the server's text.
    ServerError(ServerErrorKind, String),
}

/// Which of memcached's error replies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerErrorKind {
    /// `ERROR`: an unknown command (an old server without the meta protocol).
    Unknown,
    /// `CLIENT_ERROR`: the request was malformed.
    Client,
    /// `SERVER_ERROR`: the server could not do it (out of memory, item too large...).
    Server,
}

/// The return flags of a meta reply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Meta {
    /// `f`: the client flags.
    pub flags: Option<u32>,
    /// `c`: the CAS value.
    pub cas: Option<u64>,
    /// `t`: the remaining TTL in seconds (-1: none).
    pub ttl: Option<i64>,
    /// `O`: the opaque token.
    pub opaque: Option<u32>,
    /// `k`: the key.
    pub key: Option<Bytes>,
    /// `W`: this client won the right to recache the item.
    pub win: bool,
    /// `X`: the item is stale (invalidated).
    pub stale: bool,
    /// `Z`: another client already won the recache.
    pub won_elsewhere: bool,
}

impl Meta {
    /// Whether this value is another client's `get_or_compute` claim (an empty item that
    /// `mg ... N` made, not yet written): for a reader, nothing is there yet.
    pub(crate) fn is_placeholder(&self, data: &[u8]) -> bool {
        (self.win || self.won_elsewhere) && !self.stale && data.is_empty()
    }
}

/// A reply the parser cannot make sense of: the stream is no longer trustworthy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError {
    detail: String,
}

impl ProtocolError {
    pub(crate) fn new(detail: impl Into<String>) -> Self {
        Self {
            detail: detail.into(),
        }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "garbled reply from memcached: {}", self.detail)
    }
}

impl std::error::Error for ProtocolError {}

/// The position of the first `\r\n`.
fn find_crlf(buf: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = buf[from..].iter().position(|&b| b == b'\n') {
        let at = from + i;
        if at > 0 && buf[at - 1] == b'\r' {
            return Some(at - 1);
        }
        from = at + 1;
    }
    None
}

/// Parses one reply from the front of `buf`, consuming it. `Ok(None)`: more bytes needed.
pub(crate) fn parse(buf: &mut BytesMut) -> Result<Option<Reply>, ProtocolError> {
    let Some(eol) = find_crlf(buf) else {
        if buf.len() > MAX_LINE {
            return Err(ProtocolError::new(format!(
                "a line longer than {MAX_LINE} bytes"
            )));
        }
        return Ok(None);
    };
    if eol > MAX_LINE {
        return Err(ProtocolError::new(format!(
            "a line longer than {MAX_LINE} bytes"
        )));
    }
    let line = &buf[..eol];
    let text = std::str::from_utf8(line)
        .map_err(|_| ProtocolError::new("a reply line that is not UTF-8"))?;
    let mut words = text.split(' ');
    let head = words.next().unwrap_or_default();
    let reply = match head {
        "VA" => {
            let size: usize = words
                .next()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| ProtocolError::new(format!("`{}`: no value size", shorten(text))))?;
            if size > MAX_VALUE {
                return Err(ProtocolError::new(format!("a value of {size} bytes")));
            }
            let meta = parse_flags(words, text)?;
            let need = eol + 2 + size + 2;
            if buf.len() < need {
                buf.reserve(need - buf.len());
                return Ok(None);
            }
            if &buf[eol + 2 + size..need] != b"\r\n" {
                return Err(ProtocolError::new("a value not followed by \\r\\n"));
            }
            buf.advance(eol + 2);
            let data = buf.split_to(size).freeze();
            buf.advance(2);
            return Ok(Some(Reply::Value(meta, data)));
        }
        "HD" => Reply::Done(parse_flags(words, text)?),
        "EN" => Reply::Miss,
        "NF" => Reply::NotFound,
        "NS" => Reply::NotStored,
        "EX" => Reply::Exists,
        "MN" => Reply::Noop,
        "ERROR" => Reply::ServerError(ServerErrorKind::Unknown, String::new()),
        "CLIENT_ERROR" => Reply::ServerError(ServerErrorKind::Client, rest(text, head)),
        "SERVER_ERROR" => Reply::ServerError(ServerErrorKind::Server, rest(text, head)),
        _ => {
            return Err(ProtocolError::new(format!(
                "unexpected reply `{}`",
                shorten(text)
            )));
        }
    };
    buf.advance(eol + 2);
    Ok(Some(reply))
}

fn rest(text: &str, head: &str) -> String {
    text[head.len()..].trim().to_string()
}

fn shorten(s: &str) -> String {
    s.chars().take(60).collect()
}

fn parse_flags<'a>(
    words: impl Iterator<Item = &'a str>,
    line: &str,
) -> Result<Meta, ProtocolError> {
    let mut m = Meta::default();
    let bad = || ProtocolError::new(format!("bad flag in `{}`", shorten(line)));
    for w in words {
        if w.is_empty() {
            continue;
        }
        let (flag, token) = w.split_at(1);
        match flag {
            "f" => m.flags = Some(token.parse().map_err(|_| bad())?),
            "c" => m.cas = Some(token.parse().map_err(|_| bad())?),
            "t" => m.ttl = Some(token.parse().map_err(|_| bad())?),
            "O" => m.opaque = Some(token.parse().map_err(|_| bad())?),
            "k" => m.key = Some(Bytes::copy_from_slice(token.as_bytes())),
            "W" => m.win = true,
            "X" => m.stale = true,
            "Z" => m.won_elsewhere = true,
            // Flags we did not ask for (s, h, l, b...) are ignored, as the protocol allows.
            _ => {}
        }
    }
    Ok(m)
}

/// Writes meta requests into a buffer.
#[derive(Debug, Default)]
pub(crate) struct Writer {
    pub buf: Vec<u8>,
}

impl Writer {
    fn num(&mut self, flag: u8, n: impl itoa::Integer) {
        let mut b = itoa::Buffer::new();
        self.buf.push(b' ');
        self.buf.push(flag);
        self.buf.extend_from_slice(b.format(n).as_bytes());
    }

    fn flag(&mut self, flag: u8) {
        self.buf.push(b' ');
        self.buf.push(flag);
    }

    fn head(&mut self, cmd: &[u8], key: &[u8]) {
        // The command, the key and room for every flag: one allocation per request.
        self.buf.reserve(key.len() + 64);
        self.buf.extend_from_slice(cmd);
        self.buf.push(b' ');
        self.buf.extend_from_slice(key);
    }

    /// `mg <key> [v] f c [t] [T<ttl>] [N<ttl>] [R<secs>] [O<opaque>] [q]`.
    pub(crate) fn get(&mut self, key: &[u8], g: &GetFlags) {
        self.head(b"mg", key);
        if g.value {
            self.flag(b'v');
        }
        self.flag(b'f');
        if g.cas {
            self.flag(b'c');
        }
        if g.ttl {
            self.flag(b't');
        }
        if let Some(t) = g.touch {
            self.num(b'T', t);
        }
        if let Some(t) = g.vivify {
            self.num(b'N', t);
        }
        if let Some(t) = g.recache {
            self.num(b'R', t);
        }
        if let Some(o) = g.opaque {
            self.num(b'O', o);
        }
        if g.quiet {
            self.flag(b'q');
        }
        self.buf.extend_from_slice(b"\r\n");
    }

    /// `ms <key> <len> T<ttl> F<flags> [C<cas>] [M<mode>] [I] [N<ttl>]` then the data.
    pub(crate) fn set(&mut self, key: &[u8], data: &[u8], s: &SetFlags) {
        self.buf.reserve(key.len() + data.len() + 64);
        self.head(b"ms", key);
        let mut b = itoa::Buffer::new();
        self.buf.push(b' ');
        self.buf.extend_from_slice(b.format(data.len()).as_bytes());
        self.num(b'T', s.ttl);
        self.num(b'F', s.flags);
        if let Some(c) = s.cas {
            self.num(b'C', c);
        }
        if s.mode != b'S' {
            self.buf.extend_from_slice(b" M");
            self.buf.push(s.mode);
        }
        if s.invalidate {
            self.flag(b'I');
        }
        if let Some(t) = s.vivify {
            self.num(b'N', t);
        }
        self.buf.extend_from_slice(b"\r\n");
        self.buf.extend_from_slice(data);
        self.buf.extend_from_slice(b"\r\n");
    }

    /// `md <key> [I] [T<ttl>] [C<cas>]`.
    pub(crate) fn delete(&mut self, key: &[u8], invalidate: Option<u32>, cas: Option<u64>) {
        self.head(b"md", key);
        if let Some(t) = invalidate {
            self.flag(b'I');
            self.num(b'T', t);
        }
        if let Some(c) = cas {
            self.num(b'C', c);
        }
        self.buf.extend_from_slice(b"\r\n");
    }

    /// `ma <key> v M<I|D> D<delta> [N<ttl> J<initial>] [T<ttl>]`.
    pub(crate) fn arith(&mut self, key: &[u8], incr: bool, delta: u64, vivify: Option<(u32, u64)>) {
        self.head(b"ma", key);
        self.flag(b'v');
        self.buf
            .extend_from_slice(if incr { b" MI" } else { b" MD" });
        self.num(b'D', delta);
        if let Some((ttl, initial)) = vivify {
            self.num(b'N', ttl);
            self.num(b'J', initial);
        }
        self.buf.extend_from_slice(b"\r\n");
    }

    /// `mn`: the end of a quiet batch.
    pub(crate) fn noop(&mut self) {
        self.buf.extend_from_slice(b"mn\r\n");
    }
}

/// What an `mg` asks for.
#[derive(Debug, Clone, Default)]
pub(crate) struct GetFlags {
    pub value: bool,
    pub cas: bool,
    pub ttl: bool,
    pub touch: Option<u32>,
    pub vivify: Option<u32>,
    pub recache: Option<u32>,
    pub opaque: Option<u32>,
    pub quiet: bool,
}

/// What an `ms` asks for. `mode`: `S`et, `E` add, `R`eplace, `A`ppend, `P`repend.
#[derive(Debug, Clone)]
pub(crate) struct SetFlags {
    pub ttl: u32,
    pub flags: u32,
    pub cas: Option<u64>,
    pub mode: u8,
    pub invalidate: bool,
    pub vivify: Option<u32>,
}

impl SetFlags {
    /// A store in `mode`: no CAS, no invalidation, no autovivify.
    pub(crate) fn new(ttl: u32, flags: u32, mode: u8) -> Self {
        Self {
            ttl,
            flags,
            cas: None,
            mode,
            invalidate: false,
            vivify: None,
        }
    }
}

/// One `ms` request on its own.
pub(crate) fn set_request(key: &[u8], data: &[u8], s: &SetFlags) -> Bytes {
    let mut w = Writer::default();
    w.set(key, data, s);
    Bytes::from(w.buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(input: &[u8]) -> Result<Vec<Reply>, ProtocolError> {
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        while let Some(r) = parse(&mut buf)? {
            out.push(r);
        }
        assert!(buf.is_empty(), "left over: {buf:?}");
        Ok(out)
    }

    #[test]
    fn values_and_flags() {
        let r = all(b"VA 5 f3 c99 t-1 O7 W\r\nhello\r\nEN\r\nHD c5\r\n").unwrap();
        let Reply::Value(m, d) = &r[0] else {
            panic!("{r:?}")
        };
        assert_eq!(&d[..], b"hello");
        assert_eq!(
            (m.flags, m.cas, m.ttl, m.opaque, m.win),
            (Some(3), Some(99), Some(-1), Some(7), true)
        );
        assert_eq!(r[1], Reply::Miss);
        assert!(matches!(&r[2], Reply::Done(m) if m.cas == Some(5)));
    }

    #[test]
    fn values_may_hold_crlf_and_arrive_in_pieces() {
        let full = b"VA 4 f0\r\na\r\nb\r\nNS\r\n";
        for cut in 0..full.len() {
            let mut buf = BytesMut::from(&full[..cut]);
            let mut got = Vec::new();
            while let Some(r) = parse(&mut buf).unwrap() {
                got.push(r);
            }
            buf.extend_from_slice(&full[cut..]);
            while let Some(r) = parse(&mut buf).unwrap() {
                got.push(r);
            }
            assert_eq!(got.len(), 2, "cut at {cut}");
            assert!(matches!(&got[0], Reply::Value(_, d) if &d[..] == b"a\r\nb"));
        }
    }

    #[test]
    fn errors_and_marks() {
        let r = all(b"SERVER_ERROR out of memory\r\nCLIENT_ERROR bad\r\nERROR\r\nMN\r\n").unwrap();
        assert_eq!(
            r[0],
            Reply::ServerError(ServerErrorKind::Server, "out of memory".into())
        );
        assert_eq!(
            r[1],
            Reply::ServerError(ServerErrorKind::Client, "bad".into())
        );
        assert_eq!(
            r[2],
            Reply::ServerError(ServerErrorKind::Unknown, String::new())
        );
        assert_eq!(r[3], Reply::Noop);
    }

    #[test]
    fn garbage_is_a_protocol_error() {
        for bad in [
            &b"HELLO\r\n"[..],
            b"VA x\r\n",
            b"VA 3 f1\r\nabcXY",
            b"VA 99999999999 f1\r\n",
            b"HD fzz\r\n",
            b"\xff\xfe\r\n",
        ] {
            let mut buf = BytesMut::from(bad);
            assert!(parse(&mut buf).is_err(), "{bad:?}");
        }
        let mut long = BytesMut::from(&vec![b'a'; MAX_LINE + 10][..]);
        assert!(parse(&mut long).is_err());
    }

    #[test]
    fn requests_are_written_as_memcached_expects() {
        let mut w = Writer::default();
        w.get(
            b"app:k",
            &GetFlags {
                value: true,
                cas: true,
                touch: Some(60),
                opaque: Some(3),
                quiet: true,
                ..GetFlags::default()
            },
        );
        w.set(
            b"app:k",
            b"xy",
            &SetFlags {
                ttl: 900,
                flags: 1,
                cas: Some(7),
                mode: b'E',
                invalidate: false,
                vivify: None,
            },
        );
        w.delete(b"app:k", None, None);
        w.arith(b"n", true, 5, Some((900, 0)));
        w.noop();
        assert_eq!(
            String::from_utf8(w.buf).unwrap(),
            "mg app:k v f c T60 O3 q\r\nms app:k 2 T900 F1 C7 ME\r\nxy\r\nmd app:k\r\nma n v MI D5 N900 J0\r\nmn\r\n"
        );
    }
}
