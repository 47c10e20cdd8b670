//! The eviction policies on a real CDN trace: the default policy's miss ratio against
//! S3-FIFO, SIEVE and LRU at 1, 5, 10 and 25% of the unique objects (and bytes), and every
//! policy against Belady's MIN. The same figures are in BENCHMARKS.md
//! (`scripts/bench-cache.sh`).

use netflix_oca::policy::PolicyKind;
use netflix_oca::trace::{self, Capacity, Request, TraceFormat};

const TRACE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/adapt_size_request.trace.xz"
);

fn cdn_trace() -> Vec<Request> {
    trace::read(TRACE, TraceFormat::Adapt).expect("the CDN trace ships with the tests")
}

fn miss(t: &[Request], kind: PolicyKind, fraction: f64, unit: Capacity) -> f64 {
    let cap = unit.of(t, fraction);
    trace::replay(t, kind, cap, unit).miss_ratio()
}

#[test]
fn the_trace_is_the_expected_one() {
    let t = cdn_trace();
    assert_eq!(t.len(), 66_987);
    assert_eq!(Capacity::Objects.of(&t, 1.0), 36_815);
}

#[test]
fn default_is_within_a_third_of_a_point_of_the_best_fifo_and_beats_lru() {
    let t = cdn_trace();
    for unit in [Capacity::Objects, Capacity::Bytes] {
        for fraction in [0.01, 0.05, 0.10, 0.25] {
            let ours = miss(&t, PolicyKind::Default, fraction, unit);
            let s3 = miss(&t, PolicyKind::S3Fifo, fraction, unit);
            let sieve = miss(&t, PolicyKind::Sieve, fraction, unit);
            let lru = miss(&t, PolicyKind::Lru, fraction, unit);
            let min = miss(&t, PolicyKind::Belady, fraction, unit);
            let what = format!(
                "{unit:?} at {fraction}: default {ours:.4}, S3-FIFO {s3:.4}, SIEVE {sieve:.4}, LRU {lru:.4}, MIN {min:.4}"
            );
            assert!(ours <= s3.min(sieve) + 0.003, "{what}");
            if fraction == 0.05 || fraction == 0.10 {
                assert!(ours <= lru - 0.02, "{what}");
            }
            assert!(min <= ours.min(s3).min(sieve).min(lru), "{what}");
        }
    }
}

#[test]
fn belady_reaches_the_compulsory_floor_when_the_cache_is_large() {
    // Every first request misses: 36,815 of 66,987. With a tenth of the objects MIN
    // already misses nothing else on this trace.
    let t = cdn_trace();
    let floor = 36_815.0 / 66_987.0;
    let min = miss(&t, PolicyKind::Belady, 0.25, Capacity::Objects);
    assert!((min - floor).abs() < 1e-9, "{min} against {floor}");
    assert!(miss(&t, PolicyKind::Belady, 1.0, Capacity::Bytes) - floor < 1e-9);
}
