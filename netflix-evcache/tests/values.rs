//! Values as stored in real memcached: compression with spymemcached's flag, chunking of
//! values above the item size, hashed keys that detect collisions, JSON values.

mod common;

use common::{fleet, raw, raw_bytes, zone_client};
use netflix_evcache::ketama::{Continuum, Mode};
use netflix_evcache::{CodecConfig, EvCache, KeyHashing, Policy, Topology};

fn client(t: &Topology) -> EvCache {
    EvCache::builder("TEST")
        .topology(t.clone())
        .local_zone("zone-a")
        .latch(Policy::All)
        .build()
        .unwrap()
}

/// The port of the memcached in zone `z` that holds the wire key `wire`.
fn port_of(t: &Topology, z: usize, wire: &[u8]) -> u16 {
    let ring = Continuum::new(&t.groups[z].nodes, Mode::Spymemcached).unwrap();
    t.groups[z].nodes[ring.locate(wire)].port
}

/// Pseudo-random bytes that do not compress.
fn noise(n: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

#[tokio::test]
async fn large_values_compress_with_spymemcacheds_flag() {
    let (_servers, t) = fleet(2, 1);
    let c = client(&t);
    let text = "a title synopsis that repeats ".repeat(2000).into_bytes();
    assert!(c.set("syn", text.clone(), None).await.unwrap().is_met());
    assert_eq!(c.get("syn").await.unwrap().as_deref(), Some(&text[..]));
    // On the server: flags 2 (gzip) and far fewer bytes than the value.
    let reply = raw(port_of(&t, 0, b"syn"), b"mg syn s f\r\n", &["HD", "EN"]);
    let size: usize = reply
        .split_whitespace()
        .find_map(|w| w.strip_prefix('s'))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{reply}"));
    assert!(reply.contains(" f2"), "{reply}");
    assert!(
        size < text.len() / 10,
        "{size} bytes stored for {}",
        text.len()
    );
    // A small value is stored as it is, flags 0 (a Java client reads it as a String).
    c.set("small", b"hello".as_slice(), None).await.unwrap();
    let reply = raw(port_of(&t, 0, b"small"), b"mg small v f\r\n", &["VA", "EN"]);
    assert!(reply.starts_with("VA 5 f0"), "{reply}");
}

#[tokio::test]
async fn values_above_the_item_size_are_chunked_and_checked() {
    let (_servers, t) = fleet(3, 2);
    let c = client(&t);
    let big = noise(3 * 1024 * 1024 + 123, 7);
    let l = c.set("video:manifest", big.clone(), None).await.unwrap();
    assert!(l.is_met(), "{l:?}");
    assert_eq!(
        c.get("video:manifest").await.unwrap().as_deref(),
        Some(&big[..])
    );
    // Every zone holds it: read each zone on its own.
    for z in 0..3 {
        let zc = zone_client(&t, z);
        assert_eq!(
            zc.get("video:manifest").await.unwrap().map(|b| b.len()),
            Some(big.len())
        );
    }
    // A new value replaces the old one whole, never a mix of the two.
    let big2 = noise(2 * 1024 * 1024, 8);
    c.set("video:manifest", big2.clone(), None).await.unwrap();
    assert_eq!(
        c.get("video:manifest").await.unwrap().as_deref(),
        Some(&big2[..])
    );
    // Bulk gets join chunks too.
    let got = c.get_bulk(["video:manifest", "nothing"]).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got["video:manifest"].len(), big2.len());
    // A chunk lost in zone a (evicted): zone a's copy reads as a miss and the read falls
    // back to zone b, which still has every chunk.
    let port = t.groups[0].nodes[0].port;
    let port2 = t.groups[0].nodes[1].port;
    for p in [port, port2] {
        raw(p, b"flush_all\r\n", &["OK"]);
    }
    assert_eq!(
        c.get("video:manifest").await.unwrap().as_deref(),
        Some(&big2[..])
    );
}

#[tokio::test]
async fn a_missing_chunk_is_a_miss_not_garbage() {
    let (_servers, t) = fleet(1, 2);
    let c = client(&t);
    let big = noise(2_500_000, 9);
    c.set("blob", big.clone(), None).await.unwrap();
    // Every item gone but the manifest (chunks evicted): save it, flush, put it back.
    let holder = port_of(&t, 0, b"blob");
    let item = raw_bytes(holder, b"mg blob v f\r\n", &["EN"]);
    let eol = item.iter().position(|&b| b == b'\n').unwrap();
    let head = String::from_utf8_lossy(&item[..eol - 1]).into_owned();
    let flags = head.split(' ').find_map(|w| w.strip_prefix('f')).unwrap();
    let body = &item[eol + 1..item.len() - 2];
    for n in &t.groups[0].nodes {
        raw(n.port, b"flush_all\r\n", &["OK"]);
    }
    let mut set = format!("ms blob {} F{flags}\r\n", body.len()).into_bytes();
    set.extend_from_slice(body);
    set.extend_from_slice(b"\r\n");
    assert!(raw(holder, &set, &["HD", "NS"]).starts_with("HD"));
    assert_eq!(c.get("blob").await.unwrap(), None);
}

#[tokio::test]
async fn values_over_the_limit_are_typed_errors_and_store_nothing() {
    let (_servers, t) = fleet(1, 1);
    let c = EvCache::builder("TEST")
        .topology(t.clone())
        .codec(CodecConfig {
            max_value: 100_000,
            ..CodecConfig::default()
        })
        .build()
        .unwrap();
    c.set("k", b"kept".as_slice(), None).await.unwrap();
    let r = c.set("k", noise(200_000, 1), None).await;
    assert!(
        matches!(
            r,
            Err(netflix_evcache::Error::ValueTooLarge {
                size: 200_000,
                max: 100_000
            })
        ),
        "{r:?}"
    );
    assert_eq!(c.get("k").await.unwrap().as_deref(), Some(&b"kept"[..]));
}

#[tokio::test]
async fn hashed_keys_take_any_length_and_detect_collisions() {
    let (_servers, t) = fleet(2, 1);
    let c = EvCache::builder("TEST")
        .topology(t.clone())
        .key_prefix("movies")
        .key_hashing(KeyHashing::OverLength)
        .latch(Policy::All)
        .build()
        .unwrap();
    let long = format!("artwork:{}", "x".repeat(400));
    assert!(
        c.set(&long, b"png".as_slice(), None)
            .await
            .unwrap()
            .is_met()
    );
    assert_eq!(c.get(&long).await.unwrap().as_deref(), Some(&b"png"[..]));
    let wire = c.canonical_key(&long).unwrap();
    assert!(
        wire.starts_with(b"movies:") && wire.len() == 7 + 22,
        "{wire:?}"
    );
    // Short keys are left alone in OverLength mode.
    assert_eq!(c.canonical_key("short").unwrap(), b"movies:short");
    c.append_or_add(&long, b"+1".as_slice(), None)
        .await
        .unwrap();
    assert_eq!(c.get(&long).await.unwrap().as_deref(), Some(&b"png+1"[..]));

    // A collision: another long key's item copied under this key's hash reads as a miss.
    let other = format!("artwork:{}", "y".repeat(400));
    c.set(&other, b"someone else".as_slice(), None)
        .await
        .unwrap();
    let other_wire = String::from_utf8(c.canonical_key(&other).unwrap()).unwrap();
    let wire = String::from_utf8(wire).unwrap();
    for z in 0..2 {
        let port = t.groups[z].nodes[0].port;
        let item = raw_bytes(port, format!("mg {other_wire} v f\r\n").as_bytes(), &["EN"]);
        let eol = item.iter().position(|&b| b == b'\n').unwrap();
        let head = String::from_utf8_lossy(&item[..eol - 1]).into_owned();
        let flags = head.split(' ').find_map(|w| w.strip_prefix('f')).unwrap();
        let body = &item[eol + 1..item.len() - 2];
        let mut set = format!("ms {wire} {} F{flags}\r\n", body.len()).into_bytes();
        set.extend_from_slice(body);
        set.extend_from_slice(b"\r\n");
        assert!(raw(port, &set, &["HD", "NS"]).starts_with("HD"));
    }
    assert_eq!(c.get(&long).await.unwrap(), None);
    assert_eq!(
        c.get(&other).await.unwrap().as_deref(),
        Some(&b"someone else"[..])
    );
}

#[cfg(feature = "serde")]
#[tokio::test]
async fn serde_values_round_trip_as_flagged_json() {
    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct Row {
        title: String,
        rank: u32,
    }
    let (_servers, t) = fleet(1, 1);
    let c = client(&t);
    let row = Row {
        title: "Dark".into(),
        rank: 3,
    };
    c.set_json("row:1", &row, None).await.unwrap();
    assert_eq!(c.get_json::<Row>("row:1").await.unwrap(), Some(row));
    let reply = raw(t.groups[0].nodes[0].port, b"mg row:1 f\r\n", &["HD", "EN"]);
    assert!(reply.contains(&format!(" f{}", 1u32 << 16)), "{reply}");
    c.set("row:2", b"not json".as_slice(), None).await.unwrap();
    assert!(matches!(
        c.get_json::<Row>("row:2").await,
        Err(netflix_evcache::Error::Codec(_))
    ));
}

#[tokio::test]
async fn add_of_a_chunked_value_repairs_with_the_first_writers_chunks() {
    let (_servers, t) = fleet(2, 2);
    let c = client(&t);
    let first = noise(1_500_000, 3);
    zone_client(&t, 1)
        .set("ep", first.clone(), None)
        .await
        .unwrap();
    assert!(!c.add("ep", noise(1_200_000, 4), None).await.unwrap());
    let zone_a = zone_client(&t, 0);
    assert_eq!(zone_a.get("ep").await.unwrap().as_deref(), Some(&first[..]));
}
