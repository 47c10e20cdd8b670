//! Real memcached servers on loopback, for tests, examples and local development: each on
//! a free port, stopped when dropped, with the faults a drill needs (kill, restart, hang).
//!
//! This starts the `memcached` binary (Debian package `memcached`), never a system service
//! and never a fixed port. Starting and killing block while they wait for the process (a
//! few milliseconds); in async code, start servers before the work or through
//! `tokio::task::spawn_blocking`.
//!
//! # Example
//!
//! ```
//! use netflix_evcache::local::Memcached;
//! use netflix_evcache::{EvCache, ServerGroup, Topology};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let zones = [Memcached::start()?, Memcached::start()?];
//! let topology = Topology::new(vec![
//!     ServerGroup::new("zone-a", vec![zones[0].spec()]),
//!     ServerGroup::new("zone-b", vec![zones[1].spec()]),
//! ]);
//! let cache = EvCache::builder("demo").topology(topology).local_zone("zone-a").build()?;
//! cache.set("greeting", "hello", None).await?.wait_all().await;
//! assert!(cache.get("greeting").await?.is_some());
//! # Ok(())
//! # }
//! ```

#![allow(
    clippy::disallowed_methods,
    reason = "starting and stopping a process is synchronous: it polls with short sleeps"
)]

use crate::ketama::NodeSpec;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A memcached process on a free loopback port, killed when dropped.
#[derive(Debug)]
pub struct Memcached {
    child: Option<Child>,
    port: u16,
    args: Vec<String>,
}

/// Polls every 10 ms, 500 times at most: five seconds for a server to come up.
const POLLS: u32 = 500;
const POLL: Duration = Duration::from_millis(10);

impl Memcached {
    /// Starts memcached with one worker thread and 64 MiB (`-t 1 -m 64 -c 1024`), and
    /// waits until it accepts connections.
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::NotFound`] when `memcached` is not installed (the message says how
    /// to install it), or the error of starting it; [`io::ErrorKind::TimedOut`] when it
    /// accepts no connection on any of 20 free ports.
    pub fn start() -> io::Result<Self> {
        Self::start_with(&["-t", "1", "-m", "64", "-c", "1024"])
    }

    /// Starts memcached with `args` (beyond the address and port, which this picks).
    ///
    /// # Errors
    ///
    /// As [`start`](Self::start).
    pub fn start_with(args: &[&str]) -> io::Result<Self> {
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        for _ in 0..20 {
            let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
            let mut m = Self {
                child: None,
                port,
                args: args.clone(),
            };
            if m.spawn_and_wait()? {
                tracing::debug!(port, "memcached started");
                return Ok(m);
            }
        }
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "memcached did not start on any of 20 free ports",
        ))
    }

    /// Spawns on `self.port`; whether it came up (false: the port was taken meanwhile,
    /// or it did not answer in time).
    fn spawn_and_wait(&mut self) -> io::Result<bool> {
        let mut child = Command::new("memcached")
            .args(["-l", "127.0.0.1", "-p", &self.port.to_string(), "-U", "0"])
            .args(&self.args)
            .args(as_root())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| match e.kind() {
                io::ErrorKind::NotFound => io::Error::new(
                    io::ErrorKind::NotFound,
                    "memcached is not installed (Debian/Ubuntu: apt-get install memcached)",
                ),
                _ => e,
            })?;
        for _ in 0..POLLS {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                self.child = Some(child);
                return Ok(true);
            }
            if let Ok(Some(_)) = child.try_wait() {
                return Ok(false);
            }
            std::thread::sleep(POLL);
        }
        let _ = child.kill();
        let _ = child.wait();
        Ok(false)
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// It as a node of a [`ServerGroup`](crate::ServerGroup).
    pub fn spec(&self) -> NodeSpec {
        NodeSpec::new("127.0.0.1", self.port)
    }

    /// Whether it is running (not killed).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// SIGKILL, as a crash: its connections reset and new ones are refused. Returns once
    /// the process is gone.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            // A stopped process dies of SIGKILL all the same.
            let _ = c.kill();
            let _ = c.wait();
            tracing::debug!(port = self.port, "memcached killed");
        }
    }

    /// Starts it again, empty, on the same port (after [`kill`](Self::kill), or killing it
    /// first).
    ///
    /// # Errors
    ///
    /// When it cannot be started, or does not come up on its port within ten seconds.
    pub fn restart(&mut self) -> io::Result<()> {
        self.kill();
        // The port can stay busy for a moment after the old process is reaped.
        for _ in 0..5 {
            if self.spawn_and_wait()? {
                return Ok(());
            }
        }
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("memcached did not restart on port {}", self.port),
        ))
    }

    /// SIGSTOP: it hangs, as an overloaded or paused server does: connections stay open
    /// and nothing answers.
    ///
    /// # Errors
    ///
    /// When it is not running or the signal cannot be sent.
    pub fn stop(&self) -> io::Result<()> {
        self.signal("STOP")
    }

    /// SIGCONT: it answers again after [`stop`](Self::stop).
    ///
    /// # Errors
    ///
    /// When it is not running or the signal cannot be sent.
    pub fn resume(&self) -> io::Result<()> {
        self.signal("CONT")
    }

    fn signal(&self, sig: &str) -> io::Result<()> {
        let Some(c) = &self.child else {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                "memcached is not running",
            ));
        };
        let status = Command::new("kill")
            .args([format!("-{sig}"), c.id().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?;
        if status.success() {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "kill -{sig} {}: {status}",
                c.id()
            )))
        }
    }
}

impl Drop for Memcached {
    fn drop(&mut self) {
        self.kill();
    }
}

/// memcached refuses to run as root unless told which user to be.
fn as_root() -> &'static [&'static str] {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
    if root { &["-u", "root"] } else { &[] }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn version(port: u16) -> io::Result<String> {
        let mut s = TcpStream::connect(("127.0.0.1", port))?;
        s.set_read_timeout(Some(Duration::from_secs(2)))?;
        s.write_all(b"version\r\n")?;
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf)?;
        Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
    }

    #[test]
    fn starts_kills_restarts_and_stops() {
        let mut m =
            Memcached::start().unwrap_or_else(|e| panic!("{e}; run `scripts/setup.sh test`"));
        assert!(version(m.port()).unwrap().starts_with("VERSION "));
        // Hung: the connection opens, nothing answers.
        m.stop().unwrap();
        let mut s = TcpStream::connect(m.addr()).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        s.write_all(b"version\r\n").unwrap();
        assert!(s.read(&mut [0u8; 16]).is_err(), "a stopped server answered");
        m.resume().unwrap();
        assert!(
            s.read(&mut [0u8; 16]).unwrap() > 0,
            "it answers once resumed"
        );
        let port = m.port();
        m.kill();
        assert!(!m.is_running());
        assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
        assert!(m.stop().is_err(), "a dead server cannot be stopped");
        m.restart().unwrap();
        assert_eq!(m.port(), port);
        assert!(version(port).unwrap().starts_with("VERSION "));
        drop(m);
        assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
    }
}
