//! One memcached node: a few pipelined connections and the node's health.
//!
//! # Health
//!
//! * **Fail fast.** A node in TKO ("technical knock-out") refuses requests at once with
//!   [`Error::NodeDown`], so a dead node costs callers nothing; a full write queue refuses
//!   with [`Error::QueueFull`] instead of making the caller wait.
//! * **TKO** after [`NodeConfig::tko_after`] consecutive timeouts, and at once on a refused
//!   or failed connection (the server is not there; waiting for more timeouts would only
//!   slow callers down).
//! * **Probes.** While in TKO, one request at a time is let through when the backoff has
//!   passed (starting at [`NodeConfig::probe_backoff`], doubling up to
//!   [`NodeConfig::max_probe_backoff`]); its success ends the TKO.

use crate::conn::{Conn, Replies};
use crate::error::{Error, Result};
use crate::protocol::Expect;
use bytes::Bytes;
use parking_lot::Mutex;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// Per-node settings: connections, queue, timeouts and TKO.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default))]
pub struct NodeConfig {
    /// Connections per node, each pipelined. Default 2.
    pub connections: usize,
    /// Requests queued per connection before callers fail fast. Default 4096.
    pub queue: usize,
    /// How long a read waits for its reply. Default 20 ms (EVCache's default is 100 ms;
    /// a zone-local memcached answers in well under a millisecond, and a fast timeout lets
    /// the read fall back to another zone sooner).
    #[cfg_attr(feature = "serde", serde(with = "crate::config::millis"))]
    pub read_timeout: Duration,
    /// How long a write waits for its reply. Default 2500 ms.
    #[cfg_attr(feature = "serde", serde(with = "crate::config::millis"))]
    pub write_timeout: Duration,
    /// How long connecting may take. Default 500 ms.
    #[cfg_attr(feature = "serde", serde(with = "crate::config::millis"))]
    pub connect_timeout: Duration,
    /// Consecutive timeouts that put the node in TKO. Default 5.
    pub tko_after: u32,
    /// The first wait before probing a node in TKO. Default 100 ms.
    #[cfg_attr(feature = "serde", serde(with = "crate::config::millis"))]
    pub probe_backoff: Duration,
    /// The longest wait between probes. Default 5 s.
    #[cfg_attr(feature = "serde", serde(with = "crate::config::millis"))]
    pub max_probe_backoff: Duration,
    /// Which protocol to speak. Default [`Protocol::Auto`].
    pub protocol: Protocol,
}

/// Which memcached protocol a node's connections speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
#[non_exhaustive]
pub enum Protocol {
    /// Ask each new connection's server (`mn`): meta when it answers `MN`, text when it
    /// answers `ERROR` (memcached before 1.6).
    #[default]
    Auto,
    /// The meta protocol, without asking.
    Meta,
    /// The text protocol: for old servers and proxies that only speak text. Leases
    /// (`get_or_compute`'s stampede protection), remaining TTLs and stale-while-revalidate
    /// degrade to plain gets and deletes.
    Text,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            connections: 2,
            queue: 4096,
            read_timeout: Duration::from_millis(20),
            write_timeout: Duration::from_millis(2500),
            connect_timeout: Duration::from_millis(500),
            tko_after: 5,
            probe_backoff: Duration::from_millis(100),
            max_probe_backoff: Duration::from_secs(5),
            protocol: Protocol::Auto,
        }
    }
}

/// A node's health, as [`EvCache::health`](crate::EvCache::health) reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Health {
    /// Taking requests.
    Up,
    /// In TKO: failing fast, probed now and then.
    Down,
}

#[derive(Debug)]
struct Tko {
    /// When the next probe may go.
    next_probe: Instant,
    backoff: Duration,
}

/// One memcached server: its connections and health.
#[derive(Debug)]
pub(crate) struct Node {
    pub addr: SocketAddr,
    cfg: NodeConfig,
    conns: Vec<Mutex<Option<Conn>>>,
    connecting: Vec<tokio::sync::Mutex<()>>,
    next: AtomicUsize,
    timeouts: AtomicU32,
    down: AtomicBool,
    tko: Mutex<Option<Tko>>,
    probing: AtomicBool,
}

impl Node {
    pub(crate) fn new(addr: SocketAddr, cfg: NodeConfig) -> Self {
        let n = cfg.connections.max(1);
        Self {
            addr,
            conns: (0..n).map(|_| Mutex::new(None)).collect(),
            connecting: (0..n).map(|_| tokio::sync::Mutex::new(())).collect(),
            cfg,
            next: AtomicUsize::new(0),
            timeouts: AtomicU32::new(0),
            down: AtomicBool::new(false),
            tko: Mutex::new(None),
            probing: AtomicBool::new(false),
        }
    }

    pub(crate) fn health(&self) -> Health {
        if self.down.load(Ordering::Acquire) {
            Health::Down
        } else {
            Health::Up
        }
    }

    pub(crate) fn config(&self) -> &NodeConfig {
        &self.cfg
    }

    /// Sends one request and waits up to `timeout` for its replies.
    pub(crate) async fn call(
        &self,
        bytes: impl Into<Bytes>,
        expect: Expect,
        timeout: Duration,
    ) -> Result<Replies> {
        let probe = self.admit()?;
        let result = self.call_inner(bytes.into(), expect, timeout).await;
        self.record(&result, probe);
        result
    }

    /// Whether a request may go now; `Ok(true)` if it is the TKO's probe.
    fn admit(&self) -> Result<bool> {
        if !self.down.load(Ordering::Acquire) {
            return Ok(false);
        }
        let now = Instant::now();
        let due = self.tko.lock().as_ref().is_none_or(|t| now >= t.next_probe);
        if due
            && self
                .probing
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            return Ok(true);
        }
        Err(Error::NodeDown { node: self.addr })
    }

    fn record(&self, result: &Result<Replies>, probe: bool) {
        match result {
            Ok(_) => {
                self.timeouts.store(0, Ordering::Relaxed);
                if self.down.swap(false, Ordering::AcqRel) {
                    *self.tko.lock() = None;
                    tracing::info!(node = %self.addr, "memcached node is back up");
                }
            }
            Err(Error::Timeout { .. }) => {
                let n = self.timeouts.fetch_add(1, Ordering::Relaxed) + 1;
                if n >= self.cfg.tko_after || probe {
                    self.trip(probe, "timeouts");
                }
            }
            Err(Error::Io { .. }) => self.trip(probe, "connection failed"),
            Err(_) => {}
        }
        if probe {
            self.probing.store(false, Ordering::Release);
        }
    }

    fn trip(&self, probe: bool, why: &'static str) {
        let mut tko = self.tko.lock();
        let backoff = match (&*tko, probe) {
            (Some(t), true) => (t.backoff * 2).min(self.cfg.max_probe_backoff),
            (Some(t), false) => t.backoff,
            (None, _) => self.cfg.probe_backoff,
        };
        if tko.is_none() || probe {
            *tko = Some(Tko {
                next_probe: Instant::now() + backoff,
                backoff,
            });
        }
        if !self.down.swap(true, Ordering::AcqRel) {
            tracing::warn!(node = %self.addr, why, "memcached node is down (TKO)");
        }
    }

    async fn call_inner(&self, bytes: Bytes, expect: Expect, timeout: Duration) -> Result<Replies> {
        let deadline = Instant::now() + timeout;
        let conn = tokio::time::timeout_at(deadline, self.conn())
            .await
            .map_err(|_| Error::Timeout {
                node: self.addr,
                after: timeout,
            })??;
        let rx = conn.send(bytes, expect)?;
        match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(Error::Io {
                node: self.addr,
                source: std::io::Error::new(
                    std::io::ErrorKind::ConnectionAborted,
                    "the connection closed before the reply",
                ),
            }),
            Err(_) => Err(Error::Timeout {
                node: self.addr,
                after: timeout,
            }),
        }
    }

    /// A live connection, round robin; a closed one is replaced.
    async fn conn(&self) -> Result<Conn> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.conns.len();
        if let Some(c) = self.conns[i].lock().as_ref() {
            if !c.is_closed() {
                return Ok(c.clone());
            }
        }
        let _g = self.connecting[i].lock().await;
        if let Some(c) = self.conns[i].lock().as_ref() {
            if !c.is_closed() {
                return Ok(c.clone());
            }
        }
        let c = Conn::connect(
            self.addr,
            self.cfg.connect_timeout,
            self.cfg.queue,
            self.cfg.protocol,
        )
        .await?;
        *self.conns[i].lock() = Some(c.clone());
        Ok(c)
    }
}
