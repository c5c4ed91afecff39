//! Leader election on a `Lease`: among candidates sharing a lease name, at
//! most one believes it leads at any time.
//!
//! Owns the campaign loop (acquire, renew, step down) and its published
//! state. It must not run the leader's work: callers watch
//! [`LeaderHandle::subscribe`] and start or stop their own loops.
//!
//! # Expected flow
//!
//! Every `duration / 3` a candidate reads the lease. If it is absent it
//! creates it; if it is free (no holder) or expired it takes it over with a
//! replace carrying the read resourceVersion; if it holds it, it renews
//! `renewTime` the same way. Both writes are optimistic: when two candidates
//! race, the store accepts one and the other gets a conflict, so two
//! candidates never both win.
//!
//! # Guarantees
//!
//! - Expiry is judged on the candidate's own clock: a lease counts as expired
//!   once its resourceVersion has not changed for `leaseDurationSeconds`
//!   since this candidate first saw that version. Clock skew between machines
//!   does not matter; a candidate that starts late waits one full duration.
//! - A leader steps down (publishes `false`) when a renew has not succeeded
//!   within `2/3 · duration` of the last successful one, i.e. before anyone
//!   else can consider the lease expired, and at once when another identity
//!   holds the lease.
//! - [`LeaderHandle::step_down`] releases a held lease (clears the holder), so
//!   another candidate takes over at its next attempt; dropping the handle
//!   stops campaigning without releasing (the lease then expires).

use std::time::Duration;

use chrono::Utc;
use meseta_schemas::{Lease, LeaseSpec};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::Instrument;

use crate::{Api, Result};

/// A candidate for leadership of one lease.
#[derive(Debug, Clone)]
pub struct LeaderElector {
    api: Api<Lease>,
    name: String,
    identity: String,
    duration: Duration,
}

/// The last version of the lease seen, and when (on this candidate's clock).
type Observed = Option<(String, Instant)>;

impl LeaderElector {
    /// Candidate `identity` for the lease `lease_name` in `api`'s namespace,
    /// holding it for `duration` (rounded up to whole seconds) per renewal.
    pub fn new(
        api: Api<Lease>,
        lease_name: impl Into<String>,
        identity: impl Into<String>,
        duration: Duration,
    ) -> Self {
        let secs = duration.as_secs_f64().ceil().max(1.0) as u64;
        LeaderElector { api, name: lease_name.into(), identity: identity.into(), duration: Duration::from_secs(secs) }
    }

    fn renew_every(&self) -> Duration {
        self.duration / 3
    }

    fn renew_deadline(&self) -> Duration {
        self.duration * 2 / 3
    }

    fn spec(&self, previous: Option<&LeaseSpec>) -> LeaseSpec {
        let now = Utc::now();
        let held = previous.filter(|p| p.holder_identity.as_deref() == Some(&self.identity));
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(self.duration.as_secs() as u32),
            acquire_time: held.and_then(|p| p.acquire_time).or(Some(now)),
            renew_time: Some(now),
            lease_transitions: match (previous, held) {
                (Some(p), None) => p.lease_transitions + 1,
                (Some(p), Some(_)) => p.lease_transitions,
                (None, _) => 0,
            },
        }
    }

    /// One attempt: `Ok(true)` when this candidate holds the lease afterwards.
    async fn try_acquire_or_renew(&self, observed: &mut Observed) -> Result<bool> {
        let Some(lease) = self.api.get_opt(&self.name).await? else {
            let lease = Lease::new(self.name.clone(), self.spec(None));
            return match self.api.create(&lease).await {
                Ok(created) => {
                    *observed = Some((created.metadata.resource_version.unwrap_or_default(), Instant::now()));
                    Ok(true)
                }
                Err(e) if e.is_already_exists() || e.is_conflict() => Ok(false),
                Err(e) => Err(e),
            };
        };
        let rv = lease.metadata.resource_version.clone().unwrap_or_default();
        let now = Instant::now();
        let seen_at = match observed {
            Some((seen, at)) if *seen == rv => *at,
            _ => {
                *observed = Some((rv, now));
                now
            }
        };
        let holder = lease.spec.holder_identity.as_deref().unwrap_or("");
        let held_by_me = holder == self.identity;
        let lease_duration = Duration::from_secs(lease.spec.lease_duration_seconds.unwrap_or(0).into());
        let expired = holder.is_empty() || now >= seen_at + lease_duration;
        if !held_by_me && !expired {
            return Ok(false);
        }
        let mut next = lease.clone();
        next.spec = self.spec(Some(&lease.spec));
        match self.api.replace(&next).await {
            Ok(written) => {
                if !held_by_me {
                    tracing::info!(lease = %self.name, identity = %self.identity, previous = holder, "acquired the lease");
                }
                *observed = Some((written.metadata.resource_version.unwrap_or_default(), Instant::now()));
                Ok(true)
            }
            Err(e) if e.is_conflict() || e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Clears the holder of a lease this candidate holds.
    async fn release(&self) -> Result<()> {
        let Some(mut lease) = self.api.get_opt(&self.name).await? else { return Ok(()) };
        if lease.spec.holder_identity.as_deref() != Some(&self.identity) {
            return Ok(());
        }
        lease.spec.holder_identity = None;
        lease.spec.lease_duration_seconds = Some(1);
        lease.spec.renew_time = Some(Utc::now());
        self.api.replace(&lease).await.map(|_| ())
    }

    /// Starts campaigning in the background.
    pub fn spawn(self) -> LeaderHandle {
        let (leading_tx, leading) = watch::channel(false);
        let (stop, stopped) = oneshot::channel();
        let span = tracing::info_span!("leader_election", lease = %self.name, identity = %self.identity);
        let task = tokio::spawn(self.campaign(leading_tx, stopped).instrument(span));
        LeaderHandle { leading, stop: Some(stop), task: Some(task) }
    }

    async fn campaign(self, leading: watch::Sender<bool>, mut stop: oneshot::Receiver<oneshot::Sender<()>>) {
        let mut observed: Observed = None;
        let mut last_renew: Option<Instant> = None;
        loop {
            let started = Instant::now();
            let is_leader = *leading.borrow();
            let deadline = last_renew.filter(|_| is_leader).map(|t| t + self.renew_deadline());
            let attempt = async {
                match deadline {
                    Some(deadline) => tokio::time::timeout_at(deadline, self.try_acquire_or_renew(&mut observed))
                        .await
                        .unwrap_or(Ok(false)),
                    None => self.try_acquire_or_renew(&mut observed).await,
                }
            };
            let result = tokio::select! {
                result = attempt => result,
                done = &mut stop => return self.finish(&leading, done.ok()).await,
            };
            match result {
                Ok(true) => {
                    last_renew = Some(started);
                    leading.send_if_modified(|l| !std::mem::replace(l, true));
                }
                Ok(false) => {
                    if leading.send_if_modified(|l| std::mem::replace(l, false)) {
                        tracing::warn!("lost the lease; stepping down");
                    }
                }
                Err(e) => {
                    let past_deadline = deadline.is_some_and(|d| Instant::now() >= d);
                    tracing::warn!(error = %e, "lease attempt failed");
                    if past_deadline && leading.send_if_modified(|l| std::mem::replace(l, false)) {
                        tracing::warn!("could not renew the lease in time; stepping down");
                    }
                }
            }
            tokio::select! {
                () = tokio::time::sleep(self.renew_every()) => {}
                done = &mut stop => return self.finish(&leading, done.ok()).await,
            }
        }
    }

    async fn finish(&self, leading: &watch::Sender<bool>, done: Option<oneshot::Sender<()>>) {
        let was_leader = leading.send_replace(false);
        if was_leader {
            if let Err(e) = self.release().await {
                tracing::warn!(error = %e, "could not release the lease; it will expire");
            }
        }
        if let Some(done) = done {
            let _ = done.send(());
        }
    }
}

/// A running campaign. Dropping it stops campaigning without releasing the
/// lease (as if the process died).
pub struct LeaderHandle {
    leading: watch::Receiver<bool>,
    stop: Option<oneshot::Sender<oneshot::Sender<()>>>,
    task: Option<JoinHandle<()>>,
}

impl LeaderHandle {
    /// Whether this candidate leads now.
    pub fn is_leader(&self) -> bool {
        *self.leading.borrow()
    }

    /// A channel that turns `true` while this candidate leads.
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.leading.clone()
    }

    /// Waits until this candidate leads.
    pub async fn wait_until_leader(&self) {
        let mut leading = self.leading.clone();
        // The sender lives as long as the campaign task, which only ends through this handle.
        let _ = leading.wait_for(|l| *l).await;
    }

    /// Stops campaigning, and releases the lease if held so another
    /// candidate can take over at once.
    pub async fn step_down(mut self) {
        if let Some(stop) = self.stop.take() {
            let (done, finished) = oneshot::channel();
            if stop.send(done).is_ok() {
                let _ = finished.await;
            }
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for LeaderHandle {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl std::fmt::Debug for LeaderHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaderHandle").field("is_leader", &self.is_leader()).finish()
    }
}
