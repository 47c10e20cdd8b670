//! The crate's error type for everything that is not a per-call middleware error.
//!
//! Middleware in this crate follows tower's convention: a service's error type is
//! [`BoxError`], and each layer's own failure is a small named type in that layer's
//! `error` module ([`BreakerOpen`](crate::breaker::error::BreakerOpen),
//! [`Elapsed`](crate::timeout::error::Elapsed), ...), found with
//! [`downcast_ref`](std::error::Error#method.downcast_ref). Configuration, registry and
//! server set-up return [`Error`] instead.

use std::fmt;

/// A type-erased error, as tower middleware uses.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A `Result` whose error defaults to this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error from configuring or operating a component (not from a call through it).
///
/// Inspect it with the predicates ([`is_config`](Error::is_config), ...) or [`kind`](Error::kind);
/// never parse the message.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
}

/// What went wrong, for [`Error`].
#[derive(Debug)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A configuration value is out of range or inconsistent.
    InvalidConfig {
        /// The field, by its Hystrix or resilience4j property name where one exists.
        field: &'static str,
        /// Why the value was refused.
        reason: String,
    },
    /// A property name that no component knows.
    UnknownProperty(String),
    /// A manual state transition that the circuit breaker's state machine does not allow.
    IllegalTransition {
        /// The state the breaker was in.
        from: crate::breaker::State,
        /// The state that was asked for.
        to: crate::breaker::State,
    },
    /// An I/O error, for example while binding the `hystrix.stream` server.
    Io(std::io::Error),
}

impl Error {
    pub(crate) fn config(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::InvalidConfig {
                field,
                reason: reason.into(),
            },
        }
    }

    pub(crate) fn unknown_property(name: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::UnknownProperty(name.into()),
        }
    }

    pub(crate) fn illegal_transition(
        from: crate::breaker::State,
        to: crate::breaker::State,
    ) -> Self {
        Self {
            kind: ErrorKind::IllegalTransition { from, to },
        }
    }

    #[cfg(feature = "stream")]
    pub(crate) fn io(err: std::io::Error) -> Self {
        Self {
            kind: ErrorKind::Io(err),
        }
    }

    /// What went wrong.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// Whether a configuration value was refused.
    pub fn is_config(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::InvalidConfig { .. } | ErrorKind::UnknownProperty(_)
        )
    }

    /// Whether a manual state transition was refused.
    pub fn is_illegal_transition(&self) -> bool {
        matches!(self.kind, ErrorKind::IllegalTransition { .. })
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ErrorKind::InvalidConfig { field, reason } => {
                write!(f, "invalid configuration `{field}`: {reason}")
            }
            ErrorKind::UnknownProperty(name) => write!(f, "unknown property `{name}`"),
            ErrorKind::IllegalTransition { from, to } => {
                write!(f, "illegal circuit breaker transition from {from} to {to}")
            }
            ErrorKind::Io(_) => f.write_str("i/o error"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            ErrorKind::Io(e) => Some(e),
            _ => None,
        }
    }
}

/// Checks a condition while validating configuration.
pub(crate) fn ensure(ok: bool, field: &'static str, reason: impl FnOnce() -> String) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(Error::config(field, reason()))
    }
}

/// Checks that a rolling window of `window` divides evenly into `buckets` (at least one).
pub(crate) fn ensure_window(
    window: std::time::Duration,
    buckets: u32,
    window_field: &'static str,
    buckets_field: &'static str,
) -> Result<()> {
    ensure(buckets >= 1, buckets_field, || "must be at least 1".into())?;
    let ms = window.as_millis();
    ensure(
        ms >= 1 && ms % u128::from(buckets) == 0,
        window_field,
        || format!("{ms} ms must be a positive multiple of {buckets} buckets"),
    )
}
