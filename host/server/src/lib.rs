//! Pitwall's HTTP server (issue 6): the insight feed hub and the producer
//! feeds built on it.
//!
//! * [`mod@feed`]: [`FeedHub`] numbers every published item (plugin insights,
//!   race state, race predictions), keeps a bounded replay buffer and gives
//!   every subscriber its own bounded queue, so reconnecting clients miss
//!   nothing and slow ones never slow the others.
//! * [`mod@router`]: the axum routes — `GET /feed` (SSE), `GET /ws` (WebSocket),
//!   `GET /health`, `GET /stories`, `GET /metrics`, and the live race:
//!   `GET /live-battles`, `GET /predict`, `GET /burn-bar`, `GET /telemetry/live`.
//! * [`mod@live`]: [`LiveView`], the live race those four answer from, updated
//!   by the job once per frame with the frame and its insights.
//! * [`mod@openapi`]: `GET /openapi.json`, the OpenAPI document generated
//!   from the handlers' annotations.
//! * [`mod@serve`]: the accept loop. It gives each connection a [`ConnKill`] so the
//!   hub can close the socket of a client that stopped reading.
//!
//! * [`BackgroundServer`]: all of it on its own thread and runtime, for a job
//!   that is not async.
//!
//! Wiring it into an async job:
//!
//! ```no_run
//! # async fn run() -> Result<(), pitwall_server::ServerError> {
//! use pitwall_server::{AppState, FeedHub, Health, HubConfig, router, serve};
//! let hub = FeedHub::new(HubConfig::default());
//! let state = AppState::new(hub.clone(), || Health::ok(Vec::new()));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! tokio::spawn(serve(listener, router(state), std::future::pending()));
//! // From any thread, async or not, as the job produces items:
//! // hub.publish_insight(&insight)?; hub.publish_race_state(&frame)?;
//! # Ok(()) }
//! ```

pub mod auth;
pub mod background;
pub mod dashboard;
pub mod error;
pub mod feed;
pub mod history;
pub mod ingest;
pub mod live;
pub mod openapi;
pub mod plugins;
pub mod query;
pub mod router;
pub mod serve;
mod sse;
mod ws;

pub use auth::{Auth, AuthMode, Role};
pub use background::BackgroundServer;
pub use error::{ApiError, ServerError};
pub use feed::{
    ConnKill, Event, FeedHub, Filter, HubConfig, HubStats, Item, NewEvent, Notice, Subscription,
};
pub use live::{LiveState, LiveView};
pub use router::{AppState, Health, PluginVersion, install_prometheus, router};
pub use serve::serve;
