//! The text protocol, for servers without the meta protocol (memcached before 1.6).
//!
//! The client always speaks meta; a connection to an old server translates each meta
//! request into its text command and each text reply back into the meta reply it stands
//! for. What text cannot say degrades quietly: no remaining TTL (`t`), no leases (`N`,
//! `R`: every caller recomputes), no invalidation (`I`: a plain delete), no quiet mode (a
//! batch's misses are read and dropped here). A batch's closing `mn` is not sent: the
//! batch ends when its last command's reply is read.

use crate::protocol::{Meta, ProtocolError, Reply, ServerErrorKind};
use bytes::{Buf, Bytes, BytesMut};

/// What one translated command answers.
#[derive(Debug, Clone)]
pub(crate) enum TextExpect {
    /// `gets`/`gats`: `VALUE ... END`. `value`: whether the meta request wanted the
    /// value (else the reply is `HD`); `quiet`: a miss is dropped.
    Get {
        value: bool,
        quiet: bool,
        opaque: Option<u32>,
    },
    /// `touch`: `TOUCHED` or `NOT_FOUND`.
    Touch { quiet: bool, opaque: Option<u32> },
    /// `set`/`add`/`replace`/`append`/`prepend`/`cas`.
    Store,
    /// `delete`.
    Delete,
    /// `incr`/`decr`: the new value or `NOT_FOUND`.
    Arith,
}

fn bad(what: impl Into<String>) -> ProtocolError {
    ProtocolError::new(what)
}

fn find_crlf(b: &[u8]) -> Option<usize> {
    b.windows(2).position(|w| w == b"\r\n")
}

/// Translates a buffer of meta requests (as [`crate::protocol::Writer`] writes them).
pub(crate) fn translate(meta: &[u8]) -> Result<(Vec<u8>, Vec<TextExpect>), ProtocolError> {
    let mut out = Vec::with_capacity(meta.len() + 16);
    let mut expects = Vec::new();
    let mut at = 0;
    while at < meta.len() {
        let eol = find_crlf(&meta[at..]).ok_or_else(|| bad("a request without \\r\\n"))? + at;
        let line = std::str::from_utf8(&meta[at..eol]).map_err(|_| bad("a non-UTF-8 request"))?;
        at = eol + 2;
        let mut words = line.split(' ');
        let cmd = words.next().unwrap_or_default();
        if cmd == "mn" {
            continue;
        }
        let key = words.next().ok_or_else(|| bad("a request without a key"))?;
        let mut first = None;
        if cmd == "ms" {
            first = words.next();
        }
        let flags: Vec<&str> = words.filter(|w| !w.is_empty()).collect();
        let num = |f: char| -> Option<&str> { flags.iter().find_map(|w| w.strip_prefix(f)) };
        let has = |f: &str| flags.contains(&f);
        let opaque = num('O').and_then(|o| o.parse().ok());
        let quiet = has("q");
        let push = |out: &mut Vec<u8>, parts: &[&str]| {
            out.extend_from_slice(parts.join(" ").as_bytes());
            out.extend_from_slice(b"\r\n");
        };
        match cmd {
            "mg" => {
                let value = has("v");
                match num('T') {
                    Some(ttl) if value => {
                        push(&mut out, &["gats", ttl, key]);
                        expects.push(TextExpect::Get {
                            value,
                            quiet,
                            opaque,
                        });
                    }
                    Some(ttl) => {
                        push(&mut out, &["touch", key, ttl]);
                        expects.push(TextExpect::Touch { quiet, opaque });
                    }
                    None => {
                        push(&mut out, &["gets", key]);
                        expects.push(TextExpect::Get {
                            value,
                            quiet,
                            opaque,
                        });
                    }
                }
            }
            "ms" => {
                let len: usize = first
                    .and_then(|l| l.parse().ok())
                    .ok_or_else(|| bad("ms without a length"))?;
                if meta.len() < at + len + 2 {
                    return Err(bad("ms data shorter than its length"));
                }
                let data = &meta[at..at + len];
                at += len + 2;
                let ttl = num('T').unwrap_or("0");
                let f = num('F').unwrap_or("0");
                let n = len.to_string();
                match (num('M'), num('C')) {
                    (_, Some(cas)) => push(&mut out, &["cas", key, f, ttl, &n, cas]),
                    (Some("E"), None) => push(&mut out, &["add", key, f, ttl, &n]),
                    (Some("R"), None) => push(&mut out, &["replace", key, f, ttl, &n]),
                    (Some("A"), None) => push(&mut out, &["append", key, f, ttl, &n]),
                    (Some("P"), None) => push(&mut out, &["prepend", key, f, ttl, &n]),
                    _ => push(&mut out, &["set", key, f, ttl, &n]),
                }
                out.extend_from_slice(data);
                out.extend_from_slice(b"\r\n");
                expects.push(TextExpect::Store);
            }
            "md" => {
                push(&mut out, &["delete", key]);
                expects.push(TextExpect::Delete);
            }
            "ma" => {
                let delta = num('D').unwrap_or("1");
                let op = if num('M') == Some("D") {
                    "decr"
                } else {
                    "incr"
                };
                push(&mut out, &[op, key, delta]);
                expects.push(TextExpect::Arith);
            }
            other => return Err(bad(format!("no text form for `{other}`"))),
        }
    }
    Ok((out, expects))
}

fn error_reply(line: &str) -> Option<Reply> {
    let rest = |head: &str| line[head.len()..].trim().to_string();
    if line == "ERROR" {
        Some(Reply::ServerError(ServerErrorKind::Unknown, String::new()))
    } else if line.starts_with("CLIENT_ERROR") {
        Some(Reply::ServerError(
            ServerErrorKind::Client,
            rest("CLIENT_ERROR"),
        ))
    } else if line.starts_with("SERVER_ERROR") {
        Some(Reply::ServerError(
            ServerErrorKind::Server,
            rest("SERVER_ERROR"),
        ))
    } else {
        None
    }
}

/// Parses the reply to one text command, as the meta reply it stands for. `Ok(None)`:
/// more bytes needed. `Ok(Some(None))`: a quiet miss, dropped.
#[allow(clippy::option_option, reason = "more bytes / dropped / a reply")]
pub(crate) fn parse(
    buf: &mut BytesMut,
    e: &TextExpect,
) -> Result<Option<Option<Reply>>, ProtocolError> {
    let Some(eol) = find_crlf(buf) else {
        if buf.len() > crate::protocol::MAX_LINE {
            return Err(bad("a text reply line too long"));
        }
        return Ok(None);
    };
    let line = std::str::from_utf8(&buf[..eol])
        .map_err(|_| bad("a non-UTF-8 text reply"))?
        .to_string();
    if let Some(r) = error_reply(&line) {
        buf.advance(eol + 2);
        return Ok(Some(Some(r)));
    }
    let simple = |buf: &mut BytesMut, r: Option<Reply>| {
        buf.advance(eol + 2);
        Ok(Some(r))
    };
    let unexpected = || {
        Err(bad(format!(
            "unexpected text reply `{}`",
            &line[..line.len().min(60)]
        )))
    };
    match e {
        TextExpect::Get {
            value,
            quiet,
            opaque,
        } => {
            if line == "END" {
                return simple(buf, (!quiet).then_some(Reply::Miss));
            }
            let Some(head) = line.strip_prefix("VALUE ") else {
                return unexpected();
            };
            let w: Vec<&str> = head.split(' ').collect();
            let (Some(flags), Some(n)) = (
                w.get(1).and_then(|f| f.parse::<u32>().ok()),
                w.get(2).and_then(|n| n.parse::<usize>().ok()),
            ) else {
                return unexpected();
            };
            if n > crate::protocol::MAX_VALUE {
                return Err(bad(format!("a value of {n} bytes")));
            }
            let need = eol + 2 + n + 2 + 5;
            if buf.len() < need {
                buf.reserve(need - buf.len());
                return Ok(None);
            }
            if &buf[eol + 2 + n..need] != b"\r\nEND\r\n" {
                return Err(bad("a text value not followed by END"));
            }
            let meta = Meta {
                flags: Some(flags),
                cas: w.get(3).and_then(|c| c.parse().ok()),
                opaque: *opaque,
                key: w.first().map(|k| Bytes::copy_from_slice(k.as_bytes())),
                ..Meta::default()
            };
            buf.advance(eol + 2);
            let data = buf.split_to(n).freeze();
            buf.advance(7);
            Ok(Some(Some(if *value {
                Reply::Value(meta, data)
            } else {
                Reply::Done(meta)
            })))
        }
        TextExpect::Touch { quiet, opaque } => match line.as_str() {
            "TOUCHED" => simple(
                buf,
                Some(Reply::Done(Meta {
                    opaque: *opaque,
                    ..Meta::default()
                })),
            ),
            "NOT_FOUND" => simple(buf, (!quiet).then_some(Reply::Miss)),
            _ => unexpected(),
        },
        TextExpect::Store => match line.as_str() {
            "STORED" => simple(buf, Some(Reply::Done(Meta::default()))),
            "NOT_STORED" => simple(buf, Some(Reply::NotStored)),
            "EXISTS" => simple(buf, Some(Reply::Exists)),
            "NOT_FOUND" => simple(buf, Some(Reply::NotFound)),
            _ => unexpected(),
        },
        TextExpect::Delete => match line.as_str() {
            "DELETED" => simple(buf, Some(Reply::Done(Meta::default()))),
            "NOT_FOUND" => simple(buf, Some(Reply::NotFound)),
            _ => unexpected(),
        },
        TextExpect::Arith => {
            if line == "NOT_FOUND" {
                return simple(buf, Some(Reply::NotFound));
            }
            if line.is_empty() || !line.bytes().all(|b| b.is_ascii_digit()) {
                return unexpected();
            }
            let n = Bytes::copy_from_slice(line.as_bytes());
            simple(buf, Some(Reply::Value(Meta::default(), n)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{GetFlags, SetFlags, Writer};

    #[test]
    fn meta_requests_become_text_commands() {
        let mut w = Writer::default();
        w.get(
            b"k1",
            &GetFlags {
                value: true,
                cas: true,
                opaque: Some(4),
                quiet: true,
                ..GetFlags::default()
            },
        );
        w.get(
            b"k2",
            &GetFlags {
                value: true,
                touch: Some(60),
                ..GetFlags::default()
            },
        );
        w.get(
            b"k3",
            &GetFlags {
                touch: Some(60),
                ..GetFlags::default()
            },
        );
        for (mode, cas) in [(b'S', None), (b'E', None), (b'A', None), (b'S', Some(9))] {
            w.set(
                b"k4",
                b"a\r\nb",
                &SetFlags {
                    ttl: 900,
                    flags: 2,
                    cas,
                    mode,
                    invalidate: false,
                    vivify: None,
                },
            );
        }
        w.delete(b"k5", None, None);
        w.arith(b"k6", false, 3, Some((900, 0)));
        w.noop();
        let (text, expects) = translate(&w.buf).unwrap();
        assert_eq!(
            String::from_utf8(text).unwrap(),
            "gets k1\r\ngats 60 k2\r\ntouch k3 60\r\nset k4 2 900 4\r\na\r\nb\r\nadd k4 2 900 4\r\na\r\nb\r\n\
             append k4 2 900 4\r\na\r\nb\r\ncas k4 2 900 4 9\r\na\r\nb\r\ndelete k5\r\ndecr k6 3\r\n"
        );
        assert_eq!(expects.len(), 9);
    }

    #[test]
    fn text_replies_become_meta_replies() {
        let get = TextExpect::Get {
            value: true,
            quiet: false,
            opaque: Some(2),
        };
        let mut b = BytesMut::from(&b"VALUE k 3 4 77\r\na\r\nb\r\nEND\r\nEND\r\n"[..]);
        let Some(Some(Reply::Value(m, d))) = parse(&mut b, &get).unwrap() else {
            panic!()
        };
        assert_eq!(
            (&d[..], m.flags, m.cas, m.opaque),
            (&b"a\r\nb"[..], Some(3), Some(77), Some(2))
        );
        assert_eq!(parse(&mut b, &get).unwrap(), Some(Some(Reply::Miss)));
        let quiet = TextExpect::Get {
            value: true,
            quiet: true,
            opaque: None,
        };
        let mut b = BytesMut::from(&b"END\r\n"[..]);
        assert_eq!(parse(&mut b, &quiet).unwrap(), Some(None));
        // Partial input waits for more.
        let mut b = BytesMut::from(&b"VALUE k 0 10\r\nabc"[..]);
        assert_eq!(parse(&mut b, &get).unwrap(), None);
        let mut b = BytesMut::from(&b"NOT_STORED\r\n42\r\nSERVER_ERROR out of memory\r\n"[..]);
        assert_eq!(
            parse(&mut b, &TextExpect::Store).unwrap(),
            Some(Some(Reply::NotStored))
        );
        assert!(
            matches!(parse(&mut b, &TextExpect::Arith).unwrap(), Some(Some(Reply::Value(_, n))) if &n[..] == b"42")
        );
        assert!(matches!(
            parse(&mut b, &TextExpect::Delete).unwrap(),
            Some(Some(Reply::ServerError(ServerErrorKind::Server, _)))
        ));
        for garbage in [
            &b"HELLO\r\n"[..],
            b"VALUE k x 3\r\n",
            b"VALUE k 0 1\r\naXXEND\r\n",
        ] {
            let mut b = BytesMut::from(garbage);
            assert!(parse(&mut b, &get).is_err(), "{garbage:?}");
        }
    }
}
