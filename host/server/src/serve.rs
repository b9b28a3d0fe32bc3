//! The accept loop: hyper HTTP/1 connections serving the router, each with
//! its own [`ConnKill`] in the request extensions.
//!
//! Why not `axum::serve`: it has no handle on a single connection, and a
//! client that stops reading never polls its response stream again — the hub
//! can drop that subscriber's queue, but only dropping the connection frees
//! the socket. Here the connection future races the kill switch.

use std::future::Future;
use std::time::Duration;

use axum::{Extension, Router};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

use crate::error::ServerError;
use crate::feed::ConnKill;

/// How long a connection may take to send its request headers.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves `app` on `listener` until `shutdown` resolves (connections already
/// open run on until they end).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServerError> {
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "pitwall server listening");
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let kill = ConnKill::new();
        let svc = TowerToHyperService::new(
            app.clone()
                .layer(Extension(kill.clone()))
                .layer(Extension(crate::auth::PeerAddr(peer))),
        );
        tokio::spawn(async move {
            // A client that opens a socket and never finishes its request
            // headers must not hold it forever.
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(TokioIo::new(stream), svc)
                .with_upgrades();
            tokio::select! {
                r = conn => if let Err(e) = r {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                },
                () = kill.fired() => tracing::info!(%peer, "connection cut: feed subscriber stayed behind"),
            }
        });
    }
    tracing::info!(%addr, "pitwall server stopped accepting");
    Ok(())
}
