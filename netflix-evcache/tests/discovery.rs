//! Discovery against real memcached: a node file rewritten under a running client, DNS
//! names, and the grace period before a vanished node is removed.

mod common;

use common::Memcached;
use netflix_evcache::discovery::{DnsDiscovery, FileDiscovery, StaticDiscovery};
use netflix_evcache::{EvCache, Topology};
use std::sync::Arc;
use std::time::Duration;

/// Polls `check` every 20 ms for up to 10 s.
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn nodes_in(c: &EvCache, zone: &str) -> usize {
    c.health()
        .iter()
        .find(|(z, _)| z == zone)
        .map_or(0, |(_, n)| n.len())
}

#[tokio::test]
async fn a_rewritten_node_file_changes_the_servers_after_the_grace_period() {
    let (a1, a2, b1) = (Memcached::start(), Memcached::start(), Memcached::start());
    let dir = std::env::temp_dir().join(format!("evcache-discovery-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("TEST-NODES");
    let write = |s: String| std::fs::write(&file, s).unwrap();
    write(format!(
        "zone-a=127.0.0.1:{};zone-b=127.0.0.1:{}",
        a1.port, b1.port
    ));
    let grace = Duration::from_millis(400);
    let c = EvCache::builder("TEST")
        .local_zone("zone-a")
        .build_discovered(
            Arc::new(FileDiscovery::new(&file)),
            Duration::from_millis(30),
            grace,
        )
        .await
        .unwrap();
    assert_eq!(nodes_in(&c, "zone-a"), 1);
    c.set("k", b"v".as_slice(), None).await.unwrap();

    // A node joins zone a: used at the next refresh; the value is still readable (from
    // zone a if it stayed on a1, else from zone b by fallback).
    write(format!(
        "zone-a=127.0.0.1:{},127.0.0.1:{};zone-b=127.0.0.1:{}",
        a1.port, a2.port, b1.port
    ));
    eventually("zone a has two nodes", || nodes_in(&c, "zone-a") == 2).await;
    assert_eq!(c.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));

    // A node vanishes: it stays through the grace period, then goes.
    write(format!(
        "zone-a=127.0.0.1:{};zone-b=127.0.0.1:{}",
        a2.port, b1.port
    ));
    let t0 = tokio::time::Instant::now();
    eventually("a1 is removed", || nodes_in(&c, "zone-a") == 1).await;
    assert!(
        t0.elapsed() >= grace - Duration::from_millis(50),
        "removed before its grace period"
    );
    let (_, left) = c.health().into_iter().find(|(z, _)| z == "zone-a").unwrap();
    assert_eq!(left[0].0.port(), a2.port);

    // A broken file keeps the servers as they are.
    write("not a node list".into());
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(nodes_in(&c, "zone-a"), 1);
    assert_eq!(nodes_in(&c, "zone-b"), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn dns_names_resolve_to_nodes() {
    let m = Memcached::start();
    let d = DnsDiscovery::new().zone("zone-a", "127.0.0.1", m.port);
    let c = EvCache::builder("TEST")
        .build_discovered(
            Arc::new(d),
            Duration::from_secs(60),
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    assert!(c.set("k", b"v".as_slice(), None).await.unwrap().is_met());
    assert_eq!(c.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
    let d = DnsDiscovery::new().zone("zone-a", "localhost", m.port);
    let c = EvCache::builder("TEST")
        .build_discovered(
            Arc::new(d),
            Duration::from_secs(60),
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    assert!(
        c.topology().groups[0]
            .nodes
            .iter()
            .any(|n| n.addr == "127.0.0.1")
    );
}

#[tokio::test]
async fn static_discovery_and_set_topology() {
    let (m1, m2) = (Memcached::start(), Memcached::start());
    let t: Topology = format!("zone-a=127.0.0.1:{}", m1.port).parse().unwrap();
    let c = EvCache::builder("TEST")
        .build_discovered(
            Arc::new(StaticDiscovery(t)),
            Duration::from_secs(60),
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    c.set("k", b"1".as_slice(), None).await.unwrap();
    let t2: Topology = format!("zone-a=127.0.0.1:{}", m2.port).parse().unwrap();
    c.set_topology(&t2).unwrap();
    assert_eq!(
        c.get("k").await.unwrap(),
        None,
        "a new server holds nothing yet"
    );
    assert!(c.set_topology(&Topology::default()).is_err());
    assert_eq!(c.topology(), t2);
}
