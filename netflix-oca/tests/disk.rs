//! The disk tier under faults: bit flips, truncation, I/O errors, a crash between the data
//! and the index write, a torn index record, and a restart. Whatever happens, no corrupt
//! byte is served: a bad chunk is dropped and filled again.

mod common;

use common::*;
use netflix_oca::fill::Upstream;
use netflix_oca::http::client::HttpUpstream;
use netflix_oca::server::OcaServer;
use netflix_oca::store::{ChunkId, ChunkStore, DiskIo, ObjectMeta, RealDisk, StoreConfig, sha256};
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, UNIX_EPOCH};

const CHUNK: u64 = 64 << 10;

fn open(dir: &Path, io: Arc<dyn DiskIo>) -> Arc<ChunkStore> {
    Arc::new(
        ChunkStore::open_with(
            StoreConfig {
                chunk_size: CHUNK,
                memory_bytes: 16 << 20,
                disk_dir: Some(dir.to_path_buf()),
                disk_bytes: 64 << 20,
                ..StoreConfig::default()
            },
            io,
        )
        .unwrap(),
    )
}

fn chunk_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir.join("chunks"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "chk"))
        .collect();
    v.sort();
    v
}

fn meta(path: &str, len: u64) -> ObjectMeta {
    ObjectMeta {
        path: path.into(),
        len,
        etag: "\"1\"".into(),
        last_modified: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_recovers_chunks_and_metadata() {
    let dir = TempDir::new("disk-restart");
    {
        let s = open(dir.path(), Arc::new(RealDisk));
        s.put_meta(meta("t/a.m4s", 3));
        s.write_disk(ChunkId::new("t/a.m4s", 0), b"abc", sha256(b"abc"), false);
        s.write_disk(ChunkId::new("t/pinned.m4s", 0), b"pp", sha256(b"pp"), true);
    }
    // A torn last record (a crash mid-append) is ignored.
    std::fs::OpenOptions::new()
        .append(true)
        .open(dir.path().join("index.log"))
        .and_then(|mut f| io::Write::write_all(&mut f, b"P 00ff 12"))
        .unwrap();
    let s = open(dir.path(), Arc::new(RealDisk));
    assert_eq!(s.meta("t/a.m4s").unwrap().len, 3);
    let c = s.get(ChunkId::new("t/a.m4s", 0)).await.expect("recovered");
    assert_eq!(&c.data[..], b"abc");
    assert!(s.holds_file("t/a.m4s"));
    assert_eq!(s.inventory(), ["t/a.m4s"]);
    assert_eq!(s.stats().pinned_bytes, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bit_flips_and_truncation_are_detected_and_never_served() {
    let dir = TempDir::new("disk-flip");
    let s = open(dir.path(), Arc::new(RealDisk));
    let data = content(9, 1000);
    s.write_disk(ChunkId::new("f", 0), &data, sha256(&data), false);
    s.write_disk(ChunkId::new("f", 1), &data, sha256(&data), false);
    let files = chunk_files(dir.path());
    assert_eq!(files.len(), 2);
    // Flip one bit in one file, truncate the other.
    let mut bytes = std::fs::read(&files[0]).unwrap();
    bytes[500] ^= 0x01;
    std::fs::write(&files[0], &bytes).unwrap();
    std::fs::write(&files[1], &data[..999]).unwrap();
    assert!(s.get(ChunkId::new("f", 0)).await.is_none());
    assert!(s.get(ChunkId::new("f", 1)).await.is_none());
    assert_eq!(s.stats().corrupt, 2);
    assert!(chunk_files(dir.path()).is_empty(), "bad chunks are deleted");
    assert!(!s.contains(ChunkId::new("f", 0)));
}

/// An edge with a disk tier serves a file; the disk is damaged; a restarted edge serves
/// the file again byte for byte, filling what was damaged from the origin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_serves_zero_corrupt_bytes_from_a_damaged_disk() {
    let len = (4 * CHUNK) as usize;
    let origin_files = origin_dir("disk-edge-origin", &[("v/seg.m4s", len)]);
    let origin = start_origin(origin_files.path()).await;
    let want = content(1, len);
    let disk = TempDir::new("disk-edge");
    let tiers =
        || -> Vec<Arc<dyn Upstream>> { vec![Arc::new(HttpUpstream::new("origin", origin.addr))] };
    {
        let store = open(disk.path(), Arc::new(RealDisk));
        let edge = start(OcaServer::edge(filler(store.clone(), tiers()))).await;
        let r = get(&format!("http://{}/v/seg.m4s", edge.addr), &[]).await;
        assert!(r.body()[..] == want[..]);
        // The write-behind finishes.
        for _ in 0..200 {
            if chunk_files(disk.path()).len() == 4 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(chunk_files(disk.path()).len(), 4);
    }
    let files = chunk_files(disk.path());
    let mut b = std::fs::read(&files[1]).unwrap();
    b[7] ^= 0x80;
    std::fs::write(&files[1], &b).unwrap();
    let f2 = std::fs::read(&files[2]).unwrap();
    std::fs::write(&files[2], &f2[..f2.len() / 2]).unwrap();

    let store = open(disk.path(), Arc::new(RealDisk));
    let before = origin.server.stats().requests.load(Ordering::SeqCst);
    let edge = start(OcaServer::edge(filler(store.clone(), tiers()))).await;
    for _ in 0..3 {
        let r = get(&format!("http://{}/v/seg.m4s", edge.addr), &[]).await;
        assert_eq!(r.status(), 200);
        assert!(r.body()[..] == want[..], "not one corrupt byte");
    }
    let asked = origin.server.stats().requests.load(Ordering::SeqCst) - before;
    // The truncated chunk was dropped at recovery (wrong size), the flipped one at its
    // first read; both were filled again; the metadata came from the disk.
    assert_eq!(asked, 2, "exactly the two damaged chunks were refetched");
    assert_eq!(store.stats().corrupt, 1);
}

/// A disk whose reads fail (or whose appends fail) on demand.
#[derive(Debug, Default)]
struct Faulty {
    fail_reads: AtomicBool,
    fail_appends: AtomicBool,
}

impl DiskIo for Faulty {
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        if self.fail_reads.load(Ordering::SeqCst) {
            return Err(io::Error::other("injected: input/output error"));
        }
        RealDisk.read(path)
    }
    fn write_atomic(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        RealDisk.write_atomic(path, data)
    }
    fn append_sync(&self, path: &Path, line: &[u8]) -> io::Result<()> {
        if self.fail_appends.load(Ordering::SeqCst) {
            return Err(io::Error::other("injected: crash before the index write"));
        }
        RealDisk.append_sync(path, line)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        RealDisk.remove(path)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_disk_is_declared_failed_and_serving_goes_on() {
    let len = (3 * CHUNK) as usize;
    let origin_files = origin_dir("disk-fail-origin", &[("x.m4s", len)]);
    let origin = start_origin(origin_files.path()).await;
    let disk = TempDir::new("disk-fail");
    let faulty = Arc::new(Faulty::default());
    {
        let s = open(disk.path(), faulty.clone());
        let data = content(1, len);
        s.put_meta(meta("x.m4s", len as u64));
        for i in 0..3 {
            let c = &data[(i * CHUNK) as usize..((i + 1) * CHUNK) as usize];
            s.write_disk(ChunkId::new("x.m4s", i), c, sha256(c), false);
        }
    }
    let store = open(disk.path(), faulty.clone());
    faulty.fail_reads.store(true, Ordering::SeqCst);
    let tiers: Vec<Arc<dyn Upstream>> = vec![Arc::new(HttpUpstream::new("origin", origin.addr))];
    let edge = start(OcaServer::edge(filler(store.clone(), tiers))).await;
    let r = get(&format!("http://{}/x.m4s", edge.addr), &[]).await;
    assert_eq!(r.status(), 200);
    assert!(r.body()[..] == content(1, len)[..]);
    let stats = store.stats();
    assert!(stats.disk_failed, "{stats:?}");
    assert_eq!(stats.disk_errors, 3);
    // Later requests do not touch the failed disk.
    let r = get(&format!("http://{}/x.m4s", edge.addr), &[]).await;
    assert!(r.body()[..] == content(1, len)[..]);
    assert_eq!(store.stats().disk_errors, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_data_and_index_leaves_nothing_to_serve() {
    let disk = TempDir::new("disk-crash");
    let faulty = Arc::new(Faulty::default());
    {
        let s = open(disk.path(), faulty.clone());
        s.write_disk(ChunkId::new("ok", 0), b"good", sha256(b"good"), false);
        // The data reaches the disk, the index record does not.
        faulty.fail_appends.store(true, Ordering::SeqCst);
        s.write_disk(ChunkId::new("lost", 0), b"orphan", sha256(b"orphan"), false);
        assert_eq!(chunk_files(disk.path()).len(), 2);
    }
    let s = open(disk.path(), Arc::new(RealDisk));
    assert_eq!(
        chunk_files(disk.path()).len(),
        1,
        "the orphan is deleted at recovery"
    );
    assert!(s.get(ChunkId::new("lost", 0)).await.is_none());
    assert_eq!(
        &s.get(ChunkId::new("ok", 0)).await.unwrap().data[..],
        b"good"
    );
}
