//! Crash safety as a user meets it: the `transcode` example is killed with SIGKILL in the
//! middle of a job, twice, and run again; the resumed run re-encodes only the chunks that
//! were not finished, and every published byte equals an uninterrupted run's.

mod common;

use common::TempDir;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Builds the example (a no-op when `cargo test` already has) and returns its path.
fn example() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "-q",
            "-p",
            "netflix-transcode",
            "--example",
            "transcode",
        ])
        .status()
        .expect("cargo runs");
    assert!(status.success());
    let deps = std::env::current_exe().unwrap();
    let profile_dir = deps.parent().unwrap().parent().unwrap();
    let exe = profile_dir.join("examples").join("transcode");
    assert!(exe.is_file(), "{} not built", exe.display());
    exe
}

fn args(src: &Path, out: &Path) -> Vec<String> {
    [
        src.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--ladder",
        "envivio",
        "--codec",
        "x264",
        "--preset",
        "veryfast",
        "--segment-seconds",
        "1",
        "--chunk-seconds",
        "1",
        "--workers",
        "2",
        "--no-quality",
        "--json",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn journaled(out: &Path) -> usize {
    std::fs::read(out.join(".transcode/journal.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|j| j["chunks"].as_object().map(|c| c.len()))
        .unwrap_or(0)
}

fn spawn(exe: &Path, args: &[String]) -> Child {
    Command::new(exe)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Waits until at least `chunks` chunks are journaled, then SIGKILLs the process (its
/// ffmpeg children die with it).
async fn kill_after(mut child: Child, out: &Path, chunks: usize) -> usize {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while journaled(out) < chunks {
        assert!(tokio::time::Instant::now() < deadline, "no progress");
        assert!(
            child.try_wait().unwrap().is_none(),
            "finished before the kill"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    journaled(out)
}

fn finish(child: Child) -> serde_json::Value {
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_then_resume_gives_identical_outputs() {
    let exe = example();
    let tmp = TempDir::new("resume");
    let src = common::clip(tmp.path(), "src.mp4", "640x360", "30", 8);

    let a = tmp.path().join("a");
    let whole = finish(spawn(&exe, &args(&src, &a)));
    let total = whole["chunks"].as_u64().unwrap() as usize;
    assert_eq!(total, 8);
    assert_eq!(whole["chunks_resumed"], 0);

    let b = tmp.path().join("b");
    let done = kill_after(spawn(&exe, &args(&src, &b)), &b, 2).await;
    assert!(done < total, "{done} of {total} done before the kill");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let orphans = common_processes(&b);
    assert!(
        orphans.is_empty(),
        "ffmpeg outlived its parent: {orphans:?}"
    );
    // Killed again while resuming.
    let done2 = kill_after(spawn(&exe, &args(&src, &b)), &b, done + 2).await;
    assert!(done2 >= done + 2 && done2 < total, "{done2}");
    let resumed = finish(spawn(&exe, &args(&src, &b)));
    assert_eq!(resumed["chunks_resumed"].as_u64().unwrap() as usize, done2);
    assert_eq!(
        resumed["chunks_encoded"].as_u64().unwrap() as usize,
        total - done2
    );

    assert_eq!(common::tree_hashes(&a), common::tree_hashes(&b));
}

fn common_processes(out: &Path) -> Vec<String> {
    let needle = out.display().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(&needle) && c.contains("ffmpeg"))
        .collect()
}
