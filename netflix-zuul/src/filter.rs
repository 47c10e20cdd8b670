//! Zuul's filters: inbound filters decide, route and decorate; outbound filters edit the
//! response. Each has a name, an order, a `should_filter` test and an `apply` that is
//! synchronous ([`Step::Ready`], no allocation) or asynchronous ([`Step::Async`]).
//!
//! A [`FilterChain`] sorts filters by order (ties keep the order they were added in),
//! checks when it is built that every filter a filter declares it runs [`after`] is in the
//! chain and sorted before it, and can switch filters off and on while running.
//!
//! [`after`]: InboundFilter::after
//!
//! # Example
//!
//! ```
//! use netflix_zuul::filter::{Flow, FilterChain, InboundFilter, Step};
//! use netflix_zuul::{Body, Context};
//! use http::Request;
//!
//! struct Auth;
//!
//! impl InboundFilter for Auth {
//!     fn name(&self) -> &str { "auth" }
//!     fn order(&self) -> i32 { 10 }
//!     fn apply<'a>(&'a self, req: &'a mut Request<Body>, _ctx: &'a mut Context) -> Step<'a, Flow> {
//!         if req.headers().contains_key("authorization") {
//!             Step::Ready(Flow::Continue)
//!         } else {
//!             Step::Ready(Flow::respond(401, "sign in first"))
//!         }
//!     }
//! }
//!
//! let chain = FilterChain::builder().inbound(Auth).build()?;
//! assert_eq!(chain.inbound_names(), ["auth"]);
//! # Ok::<(), netflix_zuul::Error>(())
//! ```

use crate::body::{self, Body};
use crate::context::Context;
use crate::error::{Error, Result};
use http::{Request, Response, StatusCode};
use parking_lot::RwLock;
use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// A boxed future that borrows the request or response.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A filter's result: ready now (no allocation) or later.
pub enum Step<'a, T> {
    /// The result, synchronously.
    Ready(T),
    /// A future of the result.
    Async(BoxFuture<'a, T>),
}

impl<T> std::fmt::Debug for Step<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Step::Ready(_) => "Step::Ready",
            Step::Async(_) => "Step::Async",
        })
    }
}

impl<T> Step<'_, T> {
    /// Waits for the result.
    pub async fn resolve(self) -> T {
        match self {
            Step::Ready(t) => t,
            Step::Async(f) => f.await,
        }
    }
}

/// What an inbound filter decides.
#[derive(Debug)]
pub enum Flow {
    /// Go on to the next filter, then the endpoint.
    Continue,
    /// Answer now with this response: the endpoint is skipped, outbound filters still run.
    Respond(Response<Body>),
}

impl Flow {
    /// A response with `status` and a text body.
    pub fn respond(status: u16, body: &'static str) -> Self {
        let mut r = Response::new(body::full(body));
        *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        Flow::Respond(r)
    }
}

/// A filter that runs before the endpoint.
pub trait InboundFilter: Send + Sync + 'static {
    /// The filter's name, unique in its chain.
    fn name(&self) -> &str;

    /// Where it runs: lower first (default 0).
    fn order(&self) -> i32 {
        0
    }

    /// Names of filters that must run before this one; checked when the chain is built.
    fn after(&self) -> &[&str] {
        &[]
    }

    /// Whether to run for this request (default: always).
    fn should_filter(&self, _req: &Request<Body>, _ctx: &Context) -> bool {
        true
    }

    /// Runs the filter.
    fn apply<'a>(&'a self, req: &'a mut Request<Body>, ctx: &'a mut Context) -> Step<'a, Flow>;
}

/// A filter that runs after the endpoint, on the response.
pub trait OutboundFilter: Send + Sync + 'static {
    /// The filter's name, unique in its chain.
    fn name(&self) -> &str;

    /// Where it runs: lower first (default 0).
    fn order(&self) -> i32 {
        0
    }

    /// Names of filters that must run before this one; checked when the chain is built.
    fn after(&self) -> &[&str] {
        &[]
    }

    /// Whether to run for this response (default: always).
    fn should_filter(&self, _res: &Response<Body>, _ctx: &Context) -> bool {
        true
    }

    /// Runs the filter. An error becomes a 500 (the response is replaced).
    fn apply<'a>(
        &'a self,
        res: &'a mut Response<Body>,
        ctx: &'a mut Context,
    ) -> Step<'a, Result<()>>;
}

/// The inbound and outbound filters of a gateway, sorted and checked.
#[derive(Clone)]
pub struct FilterChain {
    inbound: Arc<[Arc<dyn InboundFilter>]>,
    outbound: Arc<[Arc<dyn OutboundFilter>]>,
    disabled: Arc<RwLock<HashSet<String>>>,
    /// Whether any filter is switched off: the common case reads this and no lock.
    any_disabled: Arc<std::sync::atomic::AtomicBool>,
}

impl std::fmt::Debug for FilterChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FilterChain")
            .field("inbound", &self.inbound_names())
            .field("outbound", &self.outbound_names())
            .finish()
    }
}

impl Default for FilterChain {
    fn default() -> Self {
        FilterChainBuilder::default()
            .build()
            .expect("an empty chain is valid")
    }
}

/// Builds a [`FilterChain`].
#[derive(Default)]
pub struct FilterChainBuilder {
    inbound: Vec<Arc<dyn InboundFilter>>,
    outbound: Vec<Arc<dyn OutboundFilter>>,
}

impl std::fmt::Debug for FilterChainBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FilterChainBuilder").finish_non_exhaustive()
    }
}

impl FilterChainBuilder {
    /// Adds an inbound filter.
    #[must_use]
    pub fn inbound(mut self, f: impl InboundFilter) -> Self {
        self.inbound.push(Arc::new(f));
        self
    }

    /// Adds an outbound filter.
    #[must_use]
    pub fn outbound(mut self, f: impl OutboundFilter) -> Self {
        self.outbound.push(Arc::new(f));
        self
    }

    /// Adds a [`Phases`](crate::phases::Phases) object: its request phase runs first of
    /// the inbound filters, its response phase first of the outbound ones, its logging
    /// phase last.
    #[must_use]
    pub fn phases<P: crate::phases::Phases>(mut self, p: P) -> Self {
        let p = Arc::new(p);
        self.inbound
            .push(Arc::new(crate::phases::RequestPhase(p.clone())));
        self.outbound
            .push(Arc::new(crate::phases::ResponsePhase(p.clone())));
        self.outbound.push(Arc::new(crate::phases::LoggingPhase(p)));
        self
    }

    /// Sorts and checks the chain.
    ///
    /// # Errors
    ///
    /// A configuration [`Error`] when two filters of a phase share a name, or a filter
    /// must run after one that is missing or sorted after it.
    pub fn build(mut self) -> Result<FilterChain> {
        self.inbound.sort_by_key(|f| f.order());
        self.outbound.sort_by_key(|f| f.order());
        check(
            "inbound",
            &self
                .inbound
                .iter()
                .map(|f| (f.name(), f.after()))
                .collect::<Vec<_>>(),
        )?;
        check(
            "outbound",
            &self
                .outbound
                .iter()
                .map(|f| (f.name(), f.after()))
                .collect::<Vec<_>>(),
        )?;
        Ok(FilterChain {
            inbound: self.inbound.into(),
            outbound: self.outbound.into(),
            disabled: Arc::default(),
            any_disabled: Arc::default(),
        })
    }
}

fn check(phase: &str, filters: &[(&str, &[&str])]) -> Result<()> {
    for (i, (name, after)) in filters.iter().enumerate() {
        if filters[..i].iter().any(|(n, _)| n == name) {
            return Err(Error::config(format!(
                "two {phase} filters are called {name:?}"
            )));
        }
        for dep in *after {
            match filters.iter().position(|(n, _)| n == dep) {
                None => {
                    return Err(Error::config(format!(
                        "{phase} filter {name:?} runs after {dep:?}, which is not in the chain"
                    )));
                }
                Some(j) if j > i => {
                    return Err(Error::config(format!(
                        "{phase} filter {name:?} must run after {dep:?}, but its order puts it before"
                    )));
                }
                Some(_) => {}
            }
        }
    }
    Ok(())
}

impl FilterChain {
    /// A builder.
    pub fn builder() -> FilterChainBuilder {
        FilterChainBuilder::default()
    }

    /// The inbound filters' names, in running order.
    pub fn inbound_names(&self) -> Vec<&str> {
        self.inbound.iter().map(|f| f.name()).collect()
    }

    /// Whether the chain has outbound filters (a response goes through none otherwise).
    pub fn has_outbound(&self) -> bool {
        !self.outbound.is_empty()
    }

    /// The outbound filters' names, in running order.
    pub fn outbound_names(&self) -> Vec<&str> {
        self.outbound.iter().map(|f| f.name()).collect()
    }

    /// Switches the filter called `name` off (while running; no request is dropped).
    pub fn disable(&self, name: &str) {
        let mut d = self.disabled.write();
        d.insert(name.to_string());
        self.any_disabled
            .store(true, std::sync::atomic::Ordering::Release);
    }

    /// Switches it on again.
    pub fn enable(&self, name: &str) {
        let mut d = self.disabled.write();
        d.remove(name);
        self.any_disabled
            .store(!d.is_empty(), std::sync::atomic::Ordering::Release);
    }

    /// Whether some filter is switched off: read once a request, so that a chain with none
    /// (the usual case) asks no filter for its name.
    fn any_off(&self) -> bool {
        self.any_disabled.load(std::sync::atomic::Ordering::Acquire)
    }

    fn is_off(&self, name: &str) -> bool {
        self.disabled.read().contains(name)
    }

    /// Runs the inbound filters in order until one responds.
    pub async fn run_inbound(&self, req: &mut Request<Body>, ctx: &mut Context) -> Flow {
        let any_off = self.any_off();
        for f in self.inbound.iter() {
            if (any_off && self.is_off(f.name())) || !f.should_filter(req, ctx) {
                continue;
            }
            // Matched in place: going through `resolve` would move the (large) `Flow`
            // into a future and out again for every filter.
            let flow = match f.apply(req, ctx) {
                Step::Ready(Flow::Continue) => continue,
                Step::Ready(flow) => flow,
                Step::Async(fut) => fut.await,
            };
            if let Flow::Respond(r) = flow {
                ctx.passport.add("inbound filter responded");
                return Flow::Respond(r);
            }
        }
        Flow::Continue
    }

    /// Runs the outbound filters in order; a failing filter's error replaces the response
    /// with a 500.
    pub async fn run_outbound(&self, res: &mut Response<Body>, ctx: &mut Context) {
        let any_off = self.any_off();
        for f in self.outbound.iter() {
            if (any_off && self.is_off(f.name())) || !f.should_filter(res, ctx) {
                continue;
            }
            let done = match f.apply(res, ctx) {
                Step::Ready(done) => done,
                Step::Async(fut) => fut.await,
            };
            if let Err(e) = done {
                tracing::warn!(filter = f.name(), error = %e, "outbound filter failed");
                *res = Response::new(body::full("outbound filter failed"));
                *res.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                return;
            }
        }
    }
}

/// An inbound filter from a name, an order and a synchronous function.
pub fn inbound_fn<F>(name: &'static str, order: i32, f: F) -> impl InboundFilter
where
    F: Fn(&mut Request<Body>, &mut Context) -> Flow + Send + Sync + 'static,
{
    struct FnInbound<F>(&'static str, i32, F);
    impl<F> InboundFilter for FnInbound<F>
    where
        F: Fn(&mut Request<Body>, &mut Context) -> Flow + Send + Sync + 'static,
    {
        fn name(&self) -> &str {
            self.0
        }
        fn order(&self) -> i32 {
            self.1
        }
        fn apply<'a>(&'a self, req: &'a mut Request<Body>, ctx: &'a mut Context) -> Step<'a, Flow> {
            Step::Ready((self.2)(req, ctx))
        }
    }
    FnInbound(name, order, f)
}

/// An outbound filter from a name, an order and a synchronous function.
pub fn outbound_fn<F>(name: &'static str, order: i32, f: F) -> impl OutboundFilter
where
    F: Fn(&mut Response<Body>, &mut Context) -> Result<()> + Send + Sync + 'static,
{
    struct FnOutbound<F>(&'static str, i32, F);
    impl<F> OutboundFilter for FnOutbound<F>
    where
        F: Fn(&mut Response<Body>, &mut Context) -> Result<()> + Send + Sync + 'static,
    {
        fn name(&self) -> &str {
            self.0
        }
        fn order(&self) -> i32 {
            self.1
        }
        fn apply<'a>(
            &'a self,
            res: &'a mut Response<Body>,
            ctx: &'a mut Context,
        ) -> Step<'a, Result<()>> {
            Step::Ready((self.2)(res, ctx))
        }
    }
    FnOutbound(name, order, f)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Named(&'static str, i32, &'static [&'static str]);

    impl InboundFilter for Named {
        fn name(&self) -> &str {
            self.0
        }
        fn order(&self) -> i32 {
            self.1
        }
        fn after(&self) -> &[&str] {
            self.2
        }
        fn apply<'a>(&'a self, req: &'a mut Request<Body>, _: &'a mut Context) -> Step<'a, Flow> {
            let seen = req
                .headers()
                .get("x-seen")
                .map(|v| v.to_str().unwrap_or("").to_string())
                .unwrap_or_default();
            req.headers_mut().insert(
                "x-seen",
                format!("{seen}{}", self.0).parse().expect("ascii"),
            );
            Step::Ready(Flow::Continue)
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn sorted_by_order_and_switchable() {
        let chain = FilterChain::builder()
            .inbound(Named("c", 30, &["a"]))
            .inbound(Named("a", 10, &[]))
            .inbound(Named("b", 20, &[]))
            .build()
            .unwrap();
        assert_eq!(chain.inbound_names(), ["a", "b", "c"]);
        let mut req = Request::new(body::empty());
        let mut ctx = Context::default();
        assert!(matches!(
            chain.run_inbound(&mut req, &mut ctx).await,
            Flow::Continue
        ));
        assert_eq!(req.headers()["x-seen"], "abc");
        chain.disable("b");
        let mut req = Request::new(body::empty());
        chain.run_inbound(&mut req, &mut ctx).await;
        assert_eq!(req.headers()["x-seen"], "ac");
        chain.enable("b");
        let mut req = Request::new(body::empty());
        chain.run_inbound(&mut req, &mut ctx).await;
        assert_eq!(req.headers()["x-seen"], "abc");
    }

    #[test]
    fn ordering_constraints_are_checked_at_build() {
        let before = FilterChain::builder()
            .inbound(Named("auth", 10, &["ratelimit"]))
            .inbound(Named("ratelimit", 20, &[]))
            .build();
        assert!(before.unwrap_err().to_string().contains("must run after"));
        let missing = FilterChain::builder()
            .inbound(Named("auth", 10, &["nope"]))
            .build();
        assert!(
            missing
                .unwrap_err()
                .to_string()
                .contains("not in the chain")
        );
        let twice = FilterChain::builder()
            .inbound(Named("a", 1, &[]))
            .inbound(Named("a", 2, &[]))
            .build();
        assert!(
            twice
                .unwrap_err()
                .to_string()
                .contains("two inbound filters")
        );
    }
}
