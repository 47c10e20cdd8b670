//! Probing real files: exact frame counts, keyframes, open GOPs, and clear errors for a
//! missing ffmpeg, unreadable input, no video, variable frame rate and interlacing.

mod common;

use common::*;
use netflix_transcode::{Codec, Error, Tools, probe};

#[tokio::test]
async fn frames_rate_and_keyframes_are_exact() {
    let tmp = TempDir::new("probe");
    let src = clip(tmp.path(), "src.mp4", "320x180", "30000/1001", 3);
    let s = probe(&tools(), &src).await.unwrap();
    assert_eq!(s.frames(), 90);
    assert_eq!(
        (s.video.frame_rate.num, s.video.frame_rate.den),
        (30000, 1001)
    );
    assert_eq!((s.video.width, s.video.height), (320, 180));
    assert_eq!(s.keyframes, vec![0, 30, 60]);
    assert!(!s.open_gop && !s.variable_frame_rate && !s.interlaced());
    assert_eq!(s.audio.as_ref().unwrap().codec, "aac");
    assert!((s.time_of(30) - 30.0 * 1001.0 / 30000.0).abs() < 1e-6);
}

#[tokio::test]
async fn open_gops_are_detected() {
    let tmp = TempDir::new("open-gop");
    let src = tmp.path().join("open.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=s=320x180:r=30:d=3",
        "-c:v",
        "libx265",
        "-preset",
        "ultrafast",
        "-x265-params",
        "keyint=30:min-keyint=30:scenecut=0:open-gop=1:bframes=4:log-level=error",
        src.to_str().unwrap(),
    ]);
    let s = probe(&tools(), &src).await.unwrap();
    assert!(s.open_gop);
    assert_eq!(s.frames(), 90);
}

#[tokio::test]
async fn a_missing_ffmpeg_names_the_setup_command() {
    let e = Tools::new("/nonexistent/ffmpeg", "/nonexistent/ffprobe").unwrap_err();
    assert!(matches!(e, Error::ToolMissing { tool: "ffmpeg", .. }));
    assert!(e.to_string().contains("scripts/setup.sh test"), "{e}");
}

#[tokio::test]
async fn unreadable_and_unsupported_inputs_are_typed_errors() {
    let tmp = TempDir::new("bad-input");
    let junk = tmp.path().join("junk.mp4");
    std::fs::write(&junk, b"this is not a video file at all").unwrap();
    let e = probe(&tools(), &junk).await.unwrap_err();
    assert!(matches!(e, Error::Unreadable { .. }), "{e:?}");

    let missing = probe(&tools(), &tmp.path().join("nope.mp4"))
        .await
        .unwrap_err();
    assert!(matches!(missing, Error::Io { .. }), "{missing:?}");

    let audio = tmp.path().join("audio.m4a");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "sine=d=1",
        "-c:a",
        "aac",
        audio.to_str().unwrap(),
    ]);
    let e = probe(&tools(), &audio).await.unwrap_err();
    assert!(matches!(e, Error::Unsupported { .. }), "{e:?}");
    assert!(e.to_string().contains("no video"), "{e}");
}

#[tokio::test]
async fn variable_frame_rate_is_refused_unless_allowed() {
    let tmp = TempDir::new("vfr");
    let src = tmp.path().join("vfr.mp4");
    // Drop every third frame and keep timestamps: durations alternate.
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=s=320x180:r=30:d=3",
        "-vf",
        "select='not(eq(mod(n\\,3)\\,2))'",
        "-fps_mode",
        "vfr",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        src.to_str().unwrap(),
    ]);
    let s = probe(&tools(), &src).await.unwrap();
    assert!(s.variable_frame_rate);
    let out = tmp.path().join("out");
    let e = run(&quick_job(&src, &out, Codec::X264)).await.unwrap_err();
    assert!(
        matches!(e, Error::Unsupported { .. }) && e.to_string().contains("variable frame rate"),
        "{e}"
    );
    // Allowed, it transcodes every frame.
    let report = run(&quick_job(&src, &out, Codec::X264)
        .allow_vfr(true)
        .audio(None))
    .await
    .unwrap();
    assert_eq!(report.source.frames(), 60);
}

#[tokio::test]
async fn interlaced_sources_are_refused_unless_allowed() {
    let tmp = TempDir::new("interlaced");
    let src = tmp.path().join("tff.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=s=320x180:r=30:d=2",
        "-vf",
        "setfield=tff",
        "-flags",
        "+ildct+ilme",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        src.to_str().unwrap(),
    ]);
    let s = probe(&tools(), &src).await.unwrap();
    assert!(s.interlaced(), "field order {}", s.video.field_order);
    let out = tmp.path().join("out");
    let e = run(&quick_job(&src, &out, Codec::X264)).await.unwrap_err();
    assert!(e.to_string().contains("interlaced"), "{e}");
    let report = run(&quick_job(&src, &out, Codec::X264)
        .allow_interlaced(true)
        .audio(None))
    .await
    .unwrap();
    assert_eq!(report.source.frames(), 60);
}
