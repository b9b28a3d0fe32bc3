//! Shared by the end-to-end tests: a real server on 127.0.0.1:0 and real
//! SSE (reqwest) and WebSocket (tokio-tungstenite) clients.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use metrics_exporter_prometheus::PrometheusHandle;
use pitwall_server::feed::{KIND_PREDICTION, KIND_STORY};
use pitwall_server::{
    AppState, FeedHub, Health, HubConfig, NewEvent, PluginVersion, install_prometheus, router,
    serve,
};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

pub const LIMIT: Duration = Duration::from_secs(120);

pub fn prometheus() -> PrometheusHandle {
    static H: OnceLock<PrometheusHandle> = OnceLock::new();
    H.get_or_init(|| install_prometheus().expect("first recorder in this test binary"))
        .clone()
}

pub async fn start(config: HubConfig) -> (FeedHub, SocketAddr) {
    let hub = FeedHub::new(config);
    let state = AppState::new(hub.clone(), || {
        Health::ok(vec![PluginVersion {
            name: "gap-watch".into(),
            version: "1.0.0".into(),
            model_version: "none".into(),
        }])
    })
    .with_prometheus(prometheus());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve(listener, router(state), std::future::pending()));
    (hub, addr)
}

pub async fn get_json(url: String) -> serde_json::Value {
    let resp = reqwest::get(url).await.unwrap();
    assert_eq!(resp.status(), 200);
    serde_json::from_str(&resp.text().await.unwrap()).unwrap()
}

pub async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + LIMIT;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "gave up waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

pub fn event(i: usize, payload: usize) -> NewEvent {
    NewEvent {
        kind: if i.is_multiple_of(3) {
            KIND_PREDICTION
        } else {
            KIND_STORY
        },
        cars: vec![(i % 20 + 1).to_string()],
        importance: (i % 10) as f64 / 10.0,
        data: serde_json::json!({ "n": i, "pad": "x".repeat(payload) }),
    }
}

/// What a client saw: `(id, name, data)`; notices have no id.
pub type Seen = Arc<Mutex<Vec<(Option<u64>, String, serde_json::Value)>>>;

pub fn event_ids(seen: &Seen) -> Vec<u64> {
    seen.lock()
        .unwrap()
        .iter()
        .filter_map(|(id, ..)| *id)
        .collect()
}
pub fn last_id(seen: &Seen) -> u64 {
    event_ids(seen).last().copied().unwrap_or(0)
}

/// An SSE client: reads the stream into `seen` until it ends or is aborted.
pub fn sse_client(url: String, last_event_id: Option<u64>) -> (Seen, tokio::task::JoinHandle<()>) {
    let seen: Seen = Arc::default();
    let out = seen.clone();
    let task = tokio::spawn(async move {
        let mut req = reqwest::Client::new().get(url);
        if let Some(id) = last_event_id {
            req = req.header("Last-Event-ID", id.to_string());
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 200);
        let mut body = resp.bytes_stream();
        let mut buf = String::new();
        while let Some(Ok(chunk)) = body.next().await {
            buf.push_str(std::str::from_utf8(&chunk).unwrap());
            while let Some(end) = buf.find("\n\n") {
                let frame: String = buf.drain(..end + 2).collect();
                let (mut id, mut name, mut data) = (None, String::from("message"), String::new());
                for line in frame.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        id = Some(v.trim().parse().unwrap());
                    } else if let Some(v) = line.strip_prefix("event:") {
                        name = v.trim().to_string();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.strip_prefix(' ').unwrap_or(v));
                    }
                }
                if data.is_empty() {
                    continue; // keep-alive comment
                }
                out.lock()
                    .unwrap()
                    .push((id, name, serde_json::from_str(&data).unwrap()));
            }
        }
    });
    (seen, task)
}

/// A WebSocket client; `resume` is sent as the first message.
pub async fn ws_client(url: String, resume: Option<u64>) -> (Seen, tokio::task::JoinHandle<()>) {
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    if let Some(k) = resume {
        let msg = serde_json::json!({ "last_event_id": k }).to_string();
        ws.send(Message::Text(msg.into())).await.unwrap();
    }
    let seen: Seen = Arc::default();
    let out = seen.clone();
    let task = tokio::spawn(async move {
        while let Some(Ok(msg)) = ws.next().await {
            if let Message::Text(t) = msg {
                let v: serde_json::Value = serde_json::from_str(&t).unwrap();
                let id = v["id"].as_u64();
                let name = v
                    .get("kind")
                    .or(v.get("type"))
                    .and_then(|k| k.as_str())
                    .unwrap_or_default()
                    .to_string();
                out.lock().unwrap().push((id, name, v));
            }
        }
    });
    (seen, task)
}
