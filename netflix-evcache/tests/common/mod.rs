//! Real memcached servers for tests: each on a free loopback port, stopped on drop.

#![allow(dead_code, unreachable_pub)]
#![allow(
    clippy::disallowed_types,
    clippy::disallowed_methods,
    reason = "the harness starts and stops servers synchronously, with wall-clock deadlines"
)]

use netflix_evcache::ketama::NodeSpec;
use netflix_evcache::{EvCache, ServerGroup, Topology, local};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

/// The command that installs what the tests need.
pub const SETUP: &str = "scripts/setup.sh test";

/// One memcached process (the crate's own [`local::Memcached`]), whose failures panic
/// naming the setup command.
pub struct Memcached {
    inner: local::Memcached,
    pub port: u16,
}

impl Memcached {
    /// Starts memcached on a free loopback port and waits until it accepts connections.
    ///
    /// # Panics
    ///
    /// When memcached is not installed (naming the setup command) or does not start.
    pub fn start() -> Self {
        let inner = local::Memcached::start().unwrap_or_else(|e| panic!("{e}: run `{SETUP}`"));
        Self {
            port: inner.port(),
            inner,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.inner.addr()
    }

    pub fn spec(&self) -> NodeSpec {
        self.inner.spec()
    }

    /// SIGKILL: the node is gone (connections reset, new ones refused).
    pub fn kill(&mut self) {
        self.inner.kill();
    }

    /// Starts memcached again on the same port (empty).
    pub fn restart(&mut self) {
        self.inner
            .restart()
            .expect("memcached restarts on its port");
    }

    /// SIGSTOP: the node hangs (connections stay open, nothing answers).
    pub fn stop(&self) {
        self.inner.stop().expect("SIGSTOP");
    }

    /// SIGCONT.
    pub fn resume(&self) {
        self.inner.resume().expect("SIGCONT");
    }
}

/// A free loopback port (bound, then released for the server to take).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// `zones` zones of `per_zone` memcached each, and the topology naming them `zone-a`...
pub fn fleet(zones: usize, per_zone: usize) -> (Vec<Vec<Memcached>>, Topology) {
    let servers: Vec<Vec<Memcached>> = (0..zones)
        .map(|_| (0..per_zone).map(|_| Memcached::start()).collect())
        .collect();
    let topology = Topology::new(
        servers
            .iter()
            .enumerate()
            .map(|(z, nodes)| {
                ServerGroup::new(zone(z), nodes.iter().map(Memcached::spec).collect())
            })
            .collect(),
    );
    (servers, topology)
}

/// A client that sees only zone `z` of `t` (the same ring; readable even if the group is
/// write-only), to check each copy on its own.
pub fn zone_client(t: &Topology, z: usize) -> EvCache {
    let mut group = t.groups[z].clone();
    group.write_only = false;
    EvCache::builder("TEST")
        .topology(Topology::new(vec![group]))
        .build()
        .unwrap()
}

/// The name of zone `z`: `zone-a`, `zone-b`...
pub fn zone(z: usize) -> String {
    format!("zone-{}", (b'a' + z as u8) as char)
}

/// Sends `request` to memcached on `port` over a plain socket and returns the reply up to
/// and including the line that starts with one of `until` (`"HD"`, `"EN"`, `"MN"`...),
/// lossily as text.
pub fn raw(port: u16, request: &[u8], until: &[&str]) -> String {
    String::from_utf8_lossy(&raw_bytes(port, request, until)).into_owned()
}

/// [`raw`], as bytes: a `VA <n>` line's value is read whole, whatever it holds.
pub fn raw_bytes(port: u16, request: &[u8], until: &[&str]) -> Vec<u8> {
    use std::io::{BufRead, BufReader, Read, Write};
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    s.write_all(request).unwrap();
    let mut r = BufReader::new(s);
    let mut out = Vec::new();
    loop {
        let mut line = Vec::new();
        if r.read_until(b'\n', &mut line).unwrap_or(0) == 0 {
            return out;
        }
        out.extend_from_slice(&line);
        let text = String::from_utf8_lossy(&line);
        if let Some(n) = text
            .strip_prefix("VA ")
            .and_then(|t| t.split_whitespace().next())
            .and_then(|n| n.parse::<usize>().ok())
        {
            let mut value = vec![0; n + 2];
            r.read_exact(&mut value).unwrap();
            out.extend_from_slice(&value);
            return out;
        }
        if until.iter().any(|u| text.starts_with(u)) {
            return out;
        }
    }
}
