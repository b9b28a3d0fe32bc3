//! End to end through the real server on loopback: real HTTP (reqwest) and
//! WebSocket (tokio-tungstenite) clients, the real accept loop.
//!
//! No timing assertions: every wait polls a condition with a generous limit.

mod support;

use pitwall_server::HubConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;

use support::*;

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
