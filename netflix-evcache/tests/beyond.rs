//! Beyond EVCache, against real memcached: get_or_compute's stampede protection and
//! stale-while-revalidate, hedged reads, the near cache and hot keys, metrics.

mod common;

use common::{fleet, zone, zone_client};
use netflix_evcache::{Error, EvCache, HotKeys, NearCache, NodeConfig, Policy, Topology};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

fn client(t: &Topology) -> EvCache {
    EvCache::builder("TEST")
        .topology(t.clone())
        .local_zone("zone-a")
        .latch(Policy::All)
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_caller_computes_a_cold_key_and_the_others_wait_for_it() {
    let (_servers, t) = fleet(2, 1);
    let c = client(&t);
    let runs = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (c, runs) = (c.clone(), runs.clone());
        tasks.push(tokio::spawn(async move {
            c.get_or_compute("row:popular", None, || async move {
                runs.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(100)).await;
                Ok::<_, std::io::Error>(b"computed".to_vec())
            })
            .await
        }));
    }
    for t in tasks {
        assert_eq!(&t.await.unwrap().unwrap()[..], b"computed");
    }
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "the value was computed once"
    );
    let m = c.metrics();
    assert_eq!(m.computed, 1);
    assert!(m.lease_waits > 0, "{m:?}");
    // Stored in every zone.
    for z in 0..2 {
        let zc = zone_client(&t, z);
        assert_eq!(
            zc.get("row:popular").await.unwrap().as_deref(),
            Some(&b"computed"[..])
        );
    }
    // A warm key is just a read.
    let v = c
        .get_or_compute("row:popular", None, || async {
            Err::<Vec<u8>, _>(std::io::Error::other("not called"))
        })
        .await
        .unwrap();
    assert_eq!(&v[..], b"computed");
}

#[tokio::test]
async fn a_failed_computation_is_an_error_and_releases_the_claim() {
    let (_servers, t) = fleet(1, 1);
    let c = client(&t);
    let r = c
        .get_or_compute("k", None, || async {
            Err::<Vec<u8>, _>(std::io::Error::other("database down"))
        })
        .await;
    assert!(matches!(r, Err(Error::Compute(_))), "{r:?}");
    // The next caller wins the claim at once (no wait for the lease to expire) and a plain
    // get sees no empty placeholder.
    assert_eq!(c.get("k").await.unwrap(), None);
    let v = c
        .get_or_compute("k", None, || async {
            Ok::<_, std::io::Error>(b"v".to_vec())
        })
        .await
        .unwrap();
    assert_eq!(&v[..], b"v");
    assert_eq!(c.metrics().lease_waits, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalidated_key_serves_stale_while_one_caller_recomputes() {
    let (_servers, t) = fleet(1, 1);
    let c = client(&t);
    c.set("home", b"old".as_slice(), None).await.unwrap();
    assert!(
        c.invalidate("home", Duration::from_secs(30))
            .await
            .unwrap()
            .is_met()
    );
    let runs = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    // The first caller wins the recache and computes slowly...
    let winner = {
        let (c, runs) = (c.clone(), runs.clone());
        tokio::spawn(async move {
            c.get_or_compute("home", None, || async move {
                runs.fetch_add(1, Ordering::SeqCst);
                let _ = rx.await;
                Ok::<_, std::io::Error>(b"new".to_vec())
            })
            .await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    // ...meanwhile every other caller gets the stale value at once.
    for _ in 0..5 {
        let v = c
            .get_or_compute("home", None, || async {
                Err::<Vec<u8>, _>(std::io::Error::other("must not compute"))
            })
            .await
            .unwrap();
        assert_eq!(&v[..], b"old");
    }
    tx.send(()).unwrap();
    assert_eq!(&winner.await.unwrap().unwrap()[..], b"new");
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert_eq!(c.get("home").await.unwrap().as_deref(), Some(&b"new"[..]));
    assert_eq!(c.metrics().stale_served, 5);
}

#[tokio::test]
async fn hedged_reads_answer_from_the_second_zone_when_the_first_hangs() {
    let (servers, t) = fleet(2, 1);
    let c = EvCache::builder("TEST")
        .topology(t.clone())
        .local_zone("zone-a")
        .latch(Policy::All)
        .hedge_after(Duration::from_millis(3))
        .node_config(NodeConfig {
            read_timeout: Duration::from_millis(500),
            tko_after: 1000,
            ..NodeConfig::default()
        })
        .build()
        .unwrap();
    for i in 0..10 {
        c.set(&format!("h{i}"), b"v".as_slice(), None)
            .await
            .unwrap();
    }
    servers[0][0].stop();
    let start = tokio::time::Instant::now();
    for i in 0..10 {
        assert_eq!(
            c.get(&format!("h{i}")).await.unwrap().as_deref(),
            Some(&b"v"[..])
        );
    }
    // Without hedging each read would wait out the 500 ms timeout.
    assert!(
        start.elapsed() < Duration::from_millis(2500),
        "{:?}",
        start.elapsed()
    );
    let m = c.metrics();
    assert_eq!(m.hedges, 10);
    assert_eq!(m.hedge_wins, 10);
    servers[0][0].resume();
}

#[tokio::test]
async fn the_near_cache_serves_reads_and_drops_what_this_client_writes() {
    let (_servers, t) = fleet(1, 1);
    let c = EvCache::builder("TEST")
        .topology(t.clone())
        .near_cache(NearCache {
            capacity: 100,
            ttl: Duration::from_secs(60),
        })
        .build()
        .unwrap();
    c.set("k", b"1".as_slice(), None).await.unwrap();
    for _ in 0..10 {
        assert_eq!(c.get("k").await.unwrap().as_deref(), Some(&b"1"[..]));
    }
    assert_eq!(c.metrics().near_hits, 9);
    c.set("k", b"2".as_slice(), None).await.unwrap();
    assert_eq!(c.get("k").await.unwrap().as_deref(), Some(&b"2"[..]));
    c.delete("k").await.unwrap();
    assert_eq!(c.get("k").await.unwrap(), None);
}

#[tokio::test]
async fn hot_keys_are_served_from_memory_and_cold_ones_are_not() {
    let (_servers, t) = fleet(1, 2);
    let c = EvCache::builder("TEST")
        .topology(t.clone())
        .hot_keys(HotKeys {
            threshold: 50,
            ttl: Duration::from_secs(5),
            capacity: 100,
        })
        .build()
        .unwrap();
    c.set("celebrity", b"poster".as_slice(), None)
        .await
        .unwrap();
    for i in 0..20 {
        c.set(&format!("cold{i}"), b"x".as_slice(), None)
            .await
            .unwrap();
    }
    for _ in 0..200 {
        assert_eq!(
            c.get("celebrity").await.unwrap().as_deref(),
            Some(&b"poster"[..])
        );
    }
    for i in 0..20 {
        c.get(&format!("cold{i}")).await.unwrap();
    }
    let m = c.metrics();
    // Hot from its 50th read: the rest came from memory.
    assert!(m.near_hits >= 140, "{m:?}");
    let calls: u64 = m
        .zones
        .iter()
        .flat_map(|(_, ops)| ops.iter())
        .filter(|o| o.op == netflix_evcache::metrics::Op::Get)
        .map(|o| o.calls)
        .sum();
    assert!(calls <= 80, "memcached was asked {calls} times");
}

#[tokio::test]
async fn metrics_count_by_operation_and_zone() {
    let (mut servers, t) = fleet(2, 1);
    let c = client(&t);
    c.set("m", b"v".as_slice(), None).await.unwrap();
    c.get("m").await.unwrap();
    c.get("absent").await.unwrap();
    servers[0][0].kill();
    c.get("m").await.unwrap();
    let m = c.metrics();
    let op = |z: usize, op| {
        m.zones
            .iter()
            .find(|(n, _)| *n == zone(z))
            .and_then(|(_, ops)| ops.iter().find(|o| o.op == op).cloned())
            .unwrap()
    };
    use netflix_evcache::metrics::Op;
    assert_eq!(op(0, Op::Set).calls, 1);
    assert_eq!(op(1, Op::Set).calls, 1);
    let g = op(0, Op::Get);
    assert_eq!((g.calls, g.hits, g.misses, g.errors), (3, 1, 1, 1));
    // The miss in zone a fell back to zone b (a miss there too); the error as well.
    assert_eq!(op(1, Op::Get).calls, 2);
    assert_eq!(m.fallbacks, 2);
}
