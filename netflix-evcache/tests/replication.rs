//! The replicated client against real memcached: 3 zones × 2 nodes on loopback.

mod common;

use common::{Memcached, fleet, zone, zone_client};
use netflix_evcache::ketama::{Continuum, Mode};
use netflix_evcache::{Error, EvCache, Health, NodeConfig, Outcome, Policy, ServerGroup, Topology};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn client(t: &Topology, policy: Policy) -> EvCache {
    EvCache::builder("TEST")
        .topology(t.clone())
        .local_zone("zone-a")
        .latch(policy)
        .build()
        .unwrap()
}

/// The memcached of zone `z` that holds `key`.
fn holder<'a>(
    servers: &'a mut [Vec<Memcached>],
    t: &Topology,
    z: usize,
    key: &str,
) -> &'a mut Memcached {
    let ring = Continuum::new(&t.groups[z].nodes, Mode::Spymemcached).unwrap();
    &mut servers[z][ring.locate(key.as_bytes())]
}

async fn copies(t: &Topology, key: &str) -> Vec<Option<Vec<u8>>> {
    let mut out = Vec::new();
    for z in 0..t.groups.len() {
        out.push(
            zone_client(t, z)
                .get(key)
                .await
                .unwrap()
                .map(|b| b.to_vec()),
        );
    }
    out
}

#[tokio::test]
async fn writes_reach_every_zone_and_reads_hit_locally() {
    let (_servers, t) = fleet(3, 2);
    let c = client(&t, Policy::All);
    for i in 0..50 {
        let latch = c
            .set(&format!("k{i}"), format!("v{i}").into_bytes(), None)
            .await
            .unwrap();
        assert!(latch.is_met(), "{latch:?}");
        assert_eq!(latch.successes(), 3);
    }
    for i in 0..50 {
        let want = Some(format!("v{i}").into_bytes());
        assert_eq!(
            copies(&t, &format!("k{i}")).await,
            vec![want.clone(), want.clone(), want]
        );
    }
    assert_eq!(c.get("k7").await.unwrap().as_deref(), Some(&b"v7"[..]));
    assert!(c.delete("k7").await.unwrap().is_met());
    assert_eq!(copies(&t, "k7").await, vec![None, None, None]);
    assert_eq!(c.get("k7").await.unwrap(), None);
}

#[tokio::test]
async fn every_operation_does_what_memcached_does() {
    let (_servers, t) = fleet(3, 1);
    let c = client(&t, Policy::All);
    // replace needs the key; append/prepend too.
    let l = c.replace("r", b"x".as_slice(), None).await.unwrap();
    assert!(
        l.copies()
            .iter()
            .all(|c| matches!(c.result, Some(Ok(Outcome::NotStored))))
    );
    c.set("r", b"mid".as_slice(), None).await.unwrap();
    c.append("r", b">".as_slice()).await.unwrap();
    c.prepend("r", b"<".as_slice()).await.unwrap();
    assert_eq!(c.get("r").await.unwrap().as_deref(), Some(&b"<mid>"[..]));
    c.append_or_add("log", b"a".as_slice(), None).await.unwrap();
    c.append_or_add("log", b"b".as_slice(), None).await.unwrap();
    assert_eq!(copies(&t, "log").await, vec![Some(b"ab".to_vec()); 3]);
    // CAS: a stale token loses everywhere.
    let (_, cas) = c.gets("r").await.unwrap().unwrap();
    c.set("r", b"new".as_slice(), None).await.unwrap();
    let l = c.cas("r", b"stale".as_slice(), cas, None).await.unwrap();
    assert!(
        !l.copies()
            .iter()
            .any(|c| matches!(c.result, Some(Ok(Outcome::Stored))))
    );
    assert_eq!(c.get("r").await.unwrap().as_deref(), Some(&b"new"[..]));
    // touch and get_and_touch on a present and a missing key.
    assert!(
        c.touch("r", Some(Duration::from_secs(60)))
            .await
            .unwrap()
            .is_met()
    );
    assert_eq!(
        c.get_and_touch("r", None).await.unwrap().as_deref(),
        Some(&b"new"[..])
    );
    assert_eq!(c.get_and_touch("nothing", None).await.unwrap(), None);
    // Counters.
    assert_eq!(c.incr("n", 5, 10, None).await.unwrap(), 10);
    assert_eq!(c.incr("n", 5, 10, None).await.unwrap(), 15);
    assert_eq!(c.decr("n", 20, 0, None).await.unwrap(), 0);
    // Bulk.
    for i in 0..30 {
        c.set(&format!("b{i}"), vec![b'x'; i], None).await.unwrap();
    }
    let keys: Vec<String> = (0..40).map(|i| format!("b{i}")).collect();
    let got = c.get_bulk(keys.iter().map(String::as_str)).await.unwrap();
    assert_eq!(got.len(), 30);
    assert_eq!(got["b29"].len(), 29);
}

#[tokio::test]
async fn invalid_keys_are_typed_errors() {
    let (_servers, t) = fleet(1, 1);
    let c = client(&t, Policy::One);
    for bad in ["", "has space", "tab\there", "nl\n", &"k".repeat(251)] {
        assert!(
            matches!(c.get(bad).await, Err(Error::InvalidKey { .. })),
            "{bad:?}"
        );
        assert!(matches!(
            c.set(bad, b"v".as_slice(), None).await,
            Err(Error::InvalidKey { .. })
        ));
    }
    assert!(c.get(&"k".repeat(250)).await.unwrap().is_none());
}

#[tokio::test]
async fn add_is_first_writer_wins_and_repairs_the_other_copies() {
    let (_servers, t) = fleet(3, 1);
    let c = client(&t, Policy::All);
    // Zone b already holds a value; a and c do not.
    zone_client(&t, 1)
        .set("owner", b"first".as_slice(), None)
        .await
        .unwrap();
    assert!(!c.add("owner", b"second".as_slice(), None).await.unwrap());
    assert_eq!(copies(&t, "owner").await, vec![Some(b"first".to_vec()); 3]);
    assert!(c.add("fresh", b"mine".as_slice(), None).await.unwrap());
    assert_eq!(copies(&t, "fresh").await, vec![Some(b"mine".to_vec()); 3]);
}

#[tokio::test]
async fn counters_are_reconciled_to_the_highest_copy() {
    let (_servers, t) = fleet(3, 1);
    let c = client(&t, Policy::All);
    zone_client(&t, 2)
        .set("views", b"41".as_slice(), None)
        .await
        .unwrap();
    // Zones a and b create the counter at 0; c goes to 42: all end at 42.
    assert_eq!(c.incr("views", 1, 0, None).await.unwrap(), 42);
    assert_eq!(copies(&t, "views").await, vec![Some(b"42".to_vec()); 3]);
}

/// 8 readers, each reading `prefix0..prefix{keys}` 6 times over (bounded), concurrently.
fn load(
    c: &EvCache,
    prefix: &'static str,
    keys: usize,
) -> Vec<tokio::task::JoinHandle<(u32, u32)>> {
    (0..8)
        .map(|r| {
            let c = c.clone();
            tokio::spawn(async move {
                let (mut errors, mut misses) = (0, 0);
                for n in 0..keys * 6 {
                    let key = format!("{prefix}{}", (n * 7 + r) % keys);
                    match c.get(&key).await {
                        Ok(Some(_)) => {}
                        Ok(None) => misses += 1,
                        Err(e) => {
                            eprintln!("{key}: {e}");
                            errors += 1;
                        }
                    }
                }
                (errors, misses)
            })
        })
        .collect()
}

async fn finish(readers: Vec<tokio::task::JoinHandle<(u32, u32)>>) -> (u32, u32) {
    let mut total = (0, 0);
    for r in readers {
        let (e, m) = r.await.unwrap();
        total = (total.0 + e, total.1 + m);
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_costs_no_read_and_the_latch_names_it() {
    let (mut servers, t) = fleet(3, 2);
    let c = client(&t, Policy::AllMinusOne);
    for i in 0..100 {
        c.set(&format!("s{i}"), format!("v{i}").into_bytes(), None)
            .await
            .unwrap();
    }
    // Readers under load while the node is killed: not one read may fail or miss.
    let readers = load(&c, "s", 100);
    tokio::time::sleep(Duration::from_millis(30)).await;
    holder(&mut servers, &t, 0, "s0").kill();
    assert_eq!(finish(readers).await, (0, 0), "(errors, misses) under load");
    let l = c
        .set("s0", b"again".as_slice(), None)
        .await
        .unwrap()
        .wait_all()
        .await;
    assert!(l.is_met());
    let failed: Vec<_> = l.failures().map(|f| f.group.to_string()).collect();
    assert_eq!(failed, vec![zone(0)]);
    // The node is in TKO: failing fast.
    let down = c.health()[0]
        .1
        .iter()
        .filter(|(_, h)| *h == Health::Down)
        .count();
    assert_eq!(down, 1);

    // It comes back (empty): after the probe backoff, writes reach it again.
    holder(&mut servers, &t, 0, "s0").restart();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let l = c
            .set("s0", b"back".as_slice(), None)
            .await
            .unwrap()
            .wait_all()
            .await;
        if l.successes() == 3 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the node was never used again: {l:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(copies(&t, "s0").await, vec![Some(b"back".to_vec()); 3]);
    assert!(
        c.health()
            .iter()
            .all(|(_, nodes)| nodes.iter().all(|(_, h)| *h == Health::Up))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_node_times_out_into_tko_and_reads_fall_back() {
    let (mut servers, t) = fleet(3, 2);
    let cfg = NodeConfig {
        tko_after: 3,
        ..NodeConfig::default()
    };
    let c = EvCache::builder("TEST")
        .topology(t.clone())
        .local_zone("zone-a")
        .node_config(cfg)
        .build()
        .unwrap();
    for i in 0..50 {
        c.set(&format!("p{i}"), b"v".as_slice(), None)
            .await
            .unwrap();
    }
    let readers = load(&c, "p", 50);
    tokio::time::sleep(Duration::from_millis(30)).await;
    let stopped = holder(&mut servers, &t, 0, "p0");
    stopped.stop();
    assert_eq!(
        finish(readers).await,
        (0, 0),
        "(errors, misses): no read error reaches the caller"
    );
    let down = c.health()[0]
        .1
        .iter()
        .filter(|(_, h)| *h == Health::Down)
        .count();
    assert_eq!(down, 1, "{:?}", c.health());
    stopped.resume();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while c.health()[0].1.iter().any(|(_, h)| *h == Health::Down) {
        assert!(tokio::time::Instant::now() < deadline, "TKO never ended");
        let _ = c.get("p0").await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_whole_zone_down_still_reads_and_quorum_needs_two_of_three() {
    let (mut servers, t) = fleet(3, 2);
    let c = client(&t, Policy::Quorum);
    for i in 0..20 {
        assert!(
            c.set(&format!("z{i}"), b"v".as_slice(), None)
                .await
                .unwrap()
                .is_met()
        );
    }
    for m in &mut servers[0] {
        m.kill();
    }
    for i in 0..20 {
        assert_eq!(
            c.get(&format!("z{i}")).await.unwrap().as_deref(),
            Some(&b"v"[..])
        );
    }
    let l = c.set("z0", b"w".as_slice(), None).await.unwrap();
    assert!(l.is_met());
    assert_eq!(l.required(), 2);
    for m in &mut servers[1] {
        m.kill();
    }
    let l = c.set("z0", b"x".as_slice(), None).await.unwrap();
    assert!(!l.is_met(), "one zone of three is no quorum: {l:?}");
    // The write that missed its quorum still landed on the surviving zone (the latch
    // reports, it does not roll back), and reads are served from there.
    assert_eq!(c.get("z0").await.unwrap().as_deref(), Some(&b"x"[..]));
}

#[tokio::test]
async fn write_only_groups_get_writes_but_no_reads_and_do_not_count() {
    let (_servers, t) = fleet(2, 1);
    let warm = Memcached::start();
    let mut groups = t.groups.clone();
    groups.push(ServerGroup::new("zone-new", vec![warm.spec()]).write_only());
    let t2 = Topology::new(groups);
    let c = client(&t2, Policy::All);
    let l = c
        .set("w", b"v".as_slice(), None)
        .await
        .unwrap()
        .wait_all()
        .await;
    assert_eq!(l.required(), 2);
    assert_eq!(l.copies().len(), 3);
    assert!(l.copies()[2].write_only);
    assert_eq!(
        zone_client(&t2, 2).get("w").await.unwrap().as_deref(),
        Some(&b"v"[..])
    );
}

/// A server that answers the protocol probe (`mn`) as memcached does, then every request
/// with `reply`, and then, if `close`, hangs up.
async fn fake_server(reply: &'static [u8], close: bool) -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while let Ok(n) = s.read(&mut buf).await {
                    if &buf[..n] == b"mn\r\n" {
                        if s.write_all(b"MN\r\n").await.is_err() {
                            return;
                        }
                        continue;
                    }
                    if n == 0 || s.write_all(reply).await.is_err() {
                        return;
                    }
                    if close {
                        return;
                    }
                }
            });
        }
    });
    port
}

#[tokio::test]
async fn garbled_and_truncated_replies_are_typed_errors() {
    for (reply, close, protocol) in [
        (&b"HELLO WORLD\r\n"[..], false, true),
        (b"VA 3 f0\r\nabcXY\r\n", false, true),
        (b"VA 99999999999 f0\r\n", false, true),
        (b"VA 10 f0\r\nabc", true, false),
        (b"", true, false),
    ] {
        let port = fake_server(reply, close).await;
        let t: Topology = format!("zone-a=127.0.0.1:{port}").parse().unwrap();
        let c = EvCache::builder("TEST").topology(t).build().unwrap();
        for _ in 0..3 {
            let r = c.get("k").await;
            match r {
                Err(Error::Protocol { .. }) if protocol => {}
                Err(Error::Io { .. } | Error::Timeout { .. } | Error::NodeDown { .. })
                    if !protocol => {}
                Err(Error::NodeDown { .. }) => {}
                other => panic!("{reply:?}: {other:?}"),
            }
        }
    }
}
