//! The breaker's background task: the Hystrix health check every snapshot interval, and
//! the open and half-open deadlines.
//!
//! # Why a task
//!
//! Open-state rejection must cost a few nanoseconds, and reading the clock costs more than
//! that. So the data path never reads the clock: a task sleeps until the next deadline
//! (with `tokio::time`, so tests can pause and advance time) and moves the state word when
//! it is due. Hystrix 1.5 works the same way: its health counts are a timer-driven stream.
//!
//! The task holds only a weak reference while it sleeps. It exits when the breaker is
//! dropped, and is started again by the next call if its runtime shuts down.

use super::shared::Shared;
use std::future::{Future, poll_fn};
use std::pin::pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::task::Poll;
use tokio::sync::Notify;
use tokio::time::Instant;

/// Starts the driver if it is not running. One relaxed load when it is.
#[inline]
pub(crate) fn ensure(shared: &Arc<Shared>) {
    if !shared.driver_running.load(Ordering::Relaxed) {
        start(shared, true);
    }
}

/// Starts the driver if there is a runtime now, quietly: a breaker built before the
/// runtime starts is driven from its first call.
pub(crate) fn try_start(shared: &Arc<Shared>) {
    start(shared, false);
}

#[cold]
fn start(shared: &Arc<Shared>, from_a_call: bool) {
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        if from_a_call && !WARNED.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                breaker = %shared.name(),
                "circuit breaker called outside a tokio runtime: it cannot take health \
                 snapshots or leave open until it is called from inside one"
            );
        }
        return;
    };
    if shared.driver_running.swap(true, Ordering::AcqRel) {
        return;
    }
    let weak = Arc::downgrade(shared);
    let notify = shared.notify.clone();
    handle.spawn(drive(weak, notify));
}

/// Clears the running flag however the task ends (including runtime shutdown).
struct Running(Weak<Shared>);

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(s) = self.0.upgrade() {
            s.driver_running.store(false, Ordering::Release);
        }
    }
}

async fn drive(weak: Weak<Shared>, notify: Arc<Notify>) {
    let _running = Running(weak.clone());
    let mut next_tick = None;
    loop {
        let wake_at = {
            let Some(shared) = weak.upgrade() else {
                return;
            };
            shared.on_wake(Instant::now(), &mut next_tick)
        };
        wait(&notify, wake_at).await;
    }
}

/// Waits until `deadline` or a notification, whichever comes first.
async fn wait(notify: &Notify, deadline: Option<Instant>) {
    let mut notified = pin!(notify.notified());
    match deadline {
        None => notified.await,
        Some(at) => {
            let mut sleep = pin!(tokio::time::sleep_until(at));
            poll_fn(|cx| {
                if notified.as_mut().poll(cx).is_ready() || sleep.as_mut().poll(cx).is_ready() {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            })
            .await;
        }
    }
}
