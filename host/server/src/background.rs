//! The server on its own thread and tokio runtime, for a job that is not async
//! (`pitwall run` drives the engine and the plugins on plain threads).
//!
//! Binding happens in [`BackgroundServer::start`], so a taken port is an error
//! there, not a log line later. Shutting down (or dropping the handle) stops
//! accepting and drops the runtime, which ends every open connection: feeds
//! do not outlive the job.

use std::net::SocketAddr;
use std::thread::JoinHandle;

use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::error::ServerError;
use crate::router::{AppState, router};
use crate::serve::serve;

/// Worker threads of the server's runtime: HTTP work is light next to the
/// engine and the plugins, which keep the other cores.
pub const WORKER_THREADS: usize = 2;

/// A running server; stops when shut down or dropped.
#[derive(Debug)]
pub struct BackgroundServer {
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<Result<(), ServerError>>>,
}

impl BackgroundServer {
    /// Binds `addr` (port 0: any free port) and serves [`router`]`(state)` on
    /// a thread named `pitwall-http`.
    pub fn start(addr: SocketAddr, state: AppState) -> Result<Self, ServerError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(WORKER_THREADS)
            .thread_name("pitwall-http")
            .enable_all()
            .build()
            .map_err(ServerError::Runtime)?;
        let listener = rt
            .block_on(TcpListener::bind(addr))
            .map_err(|source| ServerError::Bind { addr, source })?;
        let local = listener.local_addr()?;
        let (tx, rx) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("pitwall-http".into())
            .spawn(move || {
                let shutdown = async {
                    // A dropped sender is a shutdown too.
                    let _ = rx.await;
                };
                let r = rt.block_on(serve(listener, router(state), shutdown));
                // Dropping the runtime here cancels every connection task.
                drop(rt);
                r
            })
            .map_err(ServerError::Runtime)?;
        Ok(Self {
            addr: local,
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }

    /// The bound address (the real port when started on port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, closes every connection and waits for the thread.
    pub fn shutdown(mut self) -> Result<(), ServerError> {
        self.stop()
    }

    fn stop(&mut self) -> Result<(), ServerError> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match self.thread.take() {
            Some(t) => t.join().unwrap_or(Err(ServerError::Panicked)),
            None => Ok(()),
        }
    }
}

impl Drop for BackgroundServer {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            tracing::warn!(error = %e, "server thread ended with an error");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpStream;

    use super::*;
    use crate::feed::{FeedHub, HubConfig};
    use crate::router::Health;

    fn state() -> AppState {
        AppState::new(
            FeedHub::new(HubConfig::default()),
            || Health::ok(Vec::new()),
        )
    }

    fn get(addr: SocketAddr, path: &str) -> String {
        let mut s = TcpStream::connect(addr).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: pitwall\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    #[test]
    fn serves_from_a_plain_thread_and_stops() {
        let server = BackgroundServer::start("127.0.0.1:0".parse().unwrap(), state()).unwrap();
        let addr = server.local_addr();
        assert_ne!(addr.port(), 0);
        let resp = get(addr, "/health");
        assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
        assert!(resp.contains(r#""status":"ok""#), "{resp}");
        server.shutdown().unwrap();
        assert!(
            TcpStream::connect(addr).is_err(),
            "still accepting after shutdown"
        );
    }

    #[test]
    fn a_taken_port_is_an_error_at_start() {
        let first = BackgroundServer::start("127.0.0.1:0".parse().unwrap(), state()).unwrap();
        let err = BackgroundServer::start(first.local_addr(), state()).unwrap_err();
        assert!(matches!(err, ServerError::Bind { .. }), "{err}");
        assert!(
            err.to_string().contains(&first.local_addr().to_string()),
            "{err}"
        );
    }
}
