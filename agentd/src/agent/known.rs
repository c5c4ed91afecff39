//! The newest copy of each of this agent's tasks that the agent has seen,
//! from its task watch and from its own status writes once they succeed.
//!
//! Owns keeping only the newest copy per task. The sender writes a status on
//! top of it instead of reading the task first; a stale copy only costs a
//! 409 and a read. It must not decide anything about tasks.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use meseta_schemas::kinds::Task;
use meseta_schemas::Resource;

/// The newest seen copy of each task, by namespace and name.
#[derive(Debug, Default)]
pub(crate) struct Known {
    tasks: Mutex<HashMap<(String, String), Arc<Task>>>,
}

fn key(task: &Task) -> (String, String) {
    (task.metadata.namespace.clone().unwrap_or_default(), task.metadata.name.clone())
}

impl Known {
    /// Keeps `task` (shared, not copied) unless a newer copy of it is already known.
    pub(crate) fn remember(&self, task: &Arc<Task>) {
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        match tasks.get(&key(task)) {
            Some(have) if have.revision() >= task.revision() && have.metadata.uid == task.metadata.uid => {}
            _ => {
                tasks.insert(key(task), task.clone());
            }
        }
    }

    /// Forgets a deleted task (only the copy with its uid).
    pub(crate) fn forget(&self, task: &Task) {
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        if tasks.get(&key(task)).is_some_and(|t| t.metadata.uid == task.metadata.uid) {
            tasks.remove(&key(task));
        }
    }

    /// The newest known copy of `namespace/name`.
    pub(crate) fn get(&self, namespace: &str, name: &str) -> Option<Arc<Task>> {
        self.tasks.lock().unwrap_or_else(|e| e.into_inner()).get(&(namespace.to_string(), name.to_string())).cloned()
    }
}

#[cfg(test)]
mod tests {
    use meseta_schemas::kinds::TaskSpec;

    use super::*;

    fn task(uid: &str, rv: &str) -> Arc<Task> {
        let mut t = Task::new("t", TaskSpec::default()).in_namespace("r");
        t.metadata.uid = Some(uid.into());
        t.metadata.resource_version = Some(rv.into());
        Arc::new(t)
    }

    #[test]
    fn only_the_newest_copy_is_kept() {
        let k = Known::default();
        k.remember(&task("u1", "7"));
        k.remember(&task("u1", "5"));
        assert_eq!(k.get("r", "t").unwrap().metadata.resource_version.as_deref(), Some("7"));
        k.remember(&task("u1", "9"));
        assert_eq!(k.get("r", "t").unwrap().metadata.resource_version.as_deref(), Some("9"));
    }

    #[test]
    fn a_new_task_of_the_same_name_replaces_the_old_and_deletes_match_by_uid() {
        let k = Known::default();
        k.remember(&task("u1", "9"));
        k.remember(&task("u2", "3"));
        assert_eq!(k.get("r", "t").unwrap().metadata.uid.as_deref(), Some("u2"));
        k.forget(&task("u1", "10"));
        assert!(k.get("r", "t").is_some(), "the old task's deletion leaves the new one");
        k.forget(&task("u2", "4"));
        assert!(k.get("r", "t").is_none());
    }
}
