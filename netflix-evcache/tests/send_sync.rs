//! Compile-time checks: the client and its futures can move across threads (spawned on a
//! multi-threaded runtime, held in an `Arc` in a server's state).

use netflix_evcache::{EvCache, Latch, Metrics, Topology};

fn send<T: Send>(_: &T) {}
fn send_sync<T: Send + Sync>() {}

#[test]
fn the_client_and_its_types_are_send_and_sync() {
    send_sync::<EvCache>();
    send_sync::<Latch>();
    send_sync::<Metrics>();
    send_sync::<Topology>();
    send_sync::<netflix_evcache::Error>();
}

#[test]
fn every_operation_future_is_send() {
    let c = EvCache::builder("T")
        .nodes("zone-a=127.0.0.1:1")
        .unwrap()
        .build()
        .unwrap();
    // Built, never polled: only their types are checked.
    send(&c.get("k"));
    send(&c.gets("k"));
    send(&c.get_and_touch("k", None));
    send(&c.get_bulk(["a", "b"]));
    send(&c.set("k", b"v".as_slice(), None));
    send(&c.add("k", b"v".as_slice(), None));
    send(&c.append_or_add("k", b"v".as_slice(), None));
    send(&c.cas("k", b"v".as_slice(), 1, None));
    send(&c.delete("k"));
    send(&c.touch("k", None));
    send(&c.incr("k", 1, 0, None));
    send(&c.invalidate("k", std::time::Duration::from_secs(1)));
    send(&c.get_or_compute("k", None, || async { Ok::<_, std::io::Error>(vec![1u8]) }));
}
