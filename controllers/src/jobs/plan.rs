//! The launch planner: which PENDING tasks go on which offers.
//!
//! Owns [`plan_launches`], a pure function from the framework's outstanding
//! offers, its PENDING tasks and the constraint context to accepts and
//! declines. It must not do I/O nor decide which tasks exist (the job
//! planner does).
//!
//! # Guarantees
//!
//! - An offer is never over-committed: the tasks put on it fit its scalars
//!   together, and every fixed port they ask for is in its ports, each
//!   given to one task only; `port: 0` requests take a free port of the offer.
//! - Constraints are checked against the context *and* the tasks already
//!   placed in this plan, so `UNIQUE` and `MAX_PER` hold within one round.
//! - Each task is placed at most once; each offer is either accepted (with
//!   at least one task) or declined, never both.
//! - Tasks are tried in the order given (callers sort by production,
//!   priority and age). Offers are tried least loaded first (fewest tasks
//!   on the agent, then most free cpus, then agent name), in turns: an
//!   offer takes up to `per_offer` consecutive tasks before the next offer
//!   gets its turn, and after the last offer the first gets a second turn.
//!   One accept therefore carries several tasks (an accept consumes the
//!   agent's whole offer, so one task per accept would make the allocator
//!   offer each agent again for every task), while tasks still spread over
//!   the least loaded agents: with offers that fit every task and no
//!   constraints, `T` tasks use `min(offers, ceil(T / per_offer))` offers and
//!   no offer gets more than `per_offer` tasks more than another.

use std::collections::HashSet;

use meseta_schemas::kinds::Constraint;
use meseta_schemas::resources::{ports_contain, subtract_ports, PortRange, Resources};

use super::constraints::{AgentAttributes, ConstraintContext};

/// An outstanding offer, as the planner sees it.
#[derive(Debug, Clone, Default)]
pub struct OfferView {
    /// Offer name.
    pub name: String,
    /// The agent offered.
    pub agent: String,
    /// The agent's hostname and attributes.
    pub attributes: AgentAttributes,
    /// Non-revocable resources usable by the role (unreserved + reserved).
    pub resources: Resources,
    /// Revocable resources.
    pub revocable: Resources,
    /// How many tasks the agent already holds; less loaded agents' offers
    /// are tried first.
    pub load: usize,
}

/// A PENDING task waiting for an offer.
#[derive(Debug, Clone, Default)]
pub struct PendingTask {
    /// Task name.
    pub name: String,
    /// Constraint group (the job's name, or the task's own for a direct task).
    pub group: String,
    /// Scalars needed (ports are in `ports`).
    pub resources: Resources,
    /// Requested host ports, 0 for any.
    pub ports: Vec<u16>,
    /// Placement constraints.
    pub constraints: Vec<Constraint>,
    /// Runs on revocable resources.
    pub revocable: bool,
}

/// Launch these tasks on this offer.
#[derive(Debug, Clone, PartialEq)]
pub struct Accept {
    /// The offer.
    pub offer: String,
    /// The agent behind it.
    pub agent: String,
    /// Tasks to launch, in placement order.
    pub tasks: Vec<String>,
}

/// The outcome of one planning round.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LaunchPlan {
    /// Offers used, with their tasks.
    pub accepts: Vec<Accept>,
    /// Offers not used.
    pub declines: Vec<String>,
    /// Tasks left unplaced, with the last reason an offer refused them.
    pub unplaced: Vec<(String, String)>,
}

struct Slot<'a> {
    offer: &'a OfferView,
    free: Resources,
    revocable: Resources,
    tasks: Vec<String>,
}

fn scalars(r: &Resources) -> Resources {
    Resources { ports: Vec::new(), ..r.clone() }
}

/// Picks host ports for `wanted` out of `free`; `None` when they do not fit.
fn pick_ports(wanted: &[u16], free: &[PortRange]) -> Option<Vec<PortRange>> {
    let mut left = free.to_vec();
    let mut taken = Vec::with_capacity(wanted.len());
    for &p in wanted.iter().filter(|p| **p != 0) {
        let r = PortRange { begin: p, end: p };
        if !ports_contain(&left, &r) {
            return None;
        }
        left = subtract_ports(&left, &[r]);
        taken.push(r);
    }
    for _ in wanted.iter().filter(|p| **p == 0) {
        let first = left.iter().find(|r| !r.is_empty())?.begin;
        let r = PortRange { begin: first, end: first };
        left = subtract_ports(&left, &[r]);
        taken.push(r);
    }
    Some(taken)
}

/// Plans which `pending` tasks launch on which `offers`, at most
/// `per_offer` (at least 1) tasks on an offer per turn; see the module docs.
/// `ctx` must already count the groups' active instances; it is updated with
/// the placements made.
pub fn plan_launches(
    offers: &[OfferView],
    pending: &[PendingTask],
    ctx: &mut ConstraintContext,
    per_offer: usize,
) -> LaunchPlan {
    let per_offer = per_offer.max(1);
    let mut order: Vec<&OfferView> = offers.iter().collect();
    order.sort_by(|a, b| {
        a.load
            .cmp(&b.load)
            .then(b.resources.cpus.total_cmp(&a.resources.cpus))
            .then(a.agent.cmp(&b.agent))
            .then(a.name.cmp(&b.name))
    });
    let mut slots: Vec<Slot<'_>> = order
        .into_iter()
        .map(|o| Slot { offer: o, free: o.resources.clone(), revocable: o.revocable.clone(), tasks: Vec::new() })
        .collect();
    let mut plan = LaunchPlan::default();
    // A task shape that fit nowhere fits nowhere for its twins either
    // (same group, same needs): skip them without scanning every offer again.
    let mut hopeless: HashSet<String> = HashSet::new();
    // The offer whose turn it is, and how many tasks it took in this turn.
    let (mut cursor, mut turn) = (0usize, 0usize);
    for task in pending {
        let shape = format!("{}|{:?}|{:?}|{}", task.group, scalars(&task.resources), task.ports, task.revocable);
        if slots.is_empty() || hopeless.contains(&shape) {
            plan.unplaced.push((task.name.clone(), "no offer fits".into()));
            continue;
        }
        let need = scalars(&task.resources);
        let mut why = String::from("no offer has enough resources");
        let mut placed = false;
        for step in 0..slots.len() {
            let i = (cursor + step) % slots.len();
            let slot = &mut slots[i];
            let pool = if task.revocable { &slot.revocable } else { &slot.free };
            if !need.fits(&scalars(pool)) {
                continue;
            }
            let Some(ports) = pick_ports(&task.ports, &pool.ports) else {
                why = "no offer has the ports asked for".into();
                continue;
            };
            if let Err(e) = ctx.admits(&task.group, &task.constraints, &slot.offer.attributes) {
                why = e;
                continue;
            }
            let charge = Resources { ports, ..need.clone() };
            if task.revocable {
                slot.revocable = slot.revocable.saturating_sub(&charge);
            } else {
                slot.free = slot.free.saturating_sub(&charge);
            }
            slot.tasks.push(task.name.clone());
            ctx.record(&task.group, &task.constraints, &slot.offer.attributes);
            // A task that skipped the offer whose turn it was starts the
            // turn of the offer it went to.
            turn = if i == cursor { turn + 1 } else { 1 };
            cursor = i;
            if turn >= per_offer {
                (cursor, turn) = ((i + 1) % slots.len(), 0);
            }
            placed = true;
            break;
        }
        if !placed {
            hopeless.insert(shape);
            plan.unplaced.push((task.name.clone(), why));
        }
    }
    for slot in slots {
        if slot.tasks.is_empty() {
            plan.declines.push(slot.offer.name.clone());
        } else {
            plan.accepts.push(Accept {
                offer: slot.offer.name.clone(),
                agent: slot.offer.agent.clone(),
                tasks: slot.tasks,
            });
        }
    }
    plan
}

#[cfg(test)]
mod tests;
