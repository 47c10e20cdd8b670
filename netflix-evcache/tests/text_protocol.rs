//! The text protocol: every operation against real memcached spoken in text, and the
//! automatic fallback when a server answers `mn` with `ERROR` (memcached before 1.6).

mod common;

use common::fleet;
use netflix_evcache::{EvCache, NodeConfig, Outcome, Policy, Protocol, Topology};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

fn text_client(t: &Topology) -> EvCache {
    EvCache::builder("TEST")
        .topology(t.clone())
        .local_zone("zone-a")
        .latch(Policy::All)
        .node_config(NodeConfig {
            protocol: Protocol::Text,
            ..NodeConfig::default()
        })
        .build()
        .unwrap()
}

#[tokio::test]
async fn every_operation_works_in_text() {
    let (_servers, t) = fleet(2, 2);
    let c = text_client(&t);
    for i in 0..40 {
        assert!(
            c.set(&format!("k{i}"), format!("v{i}").into_bytes(), None)
                .await
                .unwrap()
                .is_met()
        );
    }
    assert_eq!(c.get("k3").await.unwrap().as_deref(), Some(&b"v3"[..]));
    assert_eq!(c.get("nope").await.unwrap(), None);
    let keys: Vec<String> = (0..50).map(|i| format!("k{i}")).collect();
    let got = c.get_bulk(keys.iter().map(String::as_str)).await.unwrap();
    assert_eq!(got.len(), 40);
    assert_eq!(&got["k39"][..], b"v39");

    let l = c.replace("absent", b"x".as_slice(), None).await.unwrap();
    assert!(
        l.copies()
            .iter()
            .all(|c| matches!(c.result, Some(Ok(Outcome::NotStored))))
    );
    c.append("k1", b">".as_slice()).await.unwrap();
    c.prepend("k1", b"<".as_slice()).await.unwrap();
    assert_eq!(c.get("k1").await.unwrap().as_deref(), Some(&b"<v1>"[..]));
    c.append_or_add("log", b"a".as_slice(), None).await.unwrap();
    c.append_or_add("log", b"b".as_slice(), None).await.unwrap();
    assert_eq!(c.get("log").await.unwrap().as_deref(), Some(&b"ab"[..]));

    let (_, cas) = c.gets("k2").await.unwrap().unwrap();
    assert!(
        c.cas("k2", b"new".as_slice(), cas, None)
            .await
            .unwrap()
            .is_met()
    );
    let l = c.cas("k2", b"stale".as_slice(), cas, None).await.unwrap();
    assert!(
        l.copies()
            .iter()
            .all(|c| matches!(c.result, Some(Ok(Outcome::Exists))))
    );

    assert!(
        c.touch("k2", Some(Duration::from_secs(60)))
            .await
            .unwrap()
            .is_met()
    );
    assert_eq!(
        c.get_and_touch("k2", None).await.unwrap().as_deref(),
        Some(&b"new"[..])
    );
    assert_eq!(c.get_and_touch("gone", None).await.unwrap(), None);

    // Counters: text has no autovivify; the client adds the initial value.
    assert_eq!(c.incr("n", 1, 10, None).await.unwrap(), 10);
    assert_eq!(c.incr("n", 5, 10, None).await.unwrap(), 15);
    assert_eq!(c.decr("n", 100, 0, None).await.unwrap(), 0);

    assert!(!c.add("k5", b"other".as_slice(), None).await.unwrap());
    assert!(c.add("fresh", b"mine".as_slice(), None).await.unwrap());
    assert!(c.delete("k5").await.unwrap().is_met());
    assert_eq!(c.get("k5").await.unwrap(), None);

    // Large and compressed values go through text too.
    let big: Vec<u8> = (0..2_500_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    assert!(c.set("big", big.clone(), None).await.unwrap().is_met());
    assert_eq!(c.get("big").await.unwrap().as_deref(), Some(&big[..]));
}

/// A server from before the meta protocol: `ERROR` to `mn`, and a tiny text get/set.
async fn old_server() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let stored: Arc<Mutex<Option<Vec<u8>>>> = Arc::default();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let stored = stored.clone();
            tokio::spawn(async move {
                let (r, mut w) = s.into_split();
                let mut r = BufReader::new(r);
                let mut line = String::new();
                while r.read_line(&mut line).await.unwrap_or(0) > 0 {
                    let words: Vec<String> = line.split_whitespace().map(str::to_string).collect();
                    line.clear();
                    let reply: Vec<u8> = match words.first().map(String::as_str) {
                        Some("set") => {
                            let mut data = String::new();
                            r.read_line(&mut data).await.unwrap();
                            *stored.lock().unwrap() = Some(data.trim_end().as_bytes().to_vec());
                            b"STORED\r\n".to_vec()
                        }
                        Some("gets") => match &*stored.lock().unwrap() {
                            Some(v) => {
                                let mut out =
                                    format!("VALUE {} 0 {} 1\r\n", words[1], v.len()).into_bytes();
                                out.extend_from_slice(v);
                                out.extend_from_slice(b"\r\nEND\r\n");
                                out
                            }
                            None => b"END\r\n".to_vec(),
                        },
                        _ => b"ERROR\r\n".to_vec(),
                    };
                    if w.write_all(&reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

#[tokio::test]
async fn a_server_without_meta_is_spoken_to_in_text() {
    let port = old_server().await;
    let t: Topology = format!("zone-a=127.0.0.1:{port}").parse().unwrap();
    let c = EvCache::builder("TEST").topology(t).build().unwrap();
    assert_eq!(c.get("k").await.unwrap(), None);
    assert!(
        c.set("k", b"hello".as_slice(), None)
            .await
            .unwrap()
            .is_met()
    );
    assert_eq!(c.get("k").await.unwrap().as_deref(), Some(&b"hello"[..]));
}
