//! The crate's one error type.

use crate::protocol::{ProtocolError, ServerErrorKind};
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

/// Everything that can go wrong talking to the cache.
///
/// Misses are not errors (a get returns `Ok(None)`); neither is an `add` that finds the key
/// taken (it returns `false`). Errors say which node failed and whether trying another copy
/// could help ([`is_retryable`](Error::is_retryable)), which is what zone fallback uses.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The key is empty, longer than 250 bytes with its prefix, or holds whitespace or
    /// control bytes (memcached's text framing cannot carry them).
    InvalidKey {
        /// The key, lossily printed.
        key: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A value larger than the configured maximum (after compression and chunking).
    ValueTooLarge {
        /// Its size in bytes.
        size: usize,
        /// The largest value accepted.
        max: usize,
    },
    /// No reply within the timeout.
    Timeout {
        /// The node asked.
        node: SocketAddr,
        /// How long it was given.
        after: Duration,
    },
    /// The node is known to be down (TKO) and is not being probed right now: failed fast.
    NodeDown {
        /// The node.
        node: SocketAddr,
    },
    /// The node's write queue is full: failed fast instead of waiting.
    QueueFull {
        /// The node.
        node: SocketAddr,
    },
    /// Connecting, reading or writing failed.
    Io {
        /// The node.
        node: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The server's reply did not parse; the connection was discarded.
    Protocol {
        /// The node.
        node: SocketAddr,
        /// What did not parse.
        source: ProtocolError,
    },
    /// The server answered with an error (`SERVER_ERROR`, `CLIENT_ERROR`, `ERROR`).
    Server {
        /// The node.
        node: SocketAddr,
        /// Which kind.
        kind: ServerErrorKind,
        /// The server's message.
        message: String,
    },
    /// The server answered something that does not fit the request (a value to a delete).
    UnexpectedReply {
        /// The node.
        node: SocketAddr,
        /// The request.
        op: &'static str,
    },
    /// No zone could be asked: every copy's node is down or the topology is empty.
    NoCopies,
    /// A value did not encode or decode.
    Codec(String),
    /// The configuration is inconsistent.
    Config(String),
    /// `get_or_compute`'s computation failed.
    Compute(Box<dyn std::error::Error + Send + Sync>),
}

impl Error {
    /// Whether another copy (another zone) may succeed where this failed: timeouts, nodes
    /// down, full queues, IO, garbled replies and server errors. Invalid keys and values
    /// would fail everywhere.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::Timeout { .. }
                | Error::NodeDown { .. }
                | Error::QueueFull { .. }
                | Error::Io { .. }
                | Error::Protocol { .. }
                | Error::Server { .. }
                | Error::UnexpectedReply { .. }
                | Error::NoCopies
        )
    }

    /// Whether this is a timeout.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout { .. })
    }

    /// The node that failed, when one did.
    pub fn node(&self) -> Option<SocketAddr> {
        match self {
            Error::Timeout { node, .. }
            | Error::NodeDown { node }
            | Error::QueueFull { node }
            | Error::Io { node, .. }
            | Error::Protocol { node, .. }
            | Error::Server { node, .. }
            | Error::UnexpectedReply { node, .. } => Some(*node),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidKey { key, reason } => write!(f, "invalid key `{key}`: {reason}"),
            Error::ValueTooLarge { size, max } => {
                write!(f, "a value of {size} bytes is over the limit of {max}")
            }
            Error::Timeout { node, after } => write!(f, "{node} did not answer within {after:?}"),
            Error::NodeDown { node } => write!(f, "{node} is down (failing fast)"),
            Error::QueueFull { node } => write!(f, "{node}'s write queue is full"),
            Error::Io { node, .. } => write!(f, "i/o with {node} failed"),
            Error::Protocol { node, .. } => write!(f, "{node} sent a reply that does not parse"),
            Error::Server {
                node,
                kind,
                message,
            } => write!(f, "{node} answered {kind:?} error `{message}`"),
            Error::UnexpectedReply { node, op } => {
                write!(
                    f,
                    "{node} answered a {op} with a reply that does not fit it"
                )
            }
            Error::NoCopies => f.write_str("no copy of the cache could be asked"),
            Error::Codec(m) => write!(f, "codec: {m}"),
            Error::Config(m) => write!(f, "configuration: {m}"),
            Error::Compute(e) => write!(f, "computing the value failed: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            Error::Protocol { source, .. } => Some(source),
            Error::Compute(e) => Some(&**e),
            _ => None,
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
