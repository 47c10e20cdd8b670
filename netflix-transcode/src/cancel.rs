//! Cancelling a running job.

use std::sync::Arc;
use tokio::sync::watch;

/// A handle that cancels a job from anywhere: clone it, give one clone to
/// [`Transcoder::run`](crate::Transcoder::run) and call [`Cancel::cancel`] on another.
///
/// Cancelling kills every ffmpeg and ffprobe process of the job (and waits for them to
/// exit), removes its temporary files, and makes `run` return [`Error::Cancelled`](crate::Error::Cancelled).
/// Chunks already finished stay in the work directory, so a later run resumes from them.
///
/// ```
/// let cancel = netflix_transcode::Cancel::new();
/// let handle = cancel.clone();
/// assert!(!cancel.is_cancelled());
/// handle.cancel();
/// assert!(cancel.is_cancelled());
/// ```
#[derive(Debug, Clone)]
pub struct Cancel {
    tx: Arc<watch::Sender<bool>>,
}

impl Default for Cancel {
    fn default() -> Self {
        Self::new()
    }
}

impl Cancel {
    /// A handle that has not been cancelled.
    pub fn new() -> Self {
        Self {
            tx: Arc::new(watch::channel(false).0),
        }
    }

    /// Cancels the job. Idempotent.
    pub fn cancel(&self) {
        self.tx.send_replace(true);
    }

    /// Whether [`Cancel::cancel`] has been called.
    pub fn is_cancelled(&self) -> bool {
        *self.tx.borrow()
    }

    /// Completes once the job is cancelled.
    pub async fn cancelled(&self) {
        let mut rx = self.tx.subscribe();
        // The sender lives in `self`, so `wait_for` cannot fail while we hold it.
        let _ = rx.wait_for(|c| *c).await;
    }
}
