//! One object for a whole gateway, in the style of cloudflare/pingora's `ProxyHttp`: a
//! typed per-request context and a method per phase, every one but `new_ctx` with a no-op
//! default. It runs inside the filter chain: its request phase first of the inbound
//! filters, its response phase first of the outbound ones, its logging phase last.
//!
//! ```
//! use netflix_zuul::filter::{FilterChain, Flow};
//! use netflix_zuul::phases::Phases;
//! use netflix_zuul::{Body, Context};
//! use http::{Request, Response};
//!
//! struct Api;
//!
//! #[derive(Default)]
//! struct Ctx {
//!     user: Option<String>,
//! }
//!
//! impl Phases for Api {
//!     type Ctx = Ctx;
//!
//!     fn new_ctx(&self) -> Ctx {
//!         Ctx::default()
//!     }
//!
//!     fn request(&self, req: &mut Request<Body>, ctx: &mut Ctx, _zuul: &mut Context) -> Flow {
//!         ctx.user = req.headers().get("x-user").and_then(|v| v.to_str().ok()).map(String::from);
//!         if ctx.user.is_none() { Flow::respond(401, "who are you?") } else { Flow::Continue }
//!     }
//!
//!     fn response(&self, res: &mut Response<Body>, ctx: &mut Ctx, _zuul: &mut Context) -> netflix_zuul::Result<()> {
//!         if let Some(Ok(v)) = ctx.user.as_deref().map(str::parse) {
//!             res.headers_mut().insert("x-served-user", v);
//!         }
//!         Ok(())
//!     }
//! }
//!
//! let chain = FilterChain::builder().phases(Api).build()?;
//! assert_eq!(chain.inbound_names(), ["phases.request"]);
//! # Ok::<(), netflix_zuul::Error>(())
//! ```

use crate::body::Body;
use crate::context::Context;
use crate::error::Result;
use crate::filter::{Flow, InboundFilter, OutboundFilter, Step};
use http::{Request, Response};
use parking_lot::Mutex;
use std::sync::Arc;

/// A gateway's behaviour as one object with a typed context (see the module docs).
pub trait Phases: Send + Sync + 'static {
    /// The per-request context.
    type Ctx: Send + 'static;

    /// A new context for each request.
    fn new_ctx(&self) -> Self::Ctx;

    /// Before routing: inspect or edit the request, or answer at once.
    fn request(&self, _req: &mut Request<Body>, _ctx: &mut Self::Ctx, _zuul: &mut Context) -> Flow {
        Flow::Continue
    }

    /// On the response, before the outbound filters: edit it. An error makes it a 500.
    fn response(
        &self,
        _res: &mut Response<Body>,
        _ctx: &mut Self::Ctx,
        _zuul: &mut Context,
    ) -> Result<()> {
        Ok(())
    }

    /// Last, with the final response: log, count.
    fn logging(&self, _res: &Response<Body>, _ctx: &Self::Ctx, _zuul: &Context) {}
}

/// The context travels from the request phase to the response phase in the request's
/// extensions.
struct Slot<C>(Arc<Mutex<Option<C>>>);

impl<C> Clone for Slot<C> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

pub(crate) struct RequestPhase<P>(pub(crate) Arc<P>);
pub(crate) struct ResponsePhase<P>(pub(crate) Arc<P>);
pub(crate) struct LoggingPhase<P>(pub(crate) Arc<P>);

impl<P: Phases> InboundFilter for RequestPhase<P> {
    fn name(&self) -> &str {
        "phases.request"
    }

    fn order(&self) -> i32 {
        i32::MIN
    }

    fn apply<'a>(&'a self, req: &'a mut Request<Body>, zuul: &'a mut Context) -> Step<'a, Flow> {
        let mut ctx = self.0.new_ctx();
        let flow = self.0.request(req, &mut ctx, zuul);
        zuul.extensions
            .insert(Slot::<P::Ctx>(Arc::new(Mutex::new(Some(ctx)))));
        Step::Ready(flow)
    }
}

impl<P: Phases> OutboundFilter for ResponsePhase<P> {
    fn name(&self) -> &str {
        "phases.response"
    }

    fn order(&self) -> i32 {
        i32::MIN
    }

    fn apply<'a>(
        &'a self,
        res: &'a mut Response<Body>,
        zuul: &'a mut Context,
    ) -> Step<'a, Result<()>> {
        let Some(slot) = zuul.extensions.get::<Slot<P::Ctx>>().cloned() else {
            return Step::Ready(Ok(()));
        };
        let mut guard = slot.0.lock();
        let r = match guard.as_mut() {
            Some(ctx) => self.0.response(res, ctx, zuul),
            None => Ok(()),
        };
        Step::Ready(r)
    }
}

impl<P: Phases> OutboundFilter for LoggingPhase<P> {
    fn name(&self) -> &str {
        "phases.logging"
    }

    fn order(&self) -> i32 {
        i32::MAX
    }

    fn apply<'a>(
        &'a self,
        res: &'a mut Response<Body>,
        zuul: &'a mut Context,
    ) -> Step<'a, Result<()>> {
        if let Some(slot) = zuul.extensions.get::<Slot<P::Ctx>>().cloned() {
            if let Some(ctx) = slot.0.lock().as_ref() {
                self.0.logging(res, ctx, zuul);
            }
        }
        Step::Ready(Ok(()))
    }
}
