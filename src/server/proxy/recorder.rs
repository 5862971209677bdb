//! The proxy's recorder: calls that finish together are recorded together.

use super::*;

/// A proxied call to record, and where its result goes.
type RecordJob = (UsageEvent, tokio::sync::oneshot::Sender<Result<EventResult, AppError>>);

/// Records proxied calls in batches: calls that finish while a batch is
/// being written wait together and go in the next one, through one
/// [`crate::server::service::Engine::record`] (one transaction, one
/// commit), as `POST /api/usage/events` batches do. Under load that is a
/// handful of commits a second instead of one per call; alone, a call is
/// recorded at once, in a batch of one.
#[derive(Default)]
pub(super) struct Recorder {
    queue: std::sync::OnceLock<tokio::sync::mpsc::Sender<RecordJob>>,
}

impl Recorder {
    pub(super) async fn record(
        &self,
        engine: &crate::server::service::Engine,
        event: UsageEvent,
    ) -> Result<EventResult, AppError> {
        let queue = self.queue.get_or_init(|| Recorder::start(engine.clone()));
        let (done, result) = tokio::sync::oneshot::channel();
        if queue.send((event, done)).await.is_err() {
            return Err(AppError::Internal);
        }
        result.await.unwrap_or(Err(AppError::Internal))
    }

    pub(super) fn start(engine: crate::server::service::Engine) -> tokio::sync::mpsc::Sender<RecordJob> {
        let (queue, mut jobs) = tokio::sync::mpsc::channel::<RecordJob>(4 * crate::domain::event::MAX_BATCH);
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(crate::domain::event::MAX_BATCH);
            while jobs.recv_many(&mut batch, crate::domain::event::MAX_BATCH).await > 0 {
                let (events, waiters): (Vec<UsageEvent>, Vec<_>) = batch.drain(..).unzip();
                // Answered calls: recorded once in the log, not waiting
                // for the sync (see `record_answered`).
                match engine.record_answered(events.into_iter().map(Ok).collect(), Utc::now()).await {
                    Ok(results) => {
                        for (waiter, r) in waiters.into_iter().zip(results) {
                            let _ = waiter.send(Ok(r));
                        }
                    }
                    Err(e) => {
                        let unavailable = matches!(e, AppError::Unavailable);
                        for waiter in waiters {
                            let _ =
                                waiter.send(Err(if unavailable { AppError::Unavailable } else { AppError::Internal }));
                        }
                    }
                }
            }
        });
        queue
    }
}
