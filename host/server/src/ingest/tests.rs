//! `/ingest` through the real router on loopback, one test per answer.

use super::ingest_generated::pitwall::ingest::{
    Batch, BatchArgs, Row, RowArgs, finish_batch_buffer,
};
use super::*;
use crate::{FeedHub, Health, HubConfig, router, serve};
use pitwall_engine::source::Source;
use pitwall_engine::source::push::PushSource;

async fn start(ingest: Option<Ingest>) -> std::net::SocketAddr {
    let mut state = AppState::new(FeedHub::new(HubConfig::default()), || Health::ok(vec![]));
    if let Some(i) = ingest {
        state = state.with_ingest(i);
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve(listener, router(state), std::future::pending()));
    addr
}

async fn post(
    addr: std::net::SocketAddr,
    ct: &str,
    body: impl Into<reqwest::Body>,
) -> (u16, Option<String>, serde_json::Value) {
    let r = reqwest::Client::new()
        .post(format!("http://{addr}/ingest"))
        .header("content-type", ct)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let retry = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    let text = r.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
    (status, retry, body)
}

fn row(ts: i64, car: &str, speed: f64) -> String {
    format!(
        r#"{{"ts_ms": {ts}, "car": "{car}", "speed": {speed}, "rpm": 11000, "throttle": 90, "brake": 0, "gear": 7, "drs": 0}}"#
    )
}

fn batch(rows: &[String]) -> String {
    rows.join("\n") + "\n"
}

async fn with_source(capacity: usize) -> (PushSource, PushHandle, std::net::SocketAddr) {
    let schema = Schema::f1_bench();
    let (src, h) = PushSource::new("http", schema.clone(), capacity);
    let addr = start(Some(
        Ingest::new(h.clone(), schema).with_body_limit(64 * 1024),
    ))
    .await;
    (src, h, addr)
}

#[tokio::test]
async fn a_good_batch_is_accepted_once_the_queue_took_it() {
    let (mut src, h, addr) = with_source(4).await;
    let body = batch(&[
        row(1000, "44", 300.5),
        row(1000, "1", 301.0),
        row(1100, "44", 302.0),
    ]);
    let (status, _, body) = post(addr, "application/x-ndjson; charset=utf-8", body).await;
    assert_eq!(
        (status, body["accepted"].as_u64()),
        (202, Some(3)),
        "{body}"
    );
    assert_eq!(h.depth(), 1);
    let c = src.next_chunk().unwrap().unwrap();
    assert_eq!(c.len(), 3);
    assert_eq!(c.ts, [1000, 1000, 1100]);
    assert_eq!(&*c.key_names[c.keys[1] as usize], "1");
    assert_eq!(c.columns[0], [300.5, 301.0, 302.0]);
}

#[tokio::test]
async fn malformed_json_is_400_with_its_line_and_nothing_is_taken() {
    let (_src, h, addr) = with_source(4).await;
    let body = format!("{}\n\n{{\"ts_ms\": 5, \"car\": \n", row(0, "44", 200.0));
    let (status, _, body) = post(addr, NDJSON, body).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["line"], 3, "{body}");
    assert!(body["error"].as_str().unwrap().contains("line 3"), "{body}");
    assert_eq!(h.depth(), 0);
}

#[tokio::test]
async fn bad_values_are_422_with_the_reason_and_nothing_is_taken() {
    let (_src, h, addr) = with_source(4).await;
    for (bad, needle) in [
        (row(0, "44", 999.0), "maximum"),
        (
            row(0, "44", 200.0).replace("\"gear\": 7", "\"gear\": 7.5"),
            "whole",
        ),
        (
            row(0, "44", 200.0).replace("\"gear\": 7", "\"gear\": \"7\""),
            "expected a number",
        ),
        (
            row(0, "44", 200.0).replace("\"gear\": 7", "\"wings\": 7"),
            "unknown channel",
        ),
        (
            row(0, "44", 200.0).replace("\"gear\": 7, ", ""),
            "gear: missing",
        ),
        (
            row(0, "44", 200.0).replace("\"ts_ms\": 0", "\"ts_ms\": 1.5"),
            "integer",
        ),
        (
            row(0, "44", 200.0).replace("\"car\": \"44\", ", ""),
            "key is missing",
        ),
    ] {
        let body = batch(&[row(0, "1", 250.0), bad]);
        let (status, _, body) = post(addr, NDJSON, body).await;
        assert_eq!(status, 422, "{body}");
        assert_eq!(body["line"], 2, "{body}");
        let e = body["error"].as_str().unwrap();
        assert!(e.contains(needle), "{e} lacks {needle}");
        assert_eq!(h.depth(), 0);
    }
}

#[tokio::test]
async fn empty_wrong_type_and_too_large_are_refused() {
    let (_src, h, addr) = with_source(4).await;
    let (status, _, body) = post(addr, NDJSON, "\n \n").await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("no rows"));
    let (status, _, body) = post(addr, "application/json", row(0, "44", 1.0)).await;
    assert_eq!(status, 415, "{body}");
    let big: Vec<String> = (0..2000).map(|i| row(i, "44", 200.0)).collect();
    let (status, _, body) = post(addr, NDJSON, batch(&big)).await;
    assert_eq!(status, 413, "{body}");
    assert!(body["error"].as_str().unwrap().contains("65536"), "{body}");
    assert_eq!(h.depth(), 0);
}

#[tokio::test]
async fn a_full_queue_is_429_with_retry_after_and_a_stopped_engine_503() {
    let (src, h, addr) = with_source(1).await;
    let body = batch(&[row(0, "44", 200.0)]);
    assert_eq!(post(addr, NDJSON, body.clone()).await.0, 202);
    let (status, retry, body2) = post(addr, NDJSON, body.clone()).await;
    assert_eq!((status, retry.as_deref()), (429, Some("1")), "{body2}");
    assert_eq!(h.depth(), 1, "the refused batch was not queued");
    drop(src);
    let (status, retry, body3) = post(addr, NDJSON, body).await;
    assert_eq!((status, retry.as_deref()), (503, Some("1")), "{body3}");
}

#[tokio::test]
async fn without_ingest_it_is_503_with_the_reason() {
    let addr = start(None).await;
    let (status, _, body) = post(addr, NDJSON, row(0, "44", 1.0)).await;
    assert_eq!(status, 503);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("pitwall run --ingest"),
        "{body}"
    );
}

/// A FlatBuffers batch; `channels` names the values' order when given.
fn flat(channels: Option<&[&str]>, rows: &[(i64, &str, Vec<f64>)]) -> Vec<u8> {
    let mut b = flatbuffers::FlatBufferBuilder::new();
    let rows: Vec<_> = rows
        .iter()
        .map(|(ts, car, values)| {
            let car = b.create_string(car);
            let values = b.create_vector(values);
            Row::create(
                &mut b,
                &RowArgs {
                    ts: *ts,
                    car: Some(car),
                    values: Some(values),
                },
            )
        })
        .collect();
    let rows = b.create_vector(&rows);
    let channels = channels.map(|c| {
        let names: Vec<_> = c.iter().map(|n| b.create_string(n)).collect();
        b.create_vector(&names)
    });
    let root = Batch::create(
        &mut b,
        &BatchArgs {
            channels,
            rows: Some(rows),
        },
    );
    finish_batch_buffer(&mut b, root);
    b.finished_data().to_vec()
}

#[tokio::test]
async fn flatbuffers_batches_are_verified_and_checked_like_ndjson() {
    let (mut src, h, addr) = with_source(4).await;
    let all = vec![300.0, 11000.0, 90.0, 0.0, 7.0, 0.0];
    let body = flat(None, &[(10, "44", all.clone()), (10, "1", all.clone())]);
    let (status, _, b) = post(addr, FLATBUFFERS, body).await;
    assert_eq!((status, b["accepted"].as_u64()), (202, Some(2)), "{b}");
    let c = src.next_chunk().unwrap().unwrap();
    assert_eq!(c.columns[4], [7.0, 7.0]);

    // By name, in another order.
    let names = ["drs", "gear", "brake", "throttle", "rpm", "speed"];
    let rev: Vec<f64> = all.iter().rev().copied().collect();
    let (status, _, b) = post(addr, FLATBUFFERS, flat(Some(&names), &[(20, "44", rev)])).await;
    assert_eq!(status, 202, "{b}");
    assert_eq!(src.next_chunk().unwrap().unwrap().columns[0], [300.0]);

    let mut bad = all.clone();
    bad[0] = -5.0;
    let body = flat(None, &[(30, "44", all.clone()), (30, "1", bad)]);
    let (status, _, b) = post(addr, FLATBUFFERS, body).await;
    assert_eq!((status, b["line"].as_u64()), (422, Some(2)), "{b}");
    let (status, _, b) = post(addr, FLATBUFFERS, flat(Some(&["wings"]), &[])).await;
    assert_eq!(status, 422, "{b}");
    let mut garbage = flat(None, &[(30, "44", all)]);
    garbage.truncate(garbage.len() - 9);
    let (status, _, b) = post(addr, FLATBUFFERS, garbage).await;
    assert_eq!(status, 400, "{b}");
    let (status, _, b) = post(addr, FLATBUFFERS, b"nonsense".to_vec()).await;
    assert_eq!(status, 400, "{b}");
    assert_eq!(h.depth(), 0);
}
