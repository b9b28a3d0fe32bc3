//! `GET /feed`: the Server-Sent Events feed.
//!
//! Resume point: the `Last-Event-ID` header wins over `?last_event_id=`,
//! because a browser's `EventSource` reconnects to the same URL with the
//! header set to what it last saw: the header is the newer of the two.

use std::convert::Infallible;

use axum::Extension;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::Stream;

use crate::error::ApiError;
use crate::feed::{ConnKill, Item};
use crate::query::{parse_event_id, parse_feed_query};
use crate::router::AppState;

#[utoipa::path(
    get,
    path = "/feed",
    tag = "feeds",
    summary = "The insight feed (Server-Sent Events)",
    description = "Stories, predictions, metrics, race state and race predictions as they are published. \
                   Every event has a monotonically increasing `id` and is named by its kind; the notices \
                   `lagged`, `reset` and `cut` have no id. A reconnecting client sends `Last-Event-ID` (or \
                   `last_event_id`) and receives what it missed from the replay buffer.\n\n**Role:** user.",
    params(
        ("kinds" = Option<String>, Query,
            description = "Comma-separated kinds to receive: `story`, `prediction`, `metric`, `race_state`, \
                           `race_prediction` (default: all)."),
        ("cars" = Option<String>, Query,
            description = "Comma-separated racing numbers (0-999): only events about these cars."),
        ("min_importance" = Option<f64>, Query, minimum = 0, maximum = 1,
            description = "Only events at least this important (0-1)."),
        ("last_event_id" = Option<u64>, Query,
            description = "Resume after this event id: what was missed is replayed from the bounded buffer."),
        ("Last-Event-ID" = Option<u64>, Header,
            description = "Resume after this event id; wins over `last_event_id` (a browser's `EventSource` \
                           sends it on reconnect)."),
    ),
    responses(
        (status = 200, description = "The event stream; it does not end while the server runs.",
            body = String, content_type = "text/event-stream"),
        (status = 400, description = "A bad query or resume id: an unknown parameter, an unknown kind, a car that is not a racing number, \
                `min_importance` outside 0-1, an id that is not a number.", body = crate::openapi::ErrorBody),
    ),
)]
pub(crate) async fn feed(
    State(st): State<AppState>,
    headers: HeaderMap,
    kill: Option<Extension<ConnKill>>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let Query(pairs) = query.map_err(|e| ApiError::BadQuery(e.body_text()))?;
    let mut params = parse_feed_query(&pairs)?;
    if let Some(h) = headers.get("last-event-id") {
        let v = h
            .to_str()
            .map_err(|_| ApiError::bad("Last-Event-ID", "not ASCII"))?;
        params.last_event_id = Some(parse_event_id("Last-Event-ID", v)?);
    }
    tracing::debug!(filter = ?params.filter, resume = ?params.last_event_id, "SSE subscriber");
    let sub = st
        .hub
        .subscribe(params.filter, params.last_event_id, kill.map(|k| k.0));
    let stream = futures_util::stream::unfold(sub, |mut sub| async move {
        let item = sub.next().await?;
        Some((Ok(to_sse(&item)), sub))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

fn to_sse(item: &Item) -> SseEvent {
    match item {
        Item::Event(e) => SseEvent::default()
            .id(e.id.to_string())
            .event(e.kind)
            .data(&*e.json),
        Item::Notice(n) => SseEvent::default()
            .event(n.name())
            .data(serde_json::to_string(n).expect("notices serialize")),
    }
}
