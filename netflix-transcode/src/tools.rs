//! Finding ffmpeg and ffprobe, and running them as child processes.
//!
//! Every child is started with `kill_on_drop`, with stdin closed, and (on Linux) with
//! `PR_SET_PDEATHSIG` set to `SIGKILL`, so that it dies with the process that started it
//! even when that process is killed with `kill -9`. Cancelling kills the child and waits
//! for it, so no process outlives a cancelled job.

use crate::cancel::Cancel;
use crate::error::{Error, Result};
use std::collections::VecDeque;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::Command;

/// How many lines of stderr are kept for error messages.
const STDERR_TAIL_LINES: usize = 20;

/// Where ffmpeg and ffprobe are.
///
/// ```no_run
/// # async fn f() -> netflix_transcode::Result<()> {
/// let tools = netflix_transcode::Tools::from_path()?;
/// println!("{}", tools.version().await?);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Tools {
    ffmpeg: PathBuf,
    ffprobe: PathBuf,
}

impl Tools {
    /// Finds `ffmpeg` and `ffprobe` on `PATH`.
    ///
    /// # Errors
    ///
    /// [`Error::ToolMissing`] naming the missing binary and the setup command.
    pub fn from_path() -> Result<Self> {
        Ok(Self {
            ffmpeg: which("ffmpeg")?,
            ffprobe: which("ffprobe")?,
        })
    }

    /// Uses the given binaries.
    ///
    /// # Errors
    ///
    /// [`Error::ToolMissing`] when either is not an existing file.
    pub fn new(ffmpeg: impl Into<PathBuf>, ffprobe: impl Into<PathBuf>) -> Result<Self> {
        let (ffmpeg, ffprobe) = (ffmpeg.into(), ffprobe.into());
        for (tool, path) in [("ffmpeg", &ffmpeg), ("ffprobe", &ffprobe)] {
            if !path.is_file() {
                return Err(Error::ToolMissing {
                    tool,
                    looked_for: path.clone(),
                });
            }
        }
        Ok(Self { ffmpeg, ffprobe })
    }

    /// The ffmpeg binary.
    pub fn ffmpeg(&self) -> &Path {
        &self.ffmpeg
    }

    /// The ffprobe binary.
    pub fn ffprobe(&self) -> &Path {
        &self.ffprobe
    }

    /// ffmpeg's first version line, such as `ffmpeg version 5.1.6-0+deb12u1 ...`.
    ///
    /// # Errors
    ///
    /// When ffmpeg cannot be run.
    pub async fn version(&self) -> Result<String> {
        let out = self
            .run_ffmpeg("version", ["-hide_banner", "-version"], &Cancel::new())
            .await?;
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or_default()
            .to_string())
    }

    /// Whether this ffmpeg has the encoder `name` (such as `libsvtav1`).
    ///
    /// # Errors
    ///
    /// When ffmpeg cannot be run.
    pub async fn has_encoder(&self, name: &str) -> Result<bool> {
        self.lists("-encoders", name).await
    }

    /// Whether this ffmpeg has the filter `name` (such as `libvmaf`).
    ///
    /// # Errors
    ///
    /// When ffmpeg cannot be run.
    pub async fn has_filter(&self, name: &str) -> Result<bool> {
        self.lists("-filters", name).await
    }

    async fn lists(&self, flag: &str, name: &str) -> Result<bool> {
        let out = self
            .run_ffmpeg("listing", ["-hide_banner", flag], &Cancel::new())
            .await?;
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .any(|l| l.split_whitespace().nth(1) == Some(name)))
    }

    /// Runs ffmpeg, collecting stdout; fails on a non-zero exit.
    pub(crate) async fn run_ffmpeg<I, S>(
        &self,
        step: &'static str,
        args: I,
        cancel: &Cancel,
    ) -> Result<Output>
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        let out = run(&self.ffmpeg, args, cancel, None).await?;
        out.check(step)
    }

    /// Runs ffprobe, collecting stdout; fails on a non-zero exit.
    pub(crate) async fn run_ffprobe<I, S>(
        &self,
        step: &'static str,
        args: I,
        cancel: &Cancel,
    ) -> Result<Output>
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        let out = run(&self.ffprobe, args, cancel, None).await?;
        out.check(step)
    }
}

fn which(tool: &'static str) -> Result<PathBuf> {
    let missing = || Error::ToolMissing {
        tool,
        looked_for: PathBuf::from(format!("{tool} on PATH")),
    };
    let path = std::env::var_os("PATH").ok_or_else(missing)?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(tool))
        .find(|p| p.is_file())
        .ok_or_else(missing)
}

/// What a finished child left.
#[derive(Debug)]
pub(crate) struct Output {
    pub status: ExitStatus,
    /// All of stdout, unless it was consumed as progress.
    pub stdout: Vec<u8>,
    /// The last lines of stderr.
    pub stderr_tail: String,
    /// Whether stderr had anything at all.
    pub stderr_empty: bool,
}

impl Output {
    fn check(self, step: &'static str) -> Result<Self> {
        if self.status.success() {
            Ok(self)
        } else {
            Err(Error::Step {
                step,
                reason: format!("exited with {}", self.status),
                stderr_tail: self.stderr_tail,
            })
        }
    }
}

/// One block of ffmpeg's `-progress` output.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Tick {
    pub frame: u64,
    pub fps: f64,
}

/// Runs `program` with `args`. With `progress`, stdout is read as ffmpeg's `-progress`
/// key=value blocks and each block is passed on; otherwise it is collected.
pub(crate) async fn run<I, S>(
    program: &Path,
    args: I,
    cancel: &Cancel,
    mut progress: Option<&mut (dyn FnMut(Tick) + Send)>,
) -> Result<Output>
where
    I: IntoIterator<Item = S>,
    S: Into<OsString>,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let mut cmd = Command::new(program);
    cmd.args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    die_with_parent(&mut cmd);
    tracing::debug!(program = %program.display(), args = ?args, "spawning");
    let mut child = cmd.spawn().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::ToolMissing {
                tool: if program.ends_with("ffprobe") {
                    "ffprobe"
                } else {
                    "ffmpeg"
                },
                looked_for: program.to_path_buf(),
            }
        } else {
            Error::io("starting", program, e)
        }
    })?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");

    let read_out = async {
        let mut collected = Vec::new();
        match progress.as_mut() {
            Some(cb) => {
                let mut lines = BufReader::new(stdout).lines();
                let mut tick = Tick::default();
                while let Ok(Some(line)) = lines.next_line().await {
                    let Some((k, v)) = line.split_once('=') else {
                        continue;
                    };
                    match k.trim() {
                        "frame" => tick.frame = v.trim().parse().unwrap_or(tick.frame),
                        "fps" => tick.fps = v.trim().parse().unwrap_or(tick.fps),
                        "progress" => cb(tick),
                        _ => {}
                    }
                }
            }
            None => {
                let mut r = stdout;
                let _ = r.read_to_end(&mut collected).await;
            }
        }
        collected
    };
    let read_err = async {
        let mut tail: VecDeque<String> = VecDeque::new();
        let mut any = false;
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            any = true;
            if tail.len() == STDERR_TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(line);
        }
        (Vec::from(tail).join("\n"), !any)
    };

    let finished = tokio::select! {
        r = async { tokio::join!(read_out, read_err, child.wait()) } => Some(r),
        () = cancel.cancelled() => None,
    };
    match finished {
        Some((stdout, (stderr_tail, stderr_empty), status)) => {
            let status = status.map_err(|e| Error::io("waiting for", program, e))?;
            Ok(Output {
                status,
                stdout,
                stderr_tail,
                stderr_empty,
            })
        }
        None => {
            // Kill and reap, so that no process is left behind.
            let _ = child.kill().await;
            Err(Error::Cancelled)
        }
    }
}

/// On Linux, the child gets SIGKILL when the thread that started it dies, so that a
/// `kill -9` of the job takes its ffmpeg processes with it.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn die_with_parent(cmd: &mut Command) {
    // SAFETY: the closure runs in the child between fork and exec; it only calls
    // prctl(2) and reads errno, both async-signal-safe, and allocates nothing.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn die_with_parent(_cmd: &mut Command) {}
