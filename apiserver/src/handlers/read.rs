//! GET of one object and of a collection (`<Kind>List`).

use axum::http::StatusCode;
use axum::response::Response;
use meseta_schemas::API_VERSION;
use serde_json::{json, Value};

use super::{respond, Call};
use crate::error::ApiError;
use crate::object;
use crate::objects::{self, Filter};

/// `GET .../{plural}/{name}` and `.../{name}/status`.
pub(super) async fn get(call: Call) -> Result<Response, ApiError> {
    let kv = call.state.store().get(&call.target.key()).await?;
    let Some(kv) = kv else {
        return Err(objects::not_found(call.target.kind, call.target.name()));
    };
    let obj = object::from_kv(&kv)?;
    if crate::table::wants_table(&call.headers) {
        return Ok(respond(StatusCode::OK, &crate::table::single(call.target.kind, &obj), &[]));
    }
    Ok(respond(StatusCode::OK, &obj, &[]))
}

/// `GET .../{plural}`: a filtered page with the list's `resourceVersion`.
pub(super) async fn list(call: Call) -> Result<Response, ApiError> {
    let filter = Filter::from_params(&call.params)?;
    let page = objects::list(
        call.state.store().as_ref(),
        &call.target.prefix(),
        &filter,
        call.params.limit()?,
        call.params.continue_token.as_deref(),
    )
    .await?;
    if crate::table::wants_table(&call.headers) {
        let rv = page.revision.to_string();
        let table = crate::table::table(call.target.kind, &page.items, Some(&rv), page.continue_token.as_deref());
        return Ok(respond(StatusCode::OK, &table, &[]));
    }
    Ok(respond(StatusCode::OK, &list_body(call.target.kind.kind, page), &[]))
}

/// The `<Kind>List` object of a page.
pub(super) fn list_body(kind: &str, page: objects::ListPage) -> Value {
    let mut metadata = json!({"resourceVersion": page.revision.to_string()});
    if let Some(c) = page.continue_token {
        metadata["continue"] = Value::String(c);
    }
    json!({"apiVersion": API_VERSION, "kind": format!("{kind}List"), "metadata": metadata, "items": page.items})
}
