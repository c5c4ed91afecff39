//! What the allocator believes about offers between its watch and its own
//! writes: which offers stand (and may be rescinded), and which vanished so
//! recently that they must stay charged.
//!
//! Owns reconciling the offers cache with the offers this controller created
//! or rescinded and with the deletions the watch reported. It must not
//! decide what to offer or rescind (the cycle plan does) nor do I/O.
//!
//! # Rules
//!
//! - An offer this controller created stands until the cache shows it, or
//!   the watch reports it deleted (a framework accepted or declined it
//!   before a cycle looked), or it is older than the offer timeout plus the
//!   grace.
//! - An offer that disappears without this controller deleting it is
//!   *consumed*: charged, never rescinded, until the tasks cache has seen
//!   the revision that deleted it (an accept binds its tasks in that same
//!   revision, so from then on they are cached and charge the agent
//!   themselves; a decline bound nothing), or for the grace when that
//!   revision is unknown or the tasks cache does not get there. A created offer the plan
//!   rescinds before the cache showed it is consumed too (the delete may
//!   have lost to an accept), so it is rescinded once, not every cycle.
//! - An offer this controller rescinded is not believed while the cache
//!   still shows it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use meseta_client::ObjectRef;
use meseta_schemas::kinds::Offer;
use tokio::time::Instant;

/// The offers of one cycle.
#[derive(Debug, Default)]
pub(crate) struct Believed {
    /// Offers that stand: charged and subject to rescinds.
    pub(crate) standing: Vec<Arc<Offer>>,
    /// Offers that vanished recently: charged only.
    pub(crate) consumed: Vec<Arc<Offer>>,
}

/// An offer the watch reported deleted, and the revision that deleted it
/// (0 when unknown).
pub(crate) type Gone = (ObjectRef, u64);

/// The allocator's offer bookkeeping; see the module docs.
#[derive(Default)]
pub(crate) struct Ledger {
    created: HashMap<ObjectRef, (Arc<Offer>, Instant)>,
    deleted: HashMap<ObjectRef, Instant>,
    /// Consumed offers: since when, and the revision that deleted them (0: unknown).
    vanished: HashMap<ObjectRef, (Arc<Offer>, Instant, u64)>,
    seen: HashMap<ObjectRef, Arc<Offer>>,
}

pub(crate) fn key(o: &Offer) -> ObjectRef {
    ObjectRef { namespace: o.metadata.namespace.clone(), name: o.metadata.name.clone() }
}

impl Ledger {
    /// The offers the next cycle should believe in, from the cache, the
    /// offers the watch reported deleted since the last call, and the newest
    /// revision the tasks cache has applied (read before the tasks are).
    pub(crate) fn believe(
        &mut self,
        cached: Vec<Arc<Offer>>,
        gone: &[Gone],
        tasks_seen: u64,
        now: Instant,
        offer_timeout: Duration,
        grace: Duration,
    ) -> Believed {
        let stale = offer_timeout + grace;
        let current: HashMap<ObjectRef, Arc<Offer>> = cached.into_iter().map(|o| (key(&o), o)).collect();
        let deleted_at: HashMap<&ObjectRef, u64> = gone.iter().map(|(k, rev)| (k, *rev)).collect();
        let revision = |k: &ObjectRef| deleted_at.get(k).copied().unwrap_or(0);
        for (k, o) in self.seen.drain() {
            if !current.contains_key(&k) && !self.deleted.contains_key(&k) {
                let rev = revision(&k);
                self.vanished.insert(k, (o, now, rev));
            }
        }
        for (k, rev) in gone {
            if let Some((o, _)) = self.created.remove(k) {
                if !self.deleted.contains_key(k) && !current.contains_key(k) {
                    self.vanished.insert(k.clone(), (o, now, *rev));
                }
            }
        }
        self.created.retain(|k, (_, at)| !current.contains_key(k) && now.duration_since(*at) < stale);
        self.deleted.retain(|k, at| current.contains_key(k) && now.duration_since(*at) < stale);
        self.vanished.retain(|k, (_, at, rev)| {
            let tasks_cached = *rev > 0 && tasks_seen >= *rev;
            !current.contains_key(k) && now.duration_since(*at) < grace && !tasks_cached
        });
        self.seen = current.clone();
        let mut standing: Vec<Arc<Offer>> =
            current.into_iter().filter(|(k, _)| !self.deleted.contains_key(k)).map(|(_, o)| o).collect();
        standing.extend(self.created.values().map(|(o, _)| o.clone()));
        Believed { standing, consumed: self.vanished.values().map(|(o, _, _)| o.clone()).collect() }
    }

    /// Notes that this cycle creates `offer`.
    pub(crate) fn created(&mut self, offer: &Offer, now: Instant) {
        self.created.insert(key(offer), (Arc::new(offer.clone()), now));
    }

    /// Notes that creating `k` failed.
    pub(crate) fn create_failed(&mut self, k: &ObjectRef) {
        self.created.remove(k);
    }

    /// Notes that this cycle rescinds `k`.
    pub(crate) fn rescinded(&mut self, k: ObjectRef, now: Instant) {
        if let Some((o, _)) = self.created.remove(&k) {
            self.vanished.insert(k.clone(), (o, now, 0));
        }
        self.deleted.insert(k, now);
    }
}

#[cfg(test)]
#[path = "ledger_tests.rs"]
mod tests;
