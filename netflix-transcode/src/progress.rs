//! Typed progress events.

use std::time::Duration;

/// The steps after encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Stage {
    /// Probing the source.
    Probe,
    /// Finding scene cuts.
    SceneDetection,
    /// Trial encodes for a per-title ladder.
    PerTitle,
    /// Encoding chunks.
    Encode,
    /// Encoding the audio rendition.
    Audio,
    /// Joining each rung's chunks.
    Merge,
    /// Cutting CMAF segments and writing manifests.
    Package,
    /// Measuring PSNR and SSIM.
    Quality,
    /// Copying to the origin store.
    Publish,
}

/// What a job reports while it runs.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// A stage began.
    Stage(Stage),
    /// The source was probed.
    Probed {
        /// Exact frame count.
        frames: u64,
        /// Seconds.
        duration: f64,
        /// Width and height.
        resolution: (u32, u32),
        /// Frames per second.
        fps: f64,
    },
    /// The chunk plan is ready.
    Planned {
        /// Chunks in the plan.
        chunks: usize,
        /// Of which already finished by an earlier run.
        resumed: usize,
        /// Rungs per chunk.
        rungs: usize,
        /// Workers that will encode.
        workers: usize,
    },
    /// A worker started (or restarted) a chunk.
    ChunkStarted {
        /// The worker.
        worker: usize,
        /// The chunk.
        chunk: usize,
        /// Its frames.
        frames: u64,
        /// 1 for the first attempt.
        attempt: u32,
    },
    /// A worker's chunk advanced.
    ChunkProgress {
        /// The worker.
        worker: usize,
        /// The chunk.
        chunk: usize,
        /// Frames done in this chunk.
        frames_done: u64,
        /// Frames in this chunk.
        frames: u64,
        /// This worker's speed in frames per second.
        fps: f64,
        /// Time left for this chunk.
        eta: Option<Duration>,
    },
    /// A chunk attempt failed and will be retried.
    ChunkRetry {
        /// The chunk.
        chunk: usize,
        /// The attempt that failed.
        attempt: u32,
        /// Why.
        reason: String,
        /// How long until the next attempt.
        backoff: Duration,
    },
    /// A chunk was encoded and validated in every rung.
    ChunkDone {
        /// The worker.
        worker: usize,
        /// The chunk.
        chunk: usize,
    },
    /// The whole job's encoding progress.
    Overall {
        /// Source frames encoded (in every rung).
        frames_done: u64,
        /// Source frames to encode in this run.
        frames_total: u64,
        /// Source frames per second, over all workers.
        fps: f64,
        /// Time left for the encoding stage.
        eta: Option<Duration>,
    },
    /// A quality measurement of a rendition.
    Quality {
        /// The rung (0 is the lowest).
        rung: usize,
        /// The metric's name.
        metric: String,
        /// Its value.
        value: f64,
    },
    /// Everything is published.
    Finished,
}

/// Where events go: any `Fn(&Event)` that can be shared across workers.
pub trait Progress: Send + Sync + 'static {
    /// Receives one event.
    fn event(&self, event: &Event);
}

impl<F: Fn(&Event) + Send + Sync + 'static> Progress for F {
    fn event(&self, event: &Event) {
        self(event);
    }
}

/// Drops every event.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn event(&self, _event: &Event) {}
}
