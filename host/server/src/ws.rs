//! `GET /ws`: the WebSocket feed. Same events, same ids and the same JSON
//! text as `/feed` (one text message per event; notices carry a `type`).
//!
//! Resume: `?last_event_id=K`, or a client message `{"last_event_id": K}` at
//! any time (typically the first): the subscription is replaced by one
//! resuming from K, skipping what this socket already carried.

use axum::extract::rejection::QueryRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use tracing::Instrument;

use crate::error::ApiError;
use crate::feed::{ConnKill, Filter, Item, Notice};
use crate::query::parse_feed_query;
use crate::router::AppState;

#[utoipa::path(
    get,
    path = "/ws",
    tag = "feeds",
    summary = "The insight feed (WebSocket)",
    description = "The same events, ids and JSON as `/feed`, one text message per event; notices carry a \
                   `type`. Send `{\"last_event_id\": N}` at any time to resume after N.\n\n**Role:** user.",
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
    ),
    responses(
        (status = 101, description = "Switched to the WebSocket protocol; the feed follows."),
        (status = 400, description = "A bad query or resume id: an unknown parameter, an unknown kind, a car that is not a racing number, \
                `min_importance` outside 0-1, an id that is not a number. Or not a WebSocket handshake.", body = crate::openapi::ErrorBody),
        (status = 426, description = "The connection cannot be upgraded (e.g. HTTP/2 without extended CONNECT)."),
    ),
)]
pub(crate) async fn feed(
    State(st): State<AppState>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let Query(pairs) = query.map_err(|e| ApiError::BadQuery(e.body_text()))?;
    let params = parse_feed_query(&pairs)?;
    let span = tracing::info_span!("ws_feed", resume = ?params.last_event_id);
    Ok(upgrade.on_upgrade(move |socket| {
        session(socket, st, params.filter, params.last_event_id).instrument(span)
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientMessage {
    last_event_id: u64,
}

async fn session(socket: WebSocket, st: AppState, filter: Filter, resume: Option<u64>) {
    // The WS task owns its socket, so it can close it itself when the hub
    // cuts the subscriber off, even while a send is stuck.
    let kill = ConnKill::new();
    let mut sub = st.hub.subscribe(filter.clone(), resume, Some(kill.clone()));
    let (mut tx, mut rx) = socket.split();
    // Id of the last event this socket carried (not the subscription's start).
    let mut sent: Option<u64> = None;
    loop {
        let out = tokio::select! {
            item = sub.next() => match item {
                Some(item) => item,
                None => break,
            },
            msg = rx.next() => match msg {
                Some(Ok(Message::Text(text))) => {
                    match serde_json::from_str::<ClientMessage>(&text) {
                        Ok(m) => {
                            // Never resend what this socket already carried.
                            let from = sent.map_or(m.last_event_id, |j| j.max(m.last_event_id));
                            sub = st.hub.subscribe(filter.clone(), Some(from), Some(kill.clone()));
                            continue;
                        }
                        Err(e) => {
                            let err = serde_json::json!({"type": "error", "error": format!("expected {{\"last_event_id\": N}}: {e}")});
                            if send(&mut tx, &kill, err.to_string()).await.is_err() { break; }
                            continue;
                        }
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => continue,
            },
            _ = kill.fired() => break,
        };
        let (text, last) = match &out {
            Item::Event(e) => {
                sent = Some(e.id);
                (e.json.to_string(), false)
            }
            Item::Notice(n) => (
                serde_json::to_string(n).expect("notices serialize"),
                matches!(n, Notice::Cut { .. }),
            ),
        };
        if send(&mut tx, &kill, text).await.is_err() || last {
            break;
        }
    }
    tracing::debug!(?sent, "WS subscriber left");
}

/// Sends one text message unless the kill switch fires first.
async fn send(
    tx: &mut futures_util::stream::SplitSink<WebSocket, Message>,
    kill: &ConnKill,
    text: String,
) -> Result<(), ()> {
    tokio::select! {
        r = tx.send(Message::Text(text.into())) => r.map_err(|_| ()),
        _ = kill.fired() => Err(()),
    }
}
