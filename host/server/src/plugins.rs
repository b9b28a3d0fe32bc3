//! Plugin management: `GET /plugins`, `POST /plugins` (deploy or swap a
//! `.wasm`), `POST /plugins/{name}/params` (model parameters),
//! `POST /plugins/{name}/shadow`, `POST /plugins/{name}/promote`,
//! `POST /plugins/{name}/rollback`.
//!
//! Every change goes through the job's [`PluginControl`]: the request is
//! validated and compiled in a blocking worker, queued for the next window
//! boundary, and the answer is the ticket's outcome (the change the frame
//! loop applied, with the window it took effect at). No authentication yet:
//! anyone who can reach the server can swap plugins (the auth part of issue 6
//! adds the admin role).

use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use pitwall_runtime::{Applied, Boundary, ControlError, PluginControl, PluginStatus, SetStatus};
use serde_json::{Value, json};

use crate::router::AppState;

/// Largest `.wasm` accepted by `POST /plugins` and `/plugins/{name}/shadow`.
pub const MAX_WASM_BYTES: usize = 32 * 1024 * 1024;
/// Largest model-parameter blob accepted by `POST /plugins/{name}/params`.
pub const MAX_PARAMS_BYTES: usize = 4 * 1024 * 1024;
/// How long a request waits for the frame loop to apply its change.
pub const APPLY_TIMEOUT: Duration = Duration::from_secs(20);

/// How long an answer waits for the status published after its change.
const STATUS_WAIT: Duration = Duration::from_secs(2);

/// A refused plugin-management request: status and the reason the client sees
/// (`{"error": "..."}`).
#[derive(Debug)]
pub struct PluginApiError {
    pub status: StatusCode,
    pub reason: String,
}

impl PluginApiError {
    fn new(status: StatusCode, reason: impl Into<String>) -> Self {
        Self {
            status,
            reason: reason.into(),
        }
    }
}

impl IntoResponse for PluginApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.reason }))).into_response()
    }
}

impl From<ControlError> for PluginApiError {
    fn from(e: ControlError) -> Self {
        let status = match &e {
            ControlError::UnknownPlugin(_) => StatusCode::NOT_FOUND,
            ControlError::Load(_) | ControlError::WrongPlugin { .. } => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ControlError::NoPrevious { .. }
            | ControlError::NoSuchVersion { .. }
            | ControlError::NoShadow(_)
            | ControlError::Rejected(_) => StatusCode::CONFLICT,
            ControlError::FrameLoopGone => {
                return Self::new(StatusCode::CONFLICT, format!("the replay is over: {e}"));
            }
            ControlError::Timeout => {
                return Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!(
                        "{e}; no frame reached the boundary within {} s (is the race paused or over?); \
                         the change stays queued",
                        APPLY_TIMEOUT.as_secs()
                    ),
                );
            }
        };
        Self::new(status, e.to_string())
    }
}

fn body(body: Result<Bytes, BytesRejection>, what: &str) -> Result<Bytes, PluginApiError> {
    let bytes = body.map_err(|e| {
        let status = e.status();
        let reason = if status == StatusCode::PAYLOAD_TOO_LARGE {
            format!("the {what} is too large: {}", e.body_text())
        } else {
            format!("cannot read the {what}: {}", e.body_text())
        };
        PluginApiError::new(status, reason)
    })?;
    if bytes.is_empty() {
        return Err(PluginApiError::new(
            StatusCode::BAD_REQUEST,
            format!("empty body: send the {what} as the request body"),
        ));
    }
    Ok(bytes)
}

fn control(st: &AppState) -> Result<PluginControl, PluginApiError> {
    st.plugins.clone().ok_or_else(|| {
        PluginApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "plugin management is not available: this server runs without a plugin set \
             (start `pitwall run` with plugins)",
        )
    })
}

fn known(control: &PluginControl, name: &str) -> Result<(), PluginApiError> {
    match control.plugin(name) {
        Some(_) => Ok(()),
        None => Err(ControlError::UnknownPlugin(name.to_string()).into()),
    }
}

/// Runs a control request in a blocking worker (compiling a `.wasm` and
/// waiting for the boundary both block) and answers with its outcome.
async fn apply(
    control: PluginControl,
    op: impl FnOnce(&PluginControl) -> Result<pitwall_runtime::Ticket, ControlError> + Send + 'static,
) -> Result<Json<Value>, PluginApiError> {
    let outcome = tokio::task::spawn_blocking(move || {
        let ticket = op(&control)?;
        let applied = ticket.wait(APPLY_TIMEOUT)?;
        // The frame loop answers the ticket before it publishes the status
        // of that frame: answer with the first status published after this.
        let seen = control.status();
        let until = std::time::Instant::now() + STATUS_WAIT;
        let mut status = control.status();
        while std::sync::Arc::ptr_eq(&status, &seen) && std::time::Instant::now() < until {
            std::thread::sleep(Duration::from_millis(5));
            status = control.status();
        }
        Ok::<_, ControlError>((applied, status))
    })
    .await
    .map_err(|e| {
        PluginApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("control worker: {e}"),
        )
    })??;
    let (applied, status) = outcome;
    Ok(Json(applied_body(&applied, &status)))
}

fn applied_body(applied: &Applied, status: &SetStatus) -> Value {
    json!({
        "applied": true,
        "window_start_ms": applied.window_start_ms,
        "event": applied.event,
        "plugins": status.plugins.iter().map(plugin_json).collect::<Vec<_>>(),
    })
}

/// One plugin as `GET /plugins` lists it.
pub fn plugin_json(p: &PluginStatus) -> Value {
    let state = if p.quarantined.is_some() {
        "quarantined"
    } else if p.shadow.is_some() {
        "shadow"
    } else {
        "live"
    };
    let shadow = p.shadow.as_ref().map(|s| {
        json!({
            "candidate": s.candidate.id,
            "version": s.candidate.version,
            "content_hash": s.candidate.content_hash.to_string(),
            "since_ms": s.since_ms,
            "frames_compared": s.stats.frames_compared,
            "frames_agreed": s.stats.frames_agreed,
            "candidate_failures": s.stats.candidate_failures,
            "predictions_matched": s.stats.predictions_matched,
            "predictions_unmatched": s.stats.predictions_unmatched,
            "stories_matched": s.stats.stories_matched,
            "stories_unmatched": s.stats.stories_unmatched,
            "stopped": s.stats.stopped,
            "agreement_rate": s.agreement_rate,
            "mean_abs_probability_diff": s.mean_abs_probability_diff,
            "mean_abs_metric_diff": s.mean_abs_metric_diff,
        })
    });
    json!({
        "name": p.name,
        "id": p.live.id,
        "version": p.live.version,
        "content_hash": p.live.content_hash.to_string(),
        "model_version": p.params.as_ref().map_or("none", |m| m.version.as_str()),
        "model_generation": p.params.as_ref().map(|m| m.generation),
        "state": state,
        "quarantined": p.quarantined,
        "shadow": shadow,
        "versions": p.versions.iter().map(|v| json!({
            "version": v.info.version,
            "content_hash": v.info.content_hash.to_string(),
            "state": v.state,
            "live_since_ms": v.live_since_ms,
        })).collect::<Vec<_>>(),
        "pending": p.pending,
    })
}

/// `GET /plugins`: every plugin with its live version, content hash, model
/// version, state and shadow comparison.
#[utoipa::path(
    get,
    path = "/plugins",
    tag = "plugins",
    summary = "Every plugin and its state",
    description = "Live version, content hash, model version, state (`live`, `shadow`, `quarantined`), the shadow \
                   comparison, known versions and pending changes.\n\n**Role:** admin.",
    responses(
        (status = 200, description = "`{frames, last_window_start_ms, pending, plugins: [...]}`.", body = Object),
        (status = 503, description = "No plugin set in this server.", body = crate::openapi::ErrorBody),
    ),
)]
pub(crate) async fn list(State(st): State<AppState>) -> Result<Json<Value>, PluginApiError> {
    let status = control(&st)?.status();
    Ok(Json(json!({
        "frames": status.frames,
        "last_window_start_ms": status.last_window_start_ms,
        "pending": status.pending,
        "plugins": status.plugins.iter().map(plugin_json).collect::<Vec<_>>(),
    })))
}

/// `POST /plugins` with a `.wasm`: loads it, or swaps it in for the loaded
/// plugin of the same name, at the next window.
#[utoipa::path(
    post,
    path = "/plugins",
    tag = "plugins",
    summary = "Deploy or swap a plugin",
    description = "Loads the `.wasm`, or swaps it in for the loaded plugin of the same name, at the next window; \
                   answers once applied.\n\n**Role:** admin.",
    request_body(description = "The plugin's `.wasm` (at most 32 MiB).", content(
        (Vec<u8> = "application/wasm"),
        (Vec<u8> = "application/octet-stream"),
    )),
    responses(
        (status = 200, description = "Applied at the window boundary: `{{applied: true, window_start_ms, event, plugins}}` \
                                   with every plugin as `GET /plugins` lists it.", body = Object),
        (status = 400, description = "An empty body.", body = crate::openapi::ErrorBody),
        (status = 409, description = "The runtime refused the change (or the replay is over).", body = crate::openapi::ErrorBody),
        (status = 413, description = "The `.wasm` is over 32 MiB.", body = crate::openapi::ErrorBody),
        (status = 422, description = "The `.wasm` does not load as a plugin.", body = crate::openapi::ErrorBody),
        (status = 500, description = "The control worker failed.", body = crate::openapi::ErrorBody),
        (status = 503, description = "No plugin set in this server, or no frame reached the window boundary within \
                                   20 s (the change stays queued).", body = crate::openapi::ErrorBody),
    ),
)]
pub(crate) async fn deploy(
    State(st): State<AppState>,
    wasm: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, PluginApiError> {
    let c = control(&st)?;
    let wasm = body(wasm, "`.wasm`")?;
    apply(c, move |c| c.deploy(&wasm, Boundary::Next)).await
}

/// `POST /plugins/{name}/params`: the plugin's new model parameters, applied
/// at the next window. A JSON content type is checked to parse.
#[utoipa::path(
    post,
    path = "/plugins/{name}/params",
    tag = "plugins",
    summary = "New model parameters for a plugin",
    description = "Applied at the next window; answers once applied. With a JSON content type the body is checked \
                   to parse first.\n\n**Role:** admin.",
    params(("name" = String, Path, description = "The plugin's name (as `GET /plugins` lists it).")),
    request_body(description = "The model parameters (at most 4 MiB), as the plugin reads them.", content(
        (Object = "application/json"),
        (Vec<u8> = "application/octet-stream"),
    )),
    responses(
        (status = 200, description = "Applied at the window boundary: `{{applied: true, window_start_ms, event, plugins}}` \
                                   with every plugin as `GET /plugins` lists it.", body = Object),
        (status = 400, description = "An empty body.", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such plugin.", body = crate::openapi::ErrorBody),
        (status = 409, description = "The runtime refused the change (or the replay is over).", body = crate::openapi::ErrorBody),
        (status = 413, description = "The parameters are over 4 MiB.", body = crate::openapi::ErrorBody),
        (status = 422, description = "A JSON content type with a body that is not JSON.", body = crate::openapi::ErrorBody),
        (status = 500, description = "The control worker failed.", body = crate::openapi::ErrorBody),
        (status = 503, description = "No plugin set in this server, or no frame reached the window boundary within \
                                   20 s (the change stays queued).", body = crate::openapi::ErrorBody),
    ),
)]
pub(crate) async fn params(
    State(st): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, PluginApiError> {
    let c = control(&st)?;
    known(&c, &name)?;
    let bytes = body(bytes, "model parameters")?;
    let json_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"));
    if json_type && let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(&bytes) {
        return Err(PluginApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("the model parameters are not valid JSON: {e}"),
        ));
    }
    apply(c, move |c| {
        c.set_params(&name, bytes.to_vec(), Boundary::Next)
    })
    .await
}

/// `POST /plugins/{name}/shadow` with a `.wasm`: runs it as the shadow
/// candidate of `name`.
#[utoipa::path(
    post,
    path = "/plugins/{name}/shadow",
    tag = "plugins",
    summary = "Run a candidate in shadow",
    description = "The `.wasm` runs beside the live version of `name` from the next window, its output compared \
                   and not published.\n\n**Role:** admin.",
    params(("name" = String, Path, description = "The plugin's name (as `GET /plugins` lists it).")),
    request_body(description = "The candidate's `.wasm` (at most 32 MiB); it must be a build of `name`.", content(
        (Vec<u8> = "application/wasm"),
        (Vec<u8> = "application/octet-stream"),
    )),
    responses(
        (status = 200, description = "Applied at the window boundary: `{{applied: true, window_start_ms, event, plugins}}` \
                                   with every plugin as `GET /plugins` lists it.", body = Object),
        (status = 400, description = "An empty body.", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such plugin.", body = crate::openapi::ErrorBody),
        (status = 409, description = "The runtime refused the change (or the replay is over).", body = crate::openapi::ErrorBody),
        (status = 413, description = "The `.wasm` is over 32 MiB.", body = crate::openapi::ErrorBody),
        (status = 422, description = "The `.wasm` does not load, or is another plugin.", body = crate::openapi::ErrorBody),
        (status = 500, description = "The control worker failed.", body = crate::openapi::ErrorBody),
        (status = 503, description = "No plugin set in this server, or no frame reached the window boundary within \
                                   20 s (the change stays queued).", body = crate::openapi::ErrorBody),
    ),
)]
pub(crate) async fn shadow(
    State(st): State<AppState>,
    Path(name): Path<String>,
    wasm: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, PluginApiError> {
    let c = control(&st)?;
    known(&c, &name)?;
    let wasm = body(wasm, "`.wasm`")?;
    apply(c, move |c| {
        let compiled = c.runtime().compile(&wasm)?;
        if compiled.name() != name {
            return Err(ControlError::WrongPlugin {
                expected: name,
                found: compiled.id().to_string(),
            });
        }
        c.shadow(&wasm, Boundary::Next)
    })
    .await
}

/// `POST /plugins/{name}/promote`: the shadow candidate goes live.
#[utoipa::path(
    post,
    path = "/plugins/{name}/promote",
    tag = "plugins",
    summary = "Promote the shadow candidate",
    description = "The shadow candidate of `name` goes live at the next window.\n\n**Role:** admin.",
    params(("name" = String, Path, description = "The plugin's name (as `GET /plugins` lists it).")),
    responses(
        (status = 200, description = "Applied at the window boundary: `{{applied: true, window_start_ms, event, plugins}}` \
                                   with every plugin as `GET /plugins` lists it.", body = Object),
        (status = 404, description = "No such plugin.", body = crate::openapi::ErrorBody),
        (status = 409, description = "The plugin has no shadow candidate (or the replay is over).", body = crate::openapi::ErrorBody),
        (status = 500, description = "The control worker failed.", body = crate::openapi::ErrorBody),
        (status = 503, description = "No plugin set in this server, or no frame reached the window boundary within \
                                   20 s (the change stays queued).", body = crate::openapi::ErrorBody),
    ),
)]
pub(crate) async fn promote(
    State(st): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, PluginApiError> {
    let c = control(&st)?;
    let p = c
        .plugin(&name)
        .ok_or_else(|| PluginApiError::from(ControlError::UnknownPlugin(name.clone())))?;
    if p.shadow.is_none() {
        return Err(ControlError::NoShadow(name).into());
    }
    apply(c, move |c| c.promote(&name, Boundary::Next)).await
}

/// `POST /plugins/{name}/rollback`: the previous version goes live again.
#[utoipa::path(
    post,
    path = "/plugins/{name}/rollback",
    tag = "plugins",
    summary = "Roll back to the previous version",
    description = "The previous version of `name` goes live again at the next window.\n\n**Role:** admin.",
    params(("name" = String, Path, description = "The plugin's name (as `GET /plugins` lists it).")),
    responses(
        (status = 200, description = "Applied at the window boundary: `{{applied: true, window_start_ms, event, plugins}}` \
                                   with every plugin as `GET /plugins` lists it.", body = Object),
        (status = 404, description = "No such plugin.", body = crate::openapi::ErrorBody),
        (status = 409, description = "There is no previous version (or the replay is over).", body = crate::openapi::ErrorBody),
        (status = 500, description = "The control worker failed.", body = crate::openapi::ErrorBody),
        (status = 503, description = "No plugin set in this server, or no frame reached the window boundary within \
                                   20 s (the change stays queued).", body = crate::openapi::ErrorBody),
    ),
)]
pub(crate) async fn rollback(
    State(st): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, PluginApiError> {
    let c = control(&st)?;
    apply(c, move |c| c.rollback(&name, Boundary::Next)).await
}

/// The plugin-management routes, merged into [`router`](crate::router()).
pub(crate) fn routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/plugins", get(list).post(deploy))
        .route(
            "/plugins/{name}/params",
            post(params).layer(DefaultBodyLimit::max(MAX_PARAMS_BYTES)),
        )
        .route("/plugins/{name}/shadow", post(shadow))
        .route("/plugins/{name}/promote", post(promote))
        .route("/plugins/{name}/rollback", post(rollback))
        .layer(DefaultBodyLimit::max(MAX_WASM_BYTES))
}
