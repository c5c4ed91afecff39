//! [`reflector()`]: a local, read-only cache of a collection kept current by
//! a [`crate::watcher()`] stream.
//!
//! Owns [`Store`] (the cheap-clone read handle) and [`Writer`] (its single
//! writer). It must not fetch anything itself: it only applies the watcher
//! events that pass through it.
//!
//! # Guarantees
//!
//! - An event is applied to the store before it is passed on, so a consumer
//!   of the stream always finds at least that state in the store.
//! - [`Event::Restarted`] replaces the whole content: objects deleted while
//!   the watch was down disappear.
//! - [`Store::wait_until_ready`] returns once the first complete list is in.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use futures::{Stream, TryStreamExt};
use meseta_schemas::Resource;
use tokio::sync::watch;

use crate::watcher::Event;
use crate::ObjectRef;

type Objects<K> = Arc<RwLock<HashMap<ObjectRef, Arc<K>>>>;

/// Read handle on a reflected collection. Clones share the same cache.
pub struct Store<K> {
    objects: Objects<K>,
    ready: watch::Receiver<bool>,
}

impl<K> Clone for Store<K> {
    fn clone(&self) -> Self {
        Store { objects: self.objects.clone(), ready: self.ready.clone() }
    }
}

/// The writer went away before the store saw its first complete list.
#[derive(Debug, thiserror::Error)]
#[error("the reflector stopped before its first complete list")]
pub struct WriterDropped;

impl<K: Resource> Store<K> {
    /// The object `name` (in `namespace`, `None` for cluster-scoped kinds).
    pub fn get(&self, namespace: Option<&str>, name: &str) -> Option<Arc<K>> {
        let key = ObjectRef { namespace: namespace.map(str::to_string), name: name.to_string() };
        self.get_ref(&key)
    }

    /// The object behind `key`.
    pub fn get_ref(&self, key: &ObjectRef) -> Option<Arc<K>> {
        self.objects.read().expect("reflector store lock poisoned").get(key).cloned()
    }

    /// Every object, in no particular order.
    pub fn list(&self) -> Vec<Arc<K>> {
        self.objects.read().expect("reflector store lock poisoned").values().cloned().collect()
    }

    /// Number of objects.
    pub fn len(&self) -> usize {
        self.objects.read().expect("reflector store lock poisoned").len()
    }

    /// Whether the store holds no object.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the first complete list has been applied.
    pub fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }

    /// Waits for the first complete list.
    pub async fn wait_until_ready(&self) -> Result<(), WriterDropped> {
        let mut ready = self.ready.clone();
        ready.wait_for(|r| *r).await.map(|_| ()).map_err(|_| WriterDropped)
    }
}

/// The single writer of a [`Store`].
pub struct Writer<K> {
    objects: Objects<K>,
    ready: watch::Sender<bool>,
}

impl<K: Resource> Default for Writer<K> {
    fn default() -> Self {
        Writer { objects: Arc::default(), ready: watch::channel(false).0 }
    }
}

impl<K: Resource> Writer<K> {
    /// A writer with an empty, not-ready store.
    pub fn new() -> Self {
        Self::default()
    }

    /// A read handle on this writer's store.
    pub fn as_reader(&self) -> Store<K> {
        Store { objects: self.objects.clone(), ready: self.ready.subscribe() }
    }

    /// Applies one watcher event.
    pub fn apply(&mut self, event: &Event<K>) {
        let mut objects = self.objects.write().expect("reflector store lock poisoned");
        match event {
            Event::Applied(obj) => {
                objects.insert(ObjectRef::from_obj(obj), Arc::new(obj.clone()));
            }
            Event::Deleted(obj) => {
                objects.remove(&ObjectRef::from_obj(obj));
            }
            Event::Restarted(list) => {
                *objects = list.iter().map(|o| (ObjectRef::from_obj(o), Arc::new(o.clone()))).collect();
                drop(objects);
                self.ready.send_replace(true);
            }
        }
    }
}

/// A new empty store: its read handle and its writer.
pub fn store<K: Resource>() -> (Store<K>, Writer<K>) {
    let writer = Writer::new();
    (writer.as_reader(), writer)
}

/// Applies each event of `stream` to `writer`'s store, then passes it on.
pub fn reflector<K, E, S>(mut writer: Writer<K>, stream: S) -> impl Stream<Item = Result<Event<K>, E>>
where
    K: Resource,
    S: Stream<Item = Result<Event<K>, E>>,
{
    stream.inspect_ok(move |event| writer.apply(event))
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;
    use meseta_schemas::{ObjectMeta, Task};

    use super::*;

    fn task(ns: &str, name: &str, rv: u64) -> Task {
        Task {
            metadata: ObjectMeta {
                name: name.into(),
                namespace: Some(ns.into()),
                resource_version: Some(rv.to_string()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn store_follows_events_and_restarts_replace_everything() {
        let (reader, writer) = store::<Task>();
        assert!(!reader.is_ready());
        let events: Vec<Result<Event<Task>, ()>> = vec![
            Ok(Event::Restarted(vec![task("a", "t1", 1), task("b", "t1", 2)])),
            Ok(Event::Applied(task("a", "t1", 3))),
            Ok(Event::Deleted(task("b", "t1", 4))),
            Err(()),
            Ok(Event::Applied(task("a", "t2", 5))),
        ];
        let passed: Vec<_> = reflector(writer, futures::stream::iter(events)).collect().await;
        assert_eq!(passed.len(), 5);
        reader.wait_until_ready().await.unwrap();
        assert_eq!(reader.len(), 2);
        assert_eq!(reader.get(Some("a"), "t1").unwrap().revision(), 3);
        assert!(reader.get(Some("b"), "t1").is_none());

        let (reader, mut writer) = store::<Task>();
        writer.apply(&Event::Applied(task("a", "old", 1)));
        writer.apply(&Event::Restarted(vec![task("a", "new", 9)]));
        let names: Vec<_> = reader.list().iter().map(|t| t.metadata.name.clone()).collect();
        assert_eq!(names, vec!["new"]);
    }

    #[tokio::test]
    async fn wait_until_ready_fails_when_the_writer_goes_away_early() {
        let (reader, writer) = store::<Task>();
        drop(writer);
        assert!(reader.wait_until_ready().await.is_err());
    }
}
