//! The HTTP surface: routes, per-request tracing and metrics, health
//! endpoints, and the serve loop with graceful shutdown.
//!
//! The caller binds the listener and owns the shutdown future, so tests can
//! bind `127.0.0.1:0` and stop the server when they like.

use std::future::Future;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::serve::ListenerExt;
use axum::Router;
use tower_http::trace::TraceLayer;
use tracing::field::Empty;

use crate::path::Target;
use crate::state::AppState;
use crate::{core_events, discovery, gc, handlers, openapi};

/// Prefix of every resource path.
const API_ROOT: &str = "/apis/meseta.io/v1/";

/// The apiserver's routes over `state`. Serves requests without a socket
/// (`router(state).oneshot(request)`); background tasks (the garbage
/// collector) are started by [`serve`].
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/livez", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/version", get(discovery::version))
        .route("/api", get(discovery::core_versions))
        .route("/apis", get(discovery::groups))
        .route("/apis/meseta.io", get(discovery::meseta_group))
        .route("/apis/meseta.io/v1", get(discovery::resources))
        .route("/apis/meseta.io/v1/{*rest}", any(handlers::resource))
        .route("/openapi/v3", get(openapi::index))
        .route("/openapi/v3/{*path}", get(openapi::group))
        .route("/api/v1/namespaces/{namespace}/events", get(core_events::list))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request| {
                    tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), status = Empty, latency_ms = Empty)
                })
                .on_response(|resp: &Response, latency: std::time::Duration, span: &tracing::Span| {
                    span.record("status", resp.status().as_u16());
                    span.record("latency_ms", latency.as_secs_f64() * 1000.0);
                    tracing::debug!(parent: span, "served");
                }),
        )
        .with_state(state)
}

/// Serves `router(state)` on `listener`, with the garbage collector running
/// beside it, until `shutdown` resolves; then ends open watches, waits for
/// in-flight requests and stops the collector.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    tracing::info!(url = %format!("http://{addr}"), "apiserver listening");
    let collector = tokio::spawn(gc::run(state.clone()));
    let signal_state = state.clone();
    // Without TCP_NODELAY a watch event written while the previous one is
    // unacknowledged waits for the client's delayed ACK (40 ms on Linux).
    let listener = listener.tap_io(|tcp| {
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::debug!(error = %err, "setting TCP_NODELAY on a connection failed");
        }
    });
    let result = axum::serve(listener, router(state.clone()))
        .with_graceful_shutdown(async move {
            shutdown.await;
            signal_state.begin_shutdown();
        })
        .await;
    state.begin_shutdown();
    let _ = collector.await;
    tracing::info!("apiserver stopped");
    result
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(state): State<AppState>) -> Response {
    if state.is_shutting_down() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response();
    }
    match state.store().get("/readyz").await {
        Ok(_) => "ok".into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("store unavailable: {e}")).into_response(),
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics().render()).into_response()
}

async fn not_found(req: Request) -> crate::ApiError {
    crate::ApiError::PathNotFound(format!("the server could not find the requested resource ({})", req.uri().path()))
}

/// Records `apiserver_request_total` and `apiserver_request_duration_seconds`.
async fn observe(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let (verb, resource) = classify(req.method(), req.uri());
    let started = Instant::now();
    let resp = next.run(req).await;
    let m = state.metrics();
    m.requests.with_label_values(&[verb, &resource, resp.status().as_str()]).inc();
    m.request_duration.with_label_values(&[verb, &resource]).observe(started.elapsed().as_secs_f64());
    resp
}

/// The Kubernetes verb and resource (`tasks`, `tasks/status`) of a request.
fn classify(method: &Method, uri: &axum::http::Uri) -> (&'static str, String) {
    let Some(target) = uri.path().strip_prefix(API_ROOT).and_then(|rest| Target::parse(rest).ok()) else {
        let verb = match *method {
            Method::GET => "get",
            Method::HEAD => "head",
            _ => "other",
        };
        return (verb, String::new());
    };
    let watch = uri.query().is_some_and(|q| q.split('&').any(|p| p == "watch=true" || p == "watch=1"));
    let verb = match (method.clone(), target.name.is_some()) {
        (Method::GET, _) if watch => "watch",
        (Method::GET, true) => "get",
        (Method::GET, false) => "list",
        (Method::POST, false) => "create",
        (Method::POST, true) => "post",
        (Method::PUT, _) => "update",
        (Method::PATCH, _) => "patch",
        (Method::DELETE, true) => "delete",
        (Method::DELETE, false) => "deletecollection",
        _ => "other",
    };
    let resource = match &target.subresource {
        Some(sub) => format!("{}/{sub}", target.kind.plural),
        None => target.kind.plural.to_string(),
    };
    (verb, resource)
}

/// Resolves on ctrl-c or SIGTERM: the shutdown future of the binaries that
/// serve the API (`meseta-apiserver`, `meseta up`).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    tracing::info!("shutting down");
}
