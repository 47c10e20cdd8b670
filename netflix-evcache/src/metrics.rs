//! Counters by operation and zone, and the client-wide ones.
//!
//! Every call to a node counts under its operation and zone: calls, hits, misses, errors
//! and the total time taken. Read [`EvCache::metrics`](crate::EvCache::metrics) for a
//! snapshot to export (Prometheus, Atlas, logs). Counting is a few relaxed atomic adds;
//! each node call is also a `tracing` span (`evcache.call`, with `op`, `zone`, `attempt`
//! and `hit`), so a trace shows which zone answered and after how many tries.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The operations counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Op {
    /// get, gets, get_and_touch, get_json, get_or_compute's read.
    Get,
    /// get_bulk (one count per node batch).
    GetBulk,
    /// set, add, replace, append, prepend, cas, append_or_add.
    Set,
    /// delete and invalidate.
    Delete,
    /// touch.
    Touch,
    /// incr and decr.
    Arith,
}

impl Op {
    const ALL: [Op; 6] = [
        Op::Get,
        Op::GetBulk,
        Op::Set,
        Op::Delete,
        Op::Touch,
        Op::Arith,
    ];

    /// The operation's name.
    pub fn name(self) -> &'static str {
        match self {
            Op::Get => "get",
            Op::GetBulk => "get_bulk",
            Op::Set => "set",
            Op::Delete => "delete",
            Op::Touch => "touch",
            Op::Arith => "arith",
        }
    }
}

#[derive(Debug, Default)]
struct Cell {
    calls: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
    errors: AtomicU64,
    nanos: AtomicU64,
}

/// One zone's counters (shared by its views across topology changes).
#[derive(Debug, Default)]
pub(crate) struct ZoneStats {
    cells: [Cell; 6],
}

/// How a call ended, for the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ended {
    Hit,
    Miss,
    Done,
    Error,
}

impl ZoneStats {
    pub(crate) fn record(&self, op: Op, ended: Ended, took: Duration) {
        let c = &self.cells[op as usize];
        c.calls.fetch_add(1, Ordering::Relaxed);
        c.nanos.fetch_add(
            took.as_nanos().min(u128::from(u64::MAX)) as u64,
            Ordering::Relaxed,
        );
        match ended {
            Ended::Hit => c.hits.fetch_add(1, Ordering::Relaxed),
            Ended::Miss => c.misses.fetch_add(1, Ordering::Relaxed),
            Ended::Error => c.errors.fetch_add(1, Ordering::Relaxed),
            Ended::Done => 0,
        };
    }
}

/// Client-wide counters.
#[derive(Debug, Default)]
pub(crate) struct ClientStats {
    pub fallbacks: AtomicU64,
    pub hedges: AtomicU64,
    pub hedge_wins: AtomicU64,
    pub near_hits: AtomicU64,
    pub computed: AtomicU64,
    pub lease_waits: AtomicU64,
    pub stale_served: AtomicU64,
    pub latch_unmet: AtomicU64,
}

/// One operation's counters in one zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpMetrics {
    /// The operation.
    pub op: Op,
    /// Calls to the zone's nodes.
    pub calls: u64,
    /// Reads that found the key.
    pub hits: u64,
    /// Reads that did not.
    pub misses: u64,
    /// Calls that failed (timeouts, nodes down, IO, garbled replies, server errors).
    pub errors: u64,
    /// Time spent in those calls, in total.
    pub total_time: Duration,
}

/// A snapshot of the client's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metrics {
    /// Per zone, per operation (operations never called are left out).
    pub zones: Vec<(String, Vec<OpMetrics>)>,
    /// Reads that went on to another zone after a miss or an error.
    pub fallbacks: u64,
    /// Reads hedged to a second zone after the hedge delay.
    pub hedges: u64,
    /// Hedged reads the second zone answered first.
    pub hedge_wins: u64,
    /// Reads served by the near cache.
    pub near_hits: u64,
    /// Values computed by `get_or_compute`.
    pub computed: u64,
    /// `get_or_compute` callers that waited for another's computation.
    pub lease_waits: u64,
    /// Stale values served while another caller recomputed.
    pub stale_served: u64,
    /// Writes whose latch policy was not met.
    pub latch_unmet: u64,
}

pub(crate) fn snapshot(zones: &[(String, std::sync::Arc<ZoneStats>)], c: &ClientStats) -> Metrics {
    let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
    Metrics {
        zones: zones
            .iter()
            .map(|(name, z)| {
                let ops = Op::ALL
                    .iter()
                    .zip(&z.cells)
                    .filter(|(_, c)| get(&c.calls) > 0)
                    .map(|(&op, c)| OpMetrics {
                        op,
                        calls: get(&c.calls),
                        hits: get(&c.hits),
                        misses: get(&c.misses),
                        errors: get(&c.errors),
                        total_time: Duration::from_nanos(get(&c.nanos)),
                    })
                    .collect();
                (name.clone(), ops)
            })
            .collect(),
        fallbacks: get(&c.fallbacks),
        hedges: get(&c.hedges),
        hedge_wins: get(&c.hedge_wins),
        near_hits: get(&c.near_hits),
        computed: get(&c.computed),
        lease_waits: get(&c.lease_waits),
        stale_served: get(&c.stale_served),
        latch_unmet: get(&c.latch_unmet),
    }
}
