//! Chunk plans: where the source is cut into independently encoded chunks, and where
//! every rendition has its keyframes.
//!
//! Every chunk starts with an IDR frame in every rendition, and inside a chunk a new GOP
//! (and a new segment) starts every `segment_frames` frames. Because the plan is shared by
//! every rung, every rendition has the same keyframe times, and segments can be cut at
//! exactly those keyframes.
//!
//! * [`Chunking::Fixed`]: chunks of a whole number of segments, so every segment of the
//!   title has the same duration except the last.
//! * [`Chunking::Scenes`]: chunks start at scene cuts (from ffmpeg's scene detection),
//!   no shorter than `min_seconds` and no longer than `max_seconds`.
//!
//! ```
//! use netflix_transcode::plan::{ChunkPlan, Chunking};
//! use netflix_abr::ladder::FrameRate;
//!
//! // 20 s at 30 fps, 2 s segments, 4 s chunks.
//! let plan = ChunkPlan::fixed(600, FrameRate::integer(30), 2.0, 4.0)?;
//! assert_eq!(plan.chunks().len(), 5);
//! assert_eq!(plan.chunks().iter().map(|c| c.frames).sum::<u64>(), 600);
//! assert_eq!(plan.segments().len(), 10);
//! # Ok::<(), netflix_transcode::Error>(())
//! ```

use crate::error::{Error, Result};
use netflix_abr::ladder::FrameRate;

/// One chunk: a run of source frames encoded by one ffmpeg process into every rung.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// Its position in the plan.
    pub index: usize,
    /// Its first source frame (presentation order).
    pub start_frame: u64,
    /// How many frames.
    pub frames: u64,
    /// Where, relative to `start_frame`, each of its segments (and GOPs) starts; the
    /// first is 0.
    pub segment_starts: Vec<u64>,
}

impl Chunk {
    /// One past its last frame.
    pub fn end_frame(&self) -> u64 {
        self.start_frame + self.frames
    }
}

/// How to cut a source into chunks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Chunking {
    /// Chunks of about `seconds`, rounded to a whole number of segments (at least one).
    Fixed {
        /// The chunk length in seconds.
        seconds: f64,
    },
    /// Chunks that start at scene cuts.
    Scenes {
        /// A frame whose scene score (0 to 1) is at least this starts a new scene.
        /// 0.3 to 0.4 is usual.
        threshold: f64,
        /// No chunk is shorter than this, except when the whole source is.
        min_seconds: f64,
        /// No chunk is longer than this: a long scene is cut at its most scene-like frame.
        max_seconds: f64,
    },
}

impl Default for Chunking {
    fn default() -> Self {
        Chunking::Fixed { seconds: 4.0 }
    }
}

/// Where each chunk and each segment of a title is.
#[derive(Debug, Clone, PartialEq)]
pub struct ChunkPlan {
    chunks: Vec<Chunk>,
    frame_rate: FrameRate,
    segment_frames: u64,
    total_frames: u64,
}

impl ChunkPlan {
    /// Fixed-length chunks of `frames` frames at `frame_rate`, with segments (and GOPs) of
    /// `segment_seconds` and chunks of about `chunk_seconds` (a whole number of segments).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when there are no frames or a length is not positive.
    pub fn fixed(
        frames: u64,
        frame_rate: FrameRate,
        segment_seconds: f64,
        chunk_seconds: f64,
    ) -> Result<Self> {
        let segment_frames = segment_frames(frame_rate, segment_seconds)?;
        if !(chunk_seconds > 0.0 && chunk_seconds.is_finite()) {
            return Err(Error::Config(format!(
                "chunk length {chunk_seconds} s is not positive"
            )));
        }
        if frames == 0 {
            return Err(Error::Config("the source has no frames".into()));
        }
        let per_chunk = ((chunk_seconds / segment_seconds).round() as u64).max(1) * segment_frames;
        // Every GOP is exactly `segment_frames` long but the title's last: encoders
        // place keyframes on a fixed period, so a short tail stays a chunk of its own.
        let starts: Vec<u64> = (0..frames).step_by(per_chunk as usize).collect();
        Ok(Self::from_starts(
            &starts,
            frames,
            frame_rate,
            segment_frames,
        ))
    }

    /// Guided self-scheduling (Polychronopoulos and Kuck): chunks that shrink as the title
    /// runs out (each the rest divided by the workers, between `min_seconds` and
    /// `max_seconds`, whole segments), so the first chunks amortise each encoder's start-up
    /// (a process, its lookahead buffers, a validation) and the last ones even out the
    /// workers' finishing times.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when there are no frames or a length is not positive.
    pub fn guided(
        frames: u64,
        frame_rate: FrameRate,
        segment_seconds: f64,
        min_seconds: f64,
        max_seconds: f64,
        workers: usize,
    ) -> Result<Self> {
        let segment_frames = segment_frames(frame_rate, segment_seconds)?;
        if frames == 0 {
            return Err(Error::Config("the source has no frames".into()));
        }
        if !(min_seconds > 0.0 && max_seconds >= min_seconds && max_seconds.is_finite()) {
            return Err(Error::Config(format!(
                "guided chunks need 0 < min ({min_seconds} s) <= max ({max_seconds} s)"
            )));
        }
        let segments = frames.div_ceil(segment_frames);
        let min = ((min_seconds / segment_seconds).ceil() as u64).max(1);
        let max = ((max_seconds / segment_seconds).floor() as u64).max(min);
        let mut starts = Vec::new();
        let mut done = 0u64;
        while done < segments {
            starts.push(done * segment_frames);
            let rest = segments - done;
            let size = rest
                .div_ceil(workers.max(1) as u64)
                .clamp(min, max)
                .min(rest);
            done += size;
        }
        Ok(Self::from_starts(
            &starts,
            frames,
            frame_rate,
            segment_frames,
        ))
    }

    /// Chunks that start at scene cuts. `scores[i]` is frame `i`'s scene score (how
    /// different it is from frame `i - 1`, 0 to 1); its length is the frame count.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when there are no frames or the lengths are inconsistent.
    pub fn scenes(
        scores: &[f64],
        frame_rate: FrameRate,
        segment_seconds: f64,
        threshold: f64,
        min_seconds: f64,
        max_seconds: f64,
    ) -> Result<Self> {
        let segment_frames = segment_frames(frame_rate, segment_seconds)?;
        let frames = scores.len() as u64;
        if frames == 0 {
            return Err(Error::Config("the source has no frames".into()));
        }
        let fps = frame_rate.as_f64();
        let min = ((min_seconds * fps).round() as u64).max(1);
        let max = (max_seconds * fps).round() as u64;
        if !(min_seconds >= 0.0 && max_seconds.is_finite() && max >= min && max > 0) {
            return Err(Error::Config(format!(
                "scene chunks need 0 <= min ({min_seconds} s) <= max ({max_seconds} s)"
            )));
        }
        let mut starts = vec![0u64];
        let mut start = 0u64;
        loop {
            let remaining = frames - start;
            let lo = start + min;
            // The last frame a cut may fall on and still leave `min` frames after it.
            let room = frames.checked_sub(min).filter(|&r| r >= lo);
            if remaining <= max && room.is_none() {
                break;
            }
            let hi = room
                .map_or(start + max, |r| r.min(start + max))
                .min(frames - 1);
            if lo > hi {
                break;
            }
            // The first scene cut at least `min` and at most `max` in; else, when the
            // rest is too long, the most scene-like frame, where a cut hurts least.
            let cut = match (lo..=hi).find(|&f| scores[f as usize] >= threshold) {
                Some(c) => c,
                None if remaining > max => (lo..=hi)
                    .max_by(|&a, &b| {
                        scores[a as usize]
                            .total_cmp(&scores[b as usize])
                            .then(b.cmp(&a))
                    })
                    .expect("lo <= hi"),
                None => break,
            };
            starts.push(cut);
            start = cut;
        }
        Ok(Self::from_starts(
            &starts,
            frames,
            frame_rate,
            segment_frames,
        ))
    }

    fn from_starts(
        starts: &[u64],
        frames: u64,
        frame_rate: FrameRate,
        segment_frames: u64,
    ) -> Self {
        let chunks = starts
            .iter()
            .enumerate()
            .map(|(index, &s)| {
                let end = starts.get(index + 1).copied().unwrap_or(frames);
                let len = end - s;
                let segment_starts: Vec<u64> = (0..len).step_by(segment_frames as usize).collect();
                Chunk {
                    index,
                    start_frame: s,
                    frames: len,
                    segment_starts,
                }
            })
            .collect();
        Self {
            chunks,
            frame_rate,
            segment_frames,
            total_frames: frames,
        }
    }

    /// The chunks, in order.
    pub fn chunks(&self) -> &[Chunk] {
        &self.chunks
    }

    /// The frame rate the plan was made for.
    pub fn frame_rate(&self) -> FrameRate {
        self.frame_rate
    }

    /// The longest GOP (and segment), in frames.
    pub fn segment_frames(&self) -> u64 {
        self.segment_frames
    }

    /// All frames; equal to the sum of the chunks' frames.
    pub fn total_frames(&self) -> u64 {
        self.total_frames
    }

    /// Every segment of the title as (first frame, frames), in order. Each starts with an
    /// IDR frame in every rendition.
    pub fn segments(&self) -> Vec<(u64, u64)> {
        self.chunks
            .iter()
            .flat_map(|c| {
                c.segment_starts.iter().enumerate().map(move |(i, &s)| {
                    let end = c.segment_starts.get(i + 1).copied().unwrap_or(c.frames);
                    (c.start_frame + s, end - s)
                })
            })
            .collect()
    }

    /// The frames at which every rendition has a keyframe.
    pub fn keyframes(&self) -> Vec<u64> {
        self.segments().into_iter().map(|(s, _)| s).collect()
    }
}

fn segment_frames(frame_rate: FrameRate, segment_seconds: f64) -> Result<u64> {
    if !(segment_seconds > 0.0 && segment_seconds.is_finite()) {
        return Err(Error::Config(format!(
            "segment length {segment_seconds} s is not positive"
        )));
    }
    if frame_rate.num == 0 || frame_rate.den == 0 {
        return Err(Error::Config("frame rate is zero".into()));
    }
    Ok(((segment_seconds * frame_rate.as_f64()).round() as u64).max(1))
}

/// Parses the output of ffmpeg's `metadata=print` after `select='gte(scene,0)'`: one
/// `lavfi.scene_score=` line per frame after a `frame:N` line. Frame 0 scores 1.0.
pub(crate) fn parse_scene_scores(text: &str, frames: u64) -> Vec<f64> {
    let mut scores = vec![0.0; frames as usize];
    let mut current: Option<usize> = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("frame:") {
            current = rest.split_whitespace().next().and_then(|n| n.parse().ok());
        } else if let Some(v) = line.strip_prefix("lavfi.scene_score=") {
            if let (Some(i), Ok(v)) = (current, v.trim().parse::<f64>()) {
                if let Some(s) = scores.get_mut(i) {
                    *s = v;
                }
            }
        }
    }
    if let Some(s) = scores.first_mut() {
        *s = 1.0;
    }
    scores
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn fixed_chunks_are_whole_segments() {
        let p = ChunkPlan::fixed(601, FrameRate::integer(30), 2.0, 4.4).unwrap();
        // 4.4 s rounds to 2 segments of 60 frames; the 1-frame tail is a chunk of its own.
        assert_eq!(p.chunks()[0].frames, 120);
        assert_eq!(p.chunks().last().unwrap().frames, 1);
        assert_eq!(p.segments().len(), 11);
        assert!(p.segments().iter().all(|&(s, _)| s % 60 == 0));
    }

    #[test]
    fn ntsc_segments_round_to_whole_frames() {
        let p = ChunkPlan::fixed(1000, FrameRate::new(30000, 1001), 4.0, 4.0).unwrap();
        assert_eq!(p.segment_frames(), 120);
    }

    #[test]
    fn bad_lengths_are_errors() {
        assert!(ChunkPlan::fixed(10, FrameRate::integer(30), 0.0, 4.0).is_err());
        assert!(ChunkPlan::fixed(10, FrameRate::integer(30), 2.0, f64::NAN).is_err());
        assert!(ChunkPlan::fixed(0, FrameRate::integer(30), 2.0, 4.0).is_err());
        assert!(ChunkPlan::scenes(&[0.0; 10], FrameRate::integer(30), 2.0, 0.4, 3.0, 1.0).is_err());
    }

    #[test]
    fn scenes_cut_at_scores() {
        let mut s = vec![0.0; 300];
        s[100] = 0.9;
        s[130] = 0.9; // too close to 100 with min 2 s (60 frames)
        s[200] = 0.5;
        let p = ChunkPlan::scenes(&s, FrameRate::integer(30), 1.0, 0.4, 2.0, 8.0).unwrap();
        let starts: Vec<u64> = p.chunks().iter().map(|c| c.start_frame).collect();
        assert_eq!(starts, vec![0, 100, 200]);
    }

    #[test]
    fn long_scenes_split_at_the_max() {
        let s = vec![0.0; 1000];
        let p = ChunkPlan::scenes(&s, FrameRate::integer(25), 1.0, 0.4, 1.0, 10.0).unwrap();
        assert!(p.chunks().iter().all(|c| c.frames <= 250));
        assert_eq!(p.total_frames(), 1000);
    }

    #[test]
    fn scene_scores_parse() {
        let t = "frame:0    pts:0       pts_time:0\nlavfi.scene_score=0.000000\n\
                 frame:1    pts:512     pts_time:0.0333\nlavfi.scene_score=0.712000\n";
        assert_eq!(parse_scene_scores(t, 3), vec![1.0, 0.712, 0.0]);
    }

    #[test]
    fn guided_chunks_shrink_and_balance() {
        // 20 s at 25 fps, 2 s segments, two workers: 10 6 2 2 seconds; with a 4 s floor,
        // 10 6 4 (each worker gets 10 s).
        let sizes = |min: f64| -> Vec<u64> {
            let p = ChunkPlan::guided(500, FrameRate::integer(25), 2.0, min, 30.0, 2).unwrap();
            p.chunks().iter().map(|c| c.frames).collect()
        };
        assert_eq!(sizes(2.0), vec![250, 150, 50, 50]);
        assert_eq!(sizes(4.0), vec![250, 150, 100]);
        // A long title: 30 s chunks until the rest, divided among 8 workers, shrinks.
        let p = ChunkPlan::guided(25 * 600, FrameRate::integer(25), 2.0, 4.0, 30.0, 8).unwrap();
        let secs: Vec<u64> = p.chunks().iter().map(|c| c.frames / 25).collect();
        assert_eq!(secs.iter().sum::<u64>(), 600);
        // Only the very last chunk may be shorter than the floor: it is what is left.
        assert!(
            secs[..secs.len() - 1]
                .iter()
                .all(|&s| (4..=30).contains(&s)),
            "{secs:?}"
        );
        assert!(secs.windows(2).all(|w| w[0] >= w[1]), "{secs:?}");
        assert!(ChunkPlan::guided(500, FrameRate::integer(25), 2.0, 3.0, 1.0, 2).is_err());
    }

    proptest! {
        #[test]
        fn guided_plans_cover_every_frame(frames in 1u64..20000, seg in 0.5f64..6.0, min in 0.5f64..8.0, extra in 0.0f64..60.0, workers in 1usize..16) {
            let p = ChunkPlan::guided(frames, FrameRate::integer(30), seg, min, min + extra, workers).unwrap();
            check(&p, frames);
            // Sizes never grow along the title, but for the partial last segment.
            let sizes: Vec<u64> = p.chunks().iter().map(|c| c.frames).collect();
            for w in sizes.windows(2) {
                prop_assert!(w[1] <= w[0] || w[1] == *sizes.last().unwrap());
            }
        }

        #[test]
        fn fixed_plans_cover_every_frame(frames in 1u64..5000, seg in 0.2f64..6.0, chunk in 0.2f64..30.0, fps in prop::sample::select(vec![(24u32,1u32),(25,1),(30000,1001),(60,1)])) {
            let p = ChunkPlan::fixed(frames, FrameRate::new(fps.0, fps.1), seg, chunk).unwrap();
            check(&p, frames);
        }

        #[test]
        fn scene_plans_cover_every_frame(scores in prop::collection::vec(0.0f64..1.0, 1..3000), min in 0.0f64..4.0, extra in 0.04f64..10.0, thr in 0.0f64..1.0) {
            let max = min + extra;
            let p = ChunkPlan::scenes(&scores, FrameRate::integer(25), 2.0, thr, min, max).unwrap();
            check(&p, scores.len() as u64);
            let maxf = (max * 25.0).round() as u64;
            let minf = ((min * 25.0).round() as u64).max(1);
            for c in p.chunks() {
                prop_assert!(c.frames <= maxf.max(minf), "chunk of {} frames over max {}", c.frames, maxf);
            }
            for c in &p.chunks()[..p.chunks().len() - 1] {
                prop_assert!(c.frames >= minf, "chunk of {} frames under min {}", c.frames, minf);
            }
        }
    }

    fn check(p: &ChunkPlan, frames: u64) {
        assert_eq!(p.chunks().iter().map(|c| c.frames).sum::<u64>(), frames);
        let mut next = 0;
        for (i, c) in p.chunks().iter().enumerate() {
            assert_eq!(c.index, i);
            assert_eq!(c.start_frame, next);
            assert!(c.frames > 0);
            assert_eq!(c.segment_starts[0], 0);
            next = c.end_frame();
        }
        assert_eq!(p.segments().iter().map(|s| s.1).sum::<u64>(), frames);
    }
}
