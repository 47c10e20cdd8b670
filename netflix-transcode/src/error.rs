//! The crate's error type.

use std::fmt;
use std::path::PathBuf;

/// The command that installs everything the crate's tests and examples need.
pub const SETUP_COMMAND: &str = "scripts/setup.sh test";

/// A `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in a transcode.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// `ffmpeg` or `ffprobe` is not installed (or not where it was said to be).
    ToolMissing {
        /// `ffmpeg` or `ffprobe`.
        tool: &'static str,
        /// Where it was looked for.
        looked_for: PathBuf,
    },
    /// A file could not be read or written.
    Io {
        /// What was being done, such as "reading the journal".
        action: String,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The input could not be opened or read as a media file.
    Unreadable {
        /// The input.
        path: PathBuf,
        /// What ffprobe said.
        detail: String,
    },
    /// The input is readable but cannot be transcoded as configured.
    Unsupported {
        /// The input.
        path: PathBuf,
        /// Why, such as "variable frame rate (allow it with `Job::allow_vfr`)".
        reason: String,
    },
    /// The job's settings are inconsistent.
    Config(String),
    /// A chunk failed every attempt to encode it.
    Chunk {
        /// The chunk's index in the plan.
        chunk: usize,
        /// How many attempts were made.
        attempts: u32,
        /// The last attempt's failure.
        reason: String,
        /// The last lines ffmpeg wrote to stderr in the last attempt.
        stderr_tail: String,
    },
    /// A step other than a chunk encode (merge, package, audio, quality) failed.
    Step {
        /// Which step.
        step: &'static str,
        /// What went wrong.
        reason: String,
        /// The last lines ffmpeg or ffprobe wrote to stderr.
        stderr_tail: String,
    },
    /// The job was cancelled.
    Cancelled,
    /// A ladder or manifest could not be built.
    Abr(netflix_abr::Error),
}

impl Error {
    pub(crate) fn io(
        action: impl Into<String>,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Error::Io {
            action: action.into(),
            path: path.into(),
            source,
        }
    }

    pub(crate) fn step(step: &'static str, reason: impl Into<String>) -> Self {
        Error::Step {
            step,
            reason: reason.into(),
            stderr_tail: String::new(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::ToolMissing { tool, looked_for } => write!(
                f,
                "{tool} not found (looked for {}); install it with `{SETUP_COMMAND}` \
                 (Debian/Ubuntu: apt-get install ffmpeg)",
                looked_for.display()
            ),
            Error::Io {
                action,
                path,
                source,
            } => write!(f, "{action} {}: {source}", path.display()),
            Error::Unreadable { path, detail } => {
                write!(f, "cannot read {} as video: {detail}", path.display())
            }
            Error::Unsupported { path, reason } => {
                write!(f, "cannot transcode {}: {reason}", path.display())
            }
            Error::Config(m) => write!(f, "invalid job: {m}"),
            Error::Chunk {
                chunk,
                attempts,
                reason,
                stderr_tail,
            } => {
                write!(
                    f,
                    "chunk {chunk} failed after {attempts} attempts: {reason}"
                )?;
                if !stderr_tail.is_empty() {
                    write!(f, "\nffmpeg's last words:\n{stderr_tail}")?;
                }
                Ok(())
            }
            Error::Step {
                step,
                reason,
                stderr_tail,
            } => {
                write!(f, "{step} failed: {reason}")?;
                if !stderr_tail.is_empty() {
                    write!(f, "\nlast words:\n{stderr_tail}")?;
                }
                Ok(())
            }
            Error::Cancelled => f.write_str("cancelled"),
            Error::Abr(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            Error::Abr(e) => Some(e),
            _ => None,
        }
    }
}

impl From<netflix_abr::Error> for Error {
    fn from(e: netflix_abr::Error) -> Self {
        Error::Abr(e)
    }
}
