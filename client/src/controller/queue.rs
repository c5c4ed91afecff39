//! The controller's work queue: which object to reconcile next, and when.
//!
//! Pure bookkeeping with time passed in, so every rule is unit-tested without
//! a clock. It must not run anything: the runner asks it what is ready.
//!
//! # Guarantees
//!
//! - One entry per object: scheduling an object already queued keeps the
//!   earlier of the two times (a burst of events is one reconcile).
//! - An object never comes out while it is running; an entry scheduled while
//!   it runs waits, and comes out once it is finished.
//! - At most `concurrency` objects are running at once.

use std::collections::{BTreeSet, HashMap, HashSet};

use tokio::time::Instant;

use crate::ObjectRef;

/// Due times of queued objects, and the set of running ones.
#[derive(Debug)]
pub(crate) struct WorkQueue {
    due: BTreeSet<(Instant, ObjectRef)>,
    at: HashMap<ObjectRef, Instant>,
    running: HashSet<ObjectRef>,
    concurrency: usize,
}

impl WorkQueue {
    /// An empty queue letting `concurrency` (at least 1) objects run at once.
    pub(crate) fn new(concurrency: usize) -> Self {
        WorkQueue { due: BTreeSet::new(), at: HashMap::new(), running: HashSet::new(), concurrency: concurrency.max(1) }
    }

    /// Queue `key` to run at `when`, or earlier if it already is.
    pub(crate) fn schedule(&mut self, key: ObjectRef, when: Instant) {
        if let Some(&current) = self.at.get(&key) {
            if current <= when {
                return;
            }
            self.due.remove(&(current, key.clone()));
        }
        self.at.insert(key.clone(), when);
        self.due.insert((when, key));
    }

    /// The next object due at `now` that is not running, marked running;
    /// `None` when nothing is due or every slot is taken.
    pub(crate) fn pop_ready(&mut self, now: Instant) -> Option<ObjectRef> {
        if self.running.len() >= self.concurrency {
            return None;
        }
        let entry = self
            .due
            .iter()
            .take_while(|(when, _)| *when <= now)
            .find(|(_, key)| !self.running.contains(key))
            .cloned()?;
        self.due.remove(&entry);
        self.at.remove(&entry.1);
        self.running.insert(entry.1.clone());
        Some(entry.1)
    }

    /// `key` finished running.
    pub(crate) fn finish(&mut self, key: &ObjectRef) {
        self.running.remove(key);
    }

    /// When the next object could start, if a slot is free (may be in the past).
    pub(crate) fn next_due(&self) -> Option<Instant> {
        if self.running.len() >= self.concurrency {
            return None;
        }
        self.due.iter().find(|(_, key)| !self.running.contains(key)).map(|(when, _)| *when)
    }

    /// Number of objects running.
    pub(crate) fn running(&self) -> usize {
        self.running.len()
    }

    /// Number of queued objects (running or not).
    pub(crate) fn queued(&self) -> usize {
        self.due.len()
    }

    /// Drops every queued entry (shutdown); running objects stay running.
    pub(crate) fn clear_queued(&mut self) {
        self.due.clear();
        self.at.clear();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn key(name: &str) -> ObjectRef {
        ObjectRef::new(name).within("ns")
    }

    #[test]
    fn a_burst_for_one_object_is_one_entry_at_the_earliest_time() {
        let t0 = Instant::now();
        let mut q = WorkQueue::new(4);
        q.schedule(key("a"), t0 + Duration::from_secs(10));
        for i in 0..50 {
            q.schedule(key("a"), t0 + Duration::from_millis(i));
        }
        assert_eq!(q.queued(), 1);
        assert_eq!(q.next_due(), Some(t0));
        assert_eq!(q.pop_ready(t0), Some(key("a")));
        assert_eq!(q.pop_ready(t0 + Duration::from_secs(60)), None);
    }

    #[test]
    fn nothing_comes_out_before_it_is_due() {
        let t0 = Instant::now();
        let mut q = WorkQueue::new(4);
        q.schedule(key("a"), t0 + Duration::from_secs(1));
        assert_eq!(q.pop_ready(t0), None);
        assert_eq!(q.pop_ready(t0 + Duration::from_secs(1)), Some(key("a")));
    }

    #[test]
    fn a_running_object_waits_until_finished() {
        let t0 = Instant::now();
        let mut q = WorkQueue::new(4);
        q.schedule(key("a"), t0);
        assert_eq!(q.pop_ready(t0), Some(key("a")));
        q.schedule(key("a"), t0);
        q.schedule(key("b"), t0 + Duration::from_secs(1));
        // "a" is running: not handed out again, "b" is the next due.
        assert_eq!(q.pop_ready(t0), None);
        assert_eq!(q.next_due(), Some(t0 + Duration::from_secs(1)));
        q.finish(&key("a"));
        assert_eq!(q.next_due(), Some(t0));
        assert_eq!(q.pop_ready(t0), Some(key("a")));
    }

    #[test]
    fn concurrency_bounds_running_objects() {
        let t0 = Instant::now();
        let mut q = WorkQueue::new(2);
        for name in ["a", "b", "c"] {
            q.schedule(key(name), t0);
        }
        assert!(q.pop_ready(t0).is_some());
        assert!(q.pop_ready(t0).is_some());
        assert_eq!(q.pop_ready(t0), None);
        assert_eq!(q.next_due(), None);
        assert_eq!(q.running(), 2);
        q.finish(&key("a"));
        assert_eq!(q.pop_ready(t0), Some(key("c")));
    }

    #[test]
    fn clearing_keeps_running_objects_running() {
        let t0 = Instant::now();
        let mut q = WorkQueue::new(2);
        q.schedule(key("a"), t0);
        q.schedule(key("b"), t0);
        q.pop_ready(t0);
        q.clear_queued();
        assert_eq!(q.queued(), 0);
        assert_eq!(q.running(), 1);
    }
}
