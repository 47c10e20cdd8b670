//! Stage 4, the API: the playback service (application code of this example) behind the
//! `netflix-zuul` gateway.
//!
//! A play request (`GET /play?title=T&country=CC`, the subscriber named by the gateway's
//! authentication filter in `x-subscriber`, the client's address in `x-client-ip`) is
//! checked against the subscriber's plan and the title's licence for the country; the
//! title's metadata comes from the `netflix-evcache` store and the OCAs from the control
//! plane's steering, each through a `netflix-hystrix` command. The answer names the
//! manifest and the ranked, signed OCA URLs. Version 2 of the service also names the DASH
//! manifest; the gateway sends a sticky share of subscribers to it (a canary).

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use netflix_evcache::EvCache;
use netflix_hystrix::registry::{Command, Registry};
use netflix_oca::control::ControlPlane;
use netflix_zuul::Gateway;
use netflix_zuul::filter::{FilterChain, Flow, inbound_fn};
use netflix_zuul::route::RouteTable;
use netflix_zuul::traffic::{RateLimit, Split, Sticky};
use std::collections::HashMap;
use std::net::SocketAddr;
use tokio::net::TcpListener;

/// Subscribers: (id, plan, bearer token).
pub(crate) const SUBSCRIBERS: [(&str, &str, &str); 8] = [
    ("s-1", "premium", "token-1"),
    ("s-2", "standard", "token-2"),
    ("s-3", "premium", "token-3"),
    ("s-4", "lapsed", "token-4"),
    ("s-5", "basic", "token-5"),
    ("s-6", "premium", "token-6"),
    ("s-7", "standard", "token-7"),
    ("s-8", "basic", "token-8"),
];

/// Where each title may be played.
const LICENCES: [(&str, &[&str]); 1] = [("bbb", &["US", "BR", "NL"])];

/// One version of the playback service.
#[derive(Clone)]
struct Playback {
    version: &'static str,
    control: ControlPlane,
    store: EvCache,
    steering: Command,
    metadata: Command,
    session: Command,
}

fn json(status: StatusCode, value: &serde_json::Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(value.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        "application/json".parse().expect("a type"),
    );
    r
}

fn err(status: StatusCode, why: &str) -> Response<Full<Bytes>> {
    json(status, &serde_json::json!({ "error": why }))
}

fn query(req: &Request<Incoming>) -> HashMap<&str, &str> {
    req.uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .collect()
}

impl Playback {
    async fn handle(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        match (req.method(), req.uri().path()) {
            (&http::Method::GET, "/play") => self.play(req).await,
            (&http::Method::POST, "/session") => self.session(req).await,
            _ => err(StatusCode::NOT_FOUND, "no such call"),
        }
    }

    /// `POST /session?title=T&position=S`: where the subscriber's playback stands, kept
    /// in the store (every zone) through the `Session` command.
    async fn session(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let q = query(&req);
        let Some(subscriber) = req
            .headers()
            .get("x-subscriber")
            .and_then(|v| v.to_str().ok())
        else {
            return err(StatusCode::UNAUTHORIZED, "unknown subscriber");
        };
        let (Some(title), Some(position)) = (
            q.get("title"),
            q.get("position").and_then(|p| p.parse::<f64>().ok()),
        ) else {
            return err(StatusCode::BAD_REQUEST, "title and position are required");
        };
        let value = serde_json::json!({
            "subscriber": subscriber, "title": title, "position_s": position,
            "version": self.version,
        });
        let e = match self.session.start() {
            Ok(e) => e,
            Err(e) => return err(StatusCode::SERVICE_UNAVAILABLE, &format!("session: {e}")),
        };
        let key = format!("session:{subscriber}");
        match self
            .store
            .set_json(&key, &value, Some(std::time::Duration::from_secs(3600)))
            .await
        {
            Ok(_) => {
                e.succeeded();
                json(StatusCode::OK, &value)
            }
            Err(x) => {
                e.failed(&x.to_string().into());
                err(StatusCode::SERVICE_UNAVAILABLE, "the session store failed")
            }
        }
    }

    async fn play(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let query = query(&req);
        let (Some(title), Some(country)) = (query.get("title"), query.get("country")) else {
            return err(StatusCode::BAD_REQUEST, "title and country are required");
        };
        let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
        let Some(plan) = header("x-subscriber")
            .and_then(|s| SUBSCRIBERS.iter().find(|(id, ..)| *id == s))
            .map(|(_, plan, _)| *plan)
        else {
            return err(StatusCode::UNAUTHORIZED, "unknown subscriber");
        };
        if plan == "lapsed" {
            return err(StatusCode::PAYMENT_REQUIRED, "the subscription has lapsed");
        }
        let licensed = LICENCES
            .iter()
            .any(|(t, countries)| t == title && countries.contains(country));
        if !licensed {
            return err(
                StatusCode::UNAVAILABLE_FOR_LEGAL_REASONS,
                "the title is not licensed in this country",
            );
        }
        let Some(ip) = header("x-client-ip").and_then(|ip| ip.parse().ok()) else {
            return err(StatusCode::BAD_REQUEST, "x-client-ip is required");
        };
        // The metadata, through its command (the store answers from another zone when the
        // local one is down; the breaker fails fast if the store does not answer at all).
        let metadata = match self.metadata.start() {
            Ok(e) => match self
                .store
                .get_json::<serde_json::Value>(&format!("title:{title}"))
                .await
            {
                Ok(Some(m)) => {
                    e.succeeded();
                    m
                }
                Ok(None) => {
                    e.succeeded();
                    return err(StatusCode::NOT_FOUND, "no such title");
                }
                Err(x) => {
                    e.failed(&x.to_string().into());
                    return err(StatusCode::SERVICE_UNAVAILABLE, "the metadata store failed");
                }
            },
            Err(e) => return err(StatusCode::SERVICE_UNAVAILABLE, &format!("metadata: {e}")),
        };
        let master = format!("{title}/master.m3u8");
        let answer = match self.steering.start() {
            Ok(e) => match self.control.steer(ip, title, &master) {
                Ok(a) => {
                    e.succeeded();
                    a
                }
                Err(x) => {
                    e.failed(&x.to_string().into());
                    return err(StatusCode::SERVICE_UNAVAILABLE, "steering failed");
                }
            },
            Err(e) => return err(StatusCode::SERVICE_UNAVAILABLE, &format!("steering: {e}")),
        };
        let mut body = serde_json::json!({
            "version": self.version,
            "title": title,
            "plan": plan,
            "manifest": "master.m3u8",
            "cluster": answer.cluster,
            "urls": answer.urls,
            "rungs": metadata["rungs"],
        });
        if self.version == "v2" {
            body["dash"] = serde_json::json!("manifest.mpd");
        }
        json(StatusCode::OK, &body)
    }
}

/// Serves one version of the playback service on a free loopback port.
async fn serve(p: Playback) -> std::io::Result<SocketAddr> {
    let l = TcpListener::bind("127.0.0.1:0").await?;
    let addr = l.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = l.accept().await {
            let p = p.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let p = p.clone();
                    async move { Ok::<_, std::convert::Infallible>(p.handle(req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Ok(addr)
}

/// The API: both versions of the playback service, and the gateway in front.
pub(crate) struct Api {
    pub(crate) gateway: Gateway,
    pub(crate) addr: SocketAddr,
    pub(crate) registry: Registry,
}

/// Starts the playback service (v1 and v2) and the gateway: authentication (a bearer
/// token names the subscriber), a rate limit per subscriber, a sticky canary of
/// `canary` (0 to 1) of subscribers to v2, routing, metrics at `/metrics`, and every other
/// path to the `dashboard` server.
pub(crate) async fn start(
    control: ControlPlane,
    store: EvCache,
    canary: f64,
    dashboard: SocketAddr,
) -> Result<Api, String> {
    let registry = Registry::new();
    // A fleet asks at once: room for 64 concurrent calls of each (Hystrix's default is 10).
    let mut properties = netflix_hystrix::config::CommandProperties::default();
    properties.execution_semaphore_max_concurrent = Some(64);
    let command = |key: &str| {
        registry
            .command(key)
            .properties(properties.clone())
            .build()
            .map_err(|e| format!("hystrix command {key}: {e}"))
    };
    let (steering, metadata, session) = (
        command("Steering")?,
        command("Metadata")?,
        command("Session")?,
    );
    let mut addrs = Vec::new();
    for version in ["v1", "v2"] {
        let p = Playback {
            version,
            control: control.clone(),
            store: store.clone(),
            steering: steering.clone(),
            metadata: metadata.clone(),
            session: session.clone(),
        };
        addrs.push(
            serve(p)
                .await
                .map_err(|e| format!("the playback service: {e}"))?,
        );
    }
    let routes = RouteTable::from_json(&format!(
        r#"{{
        "origins": {{
            "playback": {{ "servers": ["{}"] }},
            "playback-v2": {{ "servers": ["{}"] }},
            "dashboard": {{ "servers": ["{dashboard}"] }}
        }},
        "routes": [
            {{ "name": "play", "path": "/play", "methods": ["GET"], "endpoint": {{ "proxy": "playback" }} }},
            {{ "name": "session", "path": "/session", "methods": ["POST"], "endpoint": {{ "proxy": "playback" }} }},
            {{ "name": "metrics", "path": "/metrics", "endpoint": {{ "metrics": null }} }},
            {{ "name": "page", "path_prefix": "/", "methods": ["GET"], "endpoint": {{ "proxy": "dashboard" }} }}
        ]
    }}"#,
        addrs[0], addrs[1]
    ))
    .map_err(|e| format!("the route table: {e}"))?;
    let tokens: HashMap<&'static str, &'static str> = SUBSCRIBERS
        .iter()
        .map(|(id, _, token)| (*token, *id))
        .collect();
    let chain = FilterChain::builder()
        // Authentication first: the subscriber is who the token says, whatever the
        // request claims. The API's calls need it; the page and the metrics do not.
        .inbound(inbound_fn("auth", -95, move |req, _ctx| {
            if !matches!(req.uri().path(), "/play" | "/session") {
                req.headers_mut().remove("x-subscriber");
                return Flow::Continue;
            }
            let token = req
                .headers()
                .get(http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "));
            match token.and_then(|t| tokens.get(t)) {
                Some(id) => {
                    req.headers_mut()
                        .insert("x-subscriber", http::HeaderValue::from_static(id));
                    Flow::Continue
                }
                None => Flow::respond(401, "a valid bearer token is required\n"),
            }
        }))
        .inbound(RateLimit::per_header("x-subscriber", 20.0, 40.0))
        .inbound(Split::canary(
            "/play",
            "playback-v2",
            canary,
            Sticky::Header("x-subscriber".into()),
        ))
        .build()
        .map_err(|e| format!("the filter chain: {e}"))?;
    let gateway = Gateway::new(routes, chain).map_err(|e| format!("the gateway: {e}"))?;
    let l = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("the gateway's port: {e}"))?;
    let addr = l.local_addr().map_err(|e| e.to_string())?;
    tokio::spawn(gateway.clone().serve(l, std::future::pending()));
    tracing::info!(
        target: "full_stack",
        "api: gateway {addr}, playback v1 {} and v2 {} ({:.0}% canary)",
        addrs[0],
        addrs[1],
        canary * 100.0
    );
    Ok(Api {
        gateway,
        addr,
        registry,
    })
}
