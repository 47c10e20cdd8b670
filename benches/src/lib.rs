//! Pieces the benchmarks share.

use netflix_zuul::filter::{FilterChain, Flow, InboundFilter, Step};
use netflix_zuul::{Body, Context};

/// An inbound filter that does nothing: what the gateway's filter-cost goals measure.
#[derive(Debug)]
pub struct Noop(String, i32);

impl InboundFilter for Noop {
    fn name(&self) -> &str {
        &self.0
    }
    fn order(&self) -> i32 {
        self.1
    }
    fn apply<'a>(&'a self, _: &'a mut http::Request<Body>, _: &'a mut Context) -> Step<'a, Flow> {
        Step::Ready(Flow::Continue)
    }
}

/// A chain of `n` no-op inbound filters (`noop-0`, `noop-1`, ...).
///
/// # Errors
///
/// None in practice: the names are unique.
pub fn noop_chain(n: usize) -> netflix_zuul::Result<FilterChain> {
    (0..n)
        .fold(FilterChain::builder(), |b, i| {
            b.inbound(Noop(format!("noop-{i}"), i as i32))
        })
        .build()
}
