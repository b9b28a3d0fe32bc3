//! The producer dashboard in a real headless browser (Debian's chromium,
//! driven through chromedriver with WebDriver): `pitwall run --listen`
//! replays the bundled race at 5× speed; the page at `/` loads, its story
//! list fills from the live SSE feed, and uploading a model-parameter file
//! through the plugin panel changes the overtake model version it shows.
//!
//! Needs `chromium` and `chromedriver` on the PATH (`apt-get install -y
//! chromium chromium-driver`; `scripts/test.sh` installs them). Without them
//! the test fails and says so, unless `PITWALL_SKIP_BROWSER_TESTS=1` is set,
//! which skips it with a message.
//!
//! No timed assertions: every wait polls with a generous overall limit.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder};
use serde_json::{Value, json};

/// Overall limit of any one wait.
const WAIT: Duration = Duration::from_secs(300);

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

/// The browser and its driver, or why the test cannot run.
fn browser() -> Option<(PathBuf, PathBuf)> {
    let chromium = on_path("chromium").or_else(|| on_path("chromium-browser"));
    let driver = on_path("chromedriver");
    match (chromium, driver) {
        (Some(c), Some(d)) => Some((c, d)),
        (c, d) => {
            let missing = [("chromium", c.is_none()), ("chromedriver", d.is_none())]
                .iter()
                .filter(|(_, m)| *m)
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(" and ");
            let msg = format!(
                "the dashboard browser test needs {missing} on the PATH: install them with \
                 `apt-get install -y chromium chromium-driver` (scripts/test.sh does), or set \
                 PITWALL_SKIP_BROWSER_TESTS=1 to skip this test"
            );
            if std::env::var_os("PITWALL_SKIP_BROWSER_TESTS").is_some_and(|v| v == "1") {
                eprintln!("skipped: {msg}");
                None
            } else {
                panic!("{msg}");
            }
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn poll<T>(what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            start.elapsed() < WAIT,
            "gave up after {WAIT:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn js(c: &Client, script: &str) -> Value {
    c.execute(script, Vec::new())
        .await
        .unwrap_or_else(|e| panic!("script `{script}`: {e}"))
}

/// The overtake model parameters with a new `version`, so their content hash
/// (the model version the panel shows) differs from whatever is live.
fn alternative_params(dir: &Path) -> PathBuf {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../plugins/overtake/model/overtake.params.json");
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&shipped).unwrap()).unwrap();
    v["version"] = json!("dashboard-browser-test");
    let path = dir.join("overtake-alt.params.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_loads_shows_live_stories_and_swaps_the_model_from_the_panel() {
    let Some((chromium, chromedriver)) = browser() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();

    // The race, served.
    let served = common::serve(&[
        "run",
        "--speed",
        "5",
        "--predict-runs",
        "0",
        "--plugin-deadline",
        "2s",
        // No history store: this test is about the live side.
        "--no-store",
    ]);
    let addr = served.addr.clone();

    // The driver, and a headless browser through it.
    let port = free_port();
    let _driver = Killed(
        Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("runs chromedriver"),
    );
    let profile = tmp.path().join("profile");
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    let client = poll("chromedriver to start a session", async || {
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps.clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .ok()
    })
    .await;

    let page = format!("http://{addr}/");
    client.goto(&page).await.expect("opens the dashboard");
    assert_eq!(
        js(&client, "return document.title").await,
        "Pitwall — producer dashboard"
    );

    // Live stories from the replay reach the story list through the SSE feed.
    let stories = poll("a story in the story list", async || {
        let n = js(
            &client,
            "return document.querySelectorAll('#stories li').length",
        )
        .await;
        (n.as_u64().unwrap_or(0) > 0).then_some(n)
    })
    .await;
    let first = js(
        &client,
        "return document.querySelector('#stories li .headline').textContent",
    )
    .await;
    eprintln!("{stories} stories on the page, newest: {first}");
    assert!(
        !first.as_str().unwrap_or("").trim().is_empty(),
        "a story without headline"
    );

    // The plugin panel lists the overtake plugin with its model version.
    const MODEL: &str = "const r = document.querySelector('tr[data-plugin=\"overtake\"] .model-version code'); \
                         return r ? r.textContent : null";
    let before = poll("the overtake plugin in the panel", async || {
        js(&client, MODEL).await.as_str().map(str::to_owned)
    })
    .await;

    // Upload a parameter file through the panel's form and swap.
    let file = alternative_params(tmp.path());
    let input = client
        .find(fantoccini::Locator::Css("#params-file"))
        .await
        .unwrap();
    input.send_keys(&file.display().to_string()).await.unwrap();
    poll("the file's text in the panel", async || {
        let v = js(
            &client,
            "return document.getElementById('params-text').value",
        )
        .await;
        v.as_str()
            .is_some_and(|t| t.contains("dashboard-browser-test"))
            .then_some(())
    })
    .await;
    js(
        &client,
        "document.getElementById('params-plugin').value = 'overtake'; return null",
    )
    .await;
    client
        .find(fantoccini::Locator::Css("#params-submit"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let after = poll("the new model version in the panel", async || {
        let v = js(&client, MODEL).await;
        v.as_str().filter(|s| *s != before).map(str::to_owned)
    })
    .await;
    let status = js(
        &client,
        "return document.getElementById('panel-status').textContent",
    )
    .await;
    eprintln!("model version {before} -> {after}; panel: {status}");
    assert!(
        status
            .as_str()
            .unwrap_or("")
            .starts_with("applied at window"),
        "{status}"
    );

    // The server agrees with the page.
    let (code, plugins) = common::get(&addr, "/plugins");
    assert_eq!(code, 200, "{plugins}");
    let overtake = plugins["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "overtake")
        .expect("overtake listed");
    assert_eq!(overtake["model_version"], after.as_str(), "{overtake}");

    client.close().await.unwrap();
    served.stop();
}
