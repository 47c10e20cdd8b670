//! The `full_stack` page in headless Chromium: hls.js plays the title through the gateway
//! (`/play`) and the OCAs it names while the simulated fleet runs; the page reports that
//! its buffered range grew and that no media error happened, and a screenshot of the
//! dashboard is saved to `target/full-stack-test/dashboard.png`.
//!
//! Needs ffmpeg, memcached, the Big Buck Bunny clip, Chromium and hls.js:
//! `scripts/setup.sh test` installs them all; a missing one fails the test with a message
//! naming that command.

use examples::full_stack::{Options, Platform};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::time::Instant;

const SETUP: &str = "scripts/setup.sh test";

/// A browser run, its whole process group killed on drop, even when the test fails.
struct Browser {
    child: std::process::Child,
}

impl Browser {
    /// Starts headless Chromium (the flags of DESIGN.md §4) on `url` with a fresh profile.
    fn start(chromium: &Path, profile: &Path, extra: &[String], url: &str) -> Self {
        let _ = std::fs::remove_dir_all(profile);
        std::fs::create_dir_all(profile).unwrap();
        let child = std::process::Command::new(chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-quic",
                "--autoplay-policy=no-user-gesture-required",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .args(extra)
            .arg(url)
            .env("HOME", profile)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", chromium.display()));
        Self { child }
    }

    fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // `process_group(0)` made the browser the leader of its group: pgid == pid, and the
        // leader is not reaped before this kill, so the id cannot have been reused.
        let _ = std::process::Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.child.wait();
    }
}

fn find_on_path(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_plays_the_title_through_the_gateway_beside_the_dashboard() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    // Prerequisites first, so that a missing one fails before any encode.
    let names = ["chromium", "chromium-browser", "google-chrome"];
    let chromium = find_on_path(&names).unwrap_or_else(|| {
        panic!(
            "no browser on PATH (looked for {}); install Chromium with `{SETUP}`",
            names.join(", ")
        )
    });
    let hls_js = root.join("target/js/node_modules/hls.js/dist/hls.min.js");
    assert!(
        hls_js.is_file(),
        "hls.js not found at {}; install it with `{SETUP}`",
        hls_js.display()
    );
    let work = root.join("target/full-stack-test");
    let mut options = Options::new(root);
    options.seconds = 16;
    options.players = 6;
    options.speed = 1.0;
    options.work = work.clone();
    let platform = Platform::start(options)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let page = platform.page_url();

    let browse = async {
        // 1. The dashboard's screenshot, while the fleet plays.
        let shot = work.join("dashboard.png");
        let _ = std::fs::remove_file(&shot);
        let mut b = Browser::start(
            &chromium,
            &work.join("chromium-shot"),
            &[
                "--window-size=1400,1000".into(),
                "--virtual-time-budget=6000".into(),
                format!("--screenshot={}", shot.display()),
            ],
            &page,
        );
        let until = Instant::now() + Duration::from_secs(60);
        while !b.exited() && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        drop(b);
        let png = std::fs::read(&shot)
            .unwrap_or_else(|e| panic!("no screenshot at {}: {e}", shot.display()));
        assert!(
            png.starts_with(b"\x89PNG") && png.len() > 20_000,
            "the screenshot is not a picture of a page ({} bytes)",
            png.len()
        );

        // 2. Playback: the page reports on itself to the dashboard server.
        let _b = Browser::start(
            &chromium,
            &work.join("chromium-play"),
            &[],
            &format!("{page}?report"),
        );
        let until = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(r) = platform.page_reports().first() {
                break r.clone();
            }
            assert!(
                Instant::now() < until,
                "the page sent no report within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let (fleet, report) = tokio::join!(platform.play(), browse);
    let fleet = fleet.unwrap_or_else(|e| panic!("{e}"));
    let v: serde_json::Value = serde_json::from_str(&report)
        .unwrap_or_else(|e| panic!("the page's report is not JSON ({e}): {report}"));
    let pretty = serde_json::to_string_pretty(&v).unwrap();
    assert_eq!(v["ok"], true, "{pretty}");
    // The buffered range grew, fragment by fragment (a sample after each append).
    let ends: Vec<f64> = v["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s[1].as_f64().unwrap())
        .filter(|e| *e > 0.0)
        .collect();
    assert!(
        ends.len() >= 2 && ends[ends.len() - 1] > ends[0],
        "buffered did not grow: {pretty}"
    );
    assert!(v["currentTime"].as_f64().unwrap() > 1.0, "{pretty}");
    let media_errors: Vec<&serde_json::Value> = v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            // A stall (hls.js `bufferStalledError`, `bufferNudgeOnStall`) is rebuffering,
            // not an error of the media.
            let details = e["details"].as_str().unwrap_or("");
            e["fatal"] == true
                || (e["type"] == "mediaError"
                    && !details.contains("Stall")
                    && !details.contains("Hole"))
        })
        .collect();
    assert!(media_errors.is_empty(), "media errors: {pretty}");
    // It played from an OCA's signed URL, named by the gateway's answer.
    assert!(
        v["url"]
            .as_str()
            .is_some_and(|u| u.contains("/bbb/master.m3u8")),
        "{pretty}"
    );
    assert!(fleet.player_errors.is_empty(), "{:?}", fleet.player_errors);
    eprintln!("page report: {report}");
    platform.shutdown().await;
}
