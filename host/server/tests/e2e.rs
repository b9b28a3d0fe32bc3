//! End to end through the real server on loopback: real HTTP (reqwest) and
//! WebSocket (tokio-tungstenite) clients, the real accept loop.
//!
//! No timing assertions: every wait polls a condition with a generous limit.

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
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket};
use tokio_tungstenite::tungstenite::Message;

const LIMIT: Duration = Duration::from_secs(120);

fn prometheus() -> PrometheusHandle {
    static H: OnceLock<PrometheusHandle> = OnceLock::new();
    H.get_or_init(|| install_prometheus().expect("first recorder in this test binary"))
        .clone()
}

async fn start(config: HubConfig) -> (FeedHub, SocketAddr) {
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

async fn get_json(url: String) -> serde_json::Value {
    let resp = reqwest::get(url).await.unwrap();
    assert_eq!(resp.status(), 200);
    serde_json::from_str(&resp.text().await.unwrap()).unwrap()
}

async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + LIMIT;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "gave up waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn event(i: usize, payload: usize) -> NewEvent {
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
type Seen = Arc<Mutex<Vec<(Option<u64>, String, serde_json::Value)>>>;

fn event_ids(seen: &Seen) -> Vec<u64> {
    seen.lock()
        .unwrap()
        .iter()
        .filter_map(|(id, ..)| *id)
        .collect()
}
fn last_id(seen: &Seen) -> u64 {
    event_ids(seen).last().copied().unwrap_or(0)
}

/// An SSE client: reads the stream into `seen` until it ends or is aborted.
fn sse_client(url: String, last_event_id: Option<u64>) -> (Seen, tokio::task::JoinHandle<()>) {
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
async fn ws_client(url: String, resume: Option<u64>) -> (Seen, tokio::task::JoinHandle<()>) {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_and_ws_get_the_same_events_and_a_reconnecting_client_misses_nothing() {
    let (hub, addr) = start(HubConfig::default()).await;
    let (sse, _t1) = sse_client(format!("http://{addr}/feed"), None);
    let (ws, _t2) = ws_client(format!("ws://{addr}/ws"), None).await;
    let (flaky, flaky_task) = sse_client(format!("http://{addr}/feed"), None);
    wait_until("3 subscribers", || hub.stats().subscribers == 3).await;

    for i in 0..100 {
        hub.publish(event(i, 10));
    }
    wait_until("SSE and WS have 100 events", || {
        last_id(&sse) == 100 && last_id(&ws) == 100
    })
    .await;
    assert_eq!(event_ids(&sse), (1..=100).collect::<Vec<_>>());
    assert_eq!(event_ids(&ws), event_ids(&sse));
    // Same payloads: the SSE data is the same JSON text as the WS message.
    let sse_data: Vec<_> = sse.lock().unwrap().iter().map(|s| s.2.clone()).collect();
    let ws_data: Vec<_> = ws.lock().unwrap().iter().map(|s| s.2.clone()).collect();
    assert_eq!(sse_data, ws_data);
    assert_eq!(sse_data[41]["id"], 42);
    assert_eq!(sse.lock().unwrap()[0].1, "prediction"); // the SSE event name is the kind

    // The flaky client drops its connection part way, then reconnects with
    // the last id it saw while more is published.
    wait_until("flaky saw 30", || last_id(&flaky) >= 30).await;
    flaky_task.abort();
    let _ = flaky_task.await;
    let before: Vec<u64> = event_ids(&flaky);
    for i in 100..150 {
        hub.publish(event(i, 10));
    }
    let resume_from = *before.last().unwrap();
    let (again, _t3) = sse_client(format!("http://{addr}/feed"), Some(resume_from));
    for i in 150..160 {
        hub.publish(event(i, 10));
    }
    wait_until("reconnected client caught up", || last_id(&again) == 160).await;
    let mut all = before.clone();
    all.extend(event_ids(&again));
    assert_eq!(
        all,
        (1..=160).collect::<Vec<_>>(),
        "missed or duplicated events"
    );

    // WS resume by a first message, and by query parameter, with a filter.
    let (ws_resumed, _t4) = ws_client(format!("ws://{addr}/ws"), Some(155)).await;
    wait_until("WS resumed", || last_id(&ws_resumed) == 160).await;
    assert_eq!(event_ids(&ws_resumed), (156..=160).collect::<Vec<_>>());
    let (ws_q, _t5) = ws_client(
        format!("ws://{addr}/ws?last_event_id=140&kinds=prediction&cars=5,6"),
        None,
    )
    .await;
    let want: Vec<u64> = (141..=160u64)
        .filter(|id| {
            let i = (*id - 1) as usize;
            i.is_multiple_of(3) && [5, 6].contains(&(i % 20 + 1))
        })
        .collect();
    wait_until("WS filtered replay", || event_ids(&ws_q) == want).await;

    // REST beside the feeds.
    let health: serde_json::Value = get_json(format!("http://{addr}/health")).await;
    assert_eq!(health["status"], "ok");
    assert_eq!(health["plugins"][0]["name"], "gap-watch");
    assert_eq!(health["feed"]["last_id"], 160);

    let page: serde_json::Value = get_json(format!("http://{addr}/stories?limit=3")).await;
    let ids: Vec<u64> = page["stories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, vec![159, 158, 156]); // 160 and 157 are predictions
    let next = page["next_before"].as_u64().unwrap();
    let page2: serde_json::Value =
        get_json(format!("http://{addr}/stories?limit=2&before={next}")).await;
    assert_eq!(page2["stories"][0]["id"], 155);

    let metrics = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("pitwall_feed_events_total"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_client_is_cut_off_while_the_others_get_everything() {
    let (hub, addr) = start(HubConfig {
        replay_capacity: 10_000,
        queue_capacity: 16,
        max_lag: 64,
    })
    .await;
    let (sse, _t1) = sse_client(format!("http://{addr}/feed"), None);
    let (ws, _t2) = ws_client(format!("ws://{addr}/ws"), None).await;
    // The stalled client asks for the feed and never reads a byte.
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stalled = socket.connect(addr).await.unwrap();
    stalled
        .write_all(b"GET /feed HTTP/1.1\r\nHost: pitwall\r\n\r\n")
        .await
        .unwrap();
    wait_until("3 subscribers", || hub.stats().subscribers == 3).await;

    // Publish in batches smaller than a queue, each read by the live clients
    // before the next, until the stalled client is cut off (bounded).
    let mut published = 0u64;
    let mut batches_after_cut = 0;
    while batches_after_cut < 5 {
        assert!(published < 5_000, "the stalled client was never cut off");
        for _ in 0..8 {
            published = hub.publish(event(published as usize, 16 * 1024));
        }
        wait_until("live clients keep up", || {
            last_id(&sse) == published && last_id(&ws) == published
        })
        .await;
        if hub.stats().cut == 1 {
            batches_after_cut += 1;
        }
    }
    let all: Vec<u64> = (1..=published).collect();
    assert_eq!(event_ids(&sse), all);
    assert_eq!(event_ids(&ws), all);
    assert!(
        sse.lock().unwrap().iter().all(|s| s.0.is_some()),
        "no notices for a live client"
    );
    assert_eq!(hub.stats().subscribers, 2);

    // The server closed the stalled connection: reading it now ends
    // (after what the kernel had buffered) instead of waiting forever.
    let drained = tokio::time::timeout(LIMIT, async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match stalled.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(drained.is_ok(), "stalled connection was not closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_400_with_a_reason() {
    let (hub, addr) = start(HubConfig::default()).await;
    for (path, needle) in [
        ("/feed?kinds=storyy", "unknown kind `storyy`"),
        ("/feed?cars=abc", "not a racing number"),
        ("/feed?min_importance=7", "outside 0..=1"),
        ("/feed?last_event_id=x", "not an event id"),
        ("/feed?colour=red", "unknown parameter"),
        ("/stories?limit=0", "limit"),
    ] {
        let resp = reqwest::get(format!("http://{addr}{path}")).await.unwrap();
        assert_eq!(resp.status(), 400, "{path}");
        let body: serde_json::Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
        let err = body["error"].as_str().unwrap();
        assert!(err.contains(needle), "{path}: {err}");
    }
    let resp = reqwest::Client::new()
        .get(format!("http://{addr}/feed"))
        .header("Last-Event-ID", "abc")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);

    match tokio_tungstenite::connect_async(format!("ws://{addr}/ws?kinds=nope")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status(), 400);
            let body = String::from_utf8(resp.body().clone().unwrap_or_default()).unwrap();
            assert!(body.contains("unknown kind `nope`"), "{body}");
        }
        other => panic!("expected a 400, got {other:?}"),
    }
    // None of it subscribed anyone.
    assert_eq!(hub.stats().subscribers, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_sse_subscribers_each_receive_everything_in_order() {
    let (hub, addr) = start(HubConfig::default()).await;
    let clients: Vec<_> = (0..100)
        .map(|_| sse_client(format!("http://{addr}/feed?kinds=story,prediction"), None))
        .collect();
    wait_until("100 subscribers", || hub.stats().subscribers == 100).await;
    for i in 0..300 {
        hub.publish(event(i, 512));
    }
    wait_until("all caught up", || {
        clients.iter().all(|(seen, _)| last_id(seen) == 300)
    })
    .await;
    let all: Vec<u64> = (1..=300).collect();
    for (seen, _) in &clients {
        assert_eq!(event_ids(seen), all);
    }
    assert_eq!(hub.stats().lagged, 0);
}
