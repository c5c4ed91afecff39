//! The agent's HTTP server (`--listen`): `/healthz`, `/metrics` and
//! `GET /tasks/{ns}/{name}/log?stream=stdout|stderr&tailLines=N&offset=N&follow=true`.
//!
//! Owns request parsing and streaming; which files may be read is decided
//! by [`crate::logs`]. It must not change any state.

use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::agent::Shared;
use crate::logs::{log_path, tail_offset, LogError, Stream};
use crate::runtime::{ContainerId, ContainerRuntime};

/// How often a followed log is checked for growth.
const FOLLOW_POLL: Duration = Duration::from_millis(200);
/// Bytes read per chunk.
const CHUNK: usize = 64 * 1024;

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(metrics))
        .route("/tasks/{ns}/{name}/log", get(log))
        .with_state(shared)
}

pub(crate) async fn serve(listener: tokio::net::TcpListener, shared: Arc<Shared>, cancel: CancellationToken) {
    let app = router(shared);
    let result = axum::serve(listener, app).with_graceful_shutdown(async move { cancel.cancelled().await }).await;
    if let Err(e) = result {
        tracing::error!(error = %e, "the agent's HTTP server failed");
    }
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    shared.metrics.queue_depth.set(shared.queue.depth() as i64);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], shared.metrics.render()).into_response()
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LogQuery {
    stream: Option<String>,
    tail_lines: Option<usize>,
    offset: Option<u64>,
    follow: Option<bool>,
}

fn error(code: StatusCode, message: String) -> Response {
    (code, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], message + "\n").into_response()
}

async fn log(
    State(shared): State<Arc<Shared>>,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<LogQuery>,
) -> Response {
    let Some(work_dir) = shared.config.work_dir.clone() else {
        return error(StatusCode::NOT_FOUND, "this agent keeps no logs (it has no work dir)".into());
    };
    let stream = match Stream::parse(q.stream.as_deref()) {
        Ok(s) => s,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let path = match log_path(&work_dir, &ns, &name, stream) {
        Ok(p) => p,
        Err(e @ LogError::Invalid(_)) => return error(StatusCode::BAD_REQUEST, e.to_string()),
        Err(e @ LogError::NotFound(_)) => return error(StatusCode::NOT_FOUND, e.to_string()),
    };
    let start = match (q.offset, q.tail_lines) {
        (Some(o), _) => o,
        (None, Some(n)) => match tail_offset(&path, n) {
            Ok(o) => o,
            Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, format!("reading the log: {e}")),
        },
        (None, None) => 0,
    };
    let follow = q.follow.unwrap_or(false);
    let id = ContainerId::new(&ns, &name).ok();
    let runtime = shared.runtime.clone();
    let cancel = shared.cancel.clone();
    let body = futures::stream::unfold((path, start, false), move |(path, pos, done)| {
        let runtime = runtime.clone();
        let cancel = cancel.clone();
        let id = id.clone();
        async move {
            if done {
                return None;
            }
            loop {
                let p = path.clone();
                let chunk = tokio::task::spawn_blocking(move || read_chunk(&p, pos)).await.ok()?.ok()?;
                if !chunk.is_empty() {
                    let next = pos + chunk.len() as u64;
                    return Some((Ok::<_, std::io::Error>(chunk), (path, next, false)));
                }
                if !follow || cancel.is_cancelled() || !still_running(runtime.as_ref(), id.as_ref()).await {
                    // One last read: the process may have written before it ended.
                    let p = path.clone();
                    let last = tokio::task::spawn_blocking(move || read_chunk(&p, pos)).await.ok()?.ok()?;
                    if last.is_empty() {
                        return None;
                    }
                    let next = pos + last.len() as u64;
                    return Some((Ok(last), (path, next, !follow)));
                }
                tokio::select! {
                    _ = tokio::time::sleep(FOLLOW_POLL) => {}
                    _ = cancel.cancelled() => {}
                }
            }
        }
    });
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], Body::from_stream(body)).into_response()
}

async fn still_running(runtime: &dyn ContainerRuntime, id: Option<&ContainerId>) -> bool {
    match id {
        Some(id) => runtime.state(id).await.is_ok_and(|s| !s.is_finished()),
        None => false,
    }
}

fn read_chunk(path: &PathBuf, pos: u64) -> std::io::Result<Vec<u8>> {
    let mut f = std::fs::File::open(path)?;
    f.seek(SeekFrom::Start(pos))?;
    let mut buf = vec![0u8; CHUNK];
    let n = f.read(&mut buf)?;
    buf.truncate(n);
    Ok(buf)
}
