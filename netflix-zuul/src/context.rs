//! The per-request context that filters and endpoints share.

use std::net::SocketAddr;
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
    /// A proxied request records four states: in place, with no allocation.
    states: Inline<(&'static str, Duration), 6>,
}

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
            states: Inline::new(("", Duration::ZERO)),
        }
    }

    /// Records `state` now.
    pub fn add(&mut self, state: &'static str) {
        self.add_after(state, self.start.elapsed());
    }

    /// Records `state` at `since` after arrival (for a time already read).
    pub fn add_after(&mut self, state: &'static str, since: Duration) {
        self.states.push((state, since));
    }

    /// Records `state` at `at`, a time already read (the clock is read once for several
    /// uses). A time before arrival counts as arrival.
    ///
    /// ```
    /// use netflix_zuul::Passport;
    /// use std::time::Duration;
    /// use tokio::time::Instant;
    ///
    /// let start = Instant::now();
    /// let mut passport = Passport::starting(start);
    /// passport.add_at("routed", start + Duration::from_micros(40));
    /// assert_eq!(passport.states()[0], ("routed", Duration::from_micros(40)));
    /// ```
    pub fn add_at(&mut self, state: &'static str, at: Instant) {
        self.add_after(state, at.saturating_duration_since(self.start));
    }

    /// The states so far, with their times since arrival.
    pub fn states(&self) -> &[(&'static str, Duration)] {
        self.states.as_slice()
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
    pub attempts: Attempts,
    /// The client's address, when the request came through [`crate::Gateway::serve`].
    pub client: Option<std::net::SocketAddr>,
    /// The request's `Accept-Encoding`, for outbound filters that compress (set when the
    /// chain has outbound filters).
    pub accept_encoding: Option<http::HeaderValue>,
    /// The request's passport.
    pub passport: Passport,
    /// Anything else filters want to carry (`http::Extensions`: one value per type).
    pub extensions: http::Extensions,
}

/// The origin servers a request tried, in order: a slice (through `Deref`), kept in place
/// for the usual one or two attempts.
///
/// # Example
///
/// ```
/// use netflix_zuul::Attempts;
///
/// let mut attempts = Attempts::default();
/// attempts.push("10.0.0.1:80".parse()?);
/// attempts.push("10.0.0.2:80".parse()?);
/// attempts.push("10.0.0.3:80".parse()?);
/// assert_eq!(attempts.len(), 3);
/// assert_eq!(attempts[2].port(), 80);
/// # Ok::<(), std::net::AddrParseError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Attempts(Inline<SocketAddr, 2>);

impl Default for Attempts {
    fn default() -> Self {
        Self(Inline::new(SocketAddr::from(([0, 0, 0, 0], 0))))
    }
}

impl Attempts {
    /// Records an attempt on `server`.
    pub fn push(&mut self, server: SocketAddr) {
        self.0.push(server);
    }
}

impl std::ops::Deref for Attempts {
    type Target = [SocketAddr];

    fn deref(&self) -> &[SocketAddr] {
        self.0.as_slice()
    }
}

/// A list whose first `N` items are kept in place (no allocation until there are more).
#[derive(Debug, Clone)]
struct Inline<T: Copy, const N: usize> {
    first: [T; N],
    len: usize,
    /// Every item, once there are more than `N`.
    all: Vec<T>,
}

impl<T: Copy, const N: usize> Inline<T, N> {
    /// Empty; `fill` stands in the unused places.
    fn new(fill: T) -> Self {
        Self {
            first: [fill; N],
            len: 0,
            all: Vec::new(),
        }
    }

    fn push(&mut self, item: T) {
        if self.len < N {
            self.first[self.len] = item;
        } else {
            if self.all.is_empty() {
                self.all.extend_from_slice(&self.first);
            }
            self.all.push(item);
        }
        self.len += 1;
    }

    fn as_slice(&self) -> &[T] {
        if self.len <= N {
            &self.first[..self.len]
        } else {
            &self.all
        }
    }
}
