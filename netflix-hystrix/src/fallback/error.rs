//! Error types of the fallback middleware.

use super::Cause;
use crate::error::BoxError;
use std::fmt;

/// A call failed and so did its fallback, or the fallback could not run.
///
/// [`primary`](FallbackError::primary) is the call's own error; for a failed fallback,
/// [`source`](std::error::Error::source) is the fallback's error, and for a rejected one,
/// the call's.
#[derive(Debug)]
pub struct FallbackError {
    cause: Cause,
    primary: BoxError,
    fallback: Option<BoxError>,
}

impl FallbackError {
    pub(crate) fn rejected(cause: Cause, primary: BoxError) -> Self {
        Self {
            cause,
            primary,
            fallback: None,
        }
    }

    pub(crate) fn failed(cause: Cause, primary: BoxError, fallback: BoxError) -> Self {
        Self {
            cause,
            primary,
            fallback: Some(fallback),
        }
    }

    /// Why the call needed a fallback.
    pub fn cause(&self) -> Cause {
        self.cause
    }

    /// The call's own error.
    pub fn primary(&self) -> &BoxError {
        &self.primary
    }

    /// The fallback's error, if it ran and failed.
    pub fn fallback(&self) -> Option<&BoxError> {
        self.fallback.as_ref()
    }

    /// Whether the fallback ran and failed.
    pub fn is_failed(&self) -> bool {
        self.fallback.is_some()
    }

    /// Whether the fallback did not run because too many were running
    /// (`FALLBACK_REJECTION`).
    pub fn is_rejected(&self) -> bool {
        self.fallback.is_none()
    }
}

impl fmt::Display for FallbackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_failed() {
            write!(f, "call {} and its fallback failed", self.cause)
        } else {
            write!(f, "call {} and its fallback was rejected", self.cause)
        }
    }
}

impl std::error::Error for FallbackError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        let e = self.fallback.as_ref().unwrap_or(&self.primary);
        Some(&**e)
    }
}
