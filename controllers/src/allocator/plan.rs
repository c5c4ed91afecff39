//! One allocation cycle as a pure function: [`plan_cycle`] reads a
//! [`Snapshot`] and returns the writes of the cycle ([`CyclePlan`]).
//!
//! # Expected flow
//!
//! 1. Framework liveness from leases ([`crate::frameworks`]); filters pruned
//!    and cleared on revive.
//! 2. Pending Reservations admitted against what tasks hold
//!    ([`crate::reservations`]); reservations win over outstanding offers.
//! 3. Outstanding offers (not recently consumed ones) rescinded when their agent is gone, not Ready or
//!    unschedulable, their framework is gone, suppressed or not connected,
//!    they expired, or their resources are no longer free (per agent, in
//!    creation order, the offers that no longer fit the free buckets).
//! 4. Weighted DRF ([`meseta_schemas::allocation::allocate`]) over the rest:
//!    new offers expiring after the offer timeout.
//! 5. Status of Frameworks, Roles and Quotas, listed only where it changed.
//!
//! It must not do I/O or read the clock.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use meseta_schemas::allocation::{allocate, AllocationInput, ClusterObjects, BUILTIN_FRAMEWORK};
use meseta_schemas::kinds::{
    Agent, Framework, FrameworkStatus, Lease, Offer, OfferState, Quota, QuotaStatus, Reservation, ReservationState,
    Role, RoleStatus, Task,
};
use meseta_schemas::{Resources, Time};

use crate::frameworks::{lease_name, liveness, upkeep_filters, Liveness};

/// Label naming an offer's framework.
pub const LABEL_FRAMEWORK: &str = "meseta.io/framework";
/// Label naming an offer's agent.
pub const LABEL_AGENT: &str = "meseta.io/agent";

/// Everything a cycle reads.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Every agent.
    pub agents: Vec<Agent>,
    /// Every task (shared with the cache: tasks are never cloned per cycle).
    pub tasks: Vec<Arc<Task>>,
    /// Every offer believed to stand (charged, and rescinded when it may
    /// no longer stand); shared with the cache.
    pub offers: Vec<Arc<Offer>>,
    /// Offers that vanished (accepted, declined) so recently that the tasks
    /// they launched may not be in `tasks` yet: charged to their framework,
    /// never rescinded.
    pub consumed: Vec<Arc<Offer>>,
    /// Every framework.
    pub frameworks: Vec<Framework>,
    /// Every reservation.
    pub reservations: Vec<Reservation>,
    /// Every quota.
    pub quotas: Vec<Quota>,
    /// Every role object.
    pub roles: Vec<Role>,
    /// Framework leases (`<role>/framework-<name>`); others are ignored.
    pub leases: Vec<Lease>,
}

/// The writes of one cycle.
#[derive(Debug, Clone, Default)]
pub struct CyclePlan {
    /// Offers to create (name, namespace, labels and spec set).
    pub create: Vec<Offer>,
    /// Offers to delete: `(namespace, name, why)`.
    pub rescind: Vec<(String, String, String)>,
    /// Reservations whose status changes (the object with its new status).
    pub reservations: Vec<Reservation>,
    /// Frameworks whose status changes.
    pub frameworks: Vec<Framework>,
    /// Roles whose status changes.
    pub roles: Vec<Role>,
    /// Quotas whose status changes.
    pub quotas: Vec<Quota>,
    /// Tasks of frameworks past their failover timeout: `(namespace, name)`
    /// to set `spec.killRequested` on.
    pub kill: Vec<(String, String)>,
}

fn ns(meta: &meseta_schemas::ObjectMeta) -> &str {
    meta.namespace.as_deref().unwrap_or("default")
}

fn ready(agent: &Agent) -> bool {
    agent.metadata.deletion_timestamp.is_none()
        && !agent.spec.unschedulable
        && agent.status.as_ref().is_some_and(|s| s.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Shares are written rounded so that float noise does not cause writes.
fn round_share(v: f64) -> f64 {
    (v * 10_000.0).round() / 10_000.0
}

fn suffix(seed: u64, i: usize) -> String {
    const CHARS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut x = seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (0..5)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            CHARS[(x % CHARS.len() as u64) as usize] as char
        })
        .collect()
}

/// Plans one cycle at `now`; `seed` shuffles agents and names offers.
pub fn plan_cycle(snap: &Snapshot, now: Time, offer_timeout: chrono::Duration, seed: u64) -> CyclePlan {
    let mut out = CyclePlan::default();
    let leases: HashMap<(&str, &str), &Lease> =
        snap.leases.iter().map(|l| ((ns(&l.metadata), l.metadata.name.as_str()), l)).collect();
    let agents: HashMap<&str, &Agent> = snap.agents.iter().map(|a| (a.metadata.name.as_str(), a)).collect();

    // 1. Frameworks: liveness and filters.
    let mut live: HashMap<(&str, &str), Liveness> = HashMap::new();
    let mut frameworks: Vec<Framework> = Vec::with_capacity(snap.frameworks.len());
    for fw in &snap.frameworks {
        let lease = leases.get(&(ns(&fw.metadata), lease_name(&fw.metadata.name).as_str())).copied();
        let l = liveness(fw, lease, now);
        live.insert((ns(&fw.metadata), fw.metadata.name.as_str()), l);
        let mut fw2 = fw.clone();
        let mut status = upkeep_filters(fw, now);
        status.registered = l != Liveness::Gone;
        fw2.status = Some(status);
        if l != Liveness::Connected {
            fw2.spec.suppressed = true;
        }
        frameworks.push(fw2);
        if l == Liveness::Gone {
            for t in snap.tasks.iter().filter(|t| {
                ns(&t.metadata) == ns(&fw.metadata)
                    && t.spec.framework.as_deref().unwrap_or(BUILTIN_FRAMEWORK) == fw.metadata.name
                    && !t.state().is_terminal()
                    && !t.spec.kill_requested
            }) {
                out.kill.push((ns(&t.metadata).to_string(), t.metadata.name.clone()));
            }
        }
    }

    // 2. Reservations: admit Pending ones against what tasks hold. The
    // tasks are walked once: what they hold, with the frameworks, quotas and
    // roles (which admission and the rescind check do not read), is built
    // again only when a reservation became Ready, since that moves what the
    // role's tasks hold into its reservation; the offers are charged on top.
    let mut reservations = snap.reservations.clone();
    let held = |reservations: &[Reservation]| {
        AllocationInput::from_objects(&ClusterObjects {
            agents: &snap.agents,
            tasks: &snap.tasks,
            frameworks: &frameworks,
            quotas: &snap.quotas,
            roles: &snap.roles,
            reservations,
            ..Default::default()
        })
    };
    let mut input = held(&reservations);
    let mut pending: Vec<usize> = (0..reservations.len())
        .filter(|&i| reservations[i].status.as_ref().is_none_or(|s| s.state == ReservationState::Pending))
        .filter(|&i| reservations[i].metadata.deletion_timestamp.is_none())
        .collect();
    pending.sort_by(|&a, &b| {
        let (x, y) = (&reservations[a].metadata, &reservations[b].metadata);
        (x.creation_timestamp, &x.name).cmp(&(y.creation_timestamp, &y.name))
    });
    let refs: Vec<&Reservation> = pending.iter().map(|&i| &reservations[i]).collect();
    let mut readied = false;
    for (k, status) in crate::reservations::admit(&input, &refs) {
        readied |= status.state == ReservationState::Ready;
        let r = &mut reservations[pending[k]];
        r.status = Some(status);
        out.reservations.push(r.clone());
    }
    if readied {
        input = held(&reservations);
    }

    // 3. Rescind offers that may no longer stand.
    let fw_index: HashMap<(&str, &str), &Framework> =
        frameworks.iter().map(|f| ((ns(&f.metadata), f.metadata.name.as_str()), f)).collect();
    let mut room: HashMap<&str, Buckets> = input.agents.iter().map(|a| (a.name.as_str(), Buckets::free(a))).collect();
    let mut offers: Vec<&Offer> = snap.offers.iter().map(|o| &**o).collect();
    offers.sort_by(|a, b| {
        (a.metadata.creation_timestamp, &a.metadata.name).cmp(&(b.metadata.creation_timestamp, &b.metadata.name))
    });
    let mut kept: Vec<Offer> = Vec::new();
    for o in offers {
        let why = rescind_reason(o, &agents, &fw_index, &live, now)
            .or_else(|| room.get_mut(o.spec.agent.as_str())?.take(ns(&o.metadata), o).err());
        match why {
            Some(why) => out.rescind.push((ns(&o.metadata).to_string(), o.metadata.name.clone(), why)),
            None => kept.push(o.clone()),
        }
    }

    // 4. Weighted DRF over the rest (and what recently consumed offers hold).
    kept.extend(snap.consumed.iter().map(|o| (**o).clone()));
    input.charge_offers(&kept);
    for (a, agent) in input.agents.iter_mut().zip(&snap.agents) {
        a.unschedulable |= !ready(agent);
    }
    let plan = allocate(&input, now, seed);
    let expires_at = Some(now + offer_timeout);
    let mut new_alloc: BTreeMap<(&str, &str), Resources> = BTreeMap::new();
    for (i, p) in plan.offers.iter().enumerate() {
        let name = format!("{}-{}-{}", truncate(p.framework, 100), truncate(p.agent, 100), suffix(seed, i));
        let mut offer = Offer::new(name, p.to_spec(expires_at)).in_namespace(p.role);
        offer.metadata.labels.insert(LABEL_FRAMEWORK.into(), p.framework.to_string());
        offer.metadata.labels.insert(LABEL_AGENT.into(), p.agent.to_string());
        out.create.push(offer);
        let held = p.resources.add(&p.reserved);
        let slot = new_alloc.entry((p.role, p.framework)).or_default();
        *slot = slot.add(&held);
    }

    // 5. Statuses, where changed.
    let mut role_alloc: BTreeMap<&str, Resources> =
        input.roles.iter().map(|(k, r)| (k.as_str(), r.allocated.clone())).collect();
    for ((role, _), held) in &new_alloc {
        let slot = role_alloc.entry(role).or_default();
        *slot = slot.add(held);
    }
    for (fw, orig) in frameworks.iter().zip(&snap.frameworks) {
        let key = (ns(&fw.metadata), fw.metadata.name.as_str());
        let Some(f) = input.frameworks.iter().find(|f| (f.role.as_str(), f.name.as_str()) == key) else {
            continue;
        };
        let mut status: FrameworkStatus = fw.status.clone().unwrap_or_default();
        status.allocated = new_alloc.get(&key).map_or(f.allocated.clone(), |n| f.allocated.add(n));
        status.dominant_share = round_share(plan.framework_shares.get(&key).copied().unwrap_or(0.0));
        if orig.status.as_ref() != Some(&status) {
            let mut w = orig.clone();
            w.status = Some(status);
            out.frameworks.push(w);
        }
    }
    for role in &snap.roles {
        let name = role.metadata.name.as_str();
        let status = RoleStatus {
            allocated: role_alloc.get(name).cloned().unwrap_or_default(),
            dominant_share: round_share(plan.role_shares.get(name).copied().unwrap_or(0.0)),
        };
        if role.status.as_ref() != Some(&status) {
            let mut w = role.clone();
            w.status = Some(status);
            out.roles.push(w);
        }
    }
    for q in &snap.quotas {
        let used = role_alloc.get(ns(&q.metadata)).cloned().unwrap_or_default();
        let headroom = q.spec.limit.as_ref().map(|l| Resources { ports: Vec::new(), ..l.saturating_sub(&used) });
        let status = QuotaStatus { used: Resources { ports: Vec::new(), ..used }, headroom };
        if q.status.as_ref() != Some(&status) {
            let mut w = q.clone();
            w.status = Some(status);
            out.quotas.push(w);
        }
    }
    out
}

fn truncate(s: &str, n: usize) -> &str {
    let mut end = s.len().min(n);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].trim_end_matches(['-', '.'])
}

fn rescind_reason(
    o: &Offer,
    agents: &HashMap<&str, &Agent>,
    frameworks: &HashMap<(&str, &str), &Framework>,
    live: &HashMap<(&str, &str), Liveness>,
    now: Time,
) -> Option<String> {
    let state = o.status.as_ref().map(|s| s.state).unwrap_or_default();
    if state != OfferState::Outstanding {
        return Some(format!("offer is {state:?}"));
    }
    if o.spec.expires_at.is_some_and(|at| at <= now) {
        return Some("offer expired".into());
    }
    match agents.get(o.spec.agent.as_str()) {
        None => return Some(format!("agent {} is gone", o.spec.agent)),
        Some(a) if !ready(a) => return Some(format!("agent {} is not Ready or is unschedulable", o.spec.agent)),
        _ => {}
    }
    let key = (ns(&o.metadata), o.spec.framework.as_str());
    match (frameworks.get(&key), live.get(&key)) {
        (None, _) => Some(format!("framework {} is gone", o.spec.framework)),
        (Some(f), _) if f.metadata.deletion_timestamp.is_some() => Some("framework is being deleted".into()),
        (_, Some(Liveness::Connected)) if frameworks[&key].spec.suppressed => {
            Some(format!("framework {} is suppressed", o.spec.framework))
        }
        (_, Some(Liveness::Connected)) => None,
        _ => Some(format!("framework {} is not connected", o.spec.framework)),
    }
}

/// Free resources of one agent per bucket, consumed by the offers kept.
struct Buckets {
    unreserved: Resources,
    reserved: BTreeMap<String, Resources>,
    revocable: Resources,
}

impl Buckets {
    fn free(a: &meseta_schemas::allocation::AgentInput) -> Buckets {
        let mut reserved: BTreeMap<String, Resources> = BTreeMap::new();
        for (role, r) in a.static_reservations.iter().chain(&a.dynamic_reservations) {
            let slot = reserved.entry(role.clone()).or_default();
            *slot = slot.add(r);
        }
        let all = reserved.values().fold(Resources::default(), |acc, r| acc.add(r));
        let unreserved = a.total.saturating_sub(&all).saturating_sub(&a.used.unreserved);
        for (role, used) in &a.used.reserved {
            if let Some(slot) = reserved.get_mut(role) {
                *slot = slot.saturating_sub(used);
            }
        }
        Buckets { unreserved, reserved, revocable: a.revocable.saturating_sub(&a.used.revocable) }
    }

    /// Takes `o`'s resources, or says which bucket no longer holds them.
    fn take(&mut self, role: &str, o: &Offer) -> Result<(), String> {
        let reserved = self.reserved.get(role).cloned().unwrap_or_default();
        if !o.spec.resources.fits(&self.unreserved) {
            return Err("its unreserved resources are no longer free".into());
        }
        if !o.spec.reserved.fits(&reserved) {
            return Err(format!("the reservation of role {role} no longer holds it"));
        }
        if !o.spec.revocable.fits(&self.revocable) {
            return Err("its revocable resources are no longer available".into());
        }
        self.unreserved = self.unreserved.saturating_sub(&o.spec.resources);
        self.reserved.insert(role.to_string(), reserved.saturating_sub(&o.spec.reserved));
        self.revocable = self.revocable.saturating_sub(&o.spec.revocable);
        Ok(())
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
