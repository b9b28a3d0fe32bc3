//! The routes and their shared state.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde::Serialize;

use crate::error::{ApiError, ServerError};
use crate::feed::{FeedHub, HubStats, KIND_STORY};
use crate::live::LiveView;
use crate::query::{parse_event_id, parse_live_query};
use crate::{sse, ws};

/// A plugin (or model) version, as `/health` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PluginVersion {
    pub name: String,
    pub version: String,
    /// Model parameters' version (content hash), or `none`.
    pub model_version: String,
}

/// What the job reports about itself on `/health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok`, or a word saying what is wrong (`degraded`, ...).
    pub status: String,
    pub plugins: Vec<PluginVersion>,
}

impl Health {
    pub fn ok(plugins: Vec<PluginVersion>) -> Self {
        Self {
            status: "ok".into(),
            plugins,
        }
    }
}

/// Asked on every `/health`: the job owns the plugin set, the server only
/// shows what it is told.
pub type HealthFn = Arc<dyn Fn() -> Health + Send + Sync>;

/// Everything the routes share.
#[derive(Clone)]
pub struct AppState {
    pub hub: FeedHub,
    pub health: HealthFn,
    /// `None`: `/metrics` answers 503 (no recorder installed).
    pub prometheus: Option<PrometheusHandle>,
    /// The live race (`/live-battles`, `/predict`, `/burn-bar`,
    /// `/telemetry/live`); the job updates it once per frame.
    pub live: LiveView,
    /// Plugin management (`/plugins`); `None`: those routes answer 503.
    pub plugins: Option<pitwall_runtime::PluginControl>,
    /// `POST /ingest` feeds this engine; `None`: it answers 503.
    pub ingest: Option<crate::ingest::Ingest>,
    /// Who may call what ([`crate::auth`]); off unless the job sets it.
    pub auth: crate::auth::Auth,
    /// The history store (`/races`, `/history`, `/analytics`, the CSV
    /// exports); `None`: those routes answer 503.
    pub store: Option<pitwall_store::Store>,
}

impl AppState {
    pub fn new(hub: FeedHub, health: impl Fn() -> Health + Send + Sync + 'static) -> Self {
        Self {
            hub,
            health: Arc::new(health),
            prometheus: None,
            live: LiveView::new(),
            plugins: None,
            ingest: None,
            auth: crate::auth::Auth::off(),
            store: None,
        }
    }

    /// Checks API keys (and rate limits) with `auth`.
    pub fn with_auth(mut self, auth: crate::auth::Auth) -> Self {
        self.auth = auth;
        self
    }

    /// Serves history, analytics and exports from `store`.
    pub fn with_store(mut self, store: pitwall_store::Store) -> Self {
        self.store = Some(store);
        self
    }

    /// Serves this live view (by default the state has its own, empty one).
    pub fn with_live(mut self, live: LiveView) -> Self {
        self.live = live;
        self
    }

    /// Takes telemetry on `POST /ingest` into this engine.
    pub fn with_ingest(mut self, ingest: crate::ingest::Ingest) -> Self {
        self.ingest = Some(ingest);
        self
    }

    /// Serves plugin management (`/plugins`, the dashboard's panel) on this set.
    pub fn with_plugins(mut self, control: pitwall_runtime::PluginControl) -> Self {
        self.plugins = Some(control);
        self
    }

    pub fn with_prometheus(mut self, handle: PrometheusHandle) -> Self {
        self.prometheus = Some(handle);
        self
    }
}

/// Installs the process-wide Prometheus recorder (once per process: the
/// `metrics` facade has a single global recorder) and returns the handle
/// `/metrics` renders.
pub fn install_prometheus() -> Result<PrometheusHandle, ServerError> {
    Ok(PrometheusBuilder::new().install_recorder()?)
}

/// The server's routes.
///
/// Grouped by the role they need ([`crate::auth`]); each group's guard runs
/// only for its own routes, so an unknown path is still a plain 404.
pub fn router(state: AppState) -> Router {
    use axum::middleware::from_fn_with_state;
    let guest = Router::new()
        .route("/health", get(health))
        .route("/live-battles", get(live_battles))
        .route("/metrics", get(metrics_text))
        .route("/", get(crate::dashboard::index))
        .route("/openapi.json", get(crate::openapi::serve_document))
        .route_layer(from_fn_with_state(state.clone(), crate::auth::guest));
    let user = Router::new()
        .route("/feed", get(sse::feed))
        .route("/ws", get(ws::feed))
        .route("/stories", get(stories))
        .route("/predict", get(predict))
        .route("/burn-bar", get(burn_bar))
        .route("/telemetry/live", get(telemetry_live))
        .merge(crate::history::routes())
        .route_layer(from_fn_with_state(state.clone(), crate::auth::user));
    let admin = crate::plugins::routes()
        .route("/ingest", crate::ingest::route(&state))
        .route_layer(from_fn_with_state(state.clone(), crate::auth::admin));
    guest.merge(user).merge(admin).with_state(state)
}

type QueryPairs = Result<Query<Vec<(String, String)>>, QueryRejection>;

fn live_car(query: QueryPairs) -> Result<Option<u16>, ApiError> {
    let Query(pairs) = query.map_err(|e| ApiError::BadQuery(e.body_text()))?;
    parse_live_query(&pairs)
}

/// `GET /live-battles?car=N`: the live battles with the overtake probability.
#[utoipa::path(
    get,
    path = "/live-battles",
    tag = "live",
    summary = "Live battles with their overtake probability",
    description = "The battles of the latest frame, each with its latest `p_overtake` prediction and the expert breakdown.\n\n**Role:** guest.",
    params(("car" = Option<u16>, Query, minimum = 0, maximum = 999,
        description = "Only what concerns this racing number (0-999, at most once). \
                       A car not in the race (once the race is known) is a 404.")),
    responses(
        (status = 200, description = "The live view (all `null`/empty before the first frame).", body = crate::live::BattlesBody),
        (status = 400, description = "A bad query: an unknown parameter, or `car` not a racing number or given twice.",
            body = crate::openapi::ErrorBody),
        (status = 404, description = "`car` is not in the race.", body = crate::openapi::ErrorBody),
    ),
)]
pub(crate) async fn live_battles(
    State(st): State<AppState>,
    query: QueryPairs,
) -> Result<Json<crate::live::BattlesBody>, ApiError> {
    let car = live_car(query)?;
    Ok(Json(st.live.state().battles_body(car)?))
}

/// `GET /predict?car=N`: the current predictions with their breakdown.
#[utoipa::path(
    get,
    path = "/predict",
    tag = "live",
    summary = "Current predictions with the expert breakdown",
    description = "The predictions of the latest frame (overtake probabilities and others), with their contributions and provenance.\n\n**Role:** user.",
    params(("car" = Option<u16>, Query, minimum = 0, maximum = 999,
        description = "Only what concerns this racing number (0-999, at most once). \
                       A car not in the race (once the race is known) is a 404.")),
    responses(
        (status = 200, description = "The live view (all `null`/empty before the first frame).", body = crate::live::PredictBody),
        (status = 400, description = "A bad query: an unknown parameter, or `car` not a racing number or given twice.",
            body = crate::openapi::ErrorBody),
        (status = 404, description = "`car` is not in the race.", body = crate::openapi::ErrorBody),
    ),
)]
pub(crate) async fn predict(
    State(st): State<AppState>,
    query: QueryPairs,
) -> Result<Json<crate::live::PredictBody>, ApiError> {
    let car = live_car(query)?;
    Ok(Json(st.live.state().predict_body(car)?))
}

/// `GET /burn-bar?car=N`: fuel per car against the field.
#[utoipa::path(
    get,
    path = "/burn-bar",
    tag = "live",
    summary = "The Burn Bar: fuel per car against the field",
    description = "Each car's latest fuel figures, ordered by position, with the field's median burn per lap.\n\n**Role:** user.",
    params(("car" = Option<u16>, Query, minimum = 0, maximum = 999,
        description = "Only what concerns this racing number (0-999, at most once). \
                       A car not in the race (once the race is known) is a 404.")),
    responses(
        (status = 200, description = "The live view (all `null`/empty before the first frame).", body = crate::live::BurnBarBody),
        (status = 400, description = "A bad query: an unknown parameter, or `car` not a racing number or given twice.",
            body = crate::openapi::ErrorBody),
        (status = 404, description = "`car` is not in the race.", body = crate::openapi::ErrorBody),
    ),
)]
pub(crate) async fn burn_bar(
    State(st): State<AppState>,
    query: QueryPairs,
) -> Result<Json<crate::live::BurnBarBody>, ApiError> {
    let car = live_car(query)?;
    Ok(Json(st.live.state().burn_bar_body(car)?))
}

/// `GET /telemetry/live?car=N`: every car's latest state.
#[utoipa::path(
    get,
    path = "/telemetry/live",
    tag = "live",
    summary = "Every car's latest telemetry",
    description = "Each car's latest state (position, gaps, speed, tyres, pit stops), ordered by position.\n\n**Role:** user.",
    params(("car" = Option<u16>, Query, minimum = 0, maximum = 999,
        description = "Only what concerns this racing number (0-999, at most once). \
                       A car not in the race (once the race is known) is a 404.")),
    responses(
        (status = 200, description = "The live view (all `null`/empty before the first frame).", body = crate::live::TelemetryBody),
        (status = 400, description = "A bad query: an unknown parameter, or `car` not a racing number or given twice.",
            body = crate::openapi::ErrorBody),
        (status = 404, description = "`car` is not in the race.", body = crate::openapi::ErrorBody),
    ),
)]
pub(crate) async fn telemetry_live(
    State(st): State<AppState>,
    query: QueryPairs,
) -> Result<Json<crate::live::TelemetryBody>, ApiError> {
    let car = live_car(query)?;
    Ok(Json(st.live.state().telemetry_body(car)?))
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct HealthBody {
    #[serde(flatten)]
    health: Health,
    feed: HubStats,
    /// `keys` or `off`.
    #[schema(value_type = String)]
    auth: &'static str,
    /// Whether history, analytics and exports are served.
    store: bool,
}

#[utoipa::path(
    get,
    path = "/health",
    tag = "server",
    summary = "Liveness, plugin and model versions",
    description = "The job's status, every plugin with its version and model version, the feed hub's counters, \
                   whether keys are checked and whether the history store is served.\n\n**Role:** guest.",
    responses((status = 200, description = "The server is up.", body = HealthBody)),
)]
pub(crate) async fn health(State(st): State<AppState>) -> Json<HealthBody> {
    Json(HealthBody {
        health: (st.health)(),
        feed: st.hub.stats(),
        auth: st.auth.mode().name(),
        store: st.store.is_some(),
    })
}

const STORIES_DEFAULT: usize = 50;
const STORIES_MAX: usize = 500;

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct StoriesPage {
    /// Newest first; each is the story's feed JSON.
    #[schema(value_type = Vec<Object>)]
    stories: Vec<serde_json::Value>,
    /// Pass as `before` for the next (older) page; `null` at the end.
    next_before: Option<u64>,
}

/// `GET /stories?limit=50&before=ID`: recent stories still in the replay
/// buffer, newest first (the history store, a later part of issue 6, goes
/// further back).
#[utoipa::path(
    get,
    path = "/stories",
    tag = "feeds",
    summary = "Recent stories, newest first",
    description = "Stories still in the feed's replay buffer, newest first, paged with `before`. \
                   Older ones are in `/history/{race_id}`.\n\n**Role:** user.",
    params(
        ("limit" = Option<usize>, Query, minimum = 1, maximum = 500,
            description = "Stories per page (1-500, default 50)."),
        ("before" = Option<u64>, Query,
            description = "Only stories with an event id below this (the previous page's `next_before`)."),
    ),
    responses(
        (status = 200, description = "A page of stories.", body = StoriesPage),
        (status = 400, description = "A bad query: an unknown parameter, `limit` out of range, `before` not an event id.",
            body = crate::openapi::ErrorBody),
    ),
)]
pub(crate) async fn stories(
    State(st): State<AppState>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<StoriesPage>, ApiError> {
    let Query(pairs) = query.map_err(|e| ApiError::BadQuery(e.body_text()))?;
    let mut limit = STORIES_DEFAULT;
    let mut before = None;
    for (k, v) in &pairs {
        match k.as_str() {
            "limit" => {
                limit = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=STORIES_MAX).contains(n))
                    .ok_or_else(|| {
                        ApiError::bad("limit", format!("`{v}` is not in 1..={STORIES_MAX}"))
                    })?
            }
            "before" => before = Some(parse_event_id("before", v)?),
            other => {
                return Err(ApiError::bad(
                    other,
                    "unknown parameter (known: limit, before)",
                ));
            }
        }
    }
    let events = st.hub.recent(KIND_STORY, before, limit);
    let next_before = (events.len() == limit)
        .then(|| events.last().map(|e| e.id))
        .flatten();
    let stories = events
        .iter()
        .map(|e| serde_json::from_str(&e.json).expect("the hub writes valid JSON"))
        .collect();
    Ok(Json(StoriesPage {
        stories,
        next_before,
    }))
}

#[utoipa::path(
    get,
    path = "/metrics",
    tag = "server",
    summary = "Prometheus metrics",
    description = "Every `pitwall_` metric in the Prometheus text format.\n\n**Role:** guest.",
    responses(
        (status = 200, description = "The metrics.", body = String, content_type = "text/plain; version=0.0.4"),
        (status = 503, description = "No metrics recorder is installed in this server.", body = crate::openapi::ErrorBody),
    ),
)]
pub(crate) async fn metrics_text(
    State(st): State<AppState>,
) -> Result<impl IntoResponse, ApiError> {
    let handle = st.prometheus.as_ref().ok_or(ApiError::Unavailable(
        "metrics recorder not installed in this server",
    ))?;
    let s = st.hub.stats();
    metrics::gauge!("pitwall_feed_buffered_events").set(s.buffered as f64);
    metrics::gauge!("pitwall_feed_subscribers").set(s.subscribers as f64);
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        handle.render(),
    ))
}
