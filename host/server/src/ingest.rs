//! `POST /ingest`: telemetry batches into the live engine, with back-pressure.
//!
//! A batch is NDJSON (`Content-Type: application/x-ndjson`, one JSON object a
//! line, named as the job's schema: `{"ts_ms": 1000, "car": "44", "speed": 301.2, ...}`)
//! or a FlatBuffers [`Batch`](ingest_generated::pitwall::ingest::Batch)
//! (`Content-Type: application/x-pitwall-batch`, schema `host/server/schema/ingest.fbs`).
//!
//! A batch is taken whole or not at all: every row is parsed and checked
//! against the schema (types, ranges, required channels, unknown fields) before
//! the chunk is offered to the engine with [`PushHandle::try_push`]. `202
//! {"accepted": rows}` means the engine's bounded input queue took the chunk
//! (it will be windowed in queue order); a full queue is `429` with
//! `Retry-After: 1`, a stopped engine `503`. Nothing is ever buffered here.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, post};
use pitwall_engine::RowChunk;
use pitwall_engine::schema::{ChannelType, KeyType, Schema};
use pitwall_engine::source::push::{PushError, PushHandle};
use serde_json::{Map, Value};

use crate::router::AppState;

#[allow(clippy::all, clippy::pedantic)]
#[path = "ingest_generated.rs"]
pub mod ingest_generated;

/// NDJSON batches.
pub const NDJSON: &str = "application/x-ndjson";
/// FlatBuffers batches (`host/server/schema/ingest.fbs`).
pub const FLATBUFFERS: &str = "application/x-pitwall-batch";
/// The default request body limit.
pub const DEFAULT_BODY_LIMIT: usize = 4 * 1024 * 1024;
/// Rows a batch may hold (beyond it: 413).
pub const MAX_ROWS: usize = 1 << 20;

/// What the server needs to feed the engine.
#[derive(Debug, Clone)]
pub struct Ingest {
    handle: PushHandle,
    schema: Arc<Schema>,
    body_limit: usize,
}

impl Ingest {
    /// Feeds `handle`, whose source has this `schema`.
    pub fn new(handle: PushHandle, schema: Schema) -> Self {
        Self {
            handle,
            schema: Arc::new(schema),
            body_limit: DEFAULT_BODY_LIMIT,
        }
    }

    /// Refuses bodies over `bytes` with 413 (default [`DEFAULT_BODY_LIMIT`]).
    pub fn with_body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }
}

/// The `/ingest` route, with its body limit.
pub(crate) fn route(state: &AppState) -> MethodRouter<AppState> {
    let limit = state
        .ingest
        .as_ref()
        .map_or(DEFAULT_BODY_LIMIT, |i| i.body_limit);
    post(ingest).layer(DefaultBodyLimit::max(limit))
}

/// A refused batch: status, reason, the line (NDJSON) or row (FlatBuffers)
/// when one is to blame.
#[derive(Debug)]
pub(crate) struct Refusal {
    status: StatusCode,
    result: &'static str,
    error: String,
    line: Option<u64>,
    retry_after: bool,
}

impl Refusal {
    fn new(status: StatusCode, result: &'static str, error: impl Into<String>) -> Self {
        Self {
            status,
            result,
            error: error.into(),
            line: None,
            retry_after: false,
        }
    }

    fn at(mut self, line: u64) -> Self {
        self.line = Some(line);
        self
    }

    fn malformed(line: u64, error: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "malformed", error).at(line)
    }

    fn invalid(line: u64, error: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", error).at(line)
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let mut body = serde_json::json!({ "error": self.error });
        if let Some(line) = self.line {
            body["line"] = line.into();
        }
        let mut r = (self.status, Json(body)).into_response();
        if self.retry_after {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        r
    }
}

/// `POST /ingest`.
#[utoipa::path(
    post,
    path = "/ingest",
    tag = "ingest",
    summary = "Telemetry batches into the live engine",
    description = "A batch is taken whole or not at all: every row is checked against the job's schema (types, \
                   ranges, required channels, unknown fields) before the engine's bounded queue is offered it. \
                   `202` means the engine took it; a full queue is `429` and a stopped engine `503`, both with \
                   `Retry-After`. Nothing is buffered in the server.\n\n**Role:** admin.",
    request_body(description = "NDJSON (one object a line: `{\"ts_ms\": 1000, \"car\": \"44\", \"speed\": 301.2}`) \
                                or a FlatBuffers `Batch` (`host/server/schema/ingest.fbs`, file identifier `PWIB`); \
                                at most 4 MiB unless the job sets another limit, 1 048 576 rows.", content(
        (String = "application/x-ndjson"),
        (Vec<u8> = "application/x-pitwall-batch"),
    )),
    responses(
        (status = 202, description = "The engine took the batch.", body = crate::openapi::IngestAccepted),
        (status = 400, description = "Malformed: a line that is not JSON, a buffer that is not a batch, or no rows.",
            body = crate::openapi::IngestRefusal),
        (status = 413, description = "Over the body limit or the row limit.", body = crate::openapi::IngestRefusal),
        (status = 415, description = "A content type other than the two above.", body = crate::openapi::IngestRefusal),
        (status = 422, description = "A row the schema refuses (with its `line`).", body = crate::openapi::IngestRefusal),
        (status = 429, description = "The engine's input queue is full; retry after `Retry-After` seconds.",
            body = crate::openapi::IngestRefusal, headers(("Retry-After" = u64, description = "Seconds to wait."))),
        (status = 503, description = "No live ingest in this server, or the engine has stopped.",
            body = crate::openapi::IngestRefusal,
            headers(("Retry-After" = u64, description = "Seconds to wait (a stopped engine only)."))),
    ),
)]
pub(crate) async fn ingest(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let r = take(&st, &headers, body);
    let result = match &r {
        Ok(_) => "accepted",
        Err(e) => e.result,
    };
    metrics::counter!("pitwall_ingest_batches_total", "result" => result).increment(1);
    if let Some(i) = &st.ingest {
        metrics::gauge!("pitwall_ingest_queue_depth").set(i.handle.depth() as f64);
    }
    match r {
        Ok(rows) => {
            metrics::counter!("pitwall_ingest_rows_total").increment(rows as u64);
            (
                StatusCode::ACCEPTED,
                Json(serde_json::json!({ "accepted": rows })),
            )
                .into_response()
        }
        Err(e) => e.into_response(),
    }
}

fn take(
    st: &AppState,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<usize, Refusal> {
    let Some(ingest) = &st.ingest else {
        return Err(Refusal::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "this server has no live ingest (start with `pitwall run --ingest`)",
        ));
    };
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let flat = match mime.as_str() {
        NDJSON => false,
        FLATBUFFERS => true,
        _ => {
            return Err(Refusal::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_type",
                format!("Content-Type {ct:?} is not accepted: send {NDJSON} or {FLATBUFFERS}"),
            ));
        }
    };
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Refusal::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!("the batch is over {} bytes", ingest.body_limit),
            )
        } else {
            Refusal::new(e.status(), "malformed", e.body_text())
        }
    })?;
    let chunk = if flat {
        parse_flatbuffers(&ingest.schema, &body)?
    } else {
        parse_ndjson(&ingest.schema, &body)?
    };
    if chunk.is_empty() {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "empty",
            "the batch holds no rows",
        ));
    }
    let rows = chunk.len();
    match ingest.handle.try_push(chunk) {
        Ok(()) => Ok(rows),
        Err(PushError::Invalid(e)) => {
            let line = e.location.line;
            let r = Refusal::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", e.reason);
            Err(if line > 0 { r.at(line) } else { r })
        }
        Err(e @ PushError::Full { .. }) => {
            let mut r = Refusal::new(StatusCode::TOO_MANY_REQUESTS, "full", e.to_string());
            r.retry_after = true;
            Err(r)
        }
        Err(e @ PushError::Closed) => {
            let mut r = Refusal::new(StatusCode::SERVICE_UNAVAILABLE, "closed", e.to_string());
            r.retry_after = true;
            Err(r)
        }
    }
}

/// Builds a chunk row by row; a refused row leaves nothing behind (the whole
/// chunk is dropped by the caller).
struct Rows<'s> {
    schema: &'s Schema,
    chunk: RowChunk,
}

impl<'s> Rows<'s> {
    fn new(schema: &'s Schema) -> Self {
        let n = schema.channels.len();
        Self {
            schema,
            chunk: RowChunk::with_capacity(n, 0, &vec![true; n]),
        }
    }

    /// The key as the engine holds it (`"07"` is car `7` when keys are integers).
    fn key(&self, line: u64, car: &str) -> Result<String, Refusal> {
        match self.schema.key.ty {
            KeyType::String => Ok(car.to_string()),
            KeyType::Int => car
                .trim()
                .parse::<i64>()
                .map(|k| k.to_string())
                .map_err(|_| {
                    Refusal::invalid(
                        line,
                        format!(
                            "{}: {car:?} is not an integer, as the schema's key type says",
                            self.schema.key.name
                        ),
                    )
                }),
        }
    }

    /// One row: `values[c]` is NaN for a missing value.
    fn push(&mut self, line: u64, ts: i64, car: &str, values: &[f64]) -> Result<(), Refusal> {
        if self.chunk.len() >= MAX_ROWS {
            return Err(Refusal::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!("a batch holds at most {MAX_ROWS} rows"),
            ));
        }
        for (c, &v) in values.iter().enumerate() {
            if v.is_nan() {
                if !self.schema.channels[c].optional {
                    return Err(Refusal::invalid(
                        line,
                        format!("{}: missing value", self.schema.channels[c].name),
                    ));
                }
            } else {
                self.schema
                    .check_value(c, v)
                    .map_err(|e| Refusal::invalid(line, e))?;
            }
        }
        let key = self.key(line, car)?;
        let k = self.chunk.intern_key(&key);
        self.chunk.ts.push(ts);
        self.chunk.keys.push(k);
        self.chunk.lines.push(line);
        for (col, &v) in self.chunk.columns.iter_mut().zip(values) {
            col.push(v);
        }
        Ok(())
    }
}

/// One JSON value as a channel's number (`null`: missing).
fn json_value(schema: &Schema, c: usize, v: &Value) -> Result<f64, String> {
    let spec = &schema.channels[c];
    match v {
        Value::Null => Ok(f64::NAN),
        Value::Number(n) => n
            .as_f64()
            .ok_or_else(|| format!("{}: {n} is not a number", spec.name)),
        Value::Bool(b) if spec.ty == ChannelType::Bool => Ok(if *b { 1.0 } else { 0.0 }),
        other => Err(format!(
            "{}: expected a number{}, got {other}",
            spec.name,
            if spec.ty == ChannelType::Bool {
                " or true/false"
            } else {
                ""
            }
        )),
    }
}

/// An NDJSON batch: blank lines are skipped, line numbers count every line.
pub(crate) fn parse_ndjson(schema: &Schema, body: &[u8]) -> Result<RowChunk, Refusal> {
    let mut rows = Rows::new(schema);
    let mut values = vec![f64::NAN; schema.channels.len()];
    for (i, text) in body.split(|&b| b == b'\n').enumerate() {
        let line = i as u64 + 1;
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        if text.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let map: Map<String, Value> = serde_json::from_slice(text)
            .map_err(|e| Refusal::malformed(line, format!("line {line}: {e}")))?;
        let ts = match map.get(&schema.time.name) {
            Some(Value::Number(n)) if n.as_i64().is_some() => n.as_i64().unwrap_or_default(),
            Some(v) => {
                return Err(Refusal::invalid(
                    line,
                    format!("{}: expected an integer, got {v}", schema.time.name),
                ));
            }
            None => {
                return Err(Refusal::invalid(
                    line,
                    format!("{}: the event time is missing", schema.time.name),
                ));
            }
        };
        let car = match map.get(&schema.key.name) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) if n.as_i64().is_some() => n.to_string(),
            Some(v) => {
                return Err(Refusal::invalid(
                    line,
                    format!(
                        "{}: expected a string or an integer, got {v}",
                        schema.key.name
                    ),
                ));
            }
            None => {
                return Err(Refusal::invalid(
                    line,
                    format!("{}: the key is missing", schema.key.name),
                ));
            }
        };
        values.fill(f64::NAN);
        for (name, v) in &map {
            if name == &schema.time.name || name == &schema.key.name {
                continue;
            }
            let c = schema
                .channel_index(name)
                .ok_or_else(|| Refusal::invalid(line, format!("unknown channel {name:?}")))?;
            values[c] = json_value(schema, c, v).map_err(|e| Refusal::invalid(line, e))?;
        }
        rows.push(line, ts, &car, &values)?;
    }
    Ok(rows.chunk)
}

/// A FlatBuffers batch, verified before it is read; "line" numbers are rows, 1-based.
pub(crate) fn parse_flatbuffers(schema: &Schema, body: &[u8]) -> Result<RowChunk, Refusal> {
    use ingest_generated::pitwall::ingest::{batch_buffer_has_identifier, root_as_batch};
    if body.len() < 8 || !batch_buffer_has_identifier(body) {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "malformed",
            "not a pitwall ingest batch (file identifier PWIB missing)",
        ));
    }
    let batch = root_as_batch(body).map_err(|e| {
        Refusal::new(
            StatusCode::BAD_REQUEST,
            "malformed",
            format!("invalid FlatBuffers batch: {e}"),
        )
    })?;
    // Which schema channel each value feeds.
    let order: Vec<usize> = match batch.channels() {
        Some(names) => names
            .iter()
            .map(|n| {
                schema.channel_index(n).ok_or_else(|| {
                    Refusal::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "invalid",
                        format!("unknown channel {n:?}"),
                    )
                })
            })
            .collect::<Result<_, _>>()?,
        None => (0..schema.channels.len()).collect(),
    };
    let mut rows = Rows::new(schema);
    let mut values = vec![f64::NAN; schema.channels.len()];
    for (i, row) in batch.rows().into_iter().flatten().enumerate() {
        let line = i as u64 + 1;
        values.fill(f64::NAN);
        let given = row.values();
        let n = given.map_or(0, |v| v.len());
        if n != order.len() {
            return Err(Refusal::invalid(
                line,
                format!("row has {n} values for {} channels", order.len()),
            ));
        }
        for (v, &c) in given.into_iter().flatten().zip(&order) {
            values[c] = v;
        }
        rows.push(line, row.ts(), row.car(), &values)?;
    }
    Ok(rows.chunk)
}

#[cfg(test)]
mod tests;
