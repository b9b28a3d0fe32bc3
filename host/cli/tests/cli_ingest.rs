//! Live ingest through the real binary: `pitwall run --ingest` takes NDJSON
//! batches on `POST /ingest`, windows them into race frames and serves the
//! live race state; a malformed batch is refused with 400 and its line.
//!
//! No timed assertions: every wait polls a condition with a generous limit.

mod common;

use std::time::{Duration, Instant};

use serde_json::Value;

/// One request with a content type; the status and the JSON body.
fn http(addr: &str, method: &str, path: &str, ct: &str, body: &str) -> (u16, Value) {
    let r = common::http(addr, method, path, &[("Content-Type", ct)], body.as_bytes());
    (r.status, r.json())
}

const BASE_MS: i64 = 1_000_000;

/// One second of event time for cars 44 and 1, ten rows each.
fn second(s: i64) -> String {
    let mut body = String::new();
    for k in 0..10 {
        let ts = BASE_MS + s * 1000 + k * 100;
        for (car, speed) in [("44", 280.0), ("1", 282.5)] {
            body += &format!(
                "{{\"ts_ms\": {ts}, \"car\": \"{car}\", \"speed\": {}, \"rpm\": 11500, \
                 \"throttle\": 95, \"brake\": 0, \"gear\": 7, \"drs\": 0}}\n",
                speed + k as f64
            );
        }
    }
    body
}

/// Posts until the engine's queue takes the batch (429: retry).
fn post(addr: &str, body: &str) -> Value {
    loop {
        let (status, v) = http(addr, "POST", "/ingest", "application/x-ndjson", body);
        match status {
            202 => return v,
            429 => std::thread::sleep(Duration::from_millis(50)),
            _ => panic!("POST /ingest: {status} {v}"),
        }
    }
}

/// The latest live frame's window start, once there is one.
fn window_start(addr: &str) -> Option<i64> {
    let (status, v) = http(addr, "GET", "/telemetry/live", "text/plain", "");
    assert_eq!(status, 200, "{v}");
    v["window_start_ms"].as_i64()
}

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "gave up waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn run_ingest_windows_posted_batches_into_the_live_race() {
    let mut served = common::serve(&[
        "run",
        "--ingest",
        "--plugin-deadline",
        "2s",
        // No history store: this test is about the live side.
        "--no-store",
    ]);
    let addr = served.addr.clone();

    assert_eq!(window_start(&addr), None, "a frame before any telemetry");
    for s in 0..4 {
        assert_eq!(post(&addr, &second(s))["accepted"], 20);
    }
    // A window closes once event time passes its end by the job's bound (1 s),
    // and its frame goes out when the next window closes: the frames trail
    // the newest row by 2-3 s of event time.
    let mut first = 0;
    wait_for("a first live frame", || {
        window_start(&addr).is_some_and(|w| {
            first = w;
            true
        })
    });
    assert!((BASE_MS..BASE_MS + 4000).contains(&first), "{first}");
    for s in 4..8 {
        post(&addr, &second(s));
    }
    wait_for("the live race to advance", || {
        window_start(&addr).is_some_and(|w| w >= BASE_MS + 3000)
    });
    let (_, tel) = http(&addr, "GET", "/telemetry/live", "text/plain", "");
    let cars: Vec<&str> = tel["cars"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["car"].as_str())
        .collect();
    assert!(cars.contains(&"44") && cars.contains(&"1"), "{tel}");

    // A malformed batch: 400 with its line, and the race goes on.
    let bad = format!("{}{{\"ts_ms\": 1,\n", second(8));
    let (status, v) = http(&addr, "POST", "/ingest", "application/x-ndjson", &bad);
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["line"], 21, "{v}");
    let (status, v) = http(&addr, "POST", "/ingest", "text/csv", "ts_ms,car\n");
    assert_eq!(status, 415, "{v}");
    post(&addr, &second(8));
    post(&addr, &second(9));
    wait_for("the race after a refused batch", || {
        window_start(&addr).is_some_and(|w| w >= BASE_MS + 5000)
    });
    assert!(!served.exited(), "pitwall ended: {}", served.log());
    served.stop();
}
