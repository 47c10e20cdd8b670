//! Transport and configuration against real memcached: requests dropped mid-flight never
//! leave a connection out of step; TTL rules; configuration by serde.

mod common;

use common::{fleet, raw};
use netflix_evcache::{EvCache, NodeConfig, Policy};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_requests_never_leave_a_connection_mid_protocol() {
    let (_servers, t) = fleet(1, 1);
    let c = EvCache::builder("TEST")
        .topology(t.clone())
        .node_config(NodeConfig {
            connections: 1,
            ..NodeConfig::default()
        })
        .build()
        .unwrap();
    for i in 0..200 {
        c.set(
            &format!("d{i}"),
            format!("value-{i}").repeat(50).into_bytes(),
            None,
        )
        .await
        .unwrap();
    }
    // Start many gets and drop them at every stage: before they are sent, while queued,
    // while their reply is on the wire.
    for round in 0..20u64 {
        let mut futs = Vec::new();
        for i in 0..50 {
            let c = c.clone();
            futs.push(tokio::spawn(async move {
                let _ = tokio::time::timeout(
                    Duration::from_micros(round * 37 % 300),
                    c.get(&format!("d{}", (i * 7 + round as usize) % 200)),
                )
                .await;
            }));
        }
        for f in futs {
            f.await.unwrap();
        }
        // Every reply still matches its request on the same (only) connection.
        for i in (0..200).step_by(13) {
            let want = format!("value-{i}").repeat(50);
            assert_eq!(
                c.get(&format!("d{i}")).await.unwrap().as_deref(),
                Some(want.as_bytes()),
                "round {round}"
            );
        }
    }
}

#[tokio::test]
async fn ttls_follow_memcacheds_rules() {
    let (_servers, t) = fleet(1, 1);
    let port = t.groups[0].nodes[0].port;
    let c = EvCache::builder("TEST")
        .topology(t)
        .latch(Policy::All)
        .build()
        .unwrap();
    let ttl_of = |key: &str| -> i64 {
        let r = raw(port, format!("mg {key} t\r\n").as_bytes(), &["HD", "EN"]);
        r.split_whitespace()
            .find_map(|w| w.strip_prefix('t'))
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| panic!("{r}"))
    };
    c.set("default", b"v".as_slice(), None).await.unwrap();
    assert!(
        (890..=900).contains(&ttl_of("default")),
        "the default is 900 s"
    );
    c.set("zero", b"v".as_slice(), Some(Duration::ZERO))
        .await
        .unwrap();
    assert_eq!(ttl_of("zero"), -1, "zero never expires");
    // Over 30 days memcached reads the number as a Unix time: sent as one, the item lives
    // for the 40 days asked, not until 1970.
    let forty_days = Duration::from_secs(40 * 24 * 3600);
    c.set("long", b"v".as_slice(), Some(forty_days))
        .await
        .unwrap();
    let left = ttl_of("long");
    // memcached's clock ticks once a second and may lag the client's by up to one: the
    // time left can read a second (or two, across a tick) over what was asked.
    assert!(
        (forty_days.as_secs() as i64 - 60..=forty_days.as_secs() as i64 + 2).contains(&left),
        "{left}"
    );
    assert_eq!(c.get("long").await.unwrap().as_deref(), Some(&b"v"[..]));
    // get_and_touch resets it.
    c.get_and_touch("default", Some(Duration::from_secs(5000)))
        .await
        .unwrap();
    assert!(ttl_of("default") > 4000);
}

#[cfg(feature = "serde")]
#[tokio::test]
async fn the_configuration_comes_from_serde() {
    use netflix_evcache::Topology;
    let (_servers, t) = fleet(2, 1);
    let json = serde_json::json!({
        "groups": [
            {"name": "zone-a", "nodes": [t.groups[0].nodes[0].to_string()]},
            {"name": "zone-b", "nodes": [t.groups[1].nodes[0].to_string()], "write_only": true}
        ]
    });
    let topology: Topology = serde_json::from_value(json).unwrap();
    assert!(topology.groups[1].write_only);
    let node: NodeConfig =
        serde_json::from_value(serde_json::json!({"read_timeout": 50, "protocol": "text"}))
            .unwrap();
    assert_eq!(node.read_timeout, Duration::from_millis(50));
    assert_eq!(node.connections, NodeConfig::default().connections);
    let policy: Policy = serde_json::from_value(serde_json::json!("QUORUM")).unwrap();
    let c = EvCache::builder("TEST")
        .topology(topology)
        .node_config(node)
        .latch(policy)
        .build()
        .unwrap();
    let l = c
        .set("k", b"v".as_slice(), None)
        .await
        .unwrap()
        .wait_all()
        .await;
    assert_eq!((l.required(), l.copies().len()), (1, 2));
    assert_eq!(c.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
}
