//! The durable status-update queue (Mesos' status-update manager).
//!
//! Owns what the agent has observed about its tasks but the apiserver has not
//! yet accepted. Every update is appended, as one JSON line, to a per-task
//! file under `<work>/status/` and fsynced before [`StatusQueue::push`]
//! returns; an update is removed (acknowledged) only after the apiserver
//! accepted the write that carries it. A restarted agent replays the files in
//! order, so no STARTING / RUNNING / exit report is lost while the apiserver
//! or the agent is down. It must not talk to the apiserver: the sender in
//! `agent::sender` drains it.
//!
//! # Guarantees
//! - Updates of one task are delivered in the order they were pushed.
//! - A torn last line (crash in the middle of an append) is ignored on replay.
//! - An in-memory queue (no directory) behaves the same minus durability;
//!   simulated agents use it.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use meseta_schemas::kinds::{TaskState, TaskStatus};
use meseta_schemas::meta::Time;
use meseta_schemas::state_machine::{can_transition, transition};
use serde::{Deserialize, Serialize};

/// One observation of a task, to be written to its status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusUpdate {
    /// Order within the queue (assigned by [`StatusQueue::push`]).
    #[serde(default)]
    pub seq: u64,
    /// The task's uid: an update never applies to a re-created namesake.
    pub uid: String,
    /// The task's namespace.
    pub namespace: String,
    /// The task's name.
    pub name: String,
    /// The new state, if the state changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<TaskState>,
    /// Message recorded with the state change.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// Exit code of the task's process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Host path of the sandbox.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
    /// Result of the health checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy: Option<bool>,
    /// When the agent observed it.
    pub timestamp: Time,
}

impl StatusUpdate {
    /// An update of task `namespace/name` (uid `uid`) observed now.
    pub fn new(uid: &str, namespace: &str, name: &str) -> Self {
        StatusUpdate {
            seq: 0,
            uid: uid.to_string(),
            namespace: namespace.to_string(),
            name: name.to_string(),
            state: None,
            message: String::new(),
            exit_code: None,
            sandbox: None,
            healthy: None,
            timestamp: chrono::Utc::now(),
        }
    }

    /// The same update moving the task to `state` with `message`.
    pub fn state(mut self, state: TaskState, message: impl Into<String>) -> Self {
        self.state = Some(state);
        self.message = message.into();
        self
    }

    /// The queue key of its task.
    pub fn key(&self) -> String {
        format!("{}_{}", self.namespace, self.name)
    }
}

/// Applies `updates` (in order) to `status` of the task with uid `uid`.
/// Updates for another uid are skipped; a state change the state machine
/// refuses (e.g. RUNNING after the task was asked to die, anything after a
/// terminal state) keeps the fields but not the state. Returns the new
/// status, or `None` when nothing changes.
pub fn apply_updates(uid: &str, status: &TaskStatus, updates: &[StatusUpdate]) -> Option<TaskStatus> {
    let mut next = status.clone();
    for u in updates.iter().filter(|u| u.uid == uid) {
        if next.state.is_terminal() {
            break;
        }
        if let Some(to) = u.state {
            if to != next.state && can_transition(next.state, to) {
                if let Ok(s) = transition(&next, to, &u.message, u.timestamp) {
                    next = s;
                }
            } else if to != next.state {
                tracing::debug!(task = %u.key(), from = %next.state, %to, "state change no longer applies; skipped");
            }
        }
        if u.exit_code.is_some() {
            next.exit_code = u.exit_code;
        }
        if u.sandbox.is_some() {
            next.sandbox.clone_from(&u.sandbox);
        }
        if u.healthy.is_some() {
            next.healthy = u.healthy;
        }
    }
    (next != *status).then_some(next)
}

/// Errors of the queue's files.
#[derive(Debug, thiserror::Error)]
#[error("status queue {path}: {source}")]
pub struct QueueError {
    /// The file or directory.
    pub path: PathBuf,
    /// The error.
    #[source]
    pub source: std::io::Error,
}

/// Pending status updates per task, optionally durable under a directory.
#[derive(Debug)]
pub struct StatusQueue {
    dir: Option<PathBuf>,
    inner: Mutex<Inner>,
    notify: tokio::sync::Notify,
}

#[derive(Debug, Default)]
struct Inner {
    next_seq: u64,
    pending: BTreeMap<String, Vec<StatusUpdate>>,
}

impl StatusQueue {
    /// A queue kept only in memory.
    pub fn in_memory() -> Self {
        StatusQueue { dir: None, inner: Mutex::default(), notify: tokio::sync::Notify::new() }
    }

    /// A durable queue under `dir`, replaying what an earlier agent left there.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, QueueError> {
        let dir = dir.into();
        let err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| QueueError { path, source }
        };
        std::fs::create_dir_all(&dir).map_err(err(&dir))?;
        let mut inner = Inner::default();
        for entry in std::fs::read_dir(&dir).map_err(err(&dir))? {
            let path = entry.map_err(err(&dir))?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("jsonl") {
                continue;
            }
            let text = std::fs::read_to_string(&path).map_err(err(&path))?;
            let updates: Vec<StatusUpdate> = text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
            if let Some(first) = updates.first() {
                inner.next_seq = inner.next_seq.max(updates.iter().map(|u| u.seq).max().unwrap_or(0));
                inner.pending.insert(first.key(), updates);
            } else {
                let _ = std::fs::remove_file(&path);
            }
        }
        Ok(StatusQueue { dir: Some(dir), inner: Mutex::new(inner), notify: tokio::sync::Notify::new() })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn file(&self, key: &str) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.join(format!("{key}.jsonl")))
    }

    /// Appends `update` (durably when the queue has a directory) and wakes the sender.
    pub fn push(&self, mut update: StatusUpdate) -> Result<(), QueueError> {
        let key = update.key();
        {
            let mut inner = self.lock();
            inner.next_seq += 1;
            update.seq = inner.next_seq;
            if let Some(path) = self.file(&key) {
                let mut line = serde_json::to_vec(&update)
                    .map_err(|e| QueueError { path: path.clone(), source: std::io::Error::other(e) })?;
                line.push(b'\n');
                let write = || -> std::io::Result<()> {
                    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&path)?;
                    f.write_all(&line)?;
                    f.sync_data()
                };
                write().map_err(|source| QueueError { path: path.clone(), source })?;
            }
            inner.pending.entry(key).or_default().push(update);
        }
        self.notify.notify_one();
        Ok(())
    }

    /// Every task with pending updates, and its updates in order.
    pub fn pending(&self) -> Vec<(String, Vec<StatusUpdate>)> {
        self.lock().pending.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// The pending updates of one task.
    pub fn pending_for(&self, key: &str) -> Vec<StatusUpdate> {
        self.lock().pending.get(key).cloned().unwrap_or_default()
    }

    /// Whether a terminal state of task `key` waits to be delivered.
    pub fn has_terminal(&self, key: &str) -> bool {
        self.lock().pending.get(key).is_some_and(|v| v.iter().any(|u| u.state.is_some_and(TaskState::is_terminal)))
    }

    /// How many updates wait, over all tasks.
    pub fn depth(&self) -> usize {
        self.lock().pending.values().map(Vec::len).sum()
    }

    /// Removes the updates of `key` up to and including `seq` (the apiserver accepted them).
    pub fn ack(&self, key: &str, seq: u64) -> Result<(), QueueError> {
        let mut inner = self.lock();
        let Some(list) = inner.pending.get_mut(key) else { return Ok(()) };
        list.retain(|u| u.seq > seq);
        let rest = list.clone();
        if rest.is_empty() {
            inner.pending.remove(key);
        }
        let Some(path) = self.file(key) else { return Ok(()) };
        let io = |source| QueueError { path: path.clone(), source };
        if rest.is_empty() {
            return match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(e)),
                _ => Ok(()),
            };
        }
        let tmp = path.with_extension("jsonl.tmp");
        let mut bytes = Vec::new();
        for u in &rest {
            bytes.extend(serde_json::to_vec(u).map_err(|e| io(std::io::Error::other(e)))?);
            bytes.push(b'\n');
        }
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_data()?;
            std::fs::rename(&tmp, &path)
        };
        write().map_err(io)
    }

    /// Waits until something is pushed.
    pub async fn notified(&self) {
        self.notify.notified().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up(state: TaskState) -> StatusUpdate {
        StatusUpdate::new("u1", "ns", "t").state(state, state.as_str().to_lowercase())
    }

    #[test]
    fn updates_survive_a_reopen_in_order_and_acks_remove_them() {
        let dir = tempfile::tempdir().unwrap();
        let q = StatusQueue::open(dir.path()).unwrap();
        q.push(up(TaskState::Starting)).unwrap();
        q.push(up(TaskState::Running)).unwrap();
        q.push(up(TaskState::Finished)).unwrap();
        drop(q);
        let q = StatusQueue::open(dir.path()).unwrap();
        let pending = q.pending_for("ns_t");
        let states: Vec<_> = pending.iter().filter_map(|u| u.state).collect();
        assert_eq!(states, [TaskState::Starting, TaskState::Running, TaskState::Finished]);
        assert!(q.has_terminal("ns_t"));
        q.ack("ns_t", pending[1].seq).unwrap();
        drop(q);
        let q = StatusQueue::open(dir.path()).unwrap();
        assert_eq!(q.depth(), 1);
        let last = q.pending_for("ns_t");
        assert_eq!(last[0].state, Some(TaskState::Finished));
        q.push(up(TaskState::Finished)).unwrap();
        assert!(q.pending_for("ns_t")[1].seq > last[0].seq, "sequence numbers keep growing after a reopen");
        q.ack("ns_t", u64::MAX).unwrap();
        assert_eq!(q.depth(), 0);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "an acknowledged task leaves no file");
    }

    #[test]
    fn a_torn_last_line_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let q = StatusQueue::open(dir.path()).unwrap();
        q.push(up(TaskState::Running)).unwrap();
        drop(q);
        let path = dir.path().join("ns_t.jsonl");
        let mut f = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"uid\":\"u1\",\"namesp").unwrap();
        let q = StatusQueue::open(dir.path()).unwrap();
        assert_eq!(q.depth(), 1);
    }

    #[test]
    fn a_chain_of_updates_becomes_one_legal_status() {
        let status = TaskStatus { state: TaskState::Assigned, ..Default::default() };
        let mut run = up(TaskState::Running);
        run.sandbox = Some("/w/s".into());
        let mut fail = up(TaskState::Failed);
        fail.exit_code = Some(3);
        let next = apply_updates("u1", &status, &[up(TaskState::Starting), run, fail]).unwrap();
        assert_eq!(next.state, TaskState::Failed);
        assert_eq!(next.exit_code, Some(3));
        assert_eq!(next.sandbox.as_deref(), Some("/w/s"));
        let states: Vec<_> = next.task_events.iter().map(|e| e.state).collect();
        assert_eq!(states, [TaskState::Starting, TaskState::Running, TaskState::Failed]);
        assert!(meseta_schemas::state_machine::validate_status_update(Some(&status), &next).is_empty());
    }

    #[test]
    fn updates_of_another_uid_or_after_a_terminal_state_change_nothing() {
        let status = TaskStatus { state: TaskState::Killed, ..Default::default() };
        assert_eq!(apply_updates("u1", &status, &[up(TaskState::Finished)]), None);
        let running = TaskStatus { state: TaskState::Running, ..Default::default() };
        assert_eq!(apply_updates("other", &running, &[up(TaskState::Finished)]), None);
    }

    #[test]
    fn a_refused_state_change_keeps_the_state_but_applies_fields() {
        let killing = TaskStatus { state: TaskState::Killing, ..Default::default() };
        let mut run = up(TaskState::Running);
        run.sandbox = Some("/s".into());
        let next = apply_updates("u1", &killing, &[run]).unwrap();
        assert_eq!(next.state, TaskState::Killing);
        assert_eq!(next.sandbox.as_deref(), Some("/s"));
    }
}
