//! Faults injected into real encodes: a truncated chunk, a dropped frame, a failing
//! encoder, an encoder that always fails, and a cancel in the middle of encoding.

mod common;

use common::*;
use netflix_transcode::{Cancel, ChunkHook, Codec, Encoder, Error, Event, Job, Tools, Transcoder};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

type Events = Arc<Mutex<Vec<Event>>>;

async fn run_with(
    tools: Tools,
    job: &Job,
    cancel: &Cancel,
) -> (
    netflix_transcode::Result<netflix_transcode::Report>,
    Vec<Event>,
) {
    let events: Events = Arc::default();
    let sink = events.clone();
    let r = Transcoder::new(tools)
        .run(
            job,
            move |e: &Event| sink.lock().unwrap().push(e.clone()),
            cancel,
        )
        .await;
    let ev = events.lock().unwrap().clone();
    (r, ev)
}

fn retries(events: &[Event]) -> Vec<(usize, String)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::ChunkRetry { chunk, reason, .. } => Some((*chunk, reason.clone())),
            _ => None,
        })
        .collect()
}

/// Corrupts one rung of one chunk on its first attempt.
struct Inject {
    chunk: usize,
    fault: fn(&Path),
}

impl ChunkHook for Inject {
    fn after_encode(&self, chunk: usize, attempt: u32, outputs: &[PathBuf]) {
        if chunk == self.chunk && attempt == 1 {
            (self.fault)(&outputs[1]);
        }
    }
}

fn truncate(p: &Path) {
    let len = std::fs::metadata(p).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(p).unwrap();
    f.set_len(len / 2).unwrap();
}

fn corrupt_middle(p: &Path) {
    // Same size, so the sample table still parses: only a decode can tell.
    let mut bytes = std::fs::read(p).unwrap();
    let mid = bytes.len() / 3;
    for b in &mut bytes[mid..mid + 64] {
        *b ^= 0x5a;
    }
    std::fs::write(p, bytes).unwrap();
}

fn drop_last_frame(p: &Path) {
    // A real remux that keeps all frames but the last.
    let n = decode(p).0;
    let tmp = p.with_extension("dropped.mp4");
    ffmpeg(&[
        "-i",
        p.to_str().unwrap(),
        "-c",
        "copy",
        "-frames:v",
        &(n - 1).to_string(),
        tmp.to_str().unwrap(),
    ]);
    std::fs::rename(&tmp, p).unwrap();
}

#[tokio::test]
async fn a_truncated_chunk_is_detected_and_retried() {
    let tmp = TempDir::new("truncate");
    let src = clip(tmp.path(), "src.mp4", "320x180", "30", 3);
    let job = quick_job(&src, &tmp.path().join("out"), Codec::X264)
        .audio(None)
        .hook(Inject {
            chunk: 1,
            fault: truncate,
        });
    let (r, events) = run_with(tools(), &job, &Cancel::new()).await;
    let report = r.unwrap();
    assert_eq!(report.retries, 1);
    let retried = retries(&events);
    assert_eq!(retried.len(), 1, "{retried:?}");
    assert_eq!(retried[0].0, 1);
    assert!(retried[0].1.contains("rung 1"), "{}", retried[0].1);
    assert_eq!(decode(&tmp.path().join("out/master.m3u8")).0, 90);
}

#[tokio::test]
async fn a_dropped_frame_is_detected_and_retried() {
    let tmp = TempDir::new("drop");
    let src = clip(tmp.path(), "src.mp4", "320x180", "30", 3);
    let job = quick_job(&src, &tmp.path().join("out"), Codec::X264)
        .audio(None)
        .hook(Inject {
            chunk: 0,
            fault: drop_last_frame,
        });
    let (r, events) = run_with(tools(), &job, &Cancel::new()).await;
    r.unwrap();
    let retried = retries(&events);
    assert_eq!(retried.len(), 1, "{retried:?}");
    assert!(
        retried[0].1.contains("29 frames, expected 30"),
        "{}",
        retried[0].1
    );
    assert_eq!(decode(&tmp.path().join("out/master.m3u8")).0, 90);
}

#[tokio::test]
async fn corrupt_bytes_fail_the_decode_and_are_retried() {
    let tmp = TempDir::new("corrupt");
    let src = clip(tmp.path(), "src.mp4", "320x180", "30", 3);
    let job = quick_job(&src, &tmp.path().join("out"), Codec::X264)
        .audio(None)
        .hook(Inject {
            chunk: 0,
            fault: corrupt_middle,
        });
    let (r, events) = run_with(tools(), &job, &Cancel::new()).await;
    r.unwrap();
    let retried = retries(&events);
    assert_eq!(retried.len(), 1, "{retried:?}");
    assert!(
        retried[0].1.contains("does not decode cleanly"),
        "{}",
        retried[0].1
    );
}

/// An ffmpeg that fails chunk encodes: the first `fail` of them, or all when `fail` is 0.
fn failing_ffmpeg(dir: &Path, fail: u32) -> Tools {
    let real = which("ffmpeg");
    let script = dir.join("ffmpeg");
    let count = dir.join("count");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\ncase \"$*\" in *trim=end_frame*)\n  n=$(cat '{c}' 2>/dev/null || echo 0); n=$((n+1)); echo $n > '{c}'\n  if [ {fail} -eq 0 ] || [ $n -le {fail} ]; then echo \"injected encoder failure $n\" >&2; exit 1; fi;;\nesac\nexec '{real}' \"$@\"\n",
            c = count.display(),
            real = real.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    Tools::new(script, which("ffprobe")).unwrap()
}

fn which(tool: &str) -> PathBuf {
    std::env::split_paths(&std::env::var_os("PATH").unwrap())
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{tool} not found; install it with scripts/setup.sh test"))
}

#[tokio::test]
async fn a_failing_encoder_is_retried() {
    let tmp = TempDir::new("fail-once");
    let src = clip(tmp.path(), "src.mp4", "320x180", "30", 2);
    let job = quick_job(&src, &tmp.path().join("out"), Codec::X264)
        .audio(None)
        .workers(1);
    let (r, events) = run_with(failing_ffmpeg(tmp.path(), 1), &job, &Cancel::new()).await;
    let report = r.unwrap();
    assert_eq!(report.retries, 1);
    assert!(
        retries(&events)[0].1.contains("exited"),
        "{:?}",
        retries(&events)
    );
}

#[tokio::test]
async fn a_permanent_failure_names_the_chunk_and_carries_stderr() {
    let tmp = TempDir::new("fail-always");
    let src = clip(tmp.path(), "src.mp4", "320x180", "30", 2);
    let job = quick_job(&src, &tmp.path().join("out"), Codec::X264)
        .audio(None)
        .workers(1)
        .retries(2);
    let (r, _) = run_with(failing_ffmpeg(tmp.path(), 0), &job, &Cancel::new()).await;
    match r {
        Err(Error::Chunk {
            chunk,
            attempts,
            stderr_tail,
            ..
        }) => {
            assert_eq!(attempts, 3);
            assert!(chunk < 2);
            assert!(
                stderr_tail.contains("injected encoder failure 3"),
                "{stderr_tail}"
            );
        }
        other => panic!("expected a chunk error, got {other:?}"),
    }
    // Nothing was published.
    assert!(!tmp.path().join("out/master.m3u8").exists());
}

/// Processes whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(needle) {
                found.push(cmd);
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_kills_every_ffmpeg_and_removes_temporary_files() {
    let tmp = TempDir::new("cancel");
    let src = clip(tmp.path(), "src.mp4", "1280x720", "30", 6);
    let out = tmp.path().join("out");
    let job = Job::new(&src, &out)
        .ladder(netflix_transcode::LadderSpec::Custom(small_ladder(
            "avc1.64001f",
        )))
        .encoder(Encoder::new(Codec::X264).preset("slow"))
        .segment_seconds(1.0)
        .workers(2)
        .quality(false);
    let cancel = Cancel::new();
    let started: Arc<tokio::sync::Notify> = Arc::default();
    let (c2, s2) = (cancel.clone(), started.clone());
    let canceller = tokio::spawn(async move {
        s2.notified().await;
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        c2.cancel();
    });
    let notify = started.clone();
    let r = Transcoder::new(tools())
        .run(
            &job,
            move |e: &Event| {
                if matches!(e, Event::ChunkProgress { .. }) {
                    notify.notify_one();
                }
            },
            &cancel,
        )
        .await;
    canceller.await.unwrap();
    assert!(matches!(r, Err(Error::Cancelled)), "{r:?}");
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let work = job.resolved_work_dir();
    let left = processes_mentioning(&work.display().to_string());
    assert!(left.is_empty(), "still running after 1 s: {left:?}");
    let parts: Vec<_> = tree_hashes(&work)
        .into_keys()
        .filter(|k| k.ends_with(".part"))
        .collect();
    assert!(parts.is_empty(), "{parts:?}");
    assert!(!out.join("master.m3u8").exists());
}

#[tokio::test]
async fn one_run_per_work_directory_and_stale_locks_are_taken_over() {
    let tmp = TempDir::new("lock");
    let src = clip(tmp.path(), "src.mp4", "320x180", "30", 2);
    let job = quick_job(&src, &tmp.path().join("out"), Codec::X264).audio(None);
    let work = job.resolved_work_dir();
    std::fs::create_dir_all(&work).unwrap();
    // A live owner (pid 1 always exists): refused, nothing touched.
    std::fs::write(work.join("lock"), "1").unwrap();
    let e = run(&job).await.unwrap_err();
    assert!(e.to_string().contains("in use by process 1"), "{e}");
    // A dead owner (a crash): taken over.
    std::fs::write(work.join("lock"), "4000000000").unwrap();
    run(&job).await.unwrap();
    assert!(tmp.path().join("out/master.m3u8").exists());
}
