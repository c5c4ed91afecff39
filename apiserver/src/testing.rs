//! A real apiserver for tests of this crate and of the client, controllers
//! and end-to-end crates: sled in a temporary directory, a socket on
//! `127.0.0.1:0`, the garbage collector running.
//!
//! # Caveats
//!
//! - sled locks its directory: drop every `Arc` obtained from
//!   [`TestServer::store`] before [`TestServer::restart`].
//! - Watch bookmarks come every second (instead of every ten) so tests of
//!   bookmarks stay short.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::state::AppState;
use crate::store::Store;

/// Bookmark interval of test servers.
const TEST_BOOKMARK_INTERVAL: Duration = Duration::from_secs(1);

/// An apiserver serving on a local port from a temporary data directory.
pub struct TestServer {
    url: String,
    addr: SocketAddr,
    dir: TempDir,
    running: Option<Running>,
}

struct Running {
    store: Arc<dyn Store>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

impl TestServer {
    /// Starts a server on `127.0.0.1:0` with a fresh data directory.
    /// Panics when it cannot (a test fixture has nobody to report to).
    pub async fn start() -> TestServer {
        let dir = tempfile::Builder::new().prefix("meseta-apiserver-").tempdir().expect("create a temp dir");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let mut server = TestServer { url: format!("http://{addr}"), addr, dir, running: None };
        server.launch(listener).await;
        server
    }

    async fn launch(&mut self, listener: tokio::net::TcpListener) {
        let store = open_with_retry(self.dir.path()).await;
        let state = AppState::new(store.clone()).with_bookmark_interval(TEST_BOOKMARK_INTERVAL);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(crate::serve(listener, state, async move {
            let _ = stopped.await;
        }));
        self.running = Some(Running { store, stop, task });
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The data directory (kept across [`TestServer::restart`]).
    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The running server's store, e.g. to `compact` it. Panics when stopped.
    pub fn store(&self) -> Arc<dyn Store> {
        self.running.as_ref().expect("the test server is stopped").store.clone()
    }

    /// Stops the server gracefully (open watches end) and closes the store;
    /// keeps the data directory. Does nothing when already stopped.
    pub async fn stop(&mut self) {
        let Some(running) = self.running.take() else { return };
        let _ = running.stop.send(());
        match running.task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("the test server failed: {e}"),
            Err(e) => panic!("the test server task failed: {e}"),
        }
        drop(running.store);
    }

    /// Stops (if running) and starts again on the same address and data directory.
    pub async fn restart(&mut self) {
        self.stop().await;
        let mut attempt = 0;
        let listener = loop {
            match tokio::net::TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(e) if attempt < 50 => {
                    attempt += 1;
                    tracing::debug!(error = %e, "waiting to rebind the test server's address");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("rebind {}: {e}", self.addr),
            }
        };
        self.launch(listener).await;
    }
}

/// Opens the store, waiting a little for a previous instance to let go of it.
async fn open_with_retry(dir: &Path) -> Arc<dyn Store> {
    let mut attempt = 0;
    loop {
        match crate::open_sled(dir) {
            Ok(s) => return s,
            Err(e) if attempt < 50 => {
                attempt += 1;
                tracing::debug!(error = %e, "waiting to reopen the test store");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("open the store in {}: {e}", dir.display()),
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            let _ = running.stop.send(());
        }
    }
}
