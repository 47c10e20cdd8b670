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
    pub group: String,
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

/// The copies of one write, released once its [`Policy`] is met or can no longer be.
pub struct Latch {
    policy: Policy,
    required: usize,
    copies: Vec<CopyResult>,
    rest: mpsc::UnboundedReceiver<(usize, Result<Outcome, Error>)>,
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

impl Latch {
    /// Waits until `policy` is met or cannot be, reading copy results from `rx`.
    pub(crate) async fn collect(
        policy: Policy,
        groups: Vec<(String, bool)>,
        mut rx: mpsc::UnboundedReceiver<(usize, Result<Outcome, Error>)>,
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
        let mut pending = copies.len();
        let mut ok = 0;
        let mut failed = 0;
        while ok < required && failed <= readable - required && pending > 0 {
            let Some((i, r)) = rx.recv().await else { break };
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
        Latch {
            policy,
            required,
            copies,
            rest: rx,
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
            let Some((i, r)) = self.rest.recv().await else {
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

    #[tokio::test]
    async fn quorum_releases_at_two_of_three_and_ignores_write_only() {
        let (tx, rx) = mpsc::unbounded_channel();
        let groups = vec![
            ("a".to_string(), false),
            ("b".to_string(), false),
            ("c".to_string(), false),
            ("w".to_string(), true),
        ];
        tx.send((3, Ok(Outcome::Stored))).unwrap();
        tx.send((0, Ok(Outcome::Stored))).unwrap();
        tx.send((1, Err(Error::NodeDown { node: node() }))).unwrap();
        tx.send((2, Ok(Outcome::Stored))).unwrap();
        let latch = Latch::collect(Policy::Quorum, groups, rx).await;
        assert!(latch.is_met());
        assert_eq!(latch.successes(), 2);
        assert_eq!(latch.failures().count(), 1);
        let all = latch.wait_all().await;
        assert!(all.copies().iter().all(|c| c.result.is_some()));
    }

    #[tokio::test]
    async fn a_latch_that_cannot_be_met_releases_early() {
        let (tx, rx) = mpsc::unbounded_channel();
        let groups = vec![
            ("a".to_string(), false),
            ("b".to_string(), false),
            ("c".to_string(), false),
        ];
        tx.send((0, Err(Error::NodeDown { node: node() }))).unwrap();
        tx.send((1, Err(Error::NodeDown { node: node() }))).unwrap();
        // The third copy never answers: the latch must not wait for it.
        let latch = Latch::collect(Policy::Quorum, groups, rx).await;
        assert!(!latch.is_met());
        drop(tx);
    }
}
