//! `POST .../namespaces/{role}/offers/{name}/accept` and `.../decline`: the
//! frameworks' answers to offers, each one atomic store transaction.
//!
//! Owns the request shapes, the offer checks shared by both verbs (exists,
//! outstanding, not expired, right framework) and the decline filters written
//! into the Framework's `status.filters` (a store edit applied at commit, on
//! the stored bytes, see [`framework_filter`] and [`filters`]). The drawing
//! rules live in [`fit`], the accept transaction in [`accept`]. It must not
//! decide allocation: the allocator controller makes offers, this only
//! consumes them.
//!
//! # Guarantees
//!
//! - Every transaction compares the offer's `mod_revision`, so of concurrent
//!   accepts / declines of one offer exactly one commits; the others get 410
//!   (the offer went away under them) or 404 (already gone when read).
//! - A rejected request writes nothing.
//! - The decline filters of concurrent answers on one Framework are all
//!   kept, each agent with its latest `until`: they are store edits, so a
//!   filter never makes an answer retry.
//! - Watchers see ordinary events: the offer DELETED, tasks ADDED or
//!   MODIFIED, the Framework MODIFIED, Reservations ADDED / DELETED.

mod accept;
mod filters;
mod fit;

pub(super) use accept::serve as accept;

use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Utc};
use meseta_schemas::kinds::{Framework, Offer, OfferFilter, OfferState};
use meseta_schemas::Resources;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{respond, Call};
use crate::error::ApiError;
use crate::object;
use crate::objects::{self, MAX_RETRIES};
use crate::path::object_key;
use crate::store::{Compare, Edit, KeyValue, Op, Txn, TxnOutcome};

/// The built-in framework of every role; its tasks leave `spec.framework` empty.
pub(crate) const BUILTIN_FRAMEWORK: &str = "meseta";

/// `refuseSeconds` when neither the request nor the Framework names one (Mesos' default).
pub(crate) const DEFAULT_REFUSE_SECONDS: f64 = 5.0;

/// `filters` of an accept or decline.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Filters {
    /// How long the framework is not offered this agent again.
    #[serde(default)]
    pub(crate) refuse_seconds: Option<f64>,
}

/// Body of `decline`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct DeclineRequest {
    #[serde(default)]
    framework: Option<String>,
    #[serde(default)]
    filters: Option<Filters>,
}

/// One operation of an accept.
#[derive(Debug, Deserialize)]
#[serde(tag = "type")]
pub(crate) enum Operation {
    /// Launch new tasks (`tasks`) or bind PENDING ones (`taskNames`).
    Launch {
        #[serde(default)]
        tasks: Vec<Value>,
        #[serde(default, rename = "taskNames")]
        task_names: Vec<String>,
    },
    /// Reserve unreserved resources of the offer for the role.
    Reserve { resources: Resources },
    /// Give back dynamic reservations held in the offer.
    Unreserve { resources: Resources },
}

/// Body of `accept`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct AcceptRequest {
    #[serde(default)]
    pub(crate) framework: Option<String>,
    #[serde(default)]
    pub(crate) operations: Vec<Operation>,
    #[serde(default)]
    pub(crate) filters: Option<Filters>,
}

/// What the handlers keep of a [`Call`] once its body is read (a `Body` is
/// not `Sync`, so a `&Call` cannot be held across awaits).
pub(crate) struct Ctx {
    pub(crate) state: crate::state::AppState,
    pub(crate) target: crate::path::Target,
}

/// Reads a JSON body; an empty body is `T::default()`.
pub(crate) async fn json_body<T: serde::de::DeserializeOwned + Default>(
    call: &mut Call,
    what: &str,
) -> Result<T, ApiError> {
    let bytes = crate::request::read_body(&call.headers, std::mem::take(&mut call.body)).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(&bytes).map_err(|e| ApiError::BadRequest(format!("invalid {what} request: {e}")))
}

fn kind(plural: &str) -> Result<&'static meseta_schemas::registry::KindInfo, ApiError> {
    meseta_schemas::registry::by_plural(plural)
        .ok_or_else(|| ApiError::Internal(format!("the {plural} kind is not registered")))
}

fn decode<T: serde::de::DeserializeOwned>(kv: &KeyValue) -> Result<T, ApiError> {
    serde_json::from_value(object::from_kv(kv)?).map_err(|e| ApiError::Internal(format!("stored {}: {e}", kv.key)))
}

pub(crate) fn encode<T: serde::Serialize>(obj: &T) -> Result<Value, ApiError> {
    serde_json::to_value(obj).map_err(|e| ApiError::Internal(format!("encoding an object: {e}")))
}

/// The offer at the call's path, checked usable by `framework` (when named) at `now`.
pub(crate) async fn usable_offer(
    call: &Ctx,
    framework: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(KeyValue, Offer), ApiError> {
    let name = call.target.name();
    let Some(kv) = call.state.store().get(&call.target.key()).await? else {
        return Err(objects::not_found(call.target.kind, name));
    };
    let offer: Offer = decode(&kv)?;
    let state = offer.status.as_ref().map(|s| s.state).unwrap_or_default();
    if state != OfferState::Outstanding || offer.metadata.deletion_timestamp.is_some() {
        return Err(ApiError::Gone(format!("offer {name} is no longer outstanding ({state:?})")));
    }
    if let Some(e) = expired(call, &offer, now) {
        return Err(e);
    }
    if let Some(fw) = framework.filter(|fw| *fw != offer.spec.framework) {
        return Err(ApiError::Conflict {
            resource: crate::path::resource_name(call.target.kind),
            name: name.to_string(),
            reason: format!("the offer was made to framework {}, not {fw}", offer.spec.framework),
        });
    }
    Ok((kv, offer))
}

/// The write that records a decline filter for the offer's agent in its
/// Framework's `status.filters`, until `now + refuse` (default: the
/// Framework's `spec.defaultRefuseSeconds`, else [`DEFAULT_REFUSE_SECONDS`]).
///
/// It is a store [`Edit`]: the filter is added to the Framework as it is when
/// the transaction commits, with no compare on its revision. Filters of
/// concurrent answers commute (each agent keeps its latest `until`), and
/// every framework answers its offers from many workers at once, so a
/// compare made them lose the race to each other and retry several times per
/// commit. A missing Framework, or a refuse time that is not positive, writes
/// nothing.
pub(crate) fn framework_filter(
    call: &Ctx,
    offer: &Offer,
    refuse: Option<f64>,
    now: DateTime<Utc>,
) -> Result<Op, ApiError> {
    let ns = call.target.namespace.as_deref();
    let key = object_key(kind("frameworks")?, ns, &offer.spec.framework);
    let agent = offer.spec.agent.clone();
    let edit = Edit::new(move |stored| with_filter(stored, &agent, refuse, now));
    Ok(Op::Edit { key, edit })
}

/// The stored Framework `stored` with a filter for `agent` (expired filters
/// pruned), or `None` to keep it: the refuse time is not positive, or the
/// bytes do not decode (logged).
fn with_filter(stored: &[u8], agent: &str, refuse: Option<f64>, now: DateTime<Utc>) -> Option<bytes::Bytes> {
    filtered(stored, agent, refuse, now).unwrap_or_else(|err| {
        tracing::warn!(error = %err, "a stored Framework does not decode; no decline filter recorded");
        None
    })
}

/// [`with_filter`], with its decode error. The bytes are edited in place
/// ([`filters`]); only bytes not of the plain stored shape are decoded and
/// encoded whole.
fn filtered(
    stored: &[u8],
    agent: &str,
    refuse: Option<f64>,
    now: DateTime<Utc>,
) -> Result<Option<bytes::Bytes>, serde_json::Error> {
    let seconds = match refuse {
        Some(s) => s,
        None => default_refuse_seconds(stored)?.unwrap_or(DEFAULT_REFUSE_SECONDS),
    };
    if !(seconds > 0.0 && seconds.is_finite()) {
        return Ok(None);
    }
    let until = now + chrono::Duration::milliseconds((seconds.min(1e9) * 1000.0) as i64);
    if let Some(value) = filters::with_filter(stored, agent, until, now) {
        return Ok(Some(value.into()));
    }
    let mut fw: Framework = serde_json::from_slice(stored)?;
    let status = fw.status.get_or_insert_with(Default::default);
    status.filters.retain(|f| f.until > now);
    match status.filters.iter_mut().find(|f| f.agent == agent) {
        Some(f) => f.until = f.until.max(until),
        None => status.filters.push(OfferFilter { agent: agent.to_owned(), until }),
    }
    fw.metadata.resource_version = None;
    Ok(Some(object::to_stored(&serde_json::to_value(&fw)?)))
}

/// The Framework's `spec.defaultRefuseSeconds`, read without decoding the
/// rest.
fn default_refuse_seconds(stored: &[u8]) -> Result<Option<f64>, serde_json::Error> {
    #[derive(Deserialize)]
    struct Head {
        #[serde(default)]
        spec: Spec,
    }
    #[derive(Default, Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Spec {
        #[serde(default)]
        default_refuse_seconds: Option<f64>,
    }
    Ok(serde_json::from_slice::<Head>(stored)?.spec.default_refuse_seconds)
}

/// The offer's expiry as of `now`, as [`usable_offer`] checks it.
fn expired(call: &Ctx, offer: &Offer, now: DateTime<Utc>) -> Option<ApiError> {
    let at = offer.spec.expires_at.filter(|at| *at <= now)?;
    Some(ApiError::Gone(format!("offer {} expired at {}", call.target.name(), at.to_rfc3339())))
}

/// What a failed compare at index 0 (the offer) means.
pub(crate) fn offer_lost(call: &Ctx, current: &Option<KeyValue>) -> Option<ApiError> {
    current
        .is_none()
        .then(|| ApiError::Gone(format!("offer {} was accepted, declined or rescinded meanwhile", call.target.name())))
}

/// `POST .../offers/{name}/decline`.
pub(super) async fn decline(mut call: Call) -> Result<Response, ApiError> {
    let req: DeclineRequest = json_body(&mut call, "decline").await?;
    let call = Ctx { state: call.state, target: call.target };
    let refuse = req.filters.and_then(|f| f.refuse_seconds);
    for _ in 0..MAX_RETRIES {
        let now = Utc::now();
        let (offer_kv, offer) = usable_offer(&call, req.framework.as_deref(), now).await?;
        let mut txn = Txn {
            compares: vec![Compare::ModRevision { key: offer_kv.key.clone(), revision: offer_kv.mod_revision }],
            ops: vec![Op::Delete { key: offer_kv.key.clone() }],
        };
        txn.ops.push(framework_filter(&call, &offer, refuse, now)?);
        match call.state.store().txn(txn).await? {
            TxnOutcome::Committed { .. } => {
                tracing::info!(offer = call.target.name(), framework = %offer.spec.framework, "offer declined");
                let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                    "message": format!("offer {} declined", call.target.name()), "code": 200});
                return Ok(respond(StatusCode::OK, &body, &[]));
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
        reason: "the offer's framework kept changing; try again".into(),
    })
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use meseta_schemas::kinds::FrameworkSpec;

    use super::*;

    fn stored(spec: FrameworkSpec) -> Vec<u8> {
        crate::object::to_stored(&encode(&Framework::new("fw", spec)).unwrap()).to_vec()
    }

    fn filters_of(bytes: &[u8]) -> Vec<(String, DateTime<Utc>)> {
        let fw: Framework = serde_json::from_slice(bytes).unwrap();
        fw.status.unwrap_or_default().filters.into_iter().map(|f| (f.agent, f.until)).collect()
    }

    #[test]
    fn the_refuse_time_comes_from_the_request_then_the_framework_then_the_default() {
        let now = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
        let plain = stored(FrameworkSpec::default());
        let seconds = |s: i64| now + chrono::Duration::seconds(s);
        let named = with_filter(&plain, "a1", Some(30.0), now).unwrap();
        assert_eq!(filters_of(&named), vec![("a1".to_owned(), seconds(30))]);
        let defaulted = with_filter(&plain, "a1", None, now).unwrap();
        assert_eq!(filters_of(&defaulted), vec![("a1".to_owned(), seconds(DEFAULT_REFUSE_SECONDS as i64))]);
        let own = stored(FrameworkSpec { default_refuse_seconds: Some(60.0), ..Default::default() });
        assert_eq!(filters_of(&with_filter(&own, "a2", None, now).unwrap()), vec![("a2".to_owned(), seconds(60))]);
        // A later answer for the same agent keeps one filter, the later until.
        let again = with_filter(&named, "a1", Some(90.0), now).unwrap();
        assert_eq!(filters_of(&again), vec![("a1".to_owned(), seconds(90))]);
    }

    #[test]
    fn no_positive_refuse_time_or_undecodable_bytes_keep_the_framework() {
        let now = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
        let plain = stored(FrameworkSpec::default());
        assert!(with_filter(&plain, "a1", Some(0.0), now).is_none());
        assert!(with_filter(&plain, "a1", Some(f64::NAN), now).is_none());
        let never = stored(FrameworkSpec { default_refuse_seconds: Some(0.0), ..Default::default() });
        assert!(with_filter(&never, "a1", None, now).is_none());
        assert!(with_filter(b"{\"spec\": 3", "a1", None, now).is_none());
        assert!(with_filter(b"[1, 2]", "a1", Some(5.0), now).is_none());
    }
}
