use super::*;
use proptest::prelude::*;

fn run(kind: PolicyKind, capacity: u64, keys: &[u64]) -> (Box<dyn Policy>, usize) {
    let mut p = kind.build(capacity);
    let mut evicted = Vec::new();
    let mut hits = 0;
    for &k in keys {
        if p.get(k) {
            hits += 1;
        } else {
            p.insert(k, 1, &mut evicted);
        }
    }
    (p, hits)
}

const ONLINE: [PolicyKind; 5] = [
    PolicyKind::Lru,
    PolicyKind::S3Fifo,
    PolicyKind::Sieve,
    PolicyKind::TinyLfu,
    PolicyKind::Default,
];

#[test]
fn names_round_trip() {
    for k in PolicyKind::ALL {
        assert_eq!(k.as_str().parse::<PolicyKind>(), Ok(k));
    }
    assert_eq!("S3-FIFO".parse::<PolicyKind>(), Ok(PolicyKind::S3Fifo));
    assert!("arc".parse::<PolicyKind>().is_err());
    assert!(PolicyKind::Belady.try_build(4).is_none());
}

#[test]
fn lru_evicts_least_recent() {
    let (p, hits) = run(PolicyKind::Lru, 2, &[1, 2, 1, 3, 2]);
    assert_eq!(hits, 1);
    assert!(p.contains(3) && p.contains(2) && !p.contains(1));
}

#[test]
fn sieve_keeps_visited_and_sweeps() {
    // 1 is visited, so when 3 arrives the hand passes 1 (clearing it) and evicts 2.
    let (p, _) = run(PolicyKind::Sieve, 2, &[1, 2, 1, 3]);
    assert!(p.contains(1) && p.contains(3) && !p.contains(2));
}

#[test]
fn scan_resistance() {
    // A hot set of 10 keys is established, then asked for between long scans of one-hit
    // wonders: the scan-resistant policies keep the hot set, LRU loses it every round.
    let mut warm: Vec<u64> = (0..50).flat_map(|_| 0..10).collect();
    let mut scan = Vec::new();
    for round in 0..200u64 {
        scan.extend(0..10);
        scan.extend((0..30).map(|s| 1_000 + round * 30 + s));
    }
    let all = {
        warm.extend_from_slice(&scan);
        warm
    };
    let hits_in_scan = |kind: PolicyKind| {
        let (_, total) = run(kind, 20, &all);
        let (_, warmup) = run(kind, 20, &all[..500]);
        total - warmup
    };
    assert!(
        hits_in_scan(PolicyKind::Lru) <= 10,
        "LRU keeps the hot set only for the first round"
    );
    for kind in [
        PolicyKind::S3Fifo,
        PolicyKind::TinyLfu,
        PolicyKind::Sieve,
        PolicyKind::Default,
    ] {
        let hits = hits_in_scan(kind);
        assert!(hits >= 1_800, "{kind}: {hits} hits of 2,000 on the hot set");
    }
}

#[test]
fn oversized_objects_are_not_admitted() {
    for kind in ONLINE {
        let mut p = kind.build(100);
        let mut ev = Vec::new();
        assert!(!p.insert(1, 101, &mut ev), "{kind}");
        assert!(p.is_empty());
    }
}

#[test]
fn shrinking_capacity_evicts() {
    for kind in ONLINE {
        let mut p = kind.build(50);
        let mut ev = Vec::new();
        for k in 0..200 {
            if !p.get(k % 60) {
                p.insert(k % 60, 1, &mut ev);
            }
        }
        ev.clear();
        p.set_capacity(10, &mut ev);
        assert!(p.used() <= 10, "{kind}: {}", p.used());
        assert_eq!(p.len() as u64, p.used());
        for k in &ev {
            assert!(!p.contains(*k), "{kind}: evicted {k} is still there");
        }
    }
}

#[test]
fn belady_is_optimal_on_a_small_case() {
    let keys = [1u64, 2, 3, 1, 2, 4, 1, 2, 3];
    let next = crate::trace::next_uses(keys.iter().copied());
    let mut min = Belady::new(2);
    let hits = keys
        .iter()
        .zip(&next)
        .filter(|&(&k, &n)| min.access(k, 1, n))
        .count();
    assert_eq!(hits, 4);
}

proptest! {
    /// Every policy respects its capacity, reports what it evicted, and what it says it
    /// holds is exactly what was admitted and not evicted.
    #[test]
    fn policies_keep_their_books(
        ops in proptest::collection::vec((0u64..40, 1u64..8), 1..400),
        capacity in 1u64..40,
    ) {
        for kind in ONLINE {
            let mut p = kind.build(capacity);
            let mut model = std::collections::HashMap::new();
            let mut ev = Vec::new();
            for &(k, w) in &ops {
                if p.get(k) {
                    prop_assert!(model.contains_key(&k));
                    continue;
                }
                prop_assert!(!model.contains_key(&k));
                ev.clear();
                if p.insert(k, w, &mut ev) {
                    model.insert(k, w);
                }
                for e in &ev {
                    prop_assert!(model.remove(e).is_some(), "{} evicted {} it did not hold", kind, e);
                }
                prop_assert!(p.used() <= capacity, "{}", kind);
                prop_assert_eq!(p.used(), model.values().sum::<u64>(), "{}", kind);
                prop_assert_eq!(p.len(), model.len());
            }
        }
    }

    /// MIN never has fewer hits than any online policy, with unit weights.
    #[test]
    fn belady_bounds_online_policies(
        keys in proptest::collection::vec(0u64..30, 1..300),
        capacity in 1u64..20,
    ) {
        let next = crate::trace::next_uses(keys.iter().copied());
        let mut min = Belady::new(capacity);
        let best = keys.iter().zip(&next).filter(|&(&k, &n)| min.access(k, 1, n)).count();
        for kind in ONLINE {
            let (_, hits) = run(kind, capacity, &keys);
            prop_assert!(hits <= best, "{}: {} > MIN {}", kind, hits, best);
        }
    }
}
