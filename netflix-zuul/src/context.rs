//! The per-request context that filters and endpoints share.

use std::time::Duration;
use tokio::time::Instant;

/// A request's life, as Zuul's passport records it: states with the time since the request
/// arrived.
#[derive(Debug, Clone)]
pub struct Passport {
    start: Instant,
    states: Vec<(&'static str, Duration)>,
}

impl Default for Passport {
    fn default() -> Self {
        Self {
            start: Instant::now(),
            // A proxied request records four states: one allocation, no growth.
            states: Vec::with_capacity(6),
        }
    }
}

impl Passport {
    /// Records `state` now.
    pub fn add(&mut self, state: &'static str) {
        self.states.push((state, self.start.elapsed()));
    }

    /// The states so far, with their times since arrival.
    pub fn states(&self) -> &[(&'static str, Duration)] {
        &self.states
    }

    /// Time since the request arrived.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }
}

/// Shared state of one request: the route chosen, the passport, attempts, and typed
/// extensions any filter can set and read.
#[derive(Debug, Default)]
pub struct Context {
    /// The route that matched (its name), if any.
    pub route: Option<std::sync::Arc<str>>,
    /// The origin the proxy endpoint used, if any.
    pub origin: Option<std::sync::Arc<str>>,
    /// The origin servers tried, in order.
    pub attempts: Vec<std::net::SocketAddr>,
    /// The client's address, when the request came through [`crate::Gateway::serve`].
    pub client: Option<std::net::SocketAddr>,
    /// The request's `Accept-Encoding`, for outbound filters that compress.
    pub accept_encoding: Option<http::HeaderValue>,
    /// The request's passport.
    pub passport: Passport,
    /// Anything else filters want to carry (`http::Extensions`: one value per type).
    pub extensions: http::Extensions,
}
