//! The transcode pipeline: probe, ladder, plan, encode in workers, validate, merge,
//! package, measure, publish.

use crate::cancel::Cancel;
use crate::codec::RateControl;
use crate::error::{Error, Result};
use crate::job::{Job, LadderSpec, fit_ladder};
use crate::journal::{FileRecord, Journal, hex, part_path, sha256_file, sync_dir};
use crate::plan::{Chunk, ChunkPlan, Chunking, parse_scene_scores};
use crate::probe::{Source, analyse, probe_with};
use crate::progress::{Event, Progress, Stage};
use crate::publish::{LocalDir, Published, publish};
use crate::quality::{Psnr, Ssim, measure};
use crate::tools::{Tick, Tools, run};
use crate::{package, per_title};
use netflix_abr::ladder::Rendition;
use sha2::{Digest, Sha256};
use std::collections::VecDeque;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;
use tokio::time::Instant;

/// One rendition as published.
#[derive(Debug, Clone, PartialEq)]
pub struct RenditionReport {
    /// The rendition, with the codec string read from its initialization segment.
    pub rendition: Rendition,
    /// Its directory in the origin, such as `v0`.
    pub dir: String,
    /// Its segments.
    pub segments: usize,
    /// Bytes of media (initialization segment excluded).
    pub bytes: u64,
    /// Measured average bitrate (HLS `AVERAGE-BANDWIDTH`), bit/s.
    pub average_bandwidth: u64,
    /// Measured peak bitrate (HLS `BANDWIDTH`), bit/s.
    pub peak_bandwidth: u64,
    /// PSNR against the source, dB.
    pub psnr: Option<f64>,
    /// SSIM against the source.
    pub ssim: Option<f64>,
}

/// What a finished job did.
#[derive(Debug, Clone)]
pub struct Report {
    /// The probed source.
    pub source: Source,
    /// The chunk plan.
    pub plan: ChunkPlan,
    /// Every video rendition, lowest first.
    pub renditions: Vec<RenditionReport>,
    /// The audio rendition, if any.
    pub audio: Option<RenditionReport>,
    /// The per-title trial points and the hull, when the ladder was per-title.
    pub per_title: Option<per_title::Trials>,
    /// Chunks encoded by this run.
    pub chunks_encoded: usize,
    /// Chunks reused from an earlier, interrupted run.
    pub chunks_resumed: usize,
    /// Chunk attempts that failed and were retried.
    pub retries: usize,
    /// The workers used.
    pub workers: usize,
    /// What was published.
    pub published: Published,
    /// Wall time of the whole job.
    pub elapsed: Duration,
}

/// Runs jobs with one pair of ffmpeg/ffprobe binaries.
#[derive(Debug, Clone)]
pub struct Transcoder {
    tools: Tools,
}

impl Transcoder {
    /// A transcoder using `tools`.
    pub fn new(tools: Tools) -> Self {
        Self { tools }
    }

    /// The tools.
    pub fn tools(&self) -> &Tools {
        &self.tools
    }

    /// Runs `job` to the end: every rendition encoded, checked, packaged and published to
    /// `job.out`. Events go to `progress`; `cancel` stops it.
    ///
    /// # Errors
    ///
    /// Any [`Error`]; after a failure or a cancel the work directory keeps every finished
    /// chunk, and running the same job again resumes.
    pub async fn run(&self, job: &Job, progress: impl Progress, cancel: &Cancel) -> Result<Report> {
        let progress: Arc<dyn Progress> = Arc::new(progress);
        let inner = Cancel::new();
        let forward = {
            let (user, inner) = (cancel.clone(), inner.clone());
            tokio::spawn(async move {
                tokio::select! {
                    () = user.cancelled() => inner.cancel(),
                    () = inner.cancelled() => {}
                }
            })
        };
        let work = job.resolved_work_dir();
        let result = self.run_inner(job, progress, &inner, &work).await;
        inner.cancel();
        let _ = forward.await;
        if result.is_err() {
            cleanup_temporary(&work);
        }
        result
    }

    async fn run_inner(
        &self,
        job: &Job,
        progress: Arc<dyn Progress>,
        cancel: &Cancel,
        work: &Path,
    ) -> Result<Report> {
        let started = Instant::now();
        let tools = &self.tools;
        if !(job.segment_seconds > 0.0 && job.segment_seconds.is_finite()) {
            return Err(Error::Config(format!(
                "segment length {} s is not positive",
                job.segment_seconds
            )));
        }
        // 1. Probe, while ffmpeg is asked for its encoders and version (the journal's key):
        // three short processes at once rather than one after another.
        progress.event(&Event::Stage(Stage::Probe));
        let (has_encoder, source, version) = tokio::join!(
            tools.has_encoder(job.encoder.codec.encoder()),
            probe_with(tools, &job.input, cancel),
            tools.version(),
        );
        if !has_encoder? {
            return Err(Error::Config(format!(
                "this ffmpeg has no {} encoder",
                job.encoder.codec.encoder()
            )));
        }
        let source = source?;
        if source.variable_frame_rate && !job.allow_vfr {
            return Err(Error::Unsupported {
                path: job.input.clone(),
                reason: "variable frame rate (allow it with Job::allow_vfr)".into(),
            });
        }
        if source.interlaced() && !job.allow_interlaced {
            return Err(Error::Unsupported {
                path: job.input.clone(),
                reason: format!(
                    "interlaced ({}) (allow it, with deinterlacing, with Job::allow_interlaced)",
                    source.video.field_order
                ),
            });
        }
        progress.event(&Event::Probed {
            frames: source.frames(),
            duration: source.duration,
            resolution: (source.video.width, source.video.height),
            fps: source.video.frame_rate.as_f64(),
        });
        tracing::info!(
            frames = source.frames(),
            fps = source.video.frame_rate.as_f64(),
            width = source.video.width,
            height = source.video.height,
            keyframes = source.keyframes.len(),
            open_gop = source.open_gop,
            "probed source"
        );
        std::fs::create_dir_all(work).map_err(|e| Error::io("creating", work, e))?;
        let _lock = WorkLock::acquire(work)?;

        // 2. Ladder.
        let workers = job
            .workers
            .unwrap_or_else(|| auto_workers(job.encoder.threads, &source));
        let mut encoder = job.encoder.clone();
        let (ladder, trials) = match &job.ladder {
            LadderSpec::Apple => (netflix_abr::ladder::Ladder::apple_hls(), None),
            LadderSpec::Envivio => (netflix_abr::ladder::Ladder::envivio(), None),
            LadderSpec::Custom(l) => (l.clone(), None),
            LadderSpec::PerTitle(cfg) => {
                progress.event(&Event::Stage(Stage::PerTitle));
                let t = per_title::trials(
                    tools,
                    &source,
                    cfg,
                    &job.encoder,
                    job.segment_seconds,
                    workers,
                    &work.join("per-title"),
                    cancel,
                )
                .await?;
                // Rungs are encoded at the hull's bitrates.
                encoder.rate_control = RateControl::Bitrate {
                    cap: 1.5,
                    buffer_seconds: 2.0,
                };
                (t.ladder.clone(), Some(t))
            }
        };
        let rungs = fit_ladder(&ladder, (source.video.width, source.video.height));

        // 3. Plan.
        let chunking = job.chunking;
        let plan = match chunking {
            None => ChunkPlan::guided(
                source.frames(),
                source.video.frame_rate,
                job.segment_seconds,
                MIN_AUTO_CHUNK_SECONDS,
                MAX_AUTO_CHUNK_SECONDS,
                workers,
            )?,
            Some(Chunking::Fixed { seconds }) => ChunkPlan::fixed(
                source.frames(),
                source.video.frame_rate,
                job.segment_seconds,
                seconds,
            )?,
            Some(Chunking::Scenes {
                threshold,
                min_seconds,
                max_seconds,
            }) => {
                progress.event(&Event::Stage(Stage::SceneDetection));
                let scores = scene_scores(tools, &source, cancel).await?;
                ChunkPlan::scenes(
                    &scores,
                    source.video.frame_rate,
                    job.segment_seconds,
                    threshold,
                    min_seconds,
                    max_seconds,
                )?
            }
        };

        // 4. Journal.
        let key = job_key(job, &encoder, &rungs, &plan, &version?)?;
        let chunk_dir = work.join("chunks");
        std::fs::create_dir_all(&chunk_dir).map_err(|e| Error::io("creating", &chunk_dir, e))?;
        let (mut journal, resumed_journal) = Journal::load(work, &key)?;
        if !resumed_journal {
            // Anything in the work directory belongs to other settings.
            let _ = std::fs::remove_dir_all(&chunk_dir);
            std::fs::create_dir_all(&chunk_dir)
                .map_err(|e| Error::io("creating", &chunk_dir, e))?;
            journal.save(work)?;
        }
        let done = journal.verified(work);
        let todo: Vec<Chunk> = plan
            .chunks()
            .iter()
            .filter(|c| !done.contains(&c.index))
            .cloned()
            .collect();
        progress.event(&Event::Planned {
            chunks: plan.chunks().len(),
            resumed: done.len(),
            rungs: rungs.len(),
            workers,
        });
        tracing::info!(
            chunks = plan.chunks().len(),
            resumed = done.len(),
            rungs = rungs.len(),
            workers,
            "planned"
        );

        // The audio rendition is encoded once, beside the video chunks.
        let staging = work.join("package");
        let _ = std::fs::remove_dir_all(&staging);
        std::fs::create_dir_all(&staging).map_err(|e| Error::io("creating", &staging, e))?;
        let audio_task = match (&source.audio, job.audio_bitrate) {
            (Some(_), Some(bitrate)) => {
                progress.event(&Event::Stage(Stage::Audio));
                let (tools, source, staging, plan, cancel) = (
                    tools.clone(),
                    source.clone(),
                    staging.clone(),
                    plan.clone(),
                    cancel.clone(),
                );
                Some(tokio::spawn(async move {
                    package::audio(&tools, &source, &staging, bitrate, &plan, &cancel).await
                }))
            }
            _ => None,
        };

        // 5. Encode.
        progress.event(&Event::Stage(Stage::Encode));
        let shared = Arc::new(Shared {
            tools: tools.clone(),
            input: job.input.clone(),
            source: source.clone(),
            rungs: rungs.clone(),
            encoder: encoder.clone(),
            deinterlace: source.interlaced(),
            work: work.to_path_buf(),
            journal: tokio::sync::Mutex::new(journal),
            queue: Mutex::new(longest_first(todo.clone())),
            progress: progress.clone(),
            cancel: cancel.clone(),
            retries: job.retries,
            backoff: job.backoff,
            hook: job.hook.clone(),
            frames_total: todo.iter().map(|c| c.frames).sum(),
            frames_done: AtomicU64::new(0),
            in_flight: Mutex::new(vec![0; workers]),
            failed_attempts: AtomicUsize::new(0),
            started: Instant::now(),
        });
        let mut set = tokio::task::JoinSet::new();
        for w in 0..workers.min(todo.len().max(1)) {
            let shared = shared.clone();
            set.spawn(async move { shared.worker(w).await });
        }
        let mut first_error: Option<Error> = None;
        while let Some(r) = set.join_next().await {
            let r =
                r.unwrap_or_else(|e| Err(Error::step("encode", format!("worker panicked: {e}"))));
            if let Err(e) = r {
                cancel.cancel();
                match (&first_error, &e) {
                    (None, _) | (Some(Error::Cancelled), _) => first_error = Some(e),
                    _ => {}
                }
            }
        }
        let audio = match audio_task {
            Some(t) if first_error.is_none() => {
                Some(t.await.map_err(|e| Error::step("audio", e.to_string()))??)
            }
            Some(t) => {
                // The failure cancelled it: wait for it to kill and reap its ffmpeg.
                let _ = t.await;
                None
            }
            None => None,
        };
        if let Some(e) = first_error {
            return Err(e);
        }
        let retries = shared.failed_attempts.load(Ordering::Relaxed);

        // 6-8. Merge, audio, package.
        let packaged = package::package_all(
            tools, &source, &plan, &rungs, work, &staging, audio, workers, &progress, cancel,
        )
        .await?;

        // 9. Quality.
        let mut renditions = packaged.renditions;
        if job.quality {
            progress.event(&Event::Stage(Stage::Quality));
            let size = (source.video.width, source.video.height);
            let mut set = tokio::task::JoinSet::new();
            let sem = Arc::new(tokio::sync::Semaphore::new(workers));
            for (i, merged) in packaged.merged.iter().enumerate() {
                let (tools, input, merged, cancel, sem) = (
                    tools.clone(),
                    job.input.clone(),
                    merged.clone(),
                    cancel.clone(),
                    sem.clone(),
                );
                set.spawn(async move {
                    let _permit = sem.acquire_owned().await;
                    let psnr = measure(&tools, &Psnr, &input, &merged, size, &cancel).await?;
                    let ssim = measure(&tools, &Ssim, &input, &merged, size, &cancel).await?;
                    Ok::<_, Error>((i, psnr, ssim))
                });
            }
            while let Some(r) = set.join_next().await {
                let (i, psnr, ssim) = r.map_err(|e| Error::step("quality", e.to_string()))??;
                renditions[i].psnr = Some(psnr);
                renditions[i].ssim = Some(ssim);
                progress.event(&Event::Quality {
                    rung: i,
                    metric: "psnr".into(),
                    value: psnr,
                });
                progress.event(&Event::Quality {
                    rung: i,
                    metric: "ssim".into(),
                    value: ssim,
                });
            }
        }

        // 10. Publish.
        progress.event(&Event::Stage(Stage::Publish));
        let store = LocalDir::new(&job.out);
        let published = publish(&staging, &store).await?;
        progress.event(&Event::Finished);
        if !job.keep_work {
            let _ = std::fs::remove_dir_all(work);
        }
        Ok(Report {
            source,
            plan,
            renditions,
            audio: packaged.audio,
            per_title: trials,
            chunks_encoded: todo.len(),
            chunks_resumed: done.len(),
            retries,
            workers,
            published,
            elapsed: started.elapsed(),
        })
    }
}

/// The worker count: one per `threads` cores, no more than memory allows (an estimate of
/// a chunk encode's frame buffers and lookahead), at least one.
fn auto_workers(threads: u32, source: &Source) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let by_cores = (cores / threads.max(1) as usize).max(1);
    let frame = u64::from(source.video.width) * u64::from(source.video.height) * 3 / 2;
    // Decoder, filter graph and each rung's encoder hold up to ~100 frames; rungs are
    // smaller than the source, so about twice the source's frames in all.
    let per_worker = frame * 200 + (64 << 20);
    let by_memory = available_memory().map_or(by_cores, |m| ((m / 2) / per_worker).max(1) as usize);
    by_cores.min(by_memory)
}

fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The shortest chunk the automatic (guided) plan makes: shorter chunks restart rate
/// control so often that size and quality drift from a whole-file encode.
const MIN_AUTO_CHUNK_SECONDS: f64 = 4.0;
/// The longest chunk the automatic plan makes.
const MAX_AUTO_CHUNK_SECONDS: f64 = 30.0;

/// A chunk waiting for a worker: its attempt number and, for a retry, when it may start.
struct Queued {
    chunk: Chunk,
    attempt: u32,
    not_before: Option<Instant>,
}

fn longest_first(mut chunks: Vec<Chunk>) -> VecDeque<Queued> {
    chunks.sort_by(|a, b| b.frames.cmp(&a.frames).then(a.index.cmp(&b.index)));
    chunks
        .into_iter()
        .map(|chunk| Queued {
            chunk,
            attempt: 1,
            not_before: None,
        })
        .collect()
}

fn job_key(
    job: &Job,
    encoder: &crate::codec::Encoder,
    rungs: &[Rendition],
    plan: &ChunkPlan,
    ffmpeg_version: &str,
) -> Result<String> {
    let mut h = Sha256::new();
    input_fingerprint(&job.input, &mut h)?;
    let params = serde_json::json!({
        "crate": env!("CARGO_PKG_VERSION"),
        "ffmpeg": ffmpeg_version,
        "encoder": encoder,
        "rungs": rungs.iter().map(|r| (r.width, r.height, r.bitrate)).collect::<Vec<_>>(),
        "chunks": plan.chunks().iter().map(|c| (c.start_frame, c.frames, c.segment_starts.clone())).collect::<Vec<_>>(),
        "deinterlace": job.allow_interlaced,
    });
    h.update(params.to_string().as_bytes());
    Ok(hex(&h.finalize()))
}

/// One run per work directory: a `lock` file holding the owner's pid. A lock left by a
/// process that no longer exists (a crash, `kill -9`) is taken over.
struct WorkLock(PathBuf);

impl WorkLock {
    fn acquire(work: &Path) -> Result<Self> {
        let path = work.join("lock");
        for _ in 0..2 {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut f) => {
                    use std::io::Write as _;
                    let _ = write!(f, "{}", std::process::id());
                    return Ok(Self(path));
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let owner = std::fs::read_to_string(&path).unwrap_or_default();
                    let alive = owner.trim().parse::<u32>().is_ok_and(|pid| {
                        pid != std::process::id() && Path::new(&format!("/proc/{pid}")).exists()
                    });
                    if alive {
                        return Err(Error::Config(format!(
                            "work directory {} is in use by process {}",
                            work.display(),
                            owner.trim()
                        )));
                    }
                    tracing::info!(
                        owner = owner.trim(),
                        "taking over a stale work-directory lock"
                    );
                    let _ = std::fs::remove_file(&path);
                }
                Err(e) => return Err(Error::io("locking", &path, e)),
            }
        }
        Err(Error::Config(format!("cannot lock {}", path.display())))
    }
}

impl Drop for WorkLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Feeds the input's identity into `h`: its size and modification time, and its bytes in
/// full up to 256 MiB, beyond that 64 sampled MiB (the first and last MiB and 62 spread
/// between), so that a resume never waits minutes to hash a large mezzanine.
fn input_fingerprint(path: &Path, h: &mut Sha256) -> Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    const FULL: u64 = 256 << 20;
    const BLOCK: u64 = 1 << 20;
    const BLOCKS: u64 = 64;
    let io = |e| Error::io("hashing", path, e);
    let mut f = std::fs::File::open(path).map_err(|e| Error::io("opening", path, e))?;
    let meta = f.metadata().map_err(io)?;
    let len = meta.len();
    h.update(len.to_le_bytes());
    if let Ok(m) = meta.modified() {
        if let Ok(d) = m.duration_since(std::time::UNIX_EPOCH) {
            h.update(d.as_nanos().to_le_bytes());
        }
    }
    if len <= FULL {
        std::io::copy(&mut f, h).map_err(io)?;
        return Ok(());
    }
    let mut buf = vec![0u8; BLOCK as usize];
    for i in 0..BLOCKS {
        let at = (len - BLOCK) * i / (BLOCKS - 1);
        f.seek(SeekFrom::Start(at)).map_err(io)?;
        f.read_exact(&mut buf).map_err(io)?;
        h.update(&buf);
    }
    Ok(())
}

/// Removes `.part` files and staging after a failure or a cancel; finished chunks and the
/// journal stay for a resume.
fn cleanup_temporary(work: &Path) {
    let _ = std::fs::remove_dir_all(work.join("package"));
    let _ = std::fs::remove_dir_all(work.join("merged"));
    let _ = std::fs::remove_dir_all(work.join("per-title"));
    fn walk(dir: &Path) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p);
            } else if p.extension().is_some_and(|x| x == "part") {
                let _ = std::fs::remove_file(&p);
            }
        }
    }
    walk(work);
}

/// Scene scores for every frame (0 to 1), from ffmpeg's `select` scene detection on a
/// downscaled copy.
async fn scene_scores(tools: &Tools, source: &Source, cancel: &Cancel) -> Result<Vec<f64>> {
    let args: Vec<OsString> = vec![
        "-nostdin".into(),
        "-v".into(),
        "error".into(),
        "-i".into(),
        source.path.clone().into(),
        "-map".into(),
        "0:v:0".into(),
        "-vf".into(),
        "scale=160:-2,select='gte(scene,0)',metadata=print:file=-".into(),
        "-an".into(),
        "-f".into(),
        "null".into(),
        "-".into(),
    ];
    let out = tools.run_ffmpeg("scene detection", args, cancel).await?;
    Ok(parse_scene_scores(
        &String::from_utf8_lossy(&out.stdout),
        source.frames(),
    ))
}

struct Shared {
    tools: Tools,
    input: PathBuf,
    source: Source,
    rungs: Vec<Rendition>,
    encoder: crate::codec::Encoder,
    deinterlace: bool,
    work: PathBuf,
    journal: tokio::sync::Mutex<Journal>,
    queue: Mutex<VecDeque<Queued>>,
    progress: Arc<dyn Progress>,
    cancel: Cancel,
    retries: u32,
    backoff: Duration,
    hook: Option<Arc<dyn crate::job::ChunkHook>>,
    frames_total: u64,
    frames_done: AtomicU64,
    /// Frames encoded so far by each worker's current chunk (one entry per worker).
    in_flight: Mutex<Vec<u64>>,
    failed_attempts: AtomicUsize,
    started: Instant,
}

impl Shared {
    /// Takes chunks until none is left. Each encode's validation and commit run beside the
    /// worker's next encode (a validation is about a twentieth of an encode's work, and
    /// waiting for it would leave a core idle at the tail); a chunk that fails either is
    /// queued again, after a backoff, until its attempts run out. The worker returns once
    /// the queue is empty and its own validations are done, so a chunk they queue again is
    /// never orphaned.
    async fn worker(self: Arc<Self>, w: usize) -> Result<()> {
        let mut checks: tokio::task::JoinSet<(Queued, Result<()>)> = tokio::task::JoinSet::new();
        loop {
            while let Some(done) = checks.try_join_next() {
                self.checked(done)?;
            }
            let next = self.queue.lock().expect("queue lock").pop_front();
            let Some(item) = next else {
                match checks.join_next().await {
                    Some(done) => {
                        self.checked(done)?;
                        continue;
                    }
                    None => return Ok(()),
                }
            };
            if let Some(at) = item.not_before {
                tokio::select! {
                    () = tokio::time::sleep_until(at) => {}
                    () = self.cancel.cancelled() => return Err(Error::Cancelled),
                }
            }
            if self.cancel.is_cancelled() {
                return Err(Error::Cancelled);
            }
            self.progress.event(&Event::ChunkStarted {
                worker: w,
                chunk: item.chunk.index,
                frames: item.chunk.frames,
                attempt: item.attempt,
            });
            let encoded = self.encode(w, &item.chunk, item.attempt).await;
            match encoded {
                Ok(parts) => {
                    // Its frames count as done from here (taken back if it fails its check).
                    self.in_flight.lock().expect("lock")[w] = 0;
                    self.frames_done
                        .fetch_add(item.chunk.frames, Ordering::Relaxed);
                    let shared = self.clone();
                    checks.spawn(async move {
                        let r = shared.check_and_commit(w, &item.chunk, parts).await;
                        (item, r)
                    });
                }
                Err(e) => {
                    self.in_flight.lock().expect("lock")[w] = 0;
                    self.failed(item, e)?;
                }
            }
        }
    }

    fn checked(&self, done: Result<(Queued, Result<()>), tokio::task::JoinError>) -> Result<()> {
        let (item, r) =
            done.map_err(|e| Error::step("validate", format!("validation panicked: {e}")))?;
        match r {
            Ok(()) => Ok(()),
            Err(e) => {
                self.frames_done
                    .fetch_sub(item.chunk.frames, Ordering::Relaxed);
                self.failed(item, e)
            }
        }
    }

    /// A failed attempt: queued again (first, after a backoff) or, with no attempts left,
    /// the chunk's typed error.
    fn failed(&self, item: Queued, e: Error) -> Result<()> {
        if matches!(e, Error::Cancelled) {
            return Err(e);
        }
        self.failed_attempts.fetch_add(1, Ordering::Relaxed);
        let (reason, tail) = match e {
            Error::Step {
                reason,
                stderr_tail,
                ..
            } => (reason, stderr_tail),
            other => (other.to_string(), String::new()),
        };
        let attempts = self.retries + 1;
        let attempt = item.attempt;
        let chunk = item.chunk;
        if attempt >= attempts {
            return Err(Error::Chunk {
                chunk: chunk.index,
                attempts,
                reason,
                stderr_tail: tail,
            });
        }
        let backoff = self.backoff * 2u32.saturating_pow(attempt - 1);
        tracing::warn!(chunk = chunk.index, attempt, %reason, ?backoff, "chunk failed; retrying");
        self.progress.event(&Event::ChunkRetry {
            chunk: chunk.index,
            attempt,
            reason,
            backoff,
        });
        self.queue.lock().expect("queue lock").push_front(Queued {
            chunk,
            attempt: attempt + 1,
            not_before: Some(Instant::now() + backoff),
        });
        Ok(())
    }

    fn chunk_files(&self, chunk: &Chunk) -> (PathBuf, Vec<PathBuf>) {
        let dir = self
            .work
            .join("chunks")
            .join(format!("c{:05}", chunk.index));
        let files = (0..self.rungs.len())
            .map(|r| dir.join(format!("r{r}.mp4")))
            .collect();
        (dir, files)
    }

    /// One attempt: one ffmpeg process decodes the chunk once and encodes every rung.
    /// Returns the `.part` files.
    async fn encode(&self, w: usize, chunk: &Chunk, attempt: u32) -> Result<Vec<PathBuf>> {
        let (dir, files) = self.chunk_files(chunk);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io("creating", &dir, e))?;
        let parts: Vec<PathBuf> = files.iter().map(|f| part_path(f)).collect();
        for p in &parts {
            // A process orphaned by a crash may still hold the old file: unlink, never reuse.
            let _ = std::fs::remove_file(p);
        }
        let args = chunk_args(
            &self.input,
            &self.source,
            chunk,
            &self.rungs,
            &self.encoder,
            self.deinterlace,
            &parts,
        );
        let t0 = Instant::now();
        let frames = chunk.frames;
        let mut on_tick = |t: Tick| {
            let done = t.frame.min(frames);
            self.in_flight.lock().expect("lock")[w] = done;
            let secs = t0.elapsed().as_secs_f64();
            let fps = if secs > 0.0 { done as f64 / secs } else { 0.0 };
            let eta = (fps > 0.0).then(|| Duration::from_secs_f64((frames - done) as f64 / fps));
            self.progress.event(&Event::ChunkProgress {
                worker: w,
                chunk: chunk.index,
                frames_done: done,
                frames,
                fps,
                eta,
            });
            self.overall();
        };
        let out = run(self.tools.ffmpeg(), args, &self.cancel, Some(&mut on_tick)).await?;
        if !out.status.success() {
            return Err(Error::Step {
                step: "encode",
                reason: format!("ffmpeg exited with {}", out.status),
                stderr_tail: out.stderr_tail,
            });
        }
        if let Some(hook) = &self.hook {
            hook.after_encode(chunk.index, attempt, &parts);
        }
        Ok(parts)
    }

    /// Validates one attempt's `.part` files and commits them.
    async fn check_and_commit(&self, w: usize, chunk: &Chunk, parts: Vec<PathBuf>) -> Result<()> {
        // At the tail, with no chunk left to start, cores come free one by one as the last
        // encodes end, and one decoding process could not take them up: the rungs are
        // decoded by as many processes as there are workers (one thread each, as frame
        // threads cost a fifth more CPU), which share the cores with the encodes still
        // running until they end, so that no core sits idle while work is left.
        let processes = if self.queue.lock().expect("queue lock").is_empty() {
            self.in_flight.lock().expect("lock").len()
        } else {
            1
        };
        validate(
            &self.tools,
            &parts,
            chunk,
            &self.rungs,
            &self.source,
            processes,
            &self.cancel,
        )
        .await?;
        self.commit(w, chunk, parts).await
    }

    /// Renames the validated `.part` files into place and records the chunk in the journal.
    async fn commit(&self, w: usize, chunk: &Chunk, parts: Vec<PathBuf>) -> Result<()> {
        let (dir, files) = self.chunk_files(chunk);
        let mut records = Vec::with_capacity(files.len());
        for (part, file) in parts.iter().zip(&files) {
            std::fs::File::open(part)
                .and_then(|f| f.sync_all())
                .map_err(|e| Error::io("syncing", part, e))?;
            std::fs::rename(part, file).map_err(|e| Error::io("renaming", part, e))?;
            let size = std::fs::metadata(file)
                .map_err(|e| Error::io("reading", file, e))?
                .len();
            let sha256 = sha256_file(file).map_err(|e| Error::io("hashing", file, e))?;
            let rel = file
                .strip_prefix(&self.work)
                .unwrap_or(file)
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            records.push(FileRecord {
                path: rel,
                size,
                sha256,
            });
        }
        sync_dir(&dir)?;
        {
            let mut j = self.journal.lock().await;
            j.chunks.insert(chunk.index, records);
            j.save(&self.work)?;
        }
        self.progress.event(&Event::ChunkDone {
            worker: w,
            chunk: chunk.index,
        });
        self.overall();
        Ok(())
    }

    fn overall(&self) {
        let in_flight: u64 = self.in_flight.lock().expect("lock").iter().sum();
        let done = (self.frames_done.load(Ordering::Relaxed) + in_flight).min(self.frames_total);
        let secs = self.started.elapsed().as_secs_f64();
        let fps = if secs > 0.0 { done as f64 / secs } else { 0.0 };
        let eta = (fps > 0.0)
            .then(|| Duration::from_secs_f64(self.frames_total.saturating_sub(done) as f64 / fps));
        self.progress.event(&Event::Overall {
            frames_done: done,
            frames_total: self.frames_total,
            fps,
            eta,
        });
    }
}

/// The mp4 track timescale that makes every frame duration a whole number of ticks.
pub(crate) fn timescale(fps: netflix_abr::ladder::FrameRate) -> u32 {
    if fps.num < 1000 {
        fps.num * 512
    } else {
        fps.num
    }
}

/// ffmpeg's arguments for one chunk: seek to half a frame before its first frame, take
/// exactly its frames, split once and scale and encode each rung.
pub(crate) fn chunk_args(
    input: &Path,
    source: &Source,
    chunk: &Chunk,
    rungs: &[Rendition],
    encoder: &crate::codec::Encoder,
    deinterlace: bool,
    parts: &[PathBuf],
) -> Vec<OsString> {
    let mut a: Vec<OsString> = Vec::new();
    let mut s = |x: &str| a.push(x.into());
    for x in [
        "-nostdin",
        "-hide_banner",
        "-v",
        "error",
        "-y",
        "-progress",
        "pipe:1",
        "-nostats",
        "-threads",
        "1",
    ] {
        s(x);
    }
    if chunk.start_frame > 0 {
        // -ss counts from the container's start. On a source keyframe, seek right to it
        // (rounded up to the microsecond, which ffmpeg rounds back to the frame's own
        // timestamp), so decoding starts there; elsewhere, half a frame early, so the
        // frame before is dropped whatever the rounding.
        let at = source.video_offset + source.time_of(chunk.start_frame);
        let t = if source.keyframes.binary_search(&chunk.start_frame).is_ok() {
            (at * 1e6).ceil() / 1e6
        } else {
            (at - 0.5 / source.video.frame_rate.as_f64()).max(0.0)
        };
        s("-ss");
        s(&format!("{t:.6}"));
    }
    a.push("-i".into());
    a.push(input.into());
    let mut graph = format!("[0:v:0]trim=end_frame={},setpts=PTS-STARTPTS", chunk.frames);
    if deinterlace {
        graph.push_str(",bwdif=mode=send_frame");
    }
    graph.push_str(&format!(",split={}", rungs.len()));
    for i in 0..rungs.len() {
        graph.push_str(&format!("[s{i}]"));
    }
    for (i, r) in rungs.iter().enumerate() {
        graph.push_str(&format!(
            ";[s{i}]scale={}:{}:flags=bicubic,setsar=1[o{i}]",
            r.width, r.height
        ));
    }
    // The filters get as many threads as each encoder: left to ffmpeg, every scale filter
    // would start a slice thread per core, which on a core another worker already keeps
    // busy only adds wake-ups (about an eighth more CPU for decoding and scaling).
    a.push("-filter_complex_threads".into());
    a.push(encoder.threads.to_string().into());
    a.push("-filter_complex".into());
    a.push(graph.into());
    let gop = chunk
        .segment_starts
        .get(1)
        .copied()
        .unwrap_or(chunk.frames)
        .max(1);
    let ts = timescale(source.video.frame_rate).to_string();
    for (i, (r, part)) in rungs.iter().zip(parts).enumerate() {
        for x in [
            "-map".to_string(),
            format!("[o{i}]"),
            "-an".into(),
            "-sn".into(),
            "-dn".into(),
        ] {
            a.push(x.into());
        }
        for x in encoder.args(r.bitrate, gop) {
            a.push(x.into());
        }
        for x in [
            "-fps_mode",
            "passthrough",
            "-video_track_timescale",
            &ts,
            "-fflags",
            "+bitexact",
            "-map_metadata",
            "-1",
            "-map_chapters",
            "-1",
            "-f",
            "mp4",
        ] {
            a.push(x.into());
        }
        a.push(part.into());
    }
    a
}

/// Checks one chunk's outputs (one per rung): every file decodes without an error, and each
/// one's sample table, read here from its `moov`, has exactly the chunk's frames, the
/// rung's size, the chunk's duration, a keyframe first that no frame is shown before, and
/// keyframes exactly where the plan says. The files are decoded by up to `processes`
/// single-threaded ffmpeg processes at once, the rungs shared out by their pixels.
pub(crate) async fn validate(
    tools: &Tools,
    files: &[PathBuf],
    chunk: &Chunk,
    rungs: &[Rendition],
    source: &Source,
    processes: usize,
    cancel: &Cancel,
) -> Result<()> {
    let fail = |reason: String, tail: &str| Error::Step {
        step: "validate",
        reason,
        stderr_tail: tail.to_string(),
    };
    // Every file is decoded, each weighed by its rung's pixels.
    let pixels: Vec<u64> = (0..files.len())
        .map(|i| {
            rungs
                .get(i)
                .map_or(1, |r| u64::from(r.width) * u64::from(r.height))
        })
        .collect();
    let groups = share_out(&pixels, processes);
    let decodes = groups.iter().map(|group| {
        let mut args: Vec<OsString> = ["-nostdin", "-hide_banner", "-v", "error"]
            .iter()
            .map(OsString::from)
            .collect();
        for &r in group {
            // Every frame is entropy-decoded and reconstructed; only the in-loop
            // deblocking filter, which cannot fail, is skipped (a third of H.264's decode
            // time).
            for a in ["-threads", "1", "-skip_loop_filter", "all", "-i"] {
                args.push(a.into());
            }
            args.push(files[r].as_os_str().to_owned());
        }
        for i in 0..group.len() {
            for a in [
                "-map".to_string(),
                format!("{i}:v:0"),
                "-f".into(),
                "null".into(),
                "-".into(),
            ] {
                args.push(a.into());
            }
        }
        run(tools.ffmpeg(), args, cancel, None)
    });
    let outs = join_all(decodes.collect())
        .await
        .into_iter()
        .collect::<Result<Vec<_>>>()?;
    for (r, (file, rung)) in files.iter().zip(rungs).enumerate() {
        check_track(file, chunk, rung, source)
            .map_err(|reason| fail(format!("rung {r}: {reason}"), ""))?;
    }
    for (out, group) in outs.into_iter().zip(&groups) {
        if !out.status.success() || !out.stderr_empty {
            return Err(fail(
                format!(
                    "the chunk does not decode cleanly (rungs {group:?}: {})",
                    out.status
                ),
                &out.stderr_tail,
            ));
        }
    }
    Ok(())
}

/// Shares items of the given weights out into at most `n` groups (at least one), the
/// heaviest first, each to the lightest group so far; groups list item indices in order.
fn share_out(weights: &[u64], n: usize) -> Vec<Vec<usize>> {
    let n = n.clamp(1, weights.len().max(1));
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(weights[i]));
    let mut groups: Vec<(u64, Vec<usize>)> = vec![(0, Vec::new()); n];
    for i in order {
        if let Some(g) = groups.iter_mut().min_by_key(|(load, _)| *load) {
            g.0 += weights[i];
            g.1.push(i);
        }
    }
    groups
        .into_iter()
        .filter(|(_, g)| !g.is_empty())
        .map(|(_, mut g)| {
            g.sort_unstable();
            g
        })
        .collect()
}

/// Runs futures concurrently on the current task and returns their outputs in order.
async fn join_all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, out) in futures.iter_mut().zip(outs.iter_mut()) {
            if out.is_none() {
                match f.as_mut().poll(cx) {
                    Poll::Ready(v) => *out = Some(v),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    outs.into_iter().flatten().collect()
}

fn check_track(
    file: &Path,
    chunk: &Chunk,
    rung: &Rendition,
    source: &Source,
) -> Result<(), String> {
    let fps = source.video.frame_rate.as_f64();
    let bytes = std::fs::read(file).map_err(|e| format!("cannot read: {e}"))?;
    let t = crate::mp4::track(&bytes).ok_or("no complete MP4 sample table (truncated?)")?;
    if t.size != (rung.width, rung.height) {
        return Err(format!(
            "size {}x{}, expected {}x{}",
            t.size.0, t.size.1, rung.width, rung.height
        ));
    }
    if t.packets.len() as u64 != chunk.frames {
        return Err(format!(
            "{} frames, expected {}",
            t.packets.len(),
            chunk.frames
        ));
    }
    if !t.packets.first().is_some_and(|p| p.key) {
        return Err("the first frame is not a keyframe".into());
    }
    let a = analyse(&t.packets);
    if a.open_gop {
        return Err("a frame is shown before its GOP's keyframe (open GOP)".into());
    }
    if a.keyframes != chunk.segment_starts {
        return Err(format!(
            "keyframes at {:?}, expected {:?}",
            a.keyframes, chunk.segment_starts
        ));
    }
    let tb = 1.0 / f64::from(t.timescale.max(1));
    if let (Some(first), Some(last)) = (a.sorted_pts.first(), a.sorted_pts.last()) {
        // First to last frame, against the same frames in the source (exact for constant
        // frame rates; variable ones keep their timestamps).
        let span = (last - first) as f64 * tb;
        let expected = source.time_of(chunk.end_frame() - 1) - source.time_of(chunk.start_frame);
        if (span - expected).abs() > 0.5 / fps {
            return Err(format!("lasts {span:.4} s, expected {expected:.4} s"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{join_all, share_out};

    #[test]
    fn rungs_are_shared_out_heaviest_first_to_the_lightest_group() {
        // A 1080p, 720p, 540p and 360p ladder's pixels.
        let ladder = [2_073_600, 921_600, 518_400, 230_400];
        assert_eq!(share_out(&ladder, 1), vec![vec![0, 1, 2, 3]]);
        assert_eq!(share_out(&ladder, 2), vec![vec![0], vec![1, 2, 3]]);
        assert_eq!(share_out(&ladder, 3), vec![vec![0], vec![1], vec![2, 3]]);
        // More processes than files: one file each, no empty group.
        assert_eq!(
            share_out(&ladder, 8),
            vec![vec![0], vec![1], vec![2], vec![3]]
        );
        // Zero processes still gives one; no files gives no group.
        assert_eq!(share_out(&ladder, 0), vec![vec![0, 1, 2, 3]]);
        assert!(share_out(&[], 2).is_empty());
        // Every file lands in exactly one group, whatever the weights.
        let mut all: Vec<usize> = share_out(&[5, 5, 5, 5, 5], 3).concat();
        all.sort_unstable();
        assert_eq!(all, vec![0, 1, 2, 3, 4]);
    }

    #[tokio::test]
    async fn join_all_keeps_the_order_of_its_futures() {
        let slow_first = [30u64, 0, 10].map(|ms| async move {
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
            ms
        });
        assert_eq!(join_all(slow_first.into()).await, vec![30, 0, 10]);
    }
}
