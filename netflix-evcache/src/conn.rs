//! One pipelined TCP connection to one memcached node.
//!
//! Callers hand a request (its bytes and how many replies it expects) to the connection's
//! writer task through a bounded queue, and wait on a oneshot for the replies. The writer
//! drains every queued request into one buffer and one `write` (so under load, many
//! requests share a syscall), and tells the reader task, in the same order, what to expect.
//! The reader parses replies in order and hands each request its own.
//!
//! # Cancel safety
//!
//! A caller that gives up (a timeout, a dropped future) only drops its oneshot receiver. The
//! request is still written and its reply still read and thrown away, so the byte stream
//! never goes out of step: no connection is ever left mid-protocol. A reply that does not
//! parse, or an IO error, fails every request in flight and closes the connection; the
//! node opens a new one.

use crate::error::{Error, Result};
use crate::node::Protocol;
use crate::protocol::{self, Expect, Reply};
use crate::text::{self, TextExpect};
use bytes::{Bytes, BytesMut};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

/// Replies to one request: one, or a quiet batch's (without its `MN`).
#[derive(Debug)]
pub(crate) enum Replies {
    One(Reply),
    Batch(Vec<Reply>),
}

pub(crate) struct Request {
    pub bytes: Bytes,
    pub expect: Expect,
    /// For a text connection: what each translated command answers.
    pub text: Option<Vec<TextExpect>>,
    pub reply: oneshot::Sender<Result<Replies>>,
}

/// A handle to one connection; cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct Conn {
    tx: mpsc::Sender<Request>,
    closed: Arc<AtomicBool>,
    addr: SocketAddr,
    /// The server has no meta protocol: requests are translated to text.
    text: bool,
}

/// The largest write buffer gathered before it is flushed.
const MAX_BATCH_BYTES: usize = 256 * 1024;

impl Conn {
    /// Connects and starts the connection's tasks.
    pub(crate) async fn connect(
        addr: SocketAddr,
        timeout: Duration,
        queue: usize,
        protocol: Protocol,
    ) -> Result<Conn> {
        let deadline = tokio::time::Instant::now() + timeout;
        let stream = match tokio::time::timeout_at(deadline, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(source)) => return Err(Error::Io { node: addr, source }),
            Err(_) => {
                return Err(Error::Timeout {
                    node: addr,
                    after: timeout,
                });
            }
        };
        stream
            .set_nodelay(true)
            .map_err(|source| Error::Io { node: addr, source })?;
        let mut stream = stream;
        let text = match protocol {
            Protocol::Meta => false,
            Protocol::Text => true,
            Protocol::Auto => {
                match tokio::time::timeout_at(deadline, detect(&mut stream, addr)).await {
                    Ok(r) => r?,
                    Err(_) => {
                        return Err(Error::Timeout {
                            node: addr,
                            after: timeout,
                        });
                    }
                }
            }
        };
        if text {
            tracing::info!(%addr, "memcached without the meta protocol: speaking text");
        }
        let (tx, rx) = mpsc::channel(queue.max(1));
        let closed = Arc::new(AtomicBool::new(false));
        let (read, write) = stream.into_split();
        let (expect_tx, expect_rx) = mpsc::unbounded_channel();
        tokio::spawn(writer(write, rx, expect_tx, closed.clone(), addr));
        tokio::spawn(reader(read, expect_rx, closed.clone(), addr));
        Ok(Conn {
            tx,
            closed,
            addr,
            text,
        })
    }

    /// Whether the connection has failed (a new one is needed).
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire) || self.tx.is_closed()
    }

    /// Queues a request without waiting for room: a full queue fails fast.
    pub(crate) fn send(
        &self,
        bytes: Bytes,
        expect: Expect,
    ) -> Result<oneshot::Receiver<Result<Replies>>> {
        let (reply, rx) = oneshot::channel();
        let (bytes, text) = if self.text {
            let (b, e) = text::translate(&bytes).map_err(|source| Error::Protocol {
                node: self.addr,
                source,
            })?;
            (Bytes::from(b), Some(e))
        } else {
            (bytes, None)
        };
        match self.tx.try_send(Request {
            bytes,
            expect,
            text,
            reply,
        }) {
            Ok(()) => Ok(rx),
            Err(mpsc::error::TrySendError::Full(_)) => Err(Error::QueueFull { node: self.addr }),
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.closed.store(true, Ordering::Release);
                Err(Error::Io {
                    node: self.addr,
                    source: std::io::Error::new(
                        std::io::ErrorKind::NotConnected,
                        "connection closed",
                    ),
                })
            }
        }
    }
}

type Pending = (
    Expect,
    Option<Vec<TextExpect>>,
    oneshot::Sender<Result<Replies>>,
);

/// Asks the server whether it speaks meta: `mn` answers `MN`; an old server says `ERROR`.
async fn detect(stream: &mut TcpStream, addr: SocketAddr) -> Result<bool> {
    stream
        .write_all(b"mn\r\n")
        .await
        .map_err(|source| Error::Io { node: addr, source })?;
    let mut buf = BytesMut::with_capacity(64);
    loop {
        if let Some(eol) = buf.windows(2).position(|w| w == b"\r\n") {
            return match &buf[..eol] {
                b"MN" => Ok(false),
                b"ERROR" => Ok(true),
                _ => Err(Error::Protocol {
                    node: addr,
                    source: crate::protocol::ProtocolError::new(
                        "the server answered `mn` with neither MN nor ERROR",
                    ),
                }),
            };
        }
        if buf.len() > 64 {
            return Err(Error::Protocol {
                node: addr,
                source: crate::protocol::ProtocolError::new("a long answer to `mn`"),
            });
        }
        match stream.read_buf(&mut buf).await {
            Ok(0) => {
                return Err(Error::Io {
                    node: addr,
                    source: std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "memcached closed the connection",
                    ),
                });
            }
            Ok(_) => {}
            Err(source) => return Err(Error::Io { node: addr, source }),
        }
    }
}

async fn writer(
    mut write: tokio::net::tcp::OwnedWriteHalf,
    mut rx: mpsc::Receiver<Request>,
    expect_tx: mpsc::UnboundedSender<Pending>,
    closed: Arc<AtomicBool>,
    addr: SocketAddr,
) {
    let mut buf: Vec<u8> = Vec::with_capacity(16 * 1024);
    while let Some(first) = rx.recv().await {
        // Let the other callers that are ready run first: their requests join this batch,
        // so one write (and one server read) carries many requests under load. At low load
        // this costs one pass of the scheduler.
        tokio::task::yield_now().await;
        buf.clear();
        let mut next = Some(first);
        while let Some(req) = next {
            buf.extend_from_slice(&req.bytes);
            if expect_tx.send((req.expect, req.text, req.reply)).is_err() {
                // The reader is gone: the connection is dead.
                closed.store(true, Ordering::Release);
                return;
            }
            next = if buf.len() < MAX_BATCH_BYTES {
                rx.try_recv().ok()
            } else {
                None
            };
        }
        if closed.load(Ordering::Acquire) {
            return;
        }
        if let Err(e) = write.write_all(&buf).await {
            tracing::debug!(%addr, error = %e, "memcached write failed; closing the connection");
            closed.store(true, Ordering::Release);
            return;
        }
    }
}

async fn reader(
    mut read: tokio::net::tcp::OwnedReadHalf,
    mut expect_rx: mpsc::UnboundedReceiver<Pending>,
    closed: Arc<AtomicBool>,
    addr: SocketAddr,
) {
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let failure = loop {
        let Some((expect, text, reply)) = expect_rx.recv().await else {
            return;
        };
        let result = match text {
            Some(text) => text_replies(&mut read, &mut buf, addr, expect, &text).await,
            None => meta_replies(&mut read, &mut buf, addr, expect).await,
        };
        match result {
            Ok(r) => {
                let _ = reply.send(Ok(r));
            }
            Err(e) => {
                let message = e.to_string();
                let _ = reply.send(Err(e));
                break message;
            }
        }
    };
    closed.store(true, Ordering::Release);
    tracing::debug!(%addr, %failure, "memcached connection failed; failing requests in flight");
    expect_rx.close();
    while let Ok((_, _, reply)) = expect_rx.try_recv() {
        let _ = reply.send(Err(Error::Io {
            node: addr,
            source: std::io::Error::new(std::io::ErrorKind::ConnectionAborted, failure.clone()),
        }));
    }
}

/// Reads the replies to one meta request: one, or a quiet batch's up to its `MN`.
async fn meta_replies(
    read: &mut tokio::net::tcp::OwnedReadHalf,
    buf: &mut BytesMut,
    addr: SocketAddr,
    expect: Expect,
) -> Result<Replies> {
    match expect {
        Expect::One => next_reply(read, buf, addr).await.map(Replies::One),
        Expect::UntilMn => {
            let mut all = Vec::new();
            loop {
                match next_reply(read, buf, addr).await? {
                    Reply::Noop => return Ok(Replies::Batch(all)),
                    r => all.push(r),
                }
            }
        }
    }
}

/// Reads the replies to one translated request.
async fn text_replies(
    read: &mut tokio::net::tcp::OwnedReadHalf,
    buf: &mut BytesMut,
    addr: SocketAddr,
    expect: Expect,
    text: &[TextExpect],
) -> Result<Replies> {
    let mut all = Vec::with_capacity(text.len());
    for e in text {
        loop {
            match text::parse(buf, e) {
                Ok(Some(Some(r))) => {
                    all.push(r);
                    break;
                }
                Ok(Some(None)) => break,
                Ok(None) => fill(read, buf, addr).await?,
                Err(source) => return Err(Error::Protocol { node: addr, source }),
            }
        }
    }
    match expect {
        Expect::UntilMn => Ok(Replies::Batch(all)),
        Expect::One => match all.pop() {
            Some(r) if all.is_empty() => Ok(Replies::One(r)),
            _ => Err(Error::Protocol {
                node: addr,
                source: crate::protocol::ProtocolError::new(
                    "one request translated to a number of replies other than one",
                ),
            }),
        },
    }
}

/// Reads more bytes into `buf`.
async fn fill(
    read: &mut tokio::net::tcp::OwnedReadHalf,
    buf: &mut BytesMut,
    addr: SocketAddr,
) -> Result<()> {
    if buf.capacity() - buf.len() < 4096 {
        buf.reserve(16 * 1024);
    }
    match read.read_buf(buf).await {
        Ok(0) => Err(Error::Io {
            node: addr,
            source: std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "memcached closed the connection",
            ),
        }),
        Ok(_) => Ok(()),
        Err(source) => Err(Error::Io { node: addr, source }),
    }
}

async fn next_reply(
    read: &mut tokio::net::tcp::OwnedReadHalf,
    buf: &mut BytesMut,
    addr: SocketAddr,
) -> Result<Reply> {
    loop {
        match protocol::parse(buf) {
            Ok(Some(r)) => return Ok(r),
            Ok(None) => fill(read, buf, addr).await?,
            Err(source) => return Err(Error::Protocol { node: addr, source }),
        }
    }
}
