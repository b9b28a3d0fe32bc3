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
