//! The jobs controller's other writes: framework registration and its
//! lease, preemption; and the lookups in the caches that placing shares.
//!
//! Owns turning those decisions into API calls. It must not decide anything
//! the pure rules decide. Task creates and kills are in `reconcile`,
//! placement in `place`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use meseta_client::{Api, Client};
use meseta_schemas::kinds::{Framework, FrameworkSpec, Job, Lease, LeaseSpec, Task, TaskState};
use serde_json::json;
use tokio::time::Instant;

use super::constraints::{AgentAttributes, ConstraintContext};
use super::instances::JOB_LABEL;
use super::preempt::{choose_victims, AgentRoom, Candidate};
use super::{waits_for_offer, Caches, JobsConfig, FRAMEWORK};
use crate::tasks::plan::entered_state_at;
use crate::tasks::transition_task;

/// Makes sure `meseta` exists in each role and renews its lease every few seconds.
pub(crate) async fn register(client: &Client, roles: &HashSet<String>, done: &mut HashMap<String, Instant>) {
    for role in roles {
        if done.get(role).is_some_and(|t| t.elapsed() < std::time::Duration::from_secs(3)) {
            continue;
        }
        let fws = Api::<Framework>::namespaced(client.clone(), role);
        if let Ok(None) = fws.get_opt(FRAMEWORK).await {
            let fw = Framework::new(FRAMEWORK, FrameworkSpec::default()).in_namespace(role);
            if let Ok(mut created) = fws.create(&fw).await {
                created.status =
                    Some(meseta_schemas::kinds::FrameworkStatus { registered: true, ..Default::default() });
                let _ = fws.replace_status(&created).await;
            }
        }
        let leases = Api::<Lease>::namespaced(client.clone(), role);
        let name = format!("framework-{FRAMEWORK}");
        let now = chrono::Utc::now();
        let spec = LeaseSpec {
            holder_identity: Some("meseta-jobs-controller".into()),
            lease_duration_seconds: Some(15),
            renew_time: Some(now),
            acquire_time: None,
            lease_transitions: 0,
        };
        let result = match leases.get_opt(&name).await {
            Ok(Some(_)) => leases
                .patch_merge(&name, &json!({"spec": {"renewTime": now, "holderIdentity": spec.holder_identity}}))
                .await
                .map(|_| ()),
            Ok(None) => leases
                .create(&Lease::new(&name, LeaseSpec { acquire_time: Some(now), ..spec }).in_namespace(role))
                .await
                .map(|_| ()),
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => {
                done.insert(role.clone(), Instant::now());
            }
            Err(e) => tracing::warn!(%role, error = %e, "cannot renew the built-in framework's lease"),
        }
    }
}

pub(super) fn attributes_of(caches: &Caches) -> HashMap<String, AgentAttributes> {
    caches
        .agents
        .list()
        .iter()
        .map(|a| {
            let host = if a.spec.hostname.is_empty() { a.metadata.name.clone() } else { a.spec.hostname.clone() };
            (a.metadata.name.clone(), AgentAttributes { hostname: host, attributes: a.spec.attributes.clone() })
        })
        .collect()
}

/// The cached Jobs by namespace and name.
pub(super) fn jobs_by_key(caches: &Caches) -> HashMap<(String, String), Arc<Job>> {
    caches
        .jobs
        .list()
        .into_iter()
        .map(|j| ((j.metadata.namespace.clone().unwrap_or_default(), j.metadata.name.clone()), j))
        .collect()
}

/// Constraint group and constraints of a task: its job's, or its own name and none.
pub(super) fn group_of<'a>(
    task: &'a Task,
    jobs: &'a HashMap<(String, String), Arc<Job>>,
) -> (String, Vec<meseta_schemas::kinds::Constraint>) {
    let ns = task.metadata.namespace.clone().unwrap_or_default();
    match task.metadata.labels.get(JOB_LABEL) {
        Some(j) => {
            let constraints =
                jobs.get(&(ns.clone(), j.clone())).map(|j| j.spec.constraints.clone()).unwrap_or_default();
            (format!("{ns}/{j}"), constraints)
        }
        None => (format!("{ns}/{}", task.metadata.name), Vec::new()),
    }
}

/// Preempts for production tasks PENDING longer than the preemption delay.
pub(crate) async fn preempt(client: &Client, caches: &Caches, tasks: &[Arc<Task>], cfg: &JobsConfig) {
    if tasks.iter().any(|t| t.state() == TaskState::Preempting) {
        return; // one round at a time: wait for the last victims to go
    }
    let now = cfg.clock.now();
    let delay = chrono::Duration::from_std(cfg.preemption_delay).unwrap_or_default();
    let Some(waiting) = tasks
        .iter()
        .filter(|t| t.spec.production && waits_for_offer(t))
        .filter(|t| entered_state_at(t).is_some_and(|e| now - e >= delay))
        .max_by_key(|t| t.spec.priority)
    else {
        return;
    };
    let attrs = attributes_of(caches);
    let mut rooms: HashMap<String, AgentRoom> = HashMap::new();
    for a in caches.agents.list() {
        let ready =
            a.status.as_ref().is_some_and(|s| s.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        if !ready || a.spec.unschedulable {
            continue;
        }
        rooms.insert(
            a.metadata.name.clone(),
            AgentRoom {
                name: a.metadata.name.clone(),
                attributes: attrs.get(&a.metadata.name).cloned().unwrap_or_default(),
                free: a.spec.resources.clone(),
                tasks: Vec::new(),
            },
        );
    }
    for t in tasks.iter().filter(|t| t.state().holds_resources()) {
        let Some(room) = t.spec.agent.as_deref().and_then(|a| rooms.get_mut(a)) else { continue };
        room.free = room.free.saturating_sub(&t.spec.resources);
        if t.state() == TaskState::Running || t.state() == TaskState::Starting || t.state() == TaskState::Assigned {
            room.tasks.push(Candidate {
                namespace: t.metadata.namespace.clone().unwrap_or_default(),
                name: t.metadata.name.clone(),
                resources: t.spec.resources.clone(),
                priority: t.spec.priority,
                production: t.spec.production,
            });
        }
    }
    let jobs = jobs_by_key(caches);
    let (group, constraints) = group_of(waiting, &jobs);
    let mut ctx = ConstraintContext::new();
    for t in tasks.iter().filter(|t| t.state().holds_resources()) {
        let (g, c) = group_of(t, &jobs);
        if g == group {
            if let Some(a) = t.spec.agent.as_deref().and_then(|a| attrs.get(a)) {
                ctx.record(&g, &c, a);
            }
        }
    }
    let rooms: Vec<AgentRoom> = rooms.into_values().collect();
    let Some((agent, victims)) = choose_victims(&waiting.spec.resources, waiting.spec.priority, &rooms, |a| {
        ctx.admits(&group, &constraints, a).is_ok()
    }) else {
        return;
    };
    tracing::info!(task = %waiting.metadata.name, %agent, victims = victims.len(), "preempting for a production task");
    let msg = format!("preempted for production task {}", waiting.metadata.name);
    for v in victims {
        let api = Api::<Task>::namespaced(client.clone(), &v.namespace);
        let Some(t) = caches.tasks.get(Some(&v.namespace), &v.name) else { continue };
        let _ = transition_task(&api, &t, &[TaskState::Preempting], &msg, now, |t| {
            matches!(t.state(), TaskState::Assigned | TaskState::Starting | TaskState::Running)
        })
        .await;
    }
}
