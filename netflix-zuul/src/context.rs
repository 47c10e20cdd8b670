//! The per-request context that filters and endpoints share.

use std::time::Duration;
use tokio::time::Instant;

/// A request's life, as Zuul's passport records it: states with the time since the request
/// arrived.
///
/// # Example
///
/// ```
/// use netflix_zuul::Passport;
///
/// let mut passport = Passport::default();
/// passport.add("received");
/// passport.add("routed");
/// let names: Vec<_> = passport.states().iter().map(|(s, _)| *s).collect();
/// assert_eq!(names, ["received", "routed"]);
/// assert!(passport.states()[0].1 <= passport.states()[1].1);
/// ```
#[derive(Debug, Clone)]
pub struct Passport {
    start: Instant,
    /// The first states, in place: a proxied request records four, with no allocation.
    first: [(&'static str, Duration); INLINE],
    len: usize,
    /// Any beyond those.
    more: Vec<(&'static str, Duration)>,
}

const INLINE: usize = 6;

impl Default for Passport {
    fn default() -> Self {
        Self::starting(Instant::now())
    }
}

impl Passport {
    /// A passport for a request that arrived at `start`.
    pub fn starting(start: Instant) -> Self {
        Self {
            start,
            first: [("", Duration::ZERO); INLINE],
            len: 0,
            more: Vec::new(),
        }
    }

    /// Records `state` now.
    pub fn add(&mut self, state: &'static str) {
        self.add_after(state, self.start.elapsed());
    }

    /// Records `state` at `since` after arrival (for a time already read).
    pub fn add_after(&mut self, state: &'static str, since: Duration) {
        if self.len < INLINE {
            self.first[self.len] = (state, since);
            self.len += 1;
        } else {
            if self.more.is_empty() {
                self.more.extend_from_slice(&self.first);
            }
            self.more.push((state, since));
        }
    }

    /// The states so far, with their times since arrival.
    pub fn states(&self) -> &[(&'static str, Duration)] {
        if self.more.is_empty() {
            &self.first[..self.len]
        } else {
            &self.more
        }
    }

    /// When the request arrived.
    pub fn start(&self) -> Instant {
        self.start
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
