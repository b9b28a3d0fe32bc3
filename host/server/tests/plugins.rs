//! Plugin management through the real server on loopback, over a real
//! plugin set whose "frame loop" is a thread applying pending changes every
//! 10 ms: list, model parameters, swap, shadow, promote, rollback, and every
//! refusal with its status and reason; 503 without a plugin set; 409 once
//! the frame loop is gone.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use pitwall_runtime::{Boundary, PluginControl, PluginSet, Runtime, RuntimeConfig};
use pitwall_server::{AppState, FeedHub, Health, HubConfig, router, serve};
use serde_json::Value;
use tokio::net::TcpListener;

fn wasm(key: &str) -> Vec<u8> {
    std::fs::read(pitwall_plugins_bundle::wasm_path(key)).unwrap()
}

/// A plugin set with `counter` loaded, and a thread standing in for the
/// frame loop until `stop` is set (then the set is dropped).
fn plugin_set(stop: Arc<AtomicBool>) -> (PluginControl, std::thread::JoinHandle<()>) {
    let mut set = PluginSet::new(Runtime::new(RuntimeConfig::default()).unwrap());
    let control = set.control();
    let t = control.deploy(&wasm("counter-v1"), Boundary::Next).unwrap();
    set.apply_pending(0);
    t.wait(Duration::from_secs(60)).unwrap();
    let handle = std::thread::spawn(move || {
        let mut window = 1000;
        while !stop.load(Ordering::SeqCst) {
            set.apply_pending(window);
            window += 1000;
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    (control, handle)
}

async fn start(control: Option<PluginControl>) -> String {
    let hub = FeedHub::new(HubConfig::default());
    let mut state = AppState::new(hub, || Health::ok(Vec::new()));
    if let Some(c) = control {
        state = state.with_plugins(c);
    }
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve(listener, router(state), std::future::pending()));
    format!("http://{addr}")
}

async fn call(method: reqwest::Method, url: String, body: Vec<u8>, json: bool) -> (u16, Value) {
    let mut req = reqwest::Client::new().request(method, url).body(body);
    if json {
        req = req.header("content-type", "application/json");
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn get(url: String) -> (u16, Value) {
    call(reqwest::Method::GET, url, Vec::new(), false).await
}

async fn post(url: String, body: impl Into<Vec<u8>>) -> (u16, Value) {
    call(reqwest::Method::POST, url, body.into(), false).await
}

fn counter(list: &Value) -> &Value {
    list["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "counter")
        .expect("counter listed")
}

fn error(v: &Value) -> &str {
    v["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no reason: {v}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_management_end_to_end() {
    let stop = Arc::new(AtomicBool::new(false));
    let (control, frame_loop) = plugin_set(stop.clone());
    let base = start(Some(control)).await;

    // The list.
    let (s, list) = get(format!("{base}/plugins")).await;
    assert_eq!(s, 200, "{list}");
    let c = counter(&list);
    assert_eq!(c["state"], "live");
    assert_eq!(c["model_version"], "none");
    assert_eq!(c["content_hash"].as_str().unwrap().len(), 64);
    assert!(c["shadow"].is_null());
    let v1_hash = c["content_hash"].clone();

    // Model parameters.
    let (s, r) = call(
        reqwest::Method::POST,
        format!("{base}/plugins/counter/params"),
        br#"{"step": 2}"#.to_vec(),
        true,
    )
    .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["applied"], true);
    assert_eq!(r["event"]["event"], "params_updated");
    let model = r["event"]["model_version"].clone();
    let (_, list) = get(format!("{base}/plugins")).await;
    assert_eq!(counter(&list)["model_version"], model);
    assert_eq!(counter(&list)["model_generation"], 1);

    // Refusals, none of which changes anything.
    let (s, r) = call(
        reqwest::Method::POST,
        format!("{base}/plugins/counter/params"),
        b"{not json".to_vec(),
        true,
    )
    .await;
    assert_eq!(s, 422, "{r}");
    assert!(error(&r).contains("not valid JSON"), "{r}");
    let (s, r) = post(format!("{base}/plugins/nope/params"), "{}").await;
    assert_eq!(s, 404, "{r}");
    assert!(error(&r).contains("`nope`"), "{r}");
    let (s, r) = post(format!("{base}/plugins/counter/params"), "").await;
    assert_eq!(s, 400, "{r}");
    assert!(error(&r).contains("empty body"), "{r}");
    let (s, r) = post(format!("{base}/plugins"), "not wasm at all").await;
    assert_eq!(s, 422, "{r}");
    assert!(error(&r).contains("WebAssembly"), "{r}");
    let (s, r) = post(format!("{base}/plugins/counter/shadow"), wasm("pace")).await;
    assert_eq!(s, 422, "{r}");
    assert!(error(&r).contains("not `counter`"), "{r}");
    let (s, r) = post(
        format!("{base}/plugins/counter/params"),
        vec![b' '; pitwall_server::plugins::MAX_PARAMS_BYTES + 1],
    )
    .await;
    assert_eq!(s, 413, "{r}");
    assert!(error(&r).contains("too large"), "{r}");
    let (s, r) = post(format!("{base}/plugins/counter/promote"), "").await;
    assert_eq!(s, 409, "{r}");
    assert!(error(&r).contains("no shadow"), "{r}");
    let (s, r) = post(format!("{base}/plugins/counter/rollback"), "").await;
    assert_eq!(s, 409, "{r}");
    assert!(error(&r).contains("no version to roll back to"), "{r}");
    let (s, r) = post(format!("{base}/plugins/nope/rollback"), "").await;
    assert_eq!(s, 404, "{r}");
    let (_, list) = get(format!("{base}/plugins")).await;
    assert_eq!(counter(&list)["model_version"], model);
    assert_eq!(counter(&list)["content_hash"], v1_hash);

    // Swap to v2, roll back to v1.
    let (s, r) = post(format!("{base}/plugins"), wasm("counter-v2")).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["event"]["event"], "swapped", "{r}");
    let (_, list) = get(format!("{base}/plugins")).await;
    assert_ne!(counter(&list)["content_hash"], v1_hash);
    let (s, r) = post(format!("{base}/plugins/counter/rollback"), "").await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["event"]["event"], "rolled_back", "{r}");
    let (_, list) = get(format!("{base}/plugins")).await;
    assert_eq!(counter(&list)["content_hash"], v1_hash);

    // Shadow v2, then promote it.
    let (s, r) = post(format!("{base}/plugins/counter/shadow"), wasm("counter-v2")).await;
    assert_eq!(s, 200, "{r}");
    let (_, list) = get(format!("{base}/plugins")).await;
    let c = counter(&list);
    assert_eq!(c["state"], "shadow", "{c}");
    assert!(c["shadow"]["frames_compared"].is_u64(), "{c}");
    let (s, r) = post(format!("{base}/plugins/counter/promote"), "").await;
    assert_eq!(s, 200, "{r}");
    let (_, list) = get(format!("{base}/plugins")).await;
    assert_eq!(counter(&list)["state"], "live");
    assert_ne!(counter(&list)["content_hash"], v1_hash);

    // The frame loop stops: the race is over.
    stop.store(true, Ordering::SeqCst);
    frame_loop.join().unwrap();
    let (s, r) = post(format!("{base}/plugins/counter/params"), "{}").await;
    assert_eq!(s, 409, "{r}");
    assert!(error(&r).contains("the replay is over"), "{r}");
}

#[tokio::test]
async fn without_a_plugin_set_the_routes_answer_503_and_the_dashboard_is_served() {
    let base = start(None).await;
    let (s, r) = get(format!("{base}/plugins")).await;
    assert_eq!(s, 503, "{r}");
    assert!(error(&r).contains("not available"), "{r}");
    let (s, r) = post(format!("{base}/plugins/counter/promote"), "").await;
    assert_eq!(s, 503, "{r}");
    let r = reqwest::get(format!("{base}/")).await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(r.text().await.unwrap().contains("Pitwall"));
}
