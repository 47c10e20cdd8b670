//! Serving on several threads, each with a single-threaded runtime of its own.
//!
//! [`Gateway::serve`] runs wherever its runtime puts it: on a multi-threaded runtime, tokio
//! moves tasks between threads and wakes idle threads to steal work, which costs a
//! cross-thread wake-up and shared queues on every request once the load is spread. A
//! proxy's requests are short and independent, so [`Workers`] instead runs one
//! single-threaded (`current_thread`) runtime per thread, each accepting on a socket of its
//! own: a connection and everything it does stay on the thread that accepted it, as in
//! nginx's worker processes and pingora's runtimes without work stealing.
//!
//! On Linux every worker has its own listening socket on the same address
//! (`SO_REUSEPORT`), and the kernel spreads new connections across them. Elsewhere the
//! workers share one socket.
//!
//! What is shared stays shared: the route table, the origins, their breakers and metrics
//! are the gateway's, used by every worker. Origin connections are the exception: each
//! worker keeps those it opened (HTTP/1.1 ones marked as its own in each origin's pool,
//! HTTP/2 ones in a client of its own), since a socket is served by the runtime it was
//! opened on, and another worker's runtime would not look at it while busy. The gateway's background tasks (health checks, idle-connection sweeps)
//! run on the runtime that built it, which keeps running while the workers serve.
//!
//! One worker needs no second thread: [`Gateway::serve`] on a `current_thread` runtime (with
//! the same [`event_interval`](Workers::event_interval), set on its builder) serves as a
//! single worker does, background tasks included, in a process of one thread. On Linux that
//! also spares a reference count on every socket each system call looks up, which the
//! kernel takes only when threads share a file table (`fdget` and `fput` came to 1.9% of a
//! proxied request's CPU samples with a second thread, 1.3% without).
//! `scripts/bench-zuul.sh` serves its one-worker runs that way, as nginx's worker process
//! is a single thread too.
//!
//! Connections from clients are spread by the kernel (Linux) by a hash of their addresses,
//! not by load: with few connections, one worker may get more than its share. Work
//! stealing ([`Gateway::serve`] on a multi-threaded runtime) spreads requests by load, at
//! the price of moving tasks between threads.

use crate::Gateway;
use std::future::Future;
use std::io;
use std::net::SocketAddr;

/// Listening sockets for a given number of worker threads, bound and ready to serve.
///
/// # Example
///
/// ```no_run
/// use netflix_zuul::{Gateway, filter::FilterChain, route::RouteTable, workers::Workers};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let routes = RouteTable::from_json(r#"{
///     "origins": { "api": { "servers": ["127.0.0.1:8081"] } },
///     "routes": [ { "name": "api", "path_prefix": "/", "endpoint": { "proxy": "api" } } ]
/// }"#)?;
/// let gateway = Gateway::new(routes, FilterChain::default())?;
/// let workers = Workers::bind("127.0.0.1:8080".parse()?, 2).await?;
/// println!("listening on {}", workers.local_addr());
/// // Serves on two threads until Ctrl-C, then drains each.
/// workers.serve(gateway, async { let _ = tokio::signal::ctrl_c().await; }).await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Workers {
    listeners: Vec<std::net::TcpListener>,
    addr: SocketAddr,
    event_interval: u32,
}

/// How many tasks a worker runs before it looks for new socket events again, by default.
///
/// tokio's default (61) lets a burst of newly arrived requests run ahead of answers that
/// came back from origins meanwhile; at half load with one worker that put the gateway's
/// p99 up to 1.5 ms above nginx's (which handles each batch of events as it comes), while
/// its median was the same. At 8 the worst of that tail went (it is still a little above
/// nginx's on a busy 2-core machine), and throughput did not move measurably (one more
/// non-blocking `epoll_wait` in every eight task runs).
pub const DEFAULT_EVENT_INTERVAL: u32 = 8;

/// How many connections may wait to be accepted, per socket.
const BACKLOG: u32 = 1024;

impl Workers {
    /// Binds `addr` for `threads` workers (at least one). Port 0 picks a free port, the
    /// same for every worker. Must be called inside a tokio runtime.
    ///
    /// # Errors
    ///
    /// When the address cannot be bound: in use (by another gateway too), or not this
    /// machine's.
    pub async fn bind(addr: SocketAddr, threads: usize) -> io::Result<Self> {
        let threads = threads.max(1);
        if cfg!(target_os = "linux") && addr.port() != 0 {
            // Sockets with SO_REUSEPORT share a port with any other such socket of the same
            // user, so a second gateway would bind it silently and take half the traffic.
            // A plain bind first fails as it should when the port is taken.
            drop(std::net::TcpListener::bind(addr)?);
        }
        let first = listen(addr)?;
        let addr = first.local_addr()?;
        let mut listeners = vec![first.into_std()?];
        for _ in 1..threads {
            listeners.push(if cfg!(target_os = "linux") {
                listen(addr)?.into_std()?
            } else {
                listeners[0].try_clone()?
            });
        }
        Ok(Self {
            listeners,
            addr,
            event_interval: DEFAULT_EVENT_INTERVAL,
        })
    }

    /// The address the workers listen on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many worker threads [`serve`](Self::serve) starts.
    pub fn threads(&self) -> usize {
        self.listeners.len()
    }

    /// Sets how many tasks each worker runs before it looks for new socket events again
    /// (tokio's `event_interval`; default [`DEFAULT_EVENT_INTERVAL`], at least 1). Lower
    /// answers sooner under bursts; higher makes fewer system calls under steady load.
    ///
    /// ```
    /// use netflix_zuul::workers::Workers;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let workers = Workers::bind("127.0.0.1:0".parse().unwrap(), 2)
    ///     .await?
    ///     .event_interval(16);
    /// assert_eq!(workers.threads(), 2);
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn event_interval(mut self, tasks: u32) -> Self {
        self.event_interval = tasks.max(1);
        self
    }

    /// Serves `gateway` on the worker threads until `shutdown` completes; then each
    /// worker stops accepting, finishes its requests in flight and closes its idle
    /// connections, as [`Gateway::serve`] does, and this returns when all have.
    ///
    /// Call it inside the runtime that built the gateway: its background tasks run there.
    ///
    /// # Errors
    ///
    /// When a worker thread or its runtime cannot be started, or a worker panicked.
    pub async fn serve(
        self,
        gateway: Gateway,
        shutdown: impl Future<Output = ()>,
    ) -> io::Result<()> {
        self.run(gateway, shutdown, None).await
    }

    /// Like [`serve`](Self::serve), over TLS (feature `tls`): see [`Gateway::serve_tls`].
    ///
    /// # Errors
    ///
    /// As [`serve`](Self::serve).
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    pub async fn serve_tls(
        self,
        gateway: Gateway,
        tls: crate::tls::TlsConfig,
        shutdown: impl Future<Output = ()>,
    ) -> io::Result<()> {
        self.run(gateway, shutdown, Some(tls.acceptor())).await
    }

    async fn run(
        self,
        gateway: Gateway,
        shutdown: impl Future<Output = ()>,
        tls: Option<crate::gateway::Acceptor>,
    ) -> io::Result<()> {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut done = Vec::with_capacity(self.listeners.len());
        for (i, listener) in self.listeners.into_iter().enumerate() {
            let (tx, rx) = tokio::sync::oneshot::channel::<io::Result<()>>();
            let rt = tokio::runtime::Builder::new_current_thread()
                .event_interval(self.event_interval)
                .enable_all()
                .build()?;
            let (gateway, tls, mut stop) = (gateway.clone(), tls.clone(), stop_rx.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("zuul-worker-{i}"))
                .spawn(move || {
                    // This runtime polls only its own sockets: origin connections opened
                    // here stay here (each worker has its own, as nginx's processes do).
                    crate::upstream::keep_connections_local();
                    let served = rt.block_on(async move {
                        listener.set_nonblocking(true)?;
                        let listener = tokio::net::TcpListener::from_std(listener)?;
                        let stopped = async move {
                            let _ = stop.wait_for(|s| *s).await;
                        };
                        gateway.serve_with(listener, stopped, tls).await
                    });
                    let _ = tx.send(served);
                });
            if let Err(e) = spawned {
                let _ = stop_tx.send(true);
                return Err(e);
            }
            done.push(rx);
        }
        shutdown.await;
        let _ = stop_tx.send(true);
        let mut result = Ok(());
        for rx in done {
            let r = rx
                .await
                .unwrap_or_else(|_| Err(io::Error::other("a gateway worker thread panicked")));
            if result.is_ok() {
                result = r;
            }
        }
        result
    }
}

fn listen(addr: SocketAddr) -> io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    #[cfg(all(unix, not(target_os = "solaris"), not(target_os = "illumos")))]
    socket.set_reuseport(cfg!(target_os = "linux"))?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}
