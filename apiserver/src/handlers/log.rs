//! `GET .../namespaces/{ns}/tasks/{name}/log`: a task's stdout / stderr,
//! proxied from the agent that runs it (`Agent.spec.address` +
//! `/tasks/{ns}/{name}/log`), with `stream`, `tailLines`, `offset` and
//! `follow` passed through and the body streamed back as it arrives.
//!
//! Owns only the proxying: the agent decides what may be read. A task not
//! yet bound to an agent is a 400; an agent that cannot be reached is a 503
//! that says so.

use axum::body::Body;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::Call;
use crate::error::ApiError;
use crate::object;
use crate::objects;
use crate::path::object_key;

/// Query parameters forwarded to the agent.
const FORWARDED: [&str; 4] = ["stream", "tailLines", "offset", "follow"];

pub(super) async fn serve(call: Call, query: Option<&str>) -> Result<Response, ApiError> {
    if call.target.kind.plural != "tasks" {
        return Err(ApiError::PathNotFound(format!("{} have no subresource \"log\"", call.target.kind.plural)));
    }
    let ns = call.target.namespace.clone().unwrap_or_default();
    let name = call.target.name().to_string();
    let Some(kv) = call.state.store().get(&call.target.key()).await? else {
        return Err(objects::not_found(call.target.kind, &name));
    };
    let task = object::from_kv(&kv)?;
    let agent = task
        .pointer("/spec/agent")
        .or_else(|| task.pointer("/status/agent"))
        .and_then(Value::as_str)
        .filter(|a| !a.is_empty())
        .map(str::to_string);
    let Some(agent) = agent else {
        return Err(ApiError::BadRequest(format!(
            "task {ns}/{name} is not on an agent yet (it has no spec.agent), so it has no log"
        )));
    };
    let agents = meseta_schemas::registry::by_plural("agents")
        .ok_or_else(|| ApiError::Internal("the agents kind is not registered".into()))?;
    let address = match call.state.store().get(&object_key(agents, None, &agent)).await? {
        Some(kv) => object::from_kv(&kv)?.pointer("/spec/address").and_then(Value::as_str).unwrap_or("").to_string(),
        None => String::new(),
    };
    if address.is_empty() {
        return Ok(unavailable(format!("agent {agent} of task {ns}/{name} has no address to fetch logs from")));
    }
    let base = if address.contains("://") { address.clone() } else { format!("http://{address}") };
    let url = format!("{}/tasks/{ns}/{name}/log", base.trim_end_matches('/'));
    let forwarded: Vec<(String, String)> = query
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
        .filter(|(k, _)| FORWARDED.contains(k))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let client = reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(5))
        .build()
        .map_err(|e| ApiError::Internal(format!("building the log proxy client: {e}")))?;
    let resp = match client.get(&url).query(&forwarded).send().await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(%agent, %url, error = %e, "agent unreachable for a log request");
            return Ok(unavailable(format!("agent {agent} ({address}) of task {ns}/{name} is unreachable: {e}")));
        }
    };
    let code = StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    if !code.is_success() {
        let text = resp.text().await.unwrap_or_default();
        let message = format!("agent {agent}: {}", text.trim());
        return Ok(status_response(code, &message));
    }
    Ok((
        StatusCode::OK,
        [(axum::http::header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        Body::from_stream(resp.bytes_stream()),
    )
        .into_response())
}

fn unavailable(message: String) -> Response {
    status_response(StatusCode::SERVICE_UNAVAILABLE, &message)
}

fn status_response(code: StatusCode, message: &str) -> Response {
    let reason = match code {
        StatusCode::SERVICE_UNAVAILABLE => "ServiceUnavailable",
        StatusCode::BAD_REQUEST => "BadRequest",
        StatusCode::NOT_FOUND => "NotFound",
        _ => "InternalError",
    };
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code.as_u16(),
    });
    (code, axum::Json(body)).into_response()
}
