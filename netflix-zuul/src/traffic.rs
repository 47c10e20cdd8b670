//! Traffic control, the four uses of Zuul in Netflix's own words, as inbound filters:
//!
//! - **Testing a new service on a slice of traffic**: [`Split`] sends a weighted share of a
//!   route's requests to another origin (a canary), sticky by a header or a cookie so a
//!   user stays on one side.
//! - **Load testing**: [`Shadow`] mirrors a share of requests to a second origin and throws
//!   its answers away.
//! - **Sharing traffic across origins**: [`Split`] with several weighted targets.
//! - **Filtering bad requests**: [`Deny`] by header, device, user agent, client address or
//!   network.
//!
//! And two protections: [`RateLimit`], a token bucket per key (a header, or the client's
//! address), and [`Shed`], load shedding by request priority when the gateway is busy.
//!
//! # Example
//!
//! ```
//! use netflix_zuul::filter::FilterChain;
//! use netflix_zuul::traffic::{Deny, RateLimit, Split, Sticky};
//!
//! let chain = FilterChain::builder()
//!     .inbound(
//!         Deny::new()
//!             .user_agent_prefix("BadBot")
//!             .ip("192.0.2.66".parse().unwrap())
//!             .network("198.51.100.0".parse().unwrap(), 24)
//!             // A device family, told by the prefix of the device ID its clients send.
//!             .device("x-device-id", "NFTESTDEV-"),
//!     )
//!     .inbound(RateLimit::per_header("x-user", 100.0, 200.0))
//!     // 5% of /api/ requests to the canary, the same users every time.
//!     .inbound(Split::canary("/api/", "api-canary", 0.05, Sticky::Cookie("uid".into())))
//!     .build()?;
//! assert_eq!(chain.inbound_names(), ["deny", "rate-limit", "split"]);
//! # Ok::<(), netflix_zuul::Error>(())
//! ```

use crate::body::Body;
use crate::context::Context;
use crate::filter::{Flow, InboundFilter, Step};
use crate::gateway::GatewayStats;
use http::{Request, header};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::time::Instant;

/// Set by a filter: the proxy endpoint sends this request to this origin instead of the
/// route's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginOverride(pub String);

/// Set by a filter: the proxy endpoint also sends a copy of this request to this origin
/// and ignores its answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShadowTo(pub String);

/// What keeps a user on one side of a split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sticky {
    /// The value of this request header.
    Header(String),
    /// The value of this cookie.
    Cookie(String),
    /// Nothing: each request is drawn afresh.
    None,
}

fn fnv(b: &[u8]) -> u64 {
    let mut h = b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &x| {
        (h ^ u64::from(x)).wrapping_mul(0x100_0000_01b3)
    });
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^ (h >> 33)
}

fn cookie<'a>(req: &'a Request<Body>, name: &str) -> Option<&'a str> {
    req.headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A number in [0, 1) for the request: from its sticky key, or drawn.
fn draw(req: &Request<Body>, sticky: &Sticky, counter: &AtomicU64) -> f64 {
    let key = match sticky {
        Sticky::Header(h) => req.headers().get(h.as_str()).map(|v| v.as_bytes()),
        Sticky::Cookie(c) => cookie(req, c).map(str::as_bytes),
        Sticky::None => None,
    };
    let h = match key {
        Some(k) => fnv(k),
        None => fnv(&counter.fetch_add(1, Ordering::Relaxed).to_le_bytes()),
    };
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// Weighted routing of a path prefix's requests across origins (see the module docs).
#[derive(Debug)]
pub struct Split {
    prefix: String,
    /// (origin, cumulative upper bound in [0, 1]).
    targets: Vec<(String, f64)>,
    sticky: Sticky,
    counter: AtomicU64,
}

impl Split {
    /// Requests under `prefix` go to `origin` with its weight; weights are normalised, and a
    /// target named `""` means "the route's own origin".
    pub fn new(prefix: impl Into<String>, targets: Vec<(String, f64)>, sticky: Sticky) -> Self {
        let total: f64 = targets
            .iter()
            .map(|t| t.1.max(0.0))
            .sum::<f64>()
            .max(f64::MIN_POSITIVE);
        let mut acc = 0.0;
        let targets = targets
            .into_iter()
            .map(|(o, w)| {
                acc += w.max(0.0) / total;
                (o, acc)
            })
            .collect();
        Self {
            prefix: prefix.into(),
            targets,
            sticky,
            counter: AtomicU64::new(0),
        }
    }

    /// A canary: `share` (0 to 1) of `prefix`'s requests to `canary`, the rest stay.
    pub fn canary(
        prefix: impl Into<String>,
        canary: impl Into<String>,
        share: f64,
        sticky: Sticky,
    ) -> Self {
        let share = share.clamp(0.0, 1.0);
        Self::new(
            prefix,
            vec![(canary.into(), share), (String::new(), 1.0 - share)],
            sticky,
        )
    }
}

impl InboundFilter for Split {
    fn name(&self) -> &str {
        "split"
    }

    fn order(&self) -> i32 {
        50
    }

    fn should_filter(&self, req: &Request<Body>, _: &Context) -> bool {
        req.uri().path().starts_with(&self.prefix)
    }

    fn apply<'a>(&'a self, req: &'a mut Request<Body>, ctx: &'a mut Context) -> Step<'a, Flow> {
        let x = draw(req, &self.sticky, &self.counter);
        if let Some((o, _)) = self.targets.iter().find(|(_, upper)| x < *upper) {
            if !o.is_empty() {
                ctx.extensions.insert(OriginOverride(o.clone()));
            }
        }
        Step::Ready(Flow::Continue)
    }
}

/// Mirrors a share of a path prefix's requests to another origin (see the module docs).
#[derive(Debug)]
pub struct Shadow {
    prefix: String,
    origin: String,
    share: f64,
    counter: AtomicU64,
}

impl Shadow {
    /// `share` (0 to 1) of `prefix`'s requests are copied to `origin`.
    pub fn new(prefix: impl Into<String>, origin: impl Into<String>, share: f64) -> Self {
        Self {
            prefix: prefix.into(),
            origin: origin.into(),
            share: share.clamp(0.0, 1.0),
            counter: AtomicU64::new(0),
        }
    }
}

impl InboundFilter for Shadow {
    fn name(&self) -> &str {
        "shadow"
    }

    fn order(&self) -> i32 {
        60
    }

    fn should_filter(&self, req: &Request<Body>, _: &Context) -> bool {
        req.uri().path().starts_with(&self.prefix)
    }

    fn apply<'a>(&'a self, req: &'a mut Request<Body>, ctx: &'a mut Context) -> Step<'a, Flow> {
        if draw(req, &Sticky::None, &self.counter) < self.share {
            ctx.extensions.insert(ShadowTo(self.origin.clone()));
        }
        Step::Ready(Flow::Continue)
    }
}

/// Refuses bad requests with 403: by header, device, user-agent prefix, client address or
/// network.
#[derive(Debug, Default)]
pub struct Deny {
    headers: Vec<(String, Option<String>)>,
    /// (header, prefix of its value).
    devices: Vec<(String, String)>,
    agents: Vec<String>,
    ips: Vec<IpAddr>,
    /// (network address, prefix length).
    networks: Vec<(IpAddr, u8)>,
}

impl Deny {
    /// Denies nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Denies requests carrying header `name` (with `value`, or any value).
    #[must_use]
    pub fn header(mut self, name: &str, value: Option<&str>) -> Self {
        self.headers
            .push((name.to_ascii_lowercase(), value.map(str::to_string)));
        self
    }

    /// Denies user agents starting with `prefix`.
    #[must_use]
    pub fn user_agent_prefix(mut self, prefix: &str) -> Self {
        self.agents.push(prefix.to_string());
        self
    }

    /// Denies a device or a family of devices: requests whose header `name` (the device
    /// ID or device type the client sends, such as an ESN, whose first part names the
    /// maker and model) starts with `prefix`.
    #[must_use]
    pub fn device(mut self, name: &str, prefix: &str) -> Self {
        self.devices
            .push((name.to_ascii_lowercase(), prefix.to_string()));
        self
    }

    /// Denies a client address (an IPv4 client on an IPv6 socket counts by its IPv4
    /// address).
    #[must_use]
    pub fn ip(mut self, ip: IpAddr) -> Self {
        self.ips.push(ip.to_canonical());
        self
    }

    /// Denies the client addresses of a network: those whose first `prefix` bits are
    /// `network`'s (`10.0.0.0`/8, `2001:db8::`/32). A prefix beyond the address's length
    /// counts as the whole address.
    #[must_use]
    pub fn network(mut self, network: IpAddr, prefix: u8) -> Self {
        self.networks.push((network.to_canonical(), prefix));
        self
    }

    fn denies(&self, req: &Request<Body>, client: Option<SocketAddr>) -> bool {
        let h = req.headers();
        if self
            .headers
            .iter()
            .any(|(n, v)| match (h.get(n.as_str()), v) {
                (Some(_), None) => true,
                (Some(got), Some(want)) => got.as_bytes() == want.as_bytes(),
                (None, _) => false,
            })
        {
            return true;
        }
        if self.devices.iter().any(|(n, p)| {
            h.get(n.as_str())
                .is_some_and(|v| v.as_bytes().starts_with(p.as_bytes()))
        }) {
            return true;
        }
        if let Some(ua) = h.get(header::USER_AGENT).and_then(|v| v.to_str().ok()) {
            if self.agents.iter().any(|p| ua.starts_with(p.as_str())) {
                return true;
            }
        }
        let Some(ip) = client.map(|a| a.ip().to_canonical()) else {
            return false;
        };
        self.ips.contains(&ip)
            || self
                .networks
                .iter()
                .any(|&(net, prefix)| in_network(ip, net, prefix))
    }
}

/// Whether `ip`'s first `prefix` bits are `net`'s (addresses of different families never
/// match).
fn in_network(ip: IpAddr, net: IpAddr, prefix: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(prefix.min(32)))
                .unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(prefix.min(128)))
                .unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

impl InboundFilter for Deny {
    fn name(&self) -> &str {
        "deny"
    }

    fn order(&self) -> i32 {
        -100
    }

    fn apply<'a>(&'a self, req: &'a mut Request<Body>, ctx: &'a mut Context) -> Step<'a, Flow> {
        Step::Ready(if self.denies(req, ctx.client) {
            Flow::respond(403, "denied\n")
        } else {
            Flow::Continue
        })
    }
}

/// A token bucket per key: `rate` requests a second, `burst` at once; beyond, 429 with
/// `Retry-After`. Keys idle for a minute are forgotten (the table stays bounded).
#[derive(Debug)]
pub struct RateLimit {
    key: Option<String>,
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimit {
    /// Keyed by the value of request header `name` (requests without it share one bucket).
    pub fn per_header(name: &str, rate: f64, burst: f64) -> Self {
        Self {
            key: Some(name.to_ascii_lowercase()),
            rate: rate.max(f64::MIN_POSITIVE),
            burst: burst.max(1.0),
            buckets: Mutex::default(),
        }
    }

    /// Keyed by the client's IP address.
    pub fn per_client(rate: f64, burst: f64) -> Self {
        Self {
            key: None,
            ..Self::per_header("", rate, burst)
        }
    }

    fn admit(&self, key: String) -> Result<(), f64> {
        let now = Instant::now();
        let mut b = self.buckets.lock();
        if b.len() > 100_000 {
            b.retain(|_, (_, t)| now.duration_since(*t).as_secs() < 60);
        }
        let e = b.entry(key).or_insert((self.burst, now));
        e.0 = (e.0 + now.duration_since(e.1).as_secs_f64() * self.rate).min(self.burst);
        e.1 = now;
        if e.0 >= 1.0 {
            e.0 -= 1.0;
            Ok(())
        } else {
            Err((1.0 - e.0) / self.rate)
        }
    }
}

impl InboundFilter for RateLimit {
    fn name(&self) -> &str {
        "rate-limit"
    }

    fn order(&self) -> i32 {
        -50
    }

    fn apply<'a>(&'a self, req: &'a mut Request<Body>, ctx: &'a mut Context) -> Step<'a, Flow> {
        let key = match &self.key {
            Some(h) => req
                .headers()
                .get(h.as_str())
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .unwrap_or_default(),
            None => ctx.client.map(|a| a.ip().to_string()).unwrap_or_default(),
        };
        Step::Ready(match self.admit(key) {
            Ok(()) => Flow::Continue,
            Err(wait) => {
                let Flow::Respond(mut r) = Flow::respond(429, "too many requests\n") else {
                    unreachable!("respond builds a response")
                };
                if let Ok(v) = (wait.ceil().max(1.0) as u64).to_string().parse() {
                    r.headers_mut().insert(header::RETRY_AFTER, v);
                }
                Flow::Respond(r)
            }
        })
    }
}

/// Load shedding by priority: when more than `limit` requests are in progress, requests
/// of lower priority are refused first (503). The priority is the value of a header, 0
/// (most important) to 3; absent means 1. Priority `p` is admitted while requests in
/// progress are under `limit × (1 − p/4)`, so critical traffic (0) uses the whole limit
/// and background traffic (3) only a quarter of it.
#[derive(Debug)]
pub struct Shed {
    stats: Arc<GatewayStats>,
    limit: u64,
    header: String,
    /// Requests shed.
    pub shed: AtomicU64,
}

impl Shed {
    /// Sheds on `gateway_stats.active` (see [`crate::Gateway::stats`]) above `limit`, by the
    /// priority in `header`.
    pub fn new(gateway_stats: Arc<GatewayStats>, limit: u64, header: &str) -> Self {
        Self {
            stats: gateway_stats,
            limit,
            header: header.to_ascii_lowercase(),
            shed: AtomicU64::new(0),
        }
    }
}

impl InboundFilter for Shed {
    fn name(&self) -> &str {
        "shed"
    }

    fn order(&self) -> i32 {
        -90
    }

    fn apply<'a>(&'a self, req: &'a mut Request<Body>, _: &'a mut Context) -> Step<'a, Flow> {
        let p: u64 = req
            .headers()
            .get(self.header.as_str())
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(1)
            .min(3);
        // This request is already counted as active.
        let active = self.stats.active.load(Ordering::Relaxed).saturating_sub(1);
        let allowed = self.limit * (4 - p) / 4;
        Step::Ready(if active >= allowed {
            self.shed.fetch_add(1, Ordering::Relaxed);
            Flow::respond(503, "shed: the gateway is busy\n")
        } else {
            Flow::Continue
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body;

    fn req(headers: &[(&str, &str)]) -> Request<Body> {
        let mut b = Request::builder().uri("/api/x");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(body::empty()).unwrap()
    }

    #[test]
    fn canary_share_is_sticky_and_close_to_the_weight() {
        let s = Split::canary("/api/", "canary", 0.1, Sticky::Cookie("uid".into()));
        let mut canary = 0;
        for user in 0..10_000 {
            let mut r = req(&[("cookie", &format!("a=1; uid={user}"))]);
            let mut ctx = Context::default();
            let _ = s.apply(&mut r, &mut ctx);
            let first = ctx.extensions.get::<OriginOverride>().cloned();
            let mut ctx2 = Context::default();
            let _ = s.apply(&mut r, &mut ctx2);
            assert_eq!(
                first,
                ctx2.extensions.get::<OriginOverride>().cloned(),
                "sticky"
            );
            canary += usize::from(first.is_some());
        }
        assert!((900..1100).contains(&canary), "{canary} of 10000");
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn rate_limit_per_key() {
        let rl = RateLimit::per_header("x-user", 1.0, 2.0);
        let mut statuses = Vec::new();
        for _ in 0..4 {
            let mut r = req(&[("x-user", "a")]);
            statuses.push(match rl.apply(&mut r, &mut Context::default()) {
                Step::Ready(Flow::Continue) => 200,
                Step::Ready(Flow::Respond(r)) => r.status().as_u16(),
                Step::Async(_) => 0,
            });
        }
        assert_eq!(statuses, [200, 200, 429, 429]);
        let mut other = req(&[("x-user", "b")]);
        assert!(matches!(
            rl.apply(&mut other, &mut Context::default()),
            Step::Ready(Flow::Continue)
        ));
        tokio::time::advance(std::time::Duration::from_secs(1)).await;
        let mut r = req(&[("x-user", "a")]);
        assert!(matches!(
            rl.apply(&mut r, &mut Context::default()),
            Step::Ready(Flow::Continue)
        ));
    }

    #[test]
    fn deny_and_shed() {
        let d = Deny::new()
            .header("x-debug", None)
            .user_agent_prefix("curl/")
            .ip("192.0.2.1".parse().unwrap());
        assert!(d.denies(&req(&[("x-debug", "1")]), None));
        assert!(d.denies(&req(&[("user-agent", "curl/8.0")]), None));
        assert!(d.denies(&req(&[]), Some("192.0.2.1:5555".parse().unwrap())));
        assert!(!d.denies(
            &req(&[("user-agent", "Mozilla/5.0")]),
            Some("192.0.2.2:1".parse().unwrap())
        ));
        // An IPv4 client seen on an IPv6 socket is still that client.
        assert!(d.denies(&req(&[]), Some("[::ffff:192.0.2.1]:80".parse().unwrap())));
        // Networks and devices.
        let d = Deny::new()
            .network("198.51.100.0".parse().unwrap(), 24)
            .network("2001:db8::".parse().unwrap(), 32)
            .network("203.0.113.7".parse().unwrap(), 40)
            .device("X-Device-Id", "NFTESTDEV-");
        let from = |a: &str| d.denies(&req(&[]), Some(a.parse().unwrap()));
        assert!(from("198.51.100.0:1") && from("198.51.100.255:1"));
        assert!(!from("198.51.101.0:1") && !from("198.51.99.255:1"));
        assert!(from("[2001:db8:ffff::1]:1") && !from("[2001:db9::1]:1"));
        assert!(from("[::ffff:198.51.100.9]:1"));
        assert!(from("203.0.113.7:1") && !from("203.0.113.8:1"));
        assert!(d.denies(&req(&[("x-device-id", "NFTESTDEV-0042")]), None));
        assert!(!d.denies(&req(&[("x-device-id", "NFANDROID1-PRV")]), None));
        // Everything, with a prefix of 0; nothing of the other family.
        let all = Deny::new().network("0.0.0.0".parse().unwrap(), 0);
        assert!(all.denies(&req(&[]), Some("10.1.2.3:4".parse().unwrap())));
        assert!(!all.denies(&req(&[]), Some("[2001:db8::1]:4".parse().unwrap())));

        let stats = Arc::new(GatewayStats::default());
        let s = Shed::new(stats.clone(), 8, "x-priority");
        stats.active.store(5, Ordering::Relaxed); // 4 others in progress
        let status =
            |p: &str| match s.apply(&mut req(&[("x-priority", p)]), &mut Context::default()) {
                Step::Ready(Flow::Continue) => 200,
                Step::Ready(Flow::Respond(r)) => r.status().as_u16(),
                Step::Async(_) => 0,
            };
        assert_eq!(
            [status("0"), status("1"), status("2"), status("3")],
            [200, 200, 503, 503]
        );
    }
}
