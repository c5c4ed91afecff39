//! A tiny cluster simulation around `allocate`, to check DRF outcomes that
//! only show over many cycles.
//!
//! # How it maps DRF's Algorithm 1 onto offers
//!
//! Algorithm 1 repeatedly picks the user with the lowest dominant share and
//! launches one of its tasks. Mesos offers whole agents instead of tasks, so
//! each simulated cycle:
//!
//! 1. builds the snapshot from the objects (`AllocationInput::from_objects`,
//!    the launched tasks being RUNNING `Task`s);
//! 2. runs `allocate`. The plan's first offer goes to the framework that
//!    DRF picks first (lowest weighted share, no quota in these scenarios);
//! 3. that framework launches ONE task on the first of its offers the task
//!    fits, and returns everything else (every other offer of the plan is
//!    declined without a filter). If none of its offers fits, it declines
//!    them with a long filter on those agents.
//! 4. A framework whose demand is met suppresses itself.
//!
//! `min_allocatable` is set to the task shapes, so an agent that cannot hold
//! any task is not offered at all (this is what Mesos'
//! `min_allocatable_resources` is for). The run ends when a cycle makes no
//! offer. So every launch goes to the user with the lowest share, exactly as
//! in Algorithm 1.

use std::collections::BTreeMap;

use chrono::TimeZone;
use meseta_schemas::allocation::{allocate, AllocationInput, ClusterObjects};
use meseta_schemas::{
    Agent, AgentSpec, Framework, FrameworkSpec, FrameworkStatus, OfferFilter, Resources, Role, RoleSpec, Task,
    TaskSpec, TaskState, TaskStatus, Time,
};

/// Fixed clock of the simulation.
pub(crate) fn now() -> Time {
    chrono::Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap()
}

/// One user of the cluster: a framework with a task shape and a demand.
#[derive(Debug, Clone)]
pub(crate) struct User {
    pub(crate) role: String,
    pub(crate) framework: String,
    pub(crate) task: Resources,
    pub(crate) remaining: usize,
    pub(crate) launched: usize,
}

/// The simulated cluster.
#[derive(Debug, Default)]
pub(crate) struct Sim {
    pub(crate) agents: Vec<Agent>,
    pub(crate) roles: Vec<Role>,
    pub(crate) frameworks: Vec<Framework>,
    pub(crate) tasks: Vec<Task>,
    pub(crate) users: Vec<User>,
}

impl Sim {
    /// Add an agent with these resources.
    pub(crate) fn agent(&mut self, name: &str, resources: Resources) {
        self.agents.push(Agent::new(name, AgentSpec { resources, ..Default::default() }));
    }

    /// Add a role with this weight.
    pub(crate) fn role(&mut self, name: &str, weight: f64) {
        self.roles.push(Role::new(name, RoleSpec { weight }));
    }

    /// Add a framework `framework` in `role` wanting `count` tasks of shape `task`.
    pub(crate) fn user(&mut self, role: &str, framework: &str, task: Resources, count: usize) {
        self.frameworks.push(Framework::new(framework, FrameworkSpec::default()).in_namespace(role));
        self.users.push(User { role: role.into(), framework: framework.into(), task, remaining: count, launched: 0 });
    }

    fn input(&self) -> AllocationInput {
        let mut input = AllocationInput::from_objects(&ClusterObjects {
            agents: &self.agents,
            tasks: &self.tasks,
            frameworks: &self.frameworks,
            roles: &self.roles,
            ..Default::default()
        });
        input.min_allocatable = self.users.iter().map(|u| u.task.clone()).collect();
        input
    }

    /// One cycle; false once the plan is empty.
    pub(crate) fn step(&mut self, cycle: u64) -> bool {
        let input = self.input();
        let plan = allocate(&input, now(), cycle);
        let Some(first) = plan.offers.first() else { return false };
        let (role, name) = (first.role.to_string(), first.framework.to_string());
        let u = self.users.iter().position(|u| u.role == role && u.framework == name).expect("offer to a user");
        let mine: Vec<_> = plan.offers.iter().filter(|o| o.role == role && o.framework == name).collect();
        let task = self.users[u].task.clone();
        match mine.iter().find(|o| task.fits(&o.resources.add(&o.reserved))) {
            Some(o) => {
                let n = self.tasks.len();
                let mut t = Task::new(
                    format!("t{n}"),
                    TaskSpec {
                        framework: Some(name.clone()),
                        agent: Some(o.agent.to_string()),
                        resources: task,
                        ..Default::default()
                    },
                )
                .in_namespace(role.as_str());
                t.status = Some(TaskStatus { state: TaskState::Running, ..Default::default() });
                self.tasks.push(t);
                let user = &mut self.users[u];
                user.launched += 1;
                user.remaining -= 1;
                if user.remaining == 0 {
                    self.framework_mut(&role, &name).spec.suppressed = true;
                }
            }
            None => {
                let until = now() + chrono::Duration::days(1);
                let agents: Vec<String> = mine.iter().map(|o| o.agent.to_string()).collect();
                let fw = self.framework_mut(&role, &name);
                let status = fw.status.get_or_insert_with(FrameworkStatus::default);
                status.filters.extend(agents.into_iter().map(|agent| OfferFilter { agent, until }));
            }
        }
        true
    }

    fn framework_mut(&mut self, role: &str, name: &str) -> &mut Framework {
        self.frameworks
            .iter_mut()
            .find(|f| f.metadata.name == name && f.metadata.namespace.as_deref() == Some(role))
            .expect("framework exists")
    }

    /// Run cycles until no offer is made; returns the number of cycles.
    pub(crate) fn run(&mut self) -> u64 {
        let mut cycle = 0;
        while self.step(cycle) {
            cycle += 1;
            assert!(cycle < 100_000, "simulation does not converge");
        }
        cycle
    }

    /// Tasks launched by `framework`.
    pub(crate) fn launched(&self, framework: &str) -> usize {
        self.users.iter().filter(|u| u.framework == framework).map(|u| u.launched).sum()
    }

    /// Dominant shares (unweighted) of the roles, as the allocator computes them now.
    pub(crate) fn role_shares(&self) -> BTreeMap<String, f64> {
        let mut input = self.input();
        input.frameworks.clear();
        allocate(&input, now(), 0).role_shares.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    }

    /// Dominant share of one task of `shape` in this cluster.
    pub(crate) fn task_share(&self, shape: &Resources) -> f64 {
        let total = self.agents.iter().fold(Resources::default(), |acc, a| acc.add(&a.spec.resources));
        shape.dominant_share(&total)
    }
}
