//! The crate's error type.

use std::fmt;

/// A `Result` whose error defaults to this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong. Inspect it with [`kind`](Error::kind) or the predicates; never parse
/// the message.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
}

/// The kinds of [`Error`].
#[derive(Debug)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A value is out of range or inconsistent (a ladder, a configuration, a curve).
    Invalid {
        /// What was being checked.
        what: &'static str,
        /// Why it was refused.
        reason: String,
    },
    /// Text that does not parse: a trace, a chunk-size file, a manifest.
    Parse {
        /// What was being parsed.
        what: &'static str,
        /// The 1-based line where parsing failed, when known.
        line: Option<usize>,
        /// Why.
        reason: String,
    },
    /// Reading a file failed.
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

impl Error {
    pub(crate) fn invalid(what: &'static str, reason: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Invalid {
                what,
                reason: reason.into(),
            },
        }
    }

    pub(crate) fn parse(
        what: &'static str,
        line: Option<usize>,
        reason: impl Into<String>,
    ) -> Self {
        Self {
            kind: ErrorKind::Parse {
                what,
                line,
                reason: reason.into(),
            },
        }
    }

    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        Self {
            kind: ErrorKind::Io {
                path: path.to_path_buf(),
                source,
            },
        }
    }

    /// What went wrong.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// Whether a value was refused as invalid.
    pub fn is_invalid(&self) -> bool {
        matches!(self.kind, ErrorKind::Invalid { .. })
    }

    /// Whether some text did not parse.
    pub fn is_parse(&self) -> bool {
        matches!(self.kind, ErrorKind::Parse { .. })
    }

    /// Whether reading a file failed.
    pub fn is_io(&self) -> bool {
        matches!(self.kind, ErrorKind::Io { .. })
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ErrorKind::Invalid { what, reason } => write!(f, "invalid {what}: {reason}"),
            ErrorKind::Parse {
                what,
                line: Some(l),
                reason,
            } => write!(f, "cannot parse {what} at line {l}: {reason}"),
            ErrorKind::Parse {
                what,
                line: None,
                reason,
            } => write!(f, "cannot parse {what}: {reason}"),
            ErrorKind::Io { path, .. } => write!(f, "cannot read {}", path.display()),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            ErrorKind::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

pub(crate) fn ensure(ok: bool, what: &'static str, reason: impl FnOnce() -> String) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(what, reason()))
    }
}
