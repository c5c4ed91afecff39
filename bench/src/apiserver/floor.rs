//! The floor of the write runs: the least any durable HTTP store has to do
//! for one write on this machine, served by `bench-floor` (`bin/floor.rs`).
//!
//! The floor server runs the apiserver's HTTP stack (tokio's multi-thread
//! runtime, axum on hyper, TCP_NODELAY, mimalloc) and its commit pattern (a
//! committer thread that takes every waiting write, appends the batch to one
//! file and `fdatasync`s it before any of them is answered), and nothing
//! else: no JSON, no validation, no index, no watch. Each answer echoes the
//! request's body, so the write clients read back the `resourceVersion` they
//! sent. A figure divided by the floor's is the share of the machine's
//! ceiling for durable HTTP writes that the apiserver reaches.
//!
//! Owns the floor's server side. It must not be used for anything but the
//! bench's own runs: it accepts any path and keeps nothing it can serve back.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::mpsc;

use anyhow::Context;
use axum::body::Bytes;
use axum::http::{Method, StatusCode};
use axum::serve::ListenerExt;
use tokio::sync::oneshot;

/// One write waiting for the committer: its body and where to say it is durable.
type Pending = (Bytes, oneshot::Sender<std::io::Result<()>>);

/// Serves the floor on `listener` until the process ends, appending every
/// write to `data/floor.log`.
pub async fn serve(listener: tokio::net::TcpListener, data: &Path) -> anyhow::Result<()> {
    let path = data.join("floor.log");
    let file = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    let (queue, pending) = mpsc::channel::<Pending>();
    std::thread::Builder::new().name("floor-commit".into()).spawn(move || commit(file, pending))?;
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let app = axum::Router::new().fallback(move |method: Method, body: Bytes| {
        let queue = queue.clone();
        async move { write(&queue, method, body).await }
    });
    axum::serve(listener, app).await.context("serving")
}

/// Queues `body` for the committer and answers once it is durable: 201 to a
/// `POST`, 200 to anything else, with the body echoed.
async fn write(queue: &mpsc::Sender<Pending>, method: Method, body: Bytes) -> (StatusCode, Bytes) {
    let (done, durable) = oneshot::channel();
    if queue.send((body.clone(), done)).is_err() {
        return (StatusCode::SERVICE_UNAVAILABLE, Bytes::from_static(b"the committer stopped"));
    }
    match durable.await {
        Ok(Ok(())) if method == Method::POST => (StatusCode::CREATED, body),
        Ok(Ok(())) => (StatusCode::OK, body),
        Ok(Err(err)) => (StatusCode::INTERNAL_SERVER_ERROR, Bytes::from(err.to_string())),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, Bytes::from_static(b"the committer stopped")),
    }
}

/// The committer: takes every waiting write, appends them, `fdatasync`s,
/// then answers them all; ends when the server does.
fn commit(mut file: File, pending: mpsc::Receiver<Pending>) {
    let mut batch = Vec::new();
    while let Ok(first) = pending.recv() {
        batch.push(first);
        batch.extend(pending.try_iter());
        let result = append(&mut file, &batch);
        for (_, done) in batch.drain(..) {
            let _ = done.send(result.as_ref().map(|_| ()).map_err(|e| std::io::Error::new(e.kind(), e.to_string())));
        }
    }
}

/// Appends each body with a newline and makes the file durable.
fn append(file: &mut File, batch: &[Pending]) -> std::io::Result<()> {
    for (body, _) in batch {
        file.write_all(body)?;
        file.write_all(b"\n")?;
    }
    file.sync_data()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_write_is_answered_with_its_body_once_it_is_in_the_file() {
        let data = tempfile::tempdir().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let dir = data.path().to_path_buf();
        tokio::spawn(async move { serve(listener, &dir).await });
        let http = reqwest::Client::new();
        let created = http.post(format!("{base}/a/b")).body("{\"n\":1}").send().await.unwrap();
        assert_eq!(created.status(), 201);
        assert_eq!(created.text().await.unwrap(), "{\"n\":1}");
        let updated = http.put(format!("{base}/a/b/c")).body("{\"n\":2}").send().await.unwrap();
        assert_eq!(updated.status(), 200);
        assert_eq!(updated.text().await.unwrap(), "{\"n\":2}");
        let log = std::fs::read_to_string(data.path().join("floor.log")).unwrap();
        assert_eq!(log, "{\"n\":1}\n{\"n\":2}\n");
    }
}
