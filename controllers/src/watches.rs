//! Watches shared by the controller loops of one process.
//!
//! Every loop plans from a cache of every Task; with one watch each, every
//! task write was sent, decoded and applied once per loop. [`Watches`] keeps
//! one Task cache for all of them (a Kubernetes shared informer): one watch,
//! one decode, one store, and every subscriber woken (and handed the event,
//! when it asks) after the store applied it. Agents and Frameworks (whose
//! status, with its offer filters, changes at every accept) are shared the
//! same way.
//!
//! Owns starting the shared watch and fanning its events out. It must not
//! interpret objects.

use std::sync::{Arc, Mutex};

use meseta_client::reflector::Store;
use meseta_client::watcher::Event;
use meseta_client::{Api, Client, WatchParams};
use meseta_schemas::kinds::{Agent, Framework, Task};
use meseta_schemas::Resource;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::tasks::cache::{spawn_hub, Observer, Subscribers};

/// One cache's store and the loops it wakes.
struct Hub<K> {
    store: Store<K>,
    subscribers: Subscribers<K>,
}

/// The shared watches of a process; the first subscriber of a kind starts
/// its watch, which runs until `cancel`.
pub struct Watches {
    client: Client,
    cancel: CancellationToken,
    tasks: Mutex<Option<Hub<Task>>>,
    agents: Mutex<Option<Hub<Agent>>>,
    frameworks: Mutex<Option<Hub<Framework>>>,
}

impl Watches {
    /// Watches through `client`, stopped by `cancel`.
    pub fn new(client: Client, cancel: CancellationToken) -> Watches {
        Watches { client, cancel, tasks: Mutex::new(None), agents: Mutex::new(None), frameworks: Mutex::new(None) }
    }

    /// The cache of every Task. `changed` is notified after every event the
    /// store applied, and `observe` sees it first. A subscriber that comes
    /// after the watch started misses the events before it (it still sees
    /// their result in the store).
    pub(crate) fn tasks(
        &self,
        changed: Arc<Notify>,
        observe: impl FnMut(&Event<Task>) + Send + 'static,
    ) -> Store<Task> {
        self.subscribe(&self.tasks, changed, Box::new(observe))
    }

    /// The cache of every Agent; `changed` is notified after every event.
    pub(crate) fn agents(&self, changed: Arc<Notify>) -> Store<Agent> {
        self.subscribe(&self.agents, changed, Box::new(|_| {}))
    }

    /// The cache of every Framework; `changed` is notified after every event.
    pub(crate) fn frameworks(&self, changed: Arc<Notify>) -> Store<Framework> {
        self.subscribe(&self.frameworks, changed, Box::new(|_| {}))
    }

    fn subscribe<K: Resource>(
        &self,
        slot: &Mutex<Option<Hub<K>>>,
        changed: Arc<Notify>,
        observe: Observer<K>,
    ) -> Store<K> {
        let mut hub = slot.lock().expect("watches lock");
        let hub = hub.get_or_insert_with(|| {
            let subscribers: Subscribers<K> = Arc::default();
            let api = Api::<K>::all(self.client.clone());
            let store = spawn_hub(api, WatchParams::default(), subscribers.clone(), self.cancel.clone());
            Hub { store, subscribers }
        });
        hub.subscribers.lock().expect("subscribers lock").push((changed, observe));
        hub.store.clone()
    }
}
