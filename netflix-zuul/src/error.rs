//! The gateway's errors.

use std::fmt;

/// Who failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorSource {
    /// The origin (connect error, reset, timeout, bad response).
    Upstream,
    /// The client (bad request, went away).
    Downstream,
    /// The gateway itself (a filter, the configuration).
    Internal,
}

/// What went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The connection to the origin could not be made.
    Connect,
    /// The origin reset or closed the connection before a response.
    Reset,
    /// The origin did not answer in time.
    ReadTimeout,
    /// The origin began to answer, then broke off or sent something malformed: it has
    /// acted on the request, so only an idempotent one may be sent again.
    BrokenBody,
    /// The request's overall deadline passed.
    Deadline,
    /// No origin server is available (all ejected, none configured).
    NoServer,
    /// A filter failed.
    Filter,
    /// The route table or a filter chain is invalid.
    Config,
    /// The retry budget is spent.
    BudgetExhausted,
    /// The origin's circuit breaker is open, or its bulkhead full: failing fast.
    CircuitOpen,
}

/// A gateway error: what, who, and whether a retry is safe.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    source: ErrorSource,
    retryable: bool,
    message: String,
    cause: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl Error {
    /// A new error.
    pub fn new(kind: ErrorKind, source: ErrorSource, message: impl Into<String>) -> Self {
        let retryable = matches!(
            kind,
            ErrorKind::Connect | ErrorKind::Reset | ErrorKind::ReadTimeout
        );
        Self {
            kind,
            source,
            retryable,
            message: message.into(),
            cause: None,
        }
    }

    /// A configuration error.
    pub fn config(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Config, ErrorSource::Internal, message)
    }

    /// Attaches the underlying error.
    #[must_use]
    pub fn with_cause(
        mut self,
        cause: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        self.cause = Some(cause.into());
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Who failed.
    pub fn error_source(&self) -> ErrorSource {
        self.source
    }

    /// Whether the failure is of a kind Zuul retries (connect errors, resets, read timeouts;
    /// the method and the body decide the rest).
    pub fn is_retryable(&self) -> bool {
        self.retryable
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause.as_deref().map(|e| e as _)
    }
}

/// `Result` with the gateway's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
