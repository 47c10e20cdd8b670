//! The whole pipeline against real ffmpeg: a ladder encoded in chunks, merged, packaged,
//! played by ffprobe through HLS and DASH, read back by independent parsers, published.

mod common;

use common::*;
use netflix_transcode::{Chunking, Codec, Encoder, LadderSpec};
use std::path::Path;

fn segment_bytes(dir: &Path) -> Vec<u64> {
    let mut v: Vec<(String, u64)> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".m4s"))
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                e.metadata().unwrap().len(),
            )
        })
        .collect();
    v.sort();
    v.into_iter().map(|x| x.1).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x264_ladder_end_to_end() {
    let tmp = TempDir::new("e2e");
    let src = clip(tmp.path(), "src.mp4", "640x360", "30", 4);
    let out = tmp.path().join("out");
    let job = quick_job(&src, &out, Codec::X264).quality(true);
    let report = run(&job).await.unwrap();

    // Two renditions with codec strings read from their init segments.
    assert_eq!(report.renditions.len(), 2);
    assert_eq!(report.source.frames(), 120);
    assert_eq!(
        report.plan.chunks().iter().map(|c| c.frames).sum::<u64>(),
        120
    );
    for r in &report.renditions {
        assert!(
            r.rendition.codecs.starts_with("avc1."),
            "{}",
            r.rendition.codecs
        );
        assert_eq!(r.segments, 4);
        let psnr = r.psnr.unwrap();
        let ssim = r.ssim.unwrap();
        assert!(psnr > 20.0 && psnr < 80.0, "psnr {psnr}");
        assert!(ssim > 0.5 && ssim <= 1.0, "ssim {ssim}");
    }
    // The bigger rung is better.
    assert!(report.renditions[1].psnr > report.renditions[0].psnr);
    let audio = report.audio.as_ref().expect("the clip has audio");
    assert_eq!(audio.rendition.codecs, "mp4a.40.2");

    // Identical keyframe times in every rendition, one per 1-second segment, and every
    // segment starts with a keyframe.
    let k0 = check_rendition(&out.join("v0"), tmp.path());
    let k1 = check_rendition(&out.join("v1"), tmp.path());
    assert_eq!(k0, k1);
    assert_eq!(k0.len(), 4);
    for w in k0.windows(2) {
        assert!((w[1] - w[0] - 1.0).abs() < 1e-6, "{k0:?}");
    }

    // The multivariant playlist, read by m3u8-rs: measured bandwidths, codecs, audio group.
    let master = std::fs::read(out.join("master.m3u8")).unwrap();
    let m3u8_rs::Playlist::MasterPlaylist(m) = m3u8_rs::parse_playlist_res(&master).unwrap() else {
        panic!("not a multivariant playlist");
    };
    assert!(m.unknown_tags.is_empty(), "{:?}", m.unknown_tags);
    assert_eq!(m.variants.len(), 2);
    assert_eq!(m.alternatives.len(), 1);
    assert_eq!(m.alternatives[0].uri.as_deref(), Some("audio/index.m3u8"));
    let audio_bytes: u64 = segment_bytes(&out.join("audio")).iter().sum();
    for v in &m.variants {
        let dir = out.join(v.uri.trim_end_matches("/index.m3u8"));
        let rep = report
            .renditions
            .iter()
            .find(|r| v.uri.starts_with(&r.dir))
            .unwrap();
        let bytes: u64 = segment_bytes(&dir).iter().sum();
        // AVERAGE-BANDWIDTH is media bits over the duration, video plus audio.
        let avg = ((bytes as f64 * 8.0 / 4.0).round() as u64) + audio.average_bandwidth;
        let reported = v.average_bandwidth.unwrap();
        assert!(reported.abs_diff(avg) <= 2, "average {reported} vs {avg}");
        assert!(v.bandwidth >= reported);
        assert_eq!(v.bandwidth, rep.peak_bandwidth + audio.peak_bandwidth);
        assert_eq!(
            v.codecs.as_deref(),
            Some(format!("{},mp4a.40.2", rep.rendition.codecs).as_str())
        );
        let res = v.resolution.unwrap();
        assert_eq!(
            (res.width as u32, res.height as u32),
            (rep.rendition.width, rep.rendition.height)
        );
        assert_eq!(v.frame_rate, Some(30.0));
        assert_eq!(v.audio.as_deref(), Some("audio"));
    }
    assert!(audio_bytes > 0);

    // ffprobe plays HLS and DASH: every frame, no warnings.
    for target in [
        out.join("master.m3u8"),
        std::path::absolute(out.join("manifest.mpd")).unwrap(),
    ] {
        let (frames, stderr) = decode(&target);
        assert_eq!(frames, 120, "{}: {stderr}", target.display());
        assert!(stderr.trim().is_empty(), "{}: {stderr}", target.display());
    }
    // dash-mpd-core reads the MPD.
    let mpd =
        dash_mpd_core::parse(&std::fs::read_to_string(out.join("manifest.mpd")).unwrap()).unwrap();
    assert!(
        dash_mpd_core::check_conformity(&mpd).is_empty(),
        "{:?}",
        dash_mpd_core::check_conformity(&mpd)
    );
    let sets = &mpd.periods[0].adaptations;
    assert_eq!(sets.len(), 2);
    assert_eq!(sets[0].representations.len(), 2);

    // The inventory lists every file with its hash; the work directory is gone.
    let inv: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(out.join("inventory.json")).unwrap()).unwrap();
    let hashes = tree_hashes(&out);
    assert_eq!(inv.len() + 1, hashes.len());
    for e in &inv {
        assert_eq!(
            hashes[e["path"].as_str().unwrap()],
            e["sha256"].as_str().unwrap()
        );
    }
    assert!(!out.join(".transcode").exists());

    // Publishing the same job again is idempotent: same bytes, nothing rewritten.
    let again = run(&job).await.unwrap();
    assert_eq!(again.published.written, 0, "{:?}", again.published);
    assert_eq!(tree_hashes(&out), hashes);
}

async fn aligned(codec: Codec) {
    let tmp = TempDir::new(codec.name());
    let src = clip(tmp.path(), "src.mp4", "320x180", "30", 3);
    let out = tmp.path().join("out");
    let job = quick_job(&src, &out, codec)
        .audio(None)
        .chunking(Chunking::Fixed { seconds: 1.0 });
    let report = run(&job).await.unwrap_or_else(|e| panic!("{codec}: {e}"));
    let k0 = check_rendition(&out.join("v0"), tmp.path());
    let k1 = check_rendition(&out.join("v1"), tmp.path());
    assert_eq!(k0, k1, "{codec}: keyframes differ between renditions");
    assert_eq!(k0.len(), 3, "{codec}: {k0:?}");
    let prefix = match codec {
        Codec::X264 => "avc1.",
        Codec::X265 => "hvc1.",
        Codec::Vp9 => "vp09.",
        _ => "av01.",
    };
    for r in &report.renditions {
        assert!(
            r.rendition.codecs.starts_with(prefix),
            "{codec}: {}",
            r.rendition.codecs
        );
    }
    let (frames, stderr) = decode(&out.join("master.m3u8"));
    assert_eq!(frames, 90, "{codec}: {stderr}");
}

#[tokio::test]
async fn x265_renditions_align() {
    aligned(Codec::X265).await;
}

#[tokio::test]
async fn vp9_renditions_align() {
    aligned(Codec::Vp9).await;
}

#[tokio::test]
async fn svt_av1_renditions_align() {
    aligned(Codec::SvtAv1).await;
}

#[tokio::test]
async fn aom_renditions_align() {
    aligned(Codec::Aom).await;
}

#[tokio::test]
async fn scene_chunks_start_at_cuts() {
    let tmp = TempDir::new("scenes");
    let src = tmp.path().join("cuts.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=s=320x180:r=30:d=2",
        "-f",
        "lavfi",
        "-i",
        "smptebars=s=320x180:r=30:d=2",
        "-f",
        "lavfi",
        "-i",
        "mandelbrot=s=320x180:r=30,trim=duration=2",
        "-filter_complex",
        "[0:v][1:v][2:v]concat=n=3:v=1:a=0[v]",
        "-map",
        "[v]",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-g",
        "30",
        src.to_str().unwrap(),
    ]);
    let out = tmp.path().join("out");
    let job = quick_job(&src, &out, Codec::X264).chunking(Chunking::Scenes {
        threshold: 0.3,
        min_seconds: 1.0,
        max_seconds: 10.0,
    });
    let report = run(&job).await.unwrap();
    let starts: Vec<u64> = report.plan.chunks().iter().map(|c| c.start_frame).collect();
    assert_eq!(starts, vec![0, 60, 120]);
    let k = check_rendition(&out.join("v1"), tmp.path());
    assert!(
        k.iter().any(|t| (t - 2.0).abs() < 1e-3) && k.iter().any(|t| (t - 4.0).abs() < 1e-3),
        "{k:?}"
    );
}

#[tokio::test]
async fn per_title_ladder_comes_from_the_hull() {
    let tmp = TempDir::new("per-title");
    let src = clip(tmp.path(), "src.mp4", "640x360", "30", 2);
    let out = tmp.path().join("out");
    let cfg = netflix_transcode::PerTitle {
        heights: vec![180, 360],
        bitrates_kbps: vec![100, 300, 900, 2700],
        sample_seconds: 2.0,
        ..Default::default()
    };
    let job = quick_job(&src, &out, Codec::X264)
        .ladder(LadderSpec::PerTitle(cfg))
        .encoder(Encoder::new(Codec::X264).preset("ultrafast"))
        .audio(None);
    let report = run(&job).await.unwrap();
    let trials = report.per_title.as_ref().unwrap();
    assert_eq!(trials.points.len(), 8);
    assert!(!trials.hull.is_empty() && trials.hull.len() <= 8);
    // Every rung is a hull point; the hull is increasing in both rate and quality.
    for w in trials.hull.windows(2) {
        assert!(w[1].bitrate_kbps > w[0].bitrate_kbps && w[1].quality > w[0].quality);
    }
    assert_eq!(report.renditions.len(), trials.ladder.len());
    for (r, rung) in report.renditions.iter().zip(trials.ladder.renditions()) {
        assert_eq!(r.rendition.height, rung.height);
        assert!(
            trials.hull.iter().any(|p| p.height == rung.height
                && (p.bitrate_kbps.round() * 1000.0) as u32 == rung.bitrate)
        );
    }
}

/// Lossless encodes of every chunk, compared frame by frame with the source: any chunk
/// that started a frame early or late would show as a finite PSNR.
async fn frame_exact(src: &Path, tmp: &Path) {
    let out = tmp.join("out");
    let ladder = netflix_abr::ladder::Ladder::new(vec![netflix_abr::ladder::Rendition::new(
        320,
        180,
        1_000_000,
        "avc1.64000d",
        netflix_abr::ladder::FrameRate::integer(30),
    )])
    .unwrap();
    let job = quick_job(src, &out, Codec::X264)
        .ladder(LadderSpec::Custom(ladder))
        .encoder(Encoder::new(Codec::X264).preset("ultrafast").rate_control(
            netflix_transcode::RateControl::CappedCrf {
                crf: Some(0),
                cap: 1000.0,
                buffer_seconds: 100.0,
            },
        ))
        .chunking(Chunking::Fixed { seconds: 1.0 })
        .audio(None)
        .quality(true);
    let report = run(&job).await.unwrap();
    assert!(report.plan.chunks().len() >= 4);
    let psnr = report.renditions[0].psnr.unwrap();
    assert!(
        psnr.is_infinite() || psnr > 80.0,
        "{}: PSNR {psnr}",
        src.display()
    );
}

#[tokio::test]
async fn chunks_are_frame_exact_on_and_off_source_keyframes() {
    let tmp = TempDir::new("exact");
    // Keyframes every 30 frames: every chunk starts on one.
    let on = tmp.path().join("on.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=s=320x180:r=30:d=4",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-bf",
        "2",
        "-g",
        "30",
        on.to_str().unwrap(),
    ]);
    frame_exact(&on, tmp.path()).await;
    // Keyframes every 45 frames: most chunks start between them.
    let off = tmp.path().join("off.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=s=320x180:r=30:d=4",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-bf",
        "2",
        "-g",
        "45",
        "-keyint_min",
        "45",
        "-sc_threshold",
        "0",
        off.to_str().unwrap(),
    ]);
    frame_exact(&off, tmp.path()).await;
    // Audio starts 0.3 s before the video: seeks count from the container's start.
    let late = tmp.path().join("late.mkv");
    ffmpeg(&[
        "-itsoffset",
        "0.3",
        "-f",
        "lavfi",
        "-i",
        "testsrc2=s=320x180:r=30:d=4",
        "-f",
        "lavfi",
        "-i",
        "sine=d=4.3",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-g",
        "30",
        "-c:a",
        "aac",
        late.to_str().unwrap(),
    ]);
    let s = netflix_transcode::probe(&tools(), &late).await.unwrap();
    assert!(
        (s.video_offset - 0.323).abs() < 0.01,
        "offset {}",
        s.video_offset
    );
    frame_exact(&late, tmp.path()).await;
}
