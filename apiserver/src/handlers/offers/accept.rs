//! The accept transaction: validate and bind the launched tasks, create or
//! delete Reservations, record the implicit decline of what is left, and
//! delete the offer, all in one store transaction.
//!
//! # Expected flow
//!
//! 1. Read the offer (404 when gone, 410 when no longer outstanding or
//!    expired, 409 when made to another framework).
//! 2. Run the operations in order against the offer's pools ([`super::fit`]):
//!    new tasks are checked like a create (registry `check`, server-owned
//!    metadata); named tasks must exist and be PENDING with no agent. Each
//!    task gets `spec.agent`, its ports (`spec.resources.ports`,
//!    `status.ports`), `status.agent` and the ASSIGNED transition.
//! 3. Commit: compares on the offer, every named task, every new key (must
//!    not exist) and every deleted Reservation; ops delete the offer, put the
//!    tasks and the Reservations, and edit the Framework's filters in at
//!    commit (no compare: see [`super::framework_filter`]).
//!    Any other compare failure re-reads and starts again.
//! 4. Answer 200 with the bound tasks and what is left of the offer; to a
//!    client that prefers a minimal answer (`Prefer: return=minimal`), each
//!    task by its name, namespace, uid and resourceVersion only.

use std::borrow::Cow;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use meseta_schemas::kinds::{
    Offer, Reservation, ReservationSpec, ReservationState, ReservationStatus, Task, TaskState, TaskStatus,
};
use meseta_schemas::{state_machine, FieldError, Resource, Resources, API_VERSION};
use serde_json::Value;

use super::fit::Pools;
use super::{
    decode, encode, framework_filter, json_body, kind, offer_lost, usable_offer, AcceptRequest, Ctx, Operation,
};
use crate::error::ApiError;
use crate::handlers::{Call, MinimalObject};
use crate::object;
use crate::objects::{self, UpdateMode, MAX_RETRIES};
use crate::path::{collection_prefix, object_key};
use crate::request::FieldValidation;
use crate::store::{Compare, Op, Txn, TxnOutcome};

/// Everything one attempt of an accept would write.
#[derive(Default)]
struct Plan {
    compares: Vec<Compare>,
    ops: Vec<Op>,
    /// The bound tasks, and for each its key and stored size.
    tasks: Vec<Task>,
    written: Vec<(String, usize)>,
    pools: Pools,
}

impl Plan {
    /// Creates `value` under `key`.
    fn put_new(&mut self, key: String, value: &Value) {
        self.put(key, 0, object::to_stored(value));
    }

    /// Writes the bound `task` (without a resourceVersion) under `key`,
    /// created (`revision` 0) or replacing the revision read. It is stored
    /// as its type serializes: the fields in the type's order.
    fn put_task(&mut self, key: String, revision: u64, task: Task) -> Result<(), ApiError> {
        let stored = bytes::Bytes::from(
            serde_json::to_vec(&task).map_err(|e| ApiError::Internal(format!("encoding a task: {e}")))?,
        );
        self.written.push((key.clone(), stored.len()));
        self.put(key, revision, stored);
        self.tasks.push(task);
        Ok(())
    }

    /// Puts `stored` under `key` if the key is still at `revision`.
    fn put(&mut self, key: String, revision: u64, stored: bytes::Bytes) {
        self.compares.push(Compare::ModRevision { key: key.clone(), revision });
        self.ops.push(Op::Put { key, value: stored });
    }
}

/// An accept's answer: the bound tasks and what is left of the offer.
#[derive(serde::Serialize)]
struct Answer<'a> {
    tasks: &'a [Task],
    remaining: &'a Resources,
}

/// An accept's answer to a client that prefers it minimal (`Prefer:
/// return=minimal`): each bound task by its name, namespace, uid and
/// resourceVersion only, and what is left of the offer.
#[derive(serde::Serialize)]
struct MinimalAnswer<'a> {
    tasks: Vec<MinimalObject<'a>>,
    remaining: &'a Resources,
}

impl<'a> MinimalAnswer<'a> {
    fn of(tasks: &'a [Task], remaining: &'a Resources) -> Self {
        let tasks = tasks
            .iter()
            .map(|t| {
                let (m, text) = (&t.metadata, |s: &'a String| Cow::Borrowed(s.as_str()));
                let ns = m.namespace.as_ref().map(text);
                let (uid, rv) = (m.uid.as_ref().map(text), m.resource_version.as_ref().map(text));
                MinimalObject::new(Task::KIND, Some(text(&m.name)), ns, uid, rv)
            })
            .collect();
        MinimalAnswer { tasks, remaining }
    }
}

fn invalid(offer: &Offer, causes: Vec<FieldError>) -> ApiError {
    ApiError::Invalid { kind: "Offer".into(), name: offer.metadata.name.clone(), causes }
}

/// `POST .../offers/{name}/accept`.
pub(crate) async fn serve(mut call: Call) -> Result<Response, ApiError> {
    let mut req: AcceptRequest = json_body(&mut call, "accept").await?;
    let manager = crate::apply::manager(&call.params, &call.headers);
    let minimal = crate::request::prefers_minimal(&call.headers);
    let call = Ctx { state: call.state, target: call.target };
    let mut readied = false;
    for _ in 0..MAX_RETRIES {
        let now = Utc::now();
        let (offer_kv, offer) = usable_offer(&call, req.framework.as_deref(), now).await?;
        if !readied {
            ready_new_tasks(&call, &offer, &manager, &mut req.operations)?;
            readied = true;
        }
        let mut plan = Plan {
            compares: vec![Compare::ModRevision { key: offer_kv.key.clone(), revision: offer_kv.mod_revision }],
            ops: vec![Op::Delete { key: offer_kv.key.clone() }],
            pools: Pools::from_offer(&offer.spec),
            ..Default::default()
        };
        for (i, op) in req.operations.iter().enumerate() {
            run_operation(&call, &offer, &manager, now, i, op, &mut plan).await?;
        }
        let remaining = plan.pools.remaining();
        let mut txn = Txn { compares: plan.compares, ops: plan.ops };
        if !remaining.is_empty() {
            let refuse = req.filters.as_ref().and_then(|f| f.refuse_seconds);
            txn.ops.push(framework_filter(&call, &offer, refuse, now)?);
        }
        match call.state.store().txn(txn).await? {
            TxnOutcome::Committed { revision } => {
                for t in &mut plan.tasks {
                    t.metadata.resource_version = Some(revision.to_string());
                }
                tracing::info!(offer = call.target.name(), framework = %offer.spec.framework,
                    tasks = plan.tasks.len(), "offer accepted");
                let response = match minimal {
                    false => (StatusCode::OK, axum::Json(Answer { tasks: &plan.tasks, remaining: &remaining }))
                        .into_response(),
                    true => (
                        StatusCode::OK,
                        [("preference-applied", "return=minimal")],
                        axum::Json(MinimalAnswer::of(&plan.tasks, &remaining)),
                    )
                        .into_response(),
                };
                // Each bound task's agent writes its status next: the object
                // is left in the memo for that update, as a write leaves it.
                if let Some(memo) = call.state.store().memo() {
                    for (task, (key, size)) in plan.tasks.into_iter().zip(plan.written) {
                        memo.put(&key, revision, task, size);
                    }
                }
                return Ok(response);
            }
            TxnOutcome::Failed { compare: 0, current } => {
                if let Some(e) = offer_lost(&call, &current) {
                    return Err(e);
                }
            }
            TxnOutcome::Failed { .. } => {}
        }
    }
    Err(ApiError::Conflict {
        resource: crate::path::resource_name(call.target.kind),
        name: call.target.name().to_string(),
        reason: "the objects this accept touches kept changing; try again".into(),
    })
}

async fn run_operation(
    call: &Ctx,
    offer: &Offer,
    manager: &str,
    now: DateTime<Utc>,
    i: usize,
    op: &Operation,
    plan: &mut Plan,
) -> Result<(), ApiError> {
    let field = format!("operations[{i}]");
    match op {
        Operation::Launch { tasks, task_names } => {
            for (k, submitted) in tasks.iter().enumerate() {
                let task = objects::prepare_new_task_at(kind("tasks")?, submitted, FieldValidation::Strict, now)?;
                let (key, bound) = bind(offer, &format!("{field}.tasks[{k}]"), task, now, plan)?;
                plan.put_task(key, 0, bound)?;
            }
            for (k, name) in task_names.iter().enumerate() {
                let (key, rev, task) = pending_task(call, offer, name).await?;
                let current = encode(&task)?;
                let (key, bound) =
                    bind(offer, &format!("{field}.taskNames[{k}]"), task, now, plan).map(|(_, b)| (key, b))?;
                // The fields the bind set are recorded for `manager`.
                let mut bound = encode(&bound)?;
                crate::apply::track_update(Some(&current), &mut bound, manager, UpdateMode::Main, true);
                plan.put_task(key, rev, decode_value(bound)?)?;
            }
        }
        Operation::Reserve { resources } => {
            plan.pools.reserve(&field, resources).map_err(|e| invalid(offer, e))?;
            let ns = offer.metadata.namespace.clone();
            let spec = ReservationSpec { agent: offer.spec.agent.clone(), resources: resources.clone() };
            let mut rsv = Reservation::new(format!("{}-r{i}", offer.metadata.name), spec);
            rsv.metadata.namespace = ns.clone();
            let rk = kind("reservations")?;
            let (mut obj, _) = objects::prepare_new(rk, &encode(&rsv)?, FieldValidation::Strict)?;
            let status = ReservationStatus {
                state: ReservationState::Ready,
                message: format!("reserved by offer {} of framework {}", offer.metadata.name, offer.spec.framework),
            };
            obj["status"] = encode(&status)?;
            plan.put_new(object_key(rk, ns.as_deref(), &rsv.metadata.name), &obj);
        }
        Operation::Unreserve { resources } => {
            plan.pools.unreserve(&field, resources).map_err(|e| invalid(offer, e))?;
            unreserve(call, offer, &field, resources, plan).await?;
        }
    }
    Ok(())
}

/// Readies every `Launch.tasks` entry once, before the first try binds
/// any: the kind and the offer's namespace filled in, the fields it sets
/// recorded for `manager`. Each try then checks the entries like a create
/// (created at the moment the accept binds them) without copying them.
fn ready_new_tasks(call: &Ctx, offer: &Offer, manager: &str, operations: &mut [Operation]) -> Result<(), ApiError> {
    let ns = call.target.namespace.as_deref().unwrap_or_default();
    for (i, op) in operations.iter_mut().enumerate() {
        let Operation::Launch { tasks, .. } = op else { continue };
        for (k, body) in tasks.iter_mut().enumerate() {
            let field = format!("operations[{i}].tasks[{k}]");
            let Some(map) = body.as_object_mut() else {
                return Err(invalid(offer, vec![FieldError::invalid(field, "", "must be a Task object")]));
            };
            map.entry("apiVersion").or_insert_with(|| Value::from(API_VERSION));
            map.entry("kind").or_insert_with(|| Value::from(Task::KIND));
            match object::meta_str(body, "namespace") {
                None | Some("") => {
                    object::meta_mut(body).insert("namespace".into(), Value::from(ns));
                }
                Some(given) if given == ns => {}
                Some(given) => {
                    let detail = format!("a task must be in the offer's namespace {ns}");
                    let e = FieldError::invalid(format!("{field}.metadata.namespace"), given, detail);
                    return Err(invalid(offer, vec![e]));
                }
            }
            crate::apply::track_update(None, body, manager, UpdateMode::Main, true);
        }
    }
    Ok(())
}

/// A PENDING, unbound task named by `Launch.taskNames`: key, revision, object.
async fn pending_task(call: &Ctx, offer: &Offer, name: &str) -> Result<(String, u64, Task), ApiError> {
    let tk = kind("tasks")?;
    let key = object_key(tk, call.target.namespace.as_deref(), name);
    let Some(kv) = call.state.store().get(&key).await? else {
        return Err(objects::not_found(tk, name));
    };
    let task: Task = decode(&kv)?;
    if task.state() != TaskState::Pending || task.spec.agent.is_some() || task.metadata.deletion_timestamp.is_some() {
        let on = task.spec.agent.as_deref().map(|a| format!(" on agent {a}")).unwrap_or_default();
        return Err(ApiError::Conflict {
            resource: crate::path::resource_name(tk),
            name: name.to_string(),
            reason: format!(
                "the task is {}{on}; only PENDING tasks can be launched from offer {}",
                task.state(),
                offer.metadata.name
            ),
        });
    }
    Ok((key, kv.mod_revision, task))
}

/// Draws `task`'s resources and binds it to the offer's agent.
fn bind(
    offer: &Offer,
    field: &str,
    mut task: Task,
    now: DateTime<Utc>,
    plan: &mut Plan,
) -> Result<(String, Task), ApiError> {
    let fw = &offer.spec.framework;
    match task.spec.framework.as_deref() {
        None if fw != super::BUILTIN_FRAMEWORK => task.spec.framework = Some(fw.clone()),
        Some(named) if named != fw => {
            let detail = format!("the offer was made to framework {fw}");
            return Err(invalid(offer, vec![FieldError::invalid(format!("{field}.spec.framework"), named, detail)]));
        }
        _ => {}
    }
    if task.metadata.name.is_empty() {
        return Err(invalid(offer, vec![FieldError::required(format!("{field}.metadata.name"), "name the task")]));
    }
    let key = object_key(kind("tasks")?, task.metadata.namespace.as_deref(), &task.metadata.name);
    if plan.tasks.iter().any(|t| t.metadata.name == task.metadata.name) {
        let e = FieldError::duplicate(format!("{field}.metadata.name"), &task.metadata.name);
        return Err(invalid(offer, vec![e]));
    }
    let drawn = plan.pools.launch(field, &task.spec).map_err(|e| invalid(offer, e))?;
    let old_spec = task.spec.clone();
    task.spec.agent = Some(offer.spec.agent.clone());
    let mut ports = task.spec.resources.ports.clone();
    ports.extend(drawn.ports.iter().copied());
    task.spec.resources = Resources { ports: meseta_schemas::resources::normalize_ports(ports), ..task.spec.resources };
    if task.spec != old_spec && task.metadata.resource_version.is_some() {
        task.metadata.generation = Some(task.metadata.generation.unwrap_or(1) + 1);
    }
    let message = format!("assigned to agent {} from offer {}", offer.spec.agent, offer.metadata.name);
    let current = task.status.clone().unwrap_or_default();
    let mut status: TaskStatus =
        state_machine::transition(&current, TaskState::Assigned, &message, now).map_err(|e| ApiError::Conflict {
            resource: "tasks.meseta.io".into(),
            name: task.metadata.name.clone(),
            reason: e.to_string(),
        })?;
    status.agent = Some(offer.spec.agent.clone());
    status.ports = drawn.assigned;
    task.status = Some(status);
    task.metadata.resource_version = None;
    Ok((key, task))
}

/// The Task a `Value` made from one describes.
fn decode_value(value: Value) -> Result<Task, ApiError> {
    serde_json::from_value(value).map_err(|e| ApiError::Internal(format!("decoding a task: {e}")))
}

/// Deletes whole Ready dynamic Reservations of the role on the offer's agent
/// adding up to exactly `resources`.
async fn unreserve(
    call: &Ctx,
    offer: &Offer,
    field: &str,
    resources: &Resources,
    plan: &mut Plan,
) -> Result<(), ApiError> {
    let rk = kind("reservations")?;
    let prefix = collection_prefix(rk, call.target.namespace.as_deref());
    let listed = call.state.store().list(&prefix, None, None).await?;
    let mut left = resources.clone();
    for kv in &listed.items {
        let rsv: Reservation = decode(kv)?;
        let ready = rsv.status.as_ref().is_some_and(|s| s.state == ReservationState::Ready);
        let taken = plan.ops.iter().any(|o| matches!(o, Op::Delete { key } if *key == kv.key));
        if !ready || taken || rsv.spec.agent != offer.spec.agent || !rsv.spec.resources.fits(&left) {
            continue;
        }
        left = left.saturating_sub(&rsv.spec.resources);
        plan.compares.push(Compare::ModRevision { key: kv.key.clone(), revision: kv.mod_revision });
        plan.ops.push(Op::Delete { key: kv.key.clone() });
        if left.is_empty() {
            return Ok(());
        }
    }
    let detail = format!(
        "Unreserve gives back whole Ready Reservations of this role on agent {}; none add up to this (static \
         reservations cannot be unreserved)",
        offer.spec.agent
    );
    Err(invalid(
        offer,
        vec![FieldError::invalid(
            format!("{field}.resources"),
            serde_json::to_string(resources).unwrap_or_default(),
            detail,
        )],
    ))
}
