//! GET of one object and of a collection (`<Kind>List`).

use std::convert::Infallible;
use std::task::Poll;

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use bytes::Bytes;
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
    if !crate::table::wants_table(&call.headers) {
        let page = objects::list_stored(
            call.state.store().as_ref(),
            &call.target.prefix(),
            &filter,
            call.params.limit()?,
            call.params.continue_token.as_deref(),
        )
        .await?;
        return Ok(stream_list(call.target.kind.kind, page));
    }
    let page = objects::list(
        call.state.store().as_ref(),
        &call.target.prefix(),
        &filter,
        call.params.limit()?,
        call.params.continue_token.as_deref(),
    )
    .await?;
    let rv = page.revision.to_string();
    let table = crate::table::table(call.target.kind, &page.items, Some(&rv), page.continue_token.as_deref());
    Ok(respond(StatusCode::OK, &table, &[]))
}

/// Bytes of list body handed to the connection at a time.
const LIST_CHUNK: usize = 256 * 1024;

/// The `<Kind>List` of a stored page, written to the wire chunk by chunk
/// straight from the stored bytes: memory stays bounded by the page's stored
/// size plus one chunk, whatever the number of items.
fn stream_list(kind: &str, page: objects::StoredPage) -> Response {
    let mut metadata = json!({"resourceVersion": page.revision.to_string()});
    if let Some(c) = page.continue_token {
        metadata["continue"] = Value::String(c);
    }
    let mut head = Vec::with_capacity(LIST_CHUNK);
    head.extend_from_slice(b"{\"apiVersion\":");
    serde_json::to_writer(&mut head, API_VERSION).expect("a string serialises");
    head.extend_from_slice(b",\"kind\":");
    serde_json::to_writer(&mut head, &format!("{kind}List")).expect("a string serialises");
    head.extend_from_slice(b",\"metadata\":");
    serde_json::to_writer(&mut head, &metadata).expect("a JSON value serialises");
    head.extend_from_slice(b",\"items\":[");
    let mut items = page.items.into_iter().enumerate();
    let mut pending = Some(head);
    let chunks = futures::stream::poll_fn(move |_| {
        let Some(mut buf) = pending.take() else { return Poll::Ready(None) };
        while buf.len() < LIST_CHUNK {
            let Some((i, item)) = items.next() else {
                buf.extend_from_slice(b"]}");
                return Poll::Ready(Some(Ok::<_, Infallible>(Bytes::from(buf))));
            };
            if i > 0 {
                buf.push(b',');
            }
            item.write_to(&mut buf);
        }
        pending = Some(Vec::with_capacity(LIST_CHUNK + 4096));
        Poll::Ready(Some(Ok(Bytes::from(buf))))
    });
    let mut resp = Response::new(Body::from_stream(chunks));
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// The `<Kind>List` object of a page.
pub(super) fn list_body(kind: &str, page: objects::ListPage) -> Value {
    let mut metadata = json!({"resourceVersion": page.revision.to_string()});
    if let Some(c) = page.continue_token {
        metadata["continue"] = Value::String(c);
    }
    json!({"apiVersion": API_VERSION, "kind": format!("{kind}List"), "metadata": metadata, "items": page.items})
}
