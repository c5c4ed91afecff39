//! Building an [`AllocationInput`] from API objects, as the allocator
//! controller's caches hold them. Owns the mapping from kinds to the
//! snapshot (who holds what, which filters still apply); it must not decide
//! anything about allocation.

use std::borrow::Borrow;
use std::collections::{BTreeMap, HashMap};

use crate::kinds::{
    Agent, Framework, FrameworkCapability, Offer, OfferState, Quota, Reservation, ReservationState, Role, Task,
};
use crate::resources::{normalize_ports, ports_contain, PortRange, Resources};

use super::{AgentInput, AllocationInput, FrameworkInput, QuotaInput, RoleInput, BUILTIN_FRAMEWORK};

/// Plain lists of the objects an allocation cycle reads. Tasks, by far the
/// most numerous, may be given as `Task`s or shared (`Arc<Task>`), so a
/// cache's copies need not be cloned every cycle.
#[derive(Debug)]
pub struct ClusterObjects<'a, T: Borrow<Task> = Task> {
    /// Every agent.
    pub agents: &'a [Agent],
    /// Every task (those that do not hold resources are skipped).
    pub tasks: &'a [T],
    /// Every offer (only outstanding ones count as allocated).
    pub offers: &'a [Offer],
    /// Every framework.
    pub frameworks: &'a [Framework],
    /// Every quota (namespace = role).
    pub quotas: &'a [Quota],
    /// Every role object (weights).
    pub roles: &'a [Role],
    /// Every reservation (only Ready ones count).
    pub reservations: &'a [Reservation],
}

impl<T: Borrow<Task>> Clone for ClusterObjects<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T: Borrow<Task>> Copy for ClusterObjects<'_, T> {}

impl<T: Borrow<Task>> Default for ClusterObjects<'_, T> {
    fn default() -> Self {
        ClusterObjects {
            agents: &[],
            tasks: &[],
            offers: &[],
            frameworks: &[],
            quotas: &[],
            roles: &[],
            reservations: &[],
        }
    }
}

fn namespace(meta: &crate::meta::ObjectMeta) -> &str {
    meta.namespace.as_deref().unwrap_or("default")
}

fn unavailable(agent: &Agent) -> bool {
    agent.metadata.deletion_timestamp.is_some()
        || agent.status.as_ref().is_some_and(|s| {
            s.conditions.iter().any(|c| {
                (c.type_ == "Unreachable" && c.status == "True") || (c.type_ == "Ready" && c.status == "False")
            })
        })
}

fn framework_input(fw: &Framework) -> FrameworkInput {
    let status = fw.status.clone().unwrap_or_default();
    let mut filters = BTreeMap::new();
    // REVIVE: a new revive generation clears every filter, even before the
    // framework controller has caught up and emptied the list.
    if fw.spec.revive_generation == status.observed_revive_generation {
        for flt in status.filters {
            let until = filters.entry(flt.agent).or_insert(flt.until);
            *until = (*until).max(flt.until);
        }
    }
    FrameworkInput {
        name: fw.metadata.name.clone(),
        role: namespace(&fw.metadata).to_string(),
        suppressed: fw.spec.suppressed,
        revocable: fw.spec.capabilities.contains(&FrameworkCapability::Revocable),
        gpu: fw.spec.capabilities.contains(&FrameworkCapability::Gpu),
        filters,
        allocated: Resources::default(),
    }
}

/// The framework a task belongs to: `spec.framework`, or the role's built-in
/// framework when it names none.
fn task_framework(task: &Task) -> &str {
    task.spec.framework.as_deref().filter(|f| !f.is_empty()).unwrap_or(BUILTIN_FRAMEWORK)
}

/// Split `ports` into those inside `reserved` and the rest.
fn split_ports(ports: &[PortRange], reserved: &[PortRange]) -> (Vec<PortRange>, Vec<PortRange>) {
    ports.iter().partition(|r| ports_contain(reserved, r))
}

struct Builder<'o> {
    input: AllocationInput,
    agent_index: HashMap<&'o str, usize>,
    fw_index: HashMap<(&'o str, &'o str), usize>,
}

impl Builder<'_> {
    /// Charges `held` to `role` and, when given, to its framework.
    fn charge_role(&mut self, role: &str, framework: Option<&str>, held: &Resources) {
        let r = match self.input.roles.get_mut(role) {
            Some(r) => r,
            None => self.input.roles.entry(role.to_string()).or_default(),
        };
        r.allocated = r.allocated.add(held);
        if let Some(f) = framework.and_then(|name| self.fw_index.get(&(role, name))) {
            let fw = &mut self.input.frameworks[*f];
            fw.allocated = fw.allocated.add(held);
        }
    }

    /// A task holding `res` on `agent`: charged to its role's reservation
    /// there first, the rest to unreserved resources.
    fn charge_task(&mut self, task: &Task, agent: usize) {
        let role = namespace(&task.metadata);
        let mut res = task.spec.resources.clone();
        if let Some(st) = task.status.as_ref().filter(|st| !st.ports.is_empty()) {
            res.ports.extend(st.ports.iter().map(|&p| PortRange { begin: p, end: p }));
            res.ports = normalize_ports(std::mem::take(&mut res.ports));
        }
        let a = &mut self.input.agents[agent];
        if task.spec.revocable {
            a.used.revocable = a.used.revocable.add(&res);
            return;
        }
        if !a.static_reservations.contains_key(role) && !a.dynamic_reservations.contains_key(role) {
            a.used.unreserved = a.used.unreserved.add(&res);
            self.charge_role(role, Some(task_framework(task)), &res);
            return;
        }
        let empty = Resources::default();
        let bucket =
            a.static_reservations.get(role).unwrap_or(&empty).add(a.dynamic_reservations.get(role).unwrap_or(&empty));
        let used = a.used.reserved.get(role).cloned().unwrap_or_default();
        let room = bucket.saturating_sub(&used);
        let (res_ports, unres_ports) = split_ports(&res.ports, &room.ports);
        let [c, m, d, g] = [0, 1, 2, 3].map(|i| res.scalar_values()[i].min(room.scalar_values()[i]));
        let from_reserved = Resources { cpus: c, mem: m, disk: d, gpus: g, ports: res_ports };
        let from_unreserved =
            Resources { ports: unres_ports, ..Resources::scalars(res.cpus, res.mem, res.disk, res.gpus) }
                .saturating_sub(&Resources::scalars(c, m, d, g));
        if !from_reserved.is_empty() {
            a.used.reserved.insert(role.to_string(), used.add(&from_reserved));
        }
        a.used.unreserved = a.used.unreserved.add(&from_unreserved);
        self.charge_role(role, Some(task_framework(task)), &res);
    }

    /// Charges every outstanding offer of `offers` on a known agent.
    fn charge_offers(&mut self, offers: &[Offer]) {
        for offer in offers {
            let outstanding = offer.status.as_ref().is_none_or(|s| s.state == OfferState::Outstanding);
            if let (true, Some(&a)) = (outstanding, self.agent_index.get(offer.spec.agent.as_str())) {
                self.charge_offer(offer, a);
            }
        }
    }

    fn charge_offer(&mut self, offer: &Offer, agent: usize) {
        let role = namespace(&offer.metadata);
        let a = &mut self.input.agents[agent];
        if !offer.spec.reserved.is_empty() {
            let used = a.used.reserved.entry(role.to_string()).or_default();
            *used = used.add(&offer.spec.reserved);
        }
        a.used.unreserved = a.used.unreserved.add(&offer.spec.resources);
        a.used.revocable = a.used.revocable.add(&offer.spec.revocable);
        let held = offer.spec.resources.add(&offer.spec.reserved);
        self.charge_role(role, Some(&offer.spec.framework), &held);
    }
}

impl AllocationInput {
    /// Build the snapshot from plain object lists.
    ///
    /// - Agents being deleted, `Unreachable=True` or `Ready=False` are
    ///   unschedulable (their resources still count in the total).
    /// - Ready reservations add to their agent's dynamic reservations.
    /// - Tasks that hold resources (`TaskState::holds_resources`) on a known
    ///   agent are charged to that agent (revocable ones to its revocable
    ///   resources), to their role and to their framework
    ///   (`spec.framework`; none means the role's built-in framework
    ///   [`BUILTIN_FRAMEWORK`], `meseta`).
    /// - Outstanding offers are charged the same way.
    /// - Frameworks being deleted are left out; filters are dropped when
    ///   `spec.reviveGeneration` differs from `status.observedReviveGeneration`.
    /// - Several quotas in one role add their guarantees; the last limit by
    ///   name wins.
    pub fn from_objects<T: Borrow<Task>>(objs: &ClusterObjects<'_, T>) -> AllocationInput {
        let mut b =
            Builder { input: AllocationInput::default(), agent_index: HashMap::new(), fw_index: HashMap::new() };
        for role in objs.roles {
            b.input
                .roles
                .insert(role.metadata.name.clone(), RoleInput { weight: role.spec.weight, ..Default::default() });
        }
        let mut quotas: Vec<&Quota> = objs.quotas.iter().collect();
        quotas.sort_by(|x, y| x.metadata.name.cmp(&y.metadata.name));
        for q in quotas {
            let role = b.input.roles.entry(namespace(&q.metadata).to_string()).or_default();
            let quota = role.quota.get_or_insert_with(QuotaInput::default);
            quota.guarantee = quota.guarantee.add(&q.spec.guarantee);
            if q.spec.limit.is_some() {
                quota.limit = q.spec.limit.clone();
            }
        }
        for agent in objs.agents {
            b.agent_index.insert(&agent.metadata.name, b.input.agents.len());
            b.input.agents.push(AgentInput {
                name: agent.metadata.name.clone(),
                hostname: if agent.spec.hostname.is_empty() {
                    agent.metadata.name.clone()
                } else {
                    agent.spec.hostname.clone()
                },
                total: agent.spec.resources.clone(),
                static_reservations: agent.spec.reservations.clone(),
                dynamic_reservations: BTreeMap::new(),
                revocable: agent.status.as_ref().map(|s| s.revocable.clone()).unwrap_or_default(),
                unschedulable: agent.spec.unschedulable || unavailable(agent),
                used: Default::default(),
            });
        }
        for rsv in objs.reservations {
            let ready = rsv.status.as_ref().is_some_and(|s| s.state == ReservationState::Ready);
            if let (true, Some(&a)) = (ready, b.agent_index.get(rsv.spec.agent.as_str())) {
                let dynamic = b.input.agents[a].dynamic_reservations.entry(namespace(&rsv.metadata).to_string());
                let slot = dynamic.or_default();
                *slot = slot.add(&rsv.spec.resources);
            }
        }
        for fw in objs.frameworks.iter().filter(|f| f.metadata.deletion_timestamp.is_none()) {
            let input = framework_input(fw);
            b.input.roles.entry(input.role.clone()).or_default();
            b.fw_index.insert((namespace(&fw.metadata), &fw.metadata.name), b.input.frameworks.len());
            b.input.frameworks.push(input);
        }
        for task in objs.tasks.iter().map(Borrow::borrow).filter(|t: &&Task| t.state().holds_resources()) {
            let agent = task.status.as_ref().and_then(|s| s.agent.as_ref()).or(task.spec.agent.as_ref());
            if let Some(&a) = agent.and_then(|name| b.agent_index.get(name.as_str())) {
                b.charge_task(task, a);
            }
        }
        b.charge_offers(objs.offers);
        b.input
    }

    /// Charges `offers` as [`AllocationInput::from_objects`] would have,
    /// had they been among its objects: so an input built once from the
    /// tasks can be used with and without the offers, and the tasks (by far
    /// the most objects) are walked once.
    pub fn charge_offers(&mut self, offers: &[Offer]) {
        if offers.is_empty() {
            return;
        }
        let agents: Vec<String> = self.agents.iter().map(|a| a.name.clone()).collect();
        let frameworks: Vec<(String, String)> =
            self.frameworks.iter().map(|f| (f.role.clone(), f.name.clone())).collect();
        let mut b = Builder {
            input: std::mem::take(self),
            agent_index: agents.iter().enumerate().map(|(i, name)| (name.as_str(), i)).collect(),
            fw_index: frameworks
                .iter()
                .enumerate()
                .map(|(i, (role, name))| ((role.as_str(), name.as_str()), i))
                .collect(),
        };
        b.charge_offers(offers);
        *self = b.input;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::{AgentSpec, FrameworkSpec, TaskSpec, TaskState, TaskStatus};

    #[test]
    fn offers_charged_afterwards_count_as_offers_among_the_objects() {
        use crate::kinds::{OfferSpec, OfferStatus};
        let mut reserving = AgentSpec { resources: Resources::scalars(8.0, 8192.0, 0.0, 0.0), ..Default::default() };
        reserving.reservations.insert("web".into(), Resources::scalars(2.0, 1024.0, 0.0, 0.0));
        let agents = [
            Agent::new("a0", AgentSpec { resources: Resources::scalars(4.0, 4096.0, 0.0, 0.0), ..Default::default() }),
            Agent::new("a1", reserving),
        ];
        let frameworks = [
            Framework::new(BUILTIN_FRAMEWORK, FrameworkSpec::default()).in_namespace("web"),
            Framework::new("batch", FrameworkSpec::default()).in_namespace("etl"),
        ];
        let offer = |agent: &str, role: &str, fw: &str, res: Resources, reserved: Resources, outstanding: bool| {
            let spec =
                OfferSpec { framework: fw.into(), agent: agent.into(), resources: res, reserved, ..Default::default() };
            let mut o = Offer::new(format!("{fw}-{agent}"), spec).in_namespace(role);
            if !outstanding {
                o.status = Some(OfferStatus { state: OfferState::Accepted, ..Default::default() });
            }
            o
        };
        let offers = [
            offer("a0", "web", BUILTIN_FRAMEWORK, Resources::scalars(1.0, 512.0, 0.0, 0.0), Resources::default(), true),
            offer("a1", "web", BUILTIN_FRAMEWORK, Resources::default(), Resources::scalars(1.0, 256.0, 0.0, 0.0), true),
            offer("a1", "etl", "batch", Resources::scalars(2.0, 100.0, 0.0, 0.0), Resources::default(), true),
            offer("a1", "etl", "gone", Resources::scalars(1.0, 100.0, 0.0, 0.0), Resources::default(), true),
            offer("a0", "etl", "batch", Resources::scalars(3.0, 100.0, 0.0, 0.0), Resources::default(), false),
            offer("nowhere", "etl", "batch", Resources::scalars(3.0, 100.0, 0.0, 0.0), Resources::default(), true),
        ];
        let mut task = Task::new(
            "t",
            TaskSpec {
                agent: Some("a1".into()),
                resources: Resources::scalars(0.5, 128.0, 0.0, 0.0),
                ..Default::default()
            },
        )
        .in_namespace("web");
        task.status = Some(TaskStatus { state: TaskState::Running, ..Default::default() });
        let objects = ClusterObjects {
            agents: &agents,
            tasks: std::slice::from_ref(&task),
            frameworks: &frameworks,
            ..Default::default()
        };
        let together = AllocationInput::from_objects(&ClusterObjects { offers: &offers, ..objects });
        let mut afterwards = AllocationInput::from_objects(&objects);
        assert_ne!(afterwards, together, "the offers hold something");
        afterwards.charge_offers(&offers);
        assert_eq!(afterwards, together);
    }

    #[test]
    fn tasks_without_a_framework_are_charged_to_the_builtin_one() {
        let agents = [Agent::new(
            "a0",
            AgentSpec { resources: Resources::scalars(4.0, 4096.0, 0.0, 0.0), ..Default::default() },
        )];
        let task = |name: &str, framework: Option<&str>| {
            let spec = TaskSpec {
                framework: framework.map(str::to_string),
                agent: Some("a0".into()),
                resources: Resources::scalars(1.0, 100.0, 0.0, 0.0),
                ..Default::default()
            };
            let mut t = Task::new(name, spec).in_namespace("web");
            t.status = Some(TaskStatus { state: TaskState::Running, ..Default::default() });
            t
        };
        let tasks = [task("plain", None), task("other", Some("other"))];
        let frameworks = [
            Framework::new(BUILTIN_FRAMEWORK, FrameworkSpec::default()).in_namespace("web"),
            Framework::new("other", FrameworkSpec::default()).in_namespace("web"),
        ];
        let input = AllocationInput::from_objects(&ClusterObjects {
            agents: &agents,
            tasks: &tasks,
            frameworks: &frameworks,
            ..Default::default()
        });
        for f in &input.frameworks {
            assert_eq!(f.allocated, Resources::scalars(1.0, 100.0, 0.0, 0.0), "framework {}", f.name);
        }
        assert_eq!(input.roles["web"].allocated, Resources::scalars(2.0, 200.0, 0.0, 0.0));
    }
}
