//! Issue 6's load check, bounded and loopback only; `#[ignore]`d (minutes of
//! CPU on a 2-core machine), run by hand:
//!
//! ```sh
//! cargo test -p pitwall-server --test load -- --ignored --nocapture
//! ```
//!
//! The real 2024 Austrian GP at full speed through the example plugins into
//! the hub (production [`HubConfig::default`]), 1,000 SSE subscribers to the
//! story feed plus one unfiltered subscriber that never reads. Checks: every
//! reader gets every story in order, the stalled one is cut off. Prints the
//! latency publish → receipt (p50/p99 over 10 sampled readers; client and
//! server share the 2 cores) and the process's memory.

#[path = "../../../tests/support/race_frames.rs"]
mod race_frames;
mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pitwall_plugin_sdk::frame::RaceFrameData;
use pitwall_runtime::{Boundary, PluginSet, Runtime, RuntimeConfig};
use pitwall_server::HubConfig;
use pitwall_server::feed::{KIND_STORY, NewEvent};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use support::*;

const READERS: usize = 1_000;
const SAMPLED: usize = 10;

/// Receipt time of every id, for a sampled reader.
type Samples = Arc<Mutex<Vec<(u64, Instant)>>>;

fn examples() -> PluginSet {
    let cfg = RuntimeConfig {
        deadline: Duration::from_millis(500),
        ..RuntimeConfig::default()
    };
    let mut set = PluginSet::new(Runtime::new(cfg).expect("runtime starts"));
    let control = set.control();
    let tickets: Vec<_> = ["drs-threat", "gap-watch", "pace"]
        .iter()
        .map(|k| {
            let wasm = std::fs::read(pitwall_plugins_bundle::wasm_path(k)).unwrap();
            control.deploy(&wasm, Boundary::Next).expect(k)
        })
        .collect();
    set.apply_pending(0);
    for t in tickets {
        t.wait(Duration::from_secs(120)).expect("plugin loads");
    }
    set
}

fn memory_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// A minimal SSE reader over a raw socket: counts events, remembers the last
/// id, and (when `samples` is given) the receipt time of every id.
async fn reader(mut s: TcpStream, path: String, last: Arc<AtomicU64>, samples: Option<Samples>) {
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: pitwall\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = vec![0u8; 256 * 1024];
    let mut pending = String::new();
    loop {
        let n = match s.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let now = Instant::now();
        pending.push_str(std::str::from_utf8(&buf[..n]).unwrap());
        let mut consumed = 0;
        while let Some(end) = pending[consumed..].find('\n') {
            let line = &pending[consumed..consumed + end];
            if let Some(id) = line.strip_prefix("id: ") {
                let id: u64 = id.trim().parse().unwrap();
                let prev = last.swap(id, Ordering::SeqCst);
                assert!(id > prev, "out of order: {id} after {prev}");
                if let Some(s) = &samples {
                    s.lock().unwrap().push((id, now));
                }
            }
            consumed += end + 1;
        }
        pending.drain(..consumed);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "load test: minutes of CPU; run by hand with --ignored --nocapture"]
async fn a_thousand_subscribers_and_a_stalled_one_during_a_full_speed_replay() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/2024-austria-race");
    let frames = tokio::task::spawn_blocking(move || race_frames::openf1_frames(&dir))
        .await
        .unwrap();
    let rss_before = memory_kib("VmRSS:");
    let (hub, addr) = start(HubConfig::default()).await;

    let mut lasts = Vec::new();
    let mut samples = Vec::new();
    for i in 0..READERS {
        let s = TcpStream::connect(addr).await.unwrap();
        let last = Arc::new(AtomicU64::new(0));
        let sample = (i < SAMPLED).then(|| Arc::new(Mutex::new(Vec::new())));
        tokio::spawn(reader(
            s,
            "/feed?kinds=story".into(),
            last.clone(),
            sample.clone(),
        ));
        lasts.push(last);
        samples.extend(sample);
    }
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stalled = socket.connect(addr).await.unwrap();
    stalled
        .write_all(b"GET /feed HTTP/1.1\r\nHost: pitwall\r\n\r\n")
        .await
        .unwrap();
    wait_until("all subscribed", || hub.stats().subscribers == READERS + 1).await;

    let n_frames = frames.len();
    let publisher = hub.clone();
    let started = Instant::now();
    let (published_at, stories) = tokio::task::spawn_blocking(move || {
        let mut set = examples();
        let mut published_at = Vec::new();
        let mut stories = Vec::new();
        for f in &frames {
            let out = set.on_frame(&f.bytes, f.window_start_ms);
            let data = RaceFrameData::from_flatbuffer(&f.bytes).unwrap();
            publisher.publish_race_state(&data).unwrap();
            for insight in &out.insights {
                let e = NewEvent::from_insight(insight).unwrap();
                let story = e.kind == KIND_STORY;
                let id = publisher.publish(e);
                if story {
                    stories.push(id);
                    published_at.push((id, Instant::now()));
                }
            }
        }
        (published_at, stories)
    })
    .await
    .unwrap();
    let replay = started.elapsed();
    let last_story = *stories.last().unwrap();
    wait_until("every reader got every story", || {
        lasts.iter().all(|l| l.load(Ordering::SeqCst) == last_story)
    })
    .await;
    let delivered = started.elapsed();
    let stats = hub.stats();
    assert_eq!(stats.cut, 1, "the stalled subscriber is cut off: {stats:?}");
    assert_eq!(stats.subscribers, READERS);

    let sent: std::collections::HashMap<u64, Instant> = published_at.into_iter().collect();
    let mut lat: Vec<Duration> = samples
        .iter()
        .flat_map(|s| {
            let got = s.lock().unwrap().clone();
            assert_eq!(got.iter().map(|g| g.0).collect::<Vec<_>>(), stories);
            got.into_iter()
                .map(|(id, at)| at.saturating_duration_since(sent[&id]))
                .collect::<Vec<_>>()
        })
        .collect();
    lat.sort();
    let pct = |p: f64| lat[((lat.len() - 1) as f64 * p) as usize];
    println!(
        "load: {} frames, {} events, {} stories to each of {READERS} readers; replay {:.1?}, \
         all delivered {:.1?}; latency publish->receipt p50 {:.2?} p99 {:.2?} max {:.2?}; \
         lagged {} cut {}; RSS {} MiB before server, {} MiB after, peak {} MiB",
        n_frames,
        stats.last_id,
        stories.len(),
        replay,
        delivered,
        pct(0.5),
        pct(0.99),
        lat.last().unwrap(),
        stats.lagged,
        stats.cut,
        rss_before / 1024,
        memory_kib("VmRSS:") / 1024,
        memory_kib("VmHWM:") / 1024,
    );
}
