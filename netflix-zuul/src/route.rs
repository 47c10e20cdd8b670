//! Routing: which endpoint answers a request, by host, path (prefix, exact or pattern),
//! method and headers, from a route table loaded from a file (JSON, through serde) and
//! reloadable while the gateway runs.
//!
//! ```
//! use netflix_zuul::route::RouteTable;
//!
//! let table = RouteTable::from_json(r#"{
//!     "origins": { "api": { "servers": ["127.0.0.1:8081", "127.0.0.1:8082"] } },
//!     "routes": [
//!         { "name": "health", "path": "/healthz", "endpoint": { "static": { "status": 200, "body": "ok" } } },
//!         { "name": "titles", "path_prefix": "/api/titles/", "methods": ["GET"], "endpoint": { "proxy": "api" } },
//!         { "name": "art", "path_pattern": "/api/titles/*/art/**", "endpoint": { "proxy": "api" } }
//!     ]
//! }"#)?;
//! assert_eq!(table.routes.len(), 3);
//! # Ok::<(), netflix_zuul::Error>(())
//! ```
//!
//! Routes are tried in file order; the first that matches wins; none matching is a 404.

use crate::error::{Error, Result};
use http::{HeaderMap, Method};
use std::collections::BTreeMap;

/// A route table: origins by name, and the routes.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteTable {
    /// The origins routes can proxy to, by name.
    #[serde(default)]
    pub origins: BTreeMap<String, OriginSpec>,
    /// The routes, tried in order.
    #[serde(default)]
    pub routes: Vec<RouteSpec>,
}

/// One origin: its servers and how to call them. Every field but `servers` has a default.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OriginSpec {
    /// Its servers: `"host:port"` or `{"addr": "host:port", "weight": 2}`.
    pub servers: Vec<ServerSpec>,
    /// Load balancing (default `p2c`: power of two choices by peak EWMA latency).
    pub lb: LbKind,
    /// For `lb: "hash"`: the request header whose value is hashed (default the path).
    pub hash_header: Option<String>,
    /// Connect timeout in milliseconds (default 500).
    pub connect_timeout_ms: u64,
    /// Time to the response's headers, in milliseconds (default 10,000).
    pub read_timeout_ms: u64,
    /// The whole request's deadline, retries included, in milliseconds (default 30,000).
    pub deadline_ms: u64,
    /// Requests in flight to one server at most (default 1,024): a full server is skipped,
    /// and when every server is full the request gets 503 at once.
    pub max_connections_per_server: usize,
    /// An idle pooled connection to a server is closed after this many milliseconds
    /// (default 60,000), and sooner if the server closes it.
    pub idle_timeout_ms: u64,
    /// Retries after the first attempt (default 1).
    pub max_retries: usize,
    /// Statuses that are retried for idempotent methods (default 502, 503, 504).
    pub retry_statuses: Vec<u16>,
    /// Retries may add this share of the requests (default 0.2: Zuul's budget).
    pub retry_budget: f64,
    /// Consecutive failures that eject a server (default 5)...
    pub eject_after: u32,
    /// ...for this many milliseconds (default 10,000).
    pub eject_ms: u64,
    /// The origin's circuit breaker opens at this error percentage (default 50)...
    pub breaker_error_percent: u32,
    /// ...over at least this many requests in its 10 s window (default 20; 0 turns the
    /// breaker off)...
    pub breaker_volume: u32,
    /// ...and lets a trial request through after this many milliseconds (default 5,000).
    pub breaker_sleep_ms: u64,
    /// Active health checks (default none).
    pub health_check: Option<HealthCheckSpec>,
    /// Speak HTTP/2 (cleartext, prior knowledge) to the servers: one multiplexed connection
    /// per server instead of a pool (default false: HTTP/1.1).
    pub http2: bool,
}

/// Active health checks: a GET of `path` on every server every `interval_ms`; a server
/// that fails `unhealthy_after` checks in a row (a transport error, a timeout or a status
/// other than 2xx) gets no traffic until it passes `healthy_after` in a row.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthCheckSpec {
    /// The path to GET (default `/healthz`).
    pub path: String,
    /// Between rounds, in milliseconds (default 2,000).
    pub interval_ms: u64,
    /// For one check, in milliseconds (default 1,000).
    pub timeout_ms: u64,
    /// Failures in a row that take a server out (default 2).
    pub unhealthy_after: u32,
    /// Successes in a row that bring it back (default 1).
    pub healthy_after: u32,
}

impl Default for HealthCheckSpec {
    fn default() -> Self {
        Self {
            path: "/healthz".into(),
            interval_ms: 2_000,
            timeout_ms: 1_000,
            unhealthy_after: 2,
            healthy_after: 1,
        }
    }
}

impl Default for OriginSpec {
    fn default() -> Self {
        Self {
            servers: Vec::new(),
            lb: LbKind::P2c,
            hash_header: None,
            connect_timeout_ms: 500,
            read_timeout_ms: 10_000,
            deadline_ms: 30_000,
            max_connections_per_server: 1024,
            idle_timeout_ms: 60_000,
            max_retries: 1,
            retry_statuses: vec![502, 503, 504],
            retry_budget: 0.2,
            eject_after: 5,
            eject_ms: 10_000,
            breaker_error_percent: 50,
            breaker_volume: 20,
            breaker_sleep_ms: 5_000,
            health_check: None,
            http2: false,
        }
    }
}

/// One origin server.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum ServerSpec {
    /// `"host:port"`, weight 1.
    Addr(String),
    /// With a weight.
    Weighted {
        /// `host:port`.
        addr: String,
        /// Its weight (default 1).
        #[serde(default = "one")]
        weight: u32,
    },
}

fn one() -> u32 {
    1
}

impl ServerSpec {
    /// The address.
    pub fn addr(&self) -> &str {
        match self {
            ServerSpec::Addr(a) | ServerSpec::Weighted { addr: a, .. } => a,
        }
    }

    /// The weight.
    pub fn weight(&self) -> u32 {
        match self {
            ServerSpec::Addr(_) => 1,
            ServerSpec::Weighted { weight, .. } => *weight,
        }
    }
}

/// Load-balancing algorithms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LbKind {
    /// Power of two random choices, the lower of (peak EWMA latency × requests in flight)
    /// (Finagle's and linkerd's default).
    #[default]
    P2c,
    /// Each server in turn.
    RoundRobin,
    /// Each server in turn, in proportion to its weight (smooth weighted round robin).
    Weighted,
    /// Rendezvous hashing of a header (or the path): the same key, the same server.
    Hash,
}

/// One route.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSpec {
    /// Its name (metrics, logs).
    pub name: String,
    /// The host it answers (`api.example.com`, or `*.example.com`); any when absent.
    #[serde(default)]
    pub host: Option<String>,
    /// An exact path.
    #[serde(default)]
    pub path: Option<String>,
    /// A path prefix.
    #[serde(default)]
    pub path_prefix: Option<String>,
    /// A path pattern: `*` is one segment, `**` any number (last only).
    #[serde(default)]
    pub path_pattern: Option<String>,
    /// Methods it answers; any when empty.
    #[serde(default)]
    pub methods: Vec<String>,
    /// Headers that must be present, with this value (`"*"` for any value).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// What answers.
    pub endpoint: EndpointSpec,
    /// Removes `path_prefix` before proxying (default false).
    #[serde(default)]
    pub strip_prefix: bool,
}

/// What answers a route.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndpointSpec {
    /// Proxy to the named origin.
    Proxy(String),
    /// The origins' `hystrix.stream` (server-sent events) and its dashboard
    /// (`{"hystrix_stream": null}`).
    HystrixStream,
    /// The gateway's metrics in Prometheus' text format (`{"metrics": null}`).
    Metrics,
    /// A fixed response.
    Static {
        /// Its status (default 200).
        #[serde(default = "ok")]
        status: u16,
        /// Its body.
        #[serde(default)]
        body: String,
        /// Its content type (default `text/plain`).
        #[serde(default)]
        content_type: Option<String>,
    },
}

fn ok() -> u16 {
    200
}

impl RouteTable {
    /// Parses a JSON route table and checks it.
    ///
    /// # Errors
    ///
    /// A configuration [`Error`] naming the problem: JSON syntax or an unknown field (with
    /// its line), a route to an unknown origin, an origin without servers, a route with no
    /// path rule or more than one.
    pub fn from_json(text: &str) -> Result<Self> {
        let t: RouteTable = serde_json::from_str(text).map_err(|e| {
            Error::config(format!(
                "route table, line {} column {}: {e}",
                e.line(),
                e.column()
            ))
        })?;
        t.check()?;
        Ok(t)
    }

    /// Reads and parses a route file.
    ///
    /// # Errors
    ///
    /// As [`from_json`](Self::from_json), and when the file cannot be read.
    pub fn load(path: impl AsRef<std::path::Path>) -> Result<Self> {
        let p = path.as_ref();
        let text = std::fs::read_to_string(p)
            .map_err(|e| Error::config(format!("cannot read {}", p.display())).with_cause(e))?;
        Self::from_json(&text)
    }

    /// Checks references and rules.
    ///
    /// # Errors
    ///
    /// As [`from_json`](Self::from_json).
    pub fn check(&self) -> Result<()> {
        for (name, o) in &self.origins {
            if o.servers.is_empty() {
                return Err(Error::config(format!("origin {name:?} has no servers")));
            }
            for s in &o.servers {
                if s.addr().parse::<std::net::SocketAddr>().is_err() {
                    return Err(Error::config(format!(
                        "origin {name:?}: {:?} is not host:port",
                        s.addr()
                    )));
                }
            }
        }
        for r in &self.routes {
            let rules = [&r.path, &r.path_prefix, &r.path_pattern]
                .iter()
                .filter(|p| p.is_some())
                .count();
            if rules > 1 {
                return Err(Error::config(format!(
                    "route {:?} has more than one path rule",
                    r.name
                )));
            }
            if let EndpointSpec::Proxy(o) = &r.endpoint {
                if !self.origins.contains_key(o) {
                    return Err(Error::config(format!(
                        "route {:?} proxies to unknown origin {o:?}",
                        r.name
                    )));
                }
            }
            for m in &r.methods {
                Method::from_bytes(m.as_bytes()).map_err(|_| {
                    Error::config(format!("route {:?}: {m:?} is not a method", r.name))
                })?;
            }
        }
        Ok(())
    }

    /// The first route matching the request, by index.
    pub fn find(
        &self,
        method: &Method,
        host: Option<&str>,
        path: &str,
        headers: &HeaderMap,
    ) -> Option<usize> {
        self.routes
            .iter()
            .position(|r| r.matches(method, host, path, headers))
    }
}

impl RouteSpec {
    /// Whether the route answers this request.
    pub fn matches(
        &self,
        method: &Method,
        host: Option<&str>,
        path: &str,
        headers: &HeaderMap,
    ) -> bool {
        if let Some(h) = &self.host {
            let Some(req_host) = host.map(|h| h.split(':').next().unwrap_or(h)) else {
                return false;
            };
            let ok = match h.strip_prefix("*.") {
                Some(suffix) => {
                    req_host.len() > suffix.len()
                        && req_host.ends_with(suffix)
                        && req_host[..req_host.len() - suffix.len()].ends_with('.')
                }
                None => req_host.eq_ignore_ascii_case(h),
            };
            if !ok {
                return false;
            }
        }
        if let Some(p) = &self.path {
            if path != p {
                return false;
            }
        }
        if let Some(p) = &self.path_prefix {
            if !path.starts_with(p.as_str()) {
                return false;
            }
        }
        if let Some(p) = &self.path_pattern {
            if !pattern_matches(p, path) {
                return false;
            }
        }
        if !self.methods.is_empty()
            && !self
                .methods
                .iter()
                .any(|m| m.eq_ignore_ascii_case(method.as_str()))
        {
            return false;
        }
        self.headers
            .iter()
            .all(|(k, v)| match headers.get(k.as_str()) {
                None => false,
                Some(got) => v == "*" || got.as_bytes() == v.as_bytes(),
            })
    }
}

/// `*` matches one path segment, `**` (last) any number.
fn pattern_matches(pattern: &str, path: &str) -> bool {
    let mut ps = pattern.split('/');
    let mut xs = path.split('/');
    loop {
        match (ps.next(), xs.next()) {
            (Some("**"), _) => return true,
            (Some("*"), Some(x)) if !x.is_empty() => {}
            (Some(p), Some(x)) if p == x => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(json: &str) -> RouteSpec {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn matching() {
        let h = HeaderMap::new();
        let get = Method::GET;
        let r = route(
            r#"{"name":"a","host":"*.example.com","path_prefix":"/api/","methods":["GET"],"endpoint":{"proxy":"x"}}"#,
        );
        assert!(r.matches(&get, Some("api.example.com:8080"), "/api/titles", &h));
        assert!(!r.matches(&get, Some("example.com"), "/api/titles", &h));
        assert!(!r.matches(&get, Some("evilexample.com"), "/api/titles", &h));
        assert!(!r.matches(&Method::POST, Some("api.example.com"), "/api/titles", &h));
        assert!(!r.matches(&get, None, "/api/titles", &h));
        let p = route(r#"{"name":"p","path_pattern":"/titles/*/art/**","endpoint":{"proxy":"x"}}"#);
        assert!(p.matches(&get, None, "/titles/81/art/boxshot.jpg", &h));
        assert!(p.matches(&get, None, "/titles/81/art/a/b", &h));
        assert!(!p.matches(&get, None, "/titles/81/meta", &h));
        assert!(!p.matches(&get, None, "/titles//art/x", &h));
        let hd = route(
            r#"{"name":"c","headers":{"x-canary":"1","x-user":"*"},"endpoint":{"proxy":"x"}}"#,
        );
        let mut headers = HeaderMap::new();
        headers.insert("x-canary", "1".parse().unwrap());
        assert!(!hd.matches(&get, None, "/", &headers));
        headers.insert("x-user", "42".parse().unwrap());
        assert!(hd.matches(&get, None, "/", &headers));
    }

    #[test]
    fn bad_tables_are_config_errors() {
        for (json, needle) in [
            (
                r#"{"routes":[{"name":"a","endpoint":{"proxy":"nope"}}]}"#,
                "unknown origin",
            ),
            (r#"{"origins":{"o":{"servers":[]}}}"#, "no servers"),
            (
                r#"{"origins":{"o":{"servers":["not an address"]}}}"#,
                "host:port",
            ),
            (
                r#"{"routes":[{"name":"a","path":"/","path_prefix":"/","endpoint":{"static":{}}}]}"#,
                "more than one",
            ),
            (
                r#"{"routes":[{"name":"a","methods":["G ET"],"endpoint":{"static":{}}}]}"#,
                "not a method",
            ),
            (r#"{"routez":[]}"#, "unknown field"),
            ("{\n\"routes\": [,]}", "line 2"),
        ] {
            let e = RouteTable::from_json(json).unwrap_err().to_string();
            assert!(e.contains(needle), "{json}: {e}");
        }
    }
}
