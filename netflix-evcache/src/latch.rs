//! Write latches: how many copies a write waits for.
//!
//! A write goes to every server group at once. The [`Policy`] says how many of the
//! readable copies must succeed before the call returns; the rest finish in the background
//! and can still be awaited with [`Latch::wait_all`]. Write-only groups receive the write
//! but never count: they are not serving reads yet.
//!
//! EVCache's own `QUORUM` waits for a single success (its count is computed with integer
//! division in the wrong place). Here it is a real majority: ⌊n/2⌋+1 of n copies, so two of
//! three zones, three of four.

use crate::error::Error;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::sync::mpsc;

/// How many readable copies a write waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "SCREAMING_SNAKE_CASE"))]
#[non_exhaustive]
pub enum Policy {
    /// Return at once; the writes go on in the background.
    None,
    /// One copy.
    One,
    /// A majority: ⌊n/2⌋+1 copies.
    Quorum,
    /// All copies but one (at least one). EVCache's default.
    #[default]
    AllMinusOne,
    /// Every copy.
    All,
}

impl Policy {
    /// The successes needed out of `copies` readable copies.
    ///
    /// ```
    /// use netflix_evcache::Policy;
    /// assert_eq!(Policy::Quorum.required(3), 2);
    /// assert_eq!(Policy::Quorum.required(4), 3);
    /// assert_eq!(Policy::AllMinusOne.required(3), 2);
    /// assert_eq!(Policy::AllMinusOne.required(1), 1);
    /// ```
    pub fn required(self, copies: usize) -> usize {
        match self {
            Policy::None => 0,
            Policy::One => copies.min(1),
            Policy::Quorum => copies / 2 + 1,
            Policy::AllMinusOne => copies.saturating_sub(1).max(copies.min(1)),
            Policy::All => copies,
        }
        .min(copies)
    }
}

/// What one copy's write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// Stored (or deleted, touched, incremented).
    Stored,
    /// Not stored: `add` found the key, `replace`/`append` did not.
    NotStored,
    /// The CAS value did not match.
    Exists,
    /// The key was not there (delete, touch, incr, CAS).
    NotFound,
}

impl Outcome {
    /// Whether the copy did what was asked.
    pub fn is_stored(self) -> bool {
        self == Outcome::Stored
    }
}

/// One copy's result.
#[derive(Debug)]
pub struct CopyResult {
    /// The server group (zone).
    pub group: Arc<str>,
    /// Whether the group is write-only (it does not count towards the latch).
    pub write_only: bool,
    /// What happened; `None` while the write is still in flight.
    pub result: Option<Result<Outcome, Error>>,
}

impl CopyResult {
    /// Whether this copy answered, whatever the outcome (a definite "not stored" counts:
    /// the copy is healthy and consistent with the request).
    fn answered(&self) -> bool {
        matches!(self.result, Some(Ok(_)))
    }
}

/// One copy's write in flight.
pub(crate) type CopyFuture = Pin<Box<dyn Future<Output = Result<Outcome, Error>> + Send>>;

type Rest = mpsc::UnboundedReceiver<(usize, Result<Outcome, Error>)>;

/// The copies of one write, released once its [`Policy`] is met or can no longer be.
pub struct Latch {
    policy: Policy,
    required: usize,
    copies: Vec<CopyResult>,
    rest: Option<Rest>,
    pending: usize,
}

impl fmt::Debug for Latch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Latch")
            .field("policy", &self.policy)
            .field("required", &self.required)
            .field("copies", &self.copies)
            .field("pending", &self.pending)
            .finish()
    }
}

/// Copy writes still in flight. Dropped before they finish (the latch released early, or
/// the caller's future was dropped), they go on in a background task: a write reaches
/// every copy whatever the caller does.
struct InFlight {
    futs: Vec<Option<CopyFuture>>,
    /// Where the background task reports, when the latch wants the results.
    report: Option<mpsc::UnboundedSender<(usize, Result<Outcome, Error>)>>,
    /// Already in the background task: dropped there (at runtime shutdown), it lets go.
    background: bool,
}

impl InFlight {
    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<(usize, Result<Outcome, Error>)>> {
        let mut any = false;
        for (i, slot) in self.futs.iter_mut().enumerate() {
            if let Some(f) = slot {
                any = true;
                if let Poll::Ready(r) = f.as_mut().poll(cx) {
                    *slot = None;
                    return Poll::Ready(Some((i, r)));
                }
            }
        }
        if any {
            Poll::Pending
        } else {
            Poll::Ready(None)
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.background || self.futs.iter().all(Option::is_none) {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            tracing::warn!("a write's remaining copies were dropped outside a tokio runtime");
            return;
        };
        let mut rest = InFlight {
            futs: std::mem::take(&mut self.futs),
            report: None,
            background: true,
        };
        let report = self.report.take();
        rt.spawn(async move {
            while let Some((i, r)) = std::future::poll_fn(|cx| rest.poll_next(cx)).await {
                if let Some(tx) = &report {
                    let _ = tx.send((i, r));
                }
            }
        });
    }
}

impl Latch {
    /// Drives the copies' writes until `policy` is met or cannot be; the rest go on in
    /// the background.
    pub(crate) async fn collect(
        policy: Policy,
        groups: Vec<(Arc<str>, bool)>,
        futs: Vec<CopyFuture>,
    ) -> Latch {
        let readable = groups.iter().filter(|g| !g.1).count();
        let required = policy.required(readable);
        let mut copies: Vec<CopyResult> = groups
            .into_iter()
            .map(|(group, write_only)| CopyResult {
                group,
                write_only,
                result: None,
            })
            .collect();
        let mut pending = futs.len();
        let mut flight = InFlight {
            futs: futs.into_iter().map(Some).collect(),
            report: None,
            background: false,
        };
        let mut ok = 0;
        let mut failed = 0;
        while ok < required && failed <= readable - required && pending > 0 {
            let Some((i, r)) = std::future::poll_fn(|cx| flight.poll_next(cx)).await else {
                break;
            };
            pending -= 1;
            let counts = !copies[i].write_only;
            copies[i].result = Some(r);
            if counts {
                if copies[i].answered() {
                    ok += 1;
                } else {
                    failed += 1;
                }
            }
        }
        let rest = (pending > 0).then(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            flight.report = Some(tx);
            rx
        });
        drop(flight);
        Latch {
            policy,
            required,
            copies,
            rest,
            pending,
        }
    }

    /// The policy.
    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// Whether enough readable copies answered for the policy.
    pub fn is_met(&self) -> bool {
        self.successes() >= self.required
    }

    /// Readable copies that answered so far.
    pub fn successes(&self) -> usize {
        self.copies
            .iter()
            .filter(|c| !c.write_only && c.answered())
            .count()
    }

    /// The copies needed.
    pub fn required(&self) -> usize {
        self.required
    }

    /// Every copy's result so far (`None` for those still in flight).
    pub fn copies(&self) -> &[CopyResult] {
        &self.copies
    }

    /// The copies that failed so far.
    pub fn failures(&self) -> impl Iterator<Item = &CopyResult> {
        self.copies
            .iter()
            .filter(|c| matches!(c.result, Some(Err(_))))
    }

    /// Waits for every copy, then returns the complete latch.
    pub async fn wait_all(mut self) -> Latch {
        while self.pending > 0 {
            let Some(rest) = self.rest.as_mut() else {
                break;
            };
            let Some((i, r)) = rest.recv().await else {
                break;
            };
            self.pending -= 1;
            self.copies[i].result = Some(r);
        }
        self
    }

    /// Outcomes of the readable copies that answered.
    pub(crate) fn outcomes(&self) -> impl Iterator<Item = Outcome> + '_ {
        self.copies
            .iter()
            .filter(|c| !c.write_only)
            .filter_map(|c| match &c.result {
                Some(Ok(o)) => Some(*o),
                _ => None,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn required_counts() {
        for (p, n, want) in [
            (Policy::None, 3, 0),
            (Policy::One, 3, 1),
            (Policy::One, 0, 0),
            (Policy::Quorum, 1, 1),
            (Policy::Quorum, 2, 2),
            (Policy::Quorum, 3, 2),
            (Policy::Quorum, 5, 3),
            (Policy::AllMinusOne, 1, 1),
            (Policy::AllMinusOne, 2, 1),
            (Policy::AllMinusOne, 3, 2),
            (Policy::All, 3, 3),
        ] {
            assert_eq!(p.required(n), want, "{p:?} of {n}");
        }
    }

    fn node() -> std::net::SocketAddr {
        "127.0.0.1:1".parse().unwrap()
    }

    fn done(r: Result<Outcome, Error>) -> CopyFuture {
        Box::pin(async move { r })
    }

    fn groups(names: &[(&str, bool)]) -> Vec<(Arc<str>, bool)> {
        names.iter().map(|(n, w)| (Arc::from(*n), *w)).collect()
    }

    #[tokio::test]
    async fn quorum_releases_at_two_of_three_and_ignores_write_only() {
        let late: CopyFuture = Box::pin(async move {
            tokio::task::yield_now().await;
            Ok(Outcome::Stored)
        });
        let futs = vec![
            done(Ok(Outcome::Stored)),
            done(Err(Error::NodeDown { node: node() })),
            late,
            done(Ok(Outcome::Stored)),
        ];
        let g = groups(&[("a", false), ("b", false), ("c", false), ("w", true)]);
        // One success, one failure and the write-only copy do not make a quorum: the
        // latch waits for the third readable copy.
        let latch = Latch::collect(Policy::Quorum, g, futs).await;
        assert!(latch.is_met());
        assert_eq!(latch.successes(), 2);
        assert_eq!(latch.failures().count(), 1);
        let all = latch.wait_all().await;
        assert!(all.copies().iter().all(|c| c.result.is_some()));
    }

    #[tokio::test]
    async fn a_latch_that_cannot_be_met_releases_early() {
        let futs = vec![
            done(Err(Error::NodeDown { node: node() })),
            done(Err(Error::NodeDown { node: node() })),
            // The third copy never answers: the latch must not wait for it.
            Box::pin(std::future::pending()) as CopyFuture,
        ];
        let g = groups(&[("a", false), ("b", false), ("c", false)]);
        let latch = Latch::collect(Policy::Quorum, g, futs).await;
        assert!(!latch.is_met());
        assert_eq!(latch.failures().count(), 2);
    }

    #[tokio::test]
    async fn copies_left_behind_still_complete() {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let futs = vec![
            done(Ok(Outcome::Stored)),
            Box::pin(async move {
                tokio::task::yield_now().await;
                let _ = tx.send(());
                Ok(Outcome::Stored)
            }) as CopyFuture,
        ];
        let latch = Latch::collect(Policy::One, groups(&[("a", false), ("b", false)]), futs).await;
        assert!(latch.is_met());
        drop(latch);
        rx.await
            .expect("the second copy ran after the latch was dropped");
    }
}
