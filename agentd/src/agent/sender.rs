//! The sender: delivers the [`StatusQueue`]'s updates to the apiserver.
//!
//! Owns the retry policy of status writes: every write goes through the
//! state machine on the newest copy of the task the agent has seen (its
//! watch, its own earlier writes) and `replace_status` with that copy's
//! resourceVersion; on a 409 the task is read and the write retried. An
//! update is acknowledged only once
//! the apiserver accepted it, or the task is gone, or the update can no
//! longer apply. Transport errors back off and retry forever. It must not
//! decide what to report: task runners push updates.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use meseta_client::{Api, Client};
use meseta_schemas::kinds::{Task, TaskStatus};
use tokio_util::sync::CancellationToken;

use super::known::Known;
use super::status_queue::{apply_updates, StatusQueue, StatusUpdate};

/// How many tasks' updates are written at once.
const CONCURRENCY: usize = 8;
/// Longest pause between retries while the apiserver is unreachable.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Drains `queue` until `cancel`, then makes one last attempt.
pub(crate) async fn run(client: Client, queue: Arc<StatusQueue>, known: Arc<Known>, cancel: CancellationToken) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let ok = drain(&client, &queue, &known).await;
        if cancel.is_cancelled() {
            return;
        }
        if ok {
            backoff = Duration::from_millis(100);
            if queue.depth() > 0 {
                continue;
            }
            tokio::select! {
                _ = queue.notified() => {}
                _ = cancel.cancelled() => { drain(&client, &queue, &known).await; return; }
            }
        } else {
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = cancel.cancelled() => return,
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
}

/// One pass over every pending task. Returns false if any write failed.
pub(crate) async fn drain(client: &Client, queue: &StatusQueue, known: &Known) -> bool {
    let pending = queue.pending();
    if pending.is_empty() {
        return true;
    }
    let results: Vec<bool> = futures::stream::iter(pending)
        .map(|(key, updates)| async move { deliver(client, queue, known, &key, &updates).await })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    results.into_iter().all(|ok| ok)
}

async fn deliver(client: &Client, queue: &StatusQueue, known: &Known, key: &str, updates: &[StatusUpdate]) -> bool {
    let Some(first) = updates.first() else { return true };
    let last_seq = updates.iter().map(|u| u.seq).max().unwrap_or(0);
    let api: Api<Task> = Api::namespaced(client.clone(), &first.namespace);
    // First on the copy already at hand (when it is of the same task, not
    // an older one of that name); after a conflict, on a fresh read.
    let mut at_hand =
        known.get(&first.namespace, &first.name).filter(|t| t.metadata.uid.as_deref() == Some(first.uid.as_str()));
    for _attempt in 0..5 {
        let read = match at_hand.take() {
            Some(t) => Ok(Some(t)),
            None => api.get_opt(&first.name).await.map(|t| t.map(Arc::new)),
        };
        let task = match read {
            Ok(Some(t)) => t,
            Ok(None) => {
                tracing::debug!(task = key, "task deleted; dropping its status updates");
                return ack(queue, key, last_seq);
            }
            Err(e) => {
                tracing::warn!(task = key, error = %e, "cannot read task for a status update; will retry");
                return false;
            }
        };
        let uid = task.metadata.uid.as_deref().unwrap_or_default();
        let next = match &task.status {
            Some(status) => apply_updates(uid, status, updates),
            None => apply_updates(uid, &TaskStatus::default(), updates),
        };
        let Some(next) = next else {
            return ack(queue, key, last_seq);
        };
        // The copy at hand with the new status (its old status not copied).
        let mut write = Task {
            api_version: task.api_version.clone(),
            kind: task.kind.clone(),
            metadata: task.metadata.clone(),
            spec: task.spec.clone(),
            status: Some(next),
        };
        // Once written, it is the stored task at its new revision, and kept as
        // the copy at hand, like the copies the task watch brings: without
        // managedFields, which the write then keeps.
        match api.replace_status_in_place(&mut write).await {
            Ok(()) => {
                known.remember(&Arc::new(write));
                return ack(queue, key, last_seq);
            }
            Err(e) if e.is_conflict() => continue,
            Err(e) if e.is_not_found() => return ack(queue, key, last_seq),
            Err(e) if e.code() == Some(422) => {
                tracing::warn!(task = key, error = %e, "status update refused; dropping it");
                return ack(queue, key, last_seq);
            }
            Err(e) => {
                tracing::warn!(task = key, error = %e, "status update failed; will retry");
                return false;
            }
        }
    }
    false
}

fn ack(queue: &StatusQueue, key: &str, seq: u64) -> bool {
    match queue.ack(key, seq) {
        Ok(()) => true,
        Err(e) => {
            tracing::error!(error = %e, "cannot acknowledge a delivered status update");
            false
        }
    }
}
