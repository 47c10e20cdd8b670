//! Chunking costs no quality: on real footage, a chunked encode with the pipeline's own
//! chunking has its size within 5% and its PSNR within 0.3 dB of a whole-file encode at
//! the same settings.

mod common;

use common::*;
use netflix_abr::ladder::{FrameRate, Ladder, Rendition};
use netflix_transcode::{Chunking, Codec, Encoder, Job, LadderSpec, Report};
use std::path::Path;

/// The default job (4-second segments, chunks sized by the pipeline) at a fast preset;
/// `whole` makes the entire title one chunk.
fn job(src: &Path, out: &Path, ladder: Ladder, whole: bool) -> Job {
    let job = Job::new(src, out)
        .ladder(LadderSpec::Custom(ladder))
        .encoder(Encoder::new(Codec::X264).preset("veryfast"))
        .workers(2)
        .quality(true);
    if whole {
        job.chunking(Chunking::Fixed { seconds: 1e6 })
    } else {
        job
    }
}

fn compare(chunked: &Report, whole: &Report) {
    assert!(chunked.plan.chunks().len() > 1);
    assert_eq!(whole.plan.chunks().len(), 1);
    for (c, w) in chunked.renditions.iter().zip(&whole.renditions) {
        let ratio = c.bytes as f64 / w.bytes as f64;
        let dpsnr = c.psnr.unwrap() - w.psnr.unwrap();
        eprintln!(
            "{}x{}: chunked {} B, whole {} B ({:+.2}%), PSNR {:.3} vs {:.3} ({dpsnr:+.3} dB), SSIM {:.4} vs {:.4}",
            c.rendition.width,
            c.rendition.height,
            c.bytes,
            w.bytes,
            (ratio - 1.0) * 100.0,
            c.psnr.unwrap(),
            w.psnr.unwrap(),
            c.ssim.unwrap(),
            w.ssim.unwrap()
        );
        assert!((0.95..=1.05).contains(&ratio), "size ratio {ratio}");
        assert!(dpsnr.abs() <= 0.3, "PSNR differs by {dpsnr} dB");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_matches_whole_file_on_real_footage() {
    let tmp = TempDir::new("quality");
    // bikes.mp4: 640x272 (2.35:1) at 25 fps, 10 s, irregular keyframes, B-frames.
    let bikes = real_clip("bikes.mp4");
    let ladder = Ladder::new(vec![
        Rendition::new(320, 136, 300_000, "avc1.64000d", FrameRate::integer(25)),
        Rendition::new(640, 272, 900_000, "avc1.64001e", FrameRate::integer(25)),
    ])
    .unwrap();
    let chunked = run(&job(&bikes, &tmp.path().join("a"), ladder.clone(), false))
        .await
        .unwrap();
    let whole = run(&job(&bikes, &tmp.path().join("b"), ladder, true))
        .await
        .unwrap();
    assert_eq!(chunked.source.frames(), 250);
    compare(&chunked, &whole);

    // Big Buck Bunny: 1280x720, one keyframe in the whole clip, 5.1 AAC (downmixed to
    // the stereo audio rendition).
    let bbb = real_clip("bigbuckbunny.mp4");
    let ladder = Ladder::new(vec![
        Rendition::new(640, 360, 600_000, "avc1.64001e", FrameRate::integer(25)),
        Rendition::new(1280, 720, 2_000_000, "avc1.64001f", FrameRate::integer(25)),
    ])
    .unwrap();
    let chunked = run(&job(&bbb, &tmp.path().join("c"), ladder.clone(), false))
        .await
        .unwrap();
    let whole = run(&job(&bbb, &tmp.path().join("d"), ladder, true))
        .await
        .unwrap();
    assert_eq!(chunked.source.frames(), 132);
    assert!(chunked.audio.is_some());
    compare(&chunked, &whole);
    let (frames, stderr) = decode(&tmp.path().join("c/master.m3u8"));
    assert_eq!(frames, 132, "{stderr}");
}
