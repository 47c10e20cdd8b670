//! End-to-end playback: transcode a tiny generated clip into a CMAF HLS+DASH ladder, serve
//! it over HTTP from the test, and play `master.m3u8` with hls.js in headless Chromium.
//!
//! Needs ffmpeg, Chromium and hls.js (under `target/js`); `scripts/setup.sh test`
//! installs all three. A missing one fails the test with a message naming that command.

use netflix_transcode::{
    Cancel, Codec, Encoder, Job, LadderSpec, NoProgress, SETUP_COMMAND, Tools, Transcoder,
};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// The page: hls.js plays `/master.m3u8` and reports once, to `/result?j=<json>`, then closes
/// the window so that headless Chromium exits by itself.
const PLAYER_HTML: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>hls.js playback</title></head>
<body>
<video id="v" muted autoplay playsinline></video>
<script src="/hls.min.js"></script>
<script>
(function () {
  var video = document.getElementById('v');
  var errors = [];
  var done = false;
  var hls = null;
  var started = performance.now();
  function bufferedEnd() {
    var b = video.buffered;
    return b.length > 0 ? b.end(b.length - 1) : 0;
  }
  function report(r) {
    if (done) { return; }
    done = true;
    r.buffered = bufferedEnd();
    r.bufferedRanges = video.buffered.length;
    r.currentTime = video.currentTime;
    r.readyState = video.readyState;
    r.audioTracks = hls ? hls.audioTracks.length : 0;
    r.levels = hls ? hls.levels.length : 0;
    r.errors = errors;
    r.pageMs = Math.round(performance.now() - started);
    r.userAgent = navigator.userAgent;
    var close = function () { setTimeout(function () { window.close(); }, 100); };
    fetch('/result?j=' + encodeURIComponent(JSON.stringify(r))).then(close, close);
  }
  window.addEventListener('error', function (e) {
    report({ ok: false, error: 'script error: ' + e.message });
  });
  setTimeout(function () { report({ ok: false, error: 'timeout after 20 s' }); }, 20000);
  if (typeof Hls === 'undefined') {
    report({ ok: false, error: '/hls.min.js did not load' });
    return;
  }
  if (!Hls.isSupported()) {
    report({ ok: false, error: 'Hls.isSupported() is false' });
    return;
  }
  hls = new Hls();
  hls.on(Hls.Events.ERROR, function (_event, d) {
    var e = {
      type: String(d.type),
      details: String(d.details),
      fatal: !!d.fatal,
      reason: String(d.reason || (d.error && d.error.message) || '')
    };
    errors.push(e);
    if (d.fatal) {
      report({ ok: false, error: 'fatal hls.js error ' + e.type + '/' + e.details, fatal: e });
    }
  });
  hls.on(Hls.Events.MANIFEST_PARSED, function () {
    var p = video.play();
    if (p && p.catch) {
      p.catch(function (err) {
        errors.push({ type: 'play', details: String(err), fatal: false, reason: '' });
      });
    }
  });
  function check() {
    if (video.buffered.length > 0 && bufferedEnd() > 1 && video.currentTime > 0.5) {
      report({ ok: true });
    }
  }
  video.addEventListener('timeupdate', check);
  video.addEventListener('progress', check);
  video.addEventListener('error', function () {
    var code = video.error ? video.error.code : 0;
    var msg = video.error ? video.error.message : '';
    report({ ok: false, error: 'video element error ' + code + ': ' + msg });
  });
  hls.loadSource('/master.m3u8');
  hls.attachMedia(video);
})();
</script>
</body></html>
"#;

/// A directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("netflix-transcode-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The browser: its whole process group is killed on drop, even when the test fails.
struct Browser {
    child: std::process::Child,
}

impl Browser {
    /// Whether the browser process has exited by itself.
    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // `process_group(0)` made the browser the leader of its own group: pgid == pid.
        // The leader is not reaped before this kill, so the group id cannot be reused.
        let _ = std::process::Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.child.wait();
    }
}

/// What the server saw.
#[derive(Default)]
struct Served {
    /// Every requested path (query stripped), in order.
    paths: Mutex<Vec<String>>,
}

/// The first executable named one of `names` on `PATH`.
fn find_on_path(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| {
            std::fs::metadata(p)
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}

/// Decodes `%XX` escapes and `+` (a space, as in forms).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) => {
                        out.push(v);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "m3u8" => "application/vnd.apple.mpegurl",
        "mp4" | "m4s" => "video/mp4",
        "mpd" => "application/dash+xml",
        "js" => "text/javascript",
        "html" => "text/html; charset=utf-8",
        _ => "application/octet-stream",
    }
}

async fn respond(stream: &mut TcpStream, status: &str, ctype: &str, body: &[u8]) {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(body).await;
    let _ = stream.shutdown().await;
}

/// Serves one request: files under `root`, `/hls.min.js`, `/player.html` and `/result`.
async fn handle(
    mut stream: TcpStream,
    root: Arc<PathBuf>,
    hls_js: Arc<PathBuf>,
    served: Arc<Served>,
    results: mpsc::UnboundedSender<String>,
) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if buf.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if buf.len() > 4 << 20 {
            respond(
                &mut stream,
                "431 Request Header Fields Too Large",
                "text/plain",
                b"",
            )
            .await;
            return;
        }
    }
    let head = String::from_utf8_lossy(&buf);
    let mut parts = head.lines().next().unwrap_or("").split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or("/"));
    if method != "GET" {
        respond(
            &mut stream,
            "405 Method Not Allowed",
            "text/plain",
            b"GET only",
        )
        .await;
        return;
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let path = percent_decode(path);
    served.paths.lock().unwrap().push(path.clone());
    match path.as_str() {
        "/result" => {
            let json = query
                .split('&')
                .find_map(|kv| kv.strip_prefix("j="))
                .map(percent_decode)
                .unwrap_or_default();
            let _ = results.send(json);
            respond(&mut stream, "200 OK", "text/plain", b"ok").await;
        }
        "/player.html" => {
            respond(
                &mut stream,
                "200 OK",
                "text/html; charset=utf-8",
                PLAYER_HTML.as_bytes(),
            )
            .await;
        }
        "/hls.min.js" => match tokio::fs::read(&*hls_js).await {
            Ok(body) => respond(&mut stream, "200 OK", "text/javascript", &body).await,
            Err(_) => respond(&mut stream, "404 Not Found", "text/plain", b"").await,
        },
        p => {
            let rel = p.trim_start_matches('/');
            let safe = !rel.is_empty()
                && rel
                    .split('/')
                    .all(|c| !c.is_empty() && c != "." && c != ".." && !c.contains('\\'));
            let file = root.join(rel);
            match tokio::fs::read(&file).await {
                Ok(body) if safe => {
                    respond(&mut stream, "200 OK", content_type(&file), &body).await;
                }
                _ => respond(&mut stream, "404 Not Found", "text/plain", b"not found").await,
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hls_js_plays_the_ladder_in_headless_chromium() {
    // Prerequisites first, so that a missing one fails before any encode.
    let tools = Tools::from_path().unwrap_or_else(|e| panic!("{e}"));
    let browser_names = ["chromium", "chromium-browser", "google-chrome"];
    let chromium = find_on_path(&browser_names).unwrap_or_else(|| {
        panic!(
            "no browser on PATH (looked for {}); install Chromium with `{SETUP_COMMAND}`",
            browser_names.join(", ")
        )
    });
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let hls_js = workspace.join("target/js/node_modules/hls.js/dist/hls.min.js");
    assert!(
        hls_js.is_file(),
        "hls.js not found at {}; install it with `{SETUP_COMMAND}`",
        hls_js.display()
    );

    // Declared first, so dropped last: after the browser is dead.
    let tmp = TempDir::new("browser");
    let src = tmp.0.join("src.mp4");
    let out = tmp.0.join("out");
    let home = tmp.0.join("home");
    let profile = tmp.0.join("profile");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&profile).unwrap();

    // 1. A tiny source and its ladder.
    let status = tokio::process::Command::new(tools.ffmpeg())
        .args([
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=s=640x360:r=30:d=8",
        ])
        .args(["-f", "lavfi", "-i", "sine=d=8:sample_rate=48000"])
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-g", "30"])
        .args(["-c:a", "aac", "-shortest"])
        .arg(&src)
        .stdin(Stdio::null())
        .status()
        .await
        .unwrap();
    assert!(
        status.success(),
        "ffmpeg could not make the test source: {status}"
    );

    let encode_started = Instant::now();
    let job = Job::new(&src, &out)
        .ladder(LadderSpec::Envivio)
        .encoder(Encoder::new(Codec::X264).preset("ultrafast"))
        .segment_seconds(2.0)
        .quality(false);
    let report = tokio::time::timeout(
        Duration::from_secs(300),
        Transcoder::new(tools).run(&job, NoProgress, &Cancel::new()),
    )
    .await
    .expect("transcode took over 300 s")
    .unwrap();
    let encode_time = encode_started.elapsed();
    assert!(out.join("master.m3u8").is_file());
    let audio_dir = report
        .audio
        .as_ref()
        .expect("the source has audio")
        .dir
        .clone();
    let video_dirs: Vec<String> = report.renditions.iter().map(|r| r.dir.clone()).collect();
    assert!(!video_dirs.is_empty());

    // 2. The server.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let served = Arc::new(Served::default());
    let (tx, mut results) = mpsc::unbounded_channel::<String>();
    let server = {
        let (root, hls_js, served) = (Arc::new(out.clone()), Arc::new(hls_js), served.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(handle(
                    stream,
                    root.clone(),
                    hls_js.clone(),
                    served.clone(),
                    tx.clone(),
                ));
            }
        })
    };

    // 3 and 4. The browser, in its own process group.
    let play_started = Instant::now();
    let mut browser = Browser {
        child: std::process::Command::new(&chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--autoplay-policy=no-user-gesture-required",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(format!("http://127.0.0.1:{port}/player.html"))
            .env("HOME", &home)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", chromium.display())),
    };

    // 5. The page's report.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut exited_at: Option<Instant> = None;
    let json = loop {
        tokio::select! {
            r = results.recv() => break r,
            () = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
        let now = Instant::now();
        if now >= deadline {
            break None;
        }
        // The browser closes only after reporting; if it died first, give a stray
        // request a moment to land, then stop waiting.
        if exited_at.is_none() && browser.exited().is_some() {
            exited_at = Some(now);
        }
        if exited_at.is_some_and(|t| now - t > Duration::from_secs(2)) {
            break None;
        }
    };
    let play_time = play_started.elapsed();
    let browser_status = browser.exited();
    drop(browser);
    server.abort();
    let paths = served.paths.lock().unwrap().clone();

    let Some(json) = json else {
        panic!(
            "no result from the page within 60 s (browser exit status: {browser_status:?}); \
             requested paths: {paths:?}"
        );
    };
    let value: serde_json::Value = serde_json::from_str(&json)
        .unwrap_or_else(|e| panic!("the page's report is not JSON ({e}): {json}"));
    let pretty = serde_json::to_string_pretty(&value).unwrap();

    let ok = value["ok"].as_bool() == Some(true);
    let buffered = value["buffered"].as_f64().unwrap_or(0.0);
    let fatal: Vec<&serde_json::Value> = value["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .filter(|e| e["fatal"].as_bool() == Some(true))
                .collect()
        })
        .unwrap_or_default();
    let is_media = |dir: &str, p: &String| {
        p.strip_prefix('/')
            .and_then(|p| p.strip_prefix(dir))
            .is_some_and(|rest| rest.starts_with('/') && rest.ends_with(".m4s"))
    };
    let video_segment = paths
        .iter()
        .any(|p| video_dirs.iter().any(|d| is_media(d, p)));
    let audio_segment = paths.iter().any(|p| is_media(&audio_dir, p));

    let passed = ok
        && buffered > 1.0
        && fatal.is_empty()
        && value["fatal"].is_null()
        && video_segment
        && audio_segment;
    if !passed {
        eprintln!("player report:\n{pretty}");
        eprintln!("requested paths: {paths:?}");
    }
    assert!(ok, "playback failed: {pretty}");
    assert!(buffered > 1.0, "buffered only to {buffered} s: {pretty}");
    assert!(
        fatal.is_empty() && value["fatal"].is_null(),
        "fatal hls.js error: {pretty}"
    );
    assert!(
        video_segment,
        "no video segment (.m4s under {video_dirs:?}) was requested: {paths:?}"
    );
    assert!(
        audio_segment,
        "no audio segment (.m4s under {audio_dir}/) was requested: {paths:?}"
    );
    eprintln!(
        "transcode {:.1} s, playback check {:.1} s ({} video renditions, audio in {audio_dir}/): \
         {json}",
        encode_time.as_secs_f64(),
        play_time.as_secs_f64(),
        video_dirs.len(),
    );
}
