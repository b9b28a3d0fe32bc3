//! API keys, roles and rate limits, and the store's routes, through the real
//! server on loopback: every refusal has the right status and reason, and a
//! refused request changes nothing.

mod support;

use std::net::SocketAddr;

use pitwall_server::{AppState, Auth, FeedHub, Health, HubConfig, router, serve};
use pitwall_store::{ArchiveItem, InsightRow, LapRow, RaceInfo, Role, Store};
use tokio::net::TcpListener;

struct Keys {
    guest: String,
    user: String,
    admin: String,
    slow: String,
    revoked: String,
}

async fn start(store: &Store, auth: Auth) -> (FeedHub, SocketAddr) {
    let hub = FeedHub::new(HubConfig::default());
    let state = AppState::new(hub.clone(), || Health::ok(Vec::new()))
        .with_auth(auth)
        .with_store(store.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve(listener, router(state), std::future::pending()));
    (hub, addr)
}

fn store_with_keys(dir: &std::path::Path) -> (Store, Keys) {
    let store = Store::open(&dir.join("pitwall.db")).unwrap();
    let keys = Keys {
        guest: store.create_key("kiosk", Role::Guest, None).unwrap().secret,
        user: store
            .create_key("producer", Role::User, None)
            .unwrap()
            .secret,
        admin: store.create_key("ops", Role::Admin, None).unwrap().secret,
        slow: store
            .create_key("script", Role::User, Some(3))
            .unwrap()
            .secret,
        revoked: {
            let k = store.create_key("gone", Role::Admin, None).unwrap();
            assert!(store.revoke_key(k.id).unwrap());
            k.secret
        },
    };
    (store, keys)
}

/// Status, headers and JSON body of a request with an optional bearer key.
async fn call(
    method: reqwest::Method,
    url: String,
    key: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, String) {
    let client = reqwest::Client::new();
    let mut req = client.request(method, url);
    if let Some(k) = key {
        req = req.header("authorization", format!("Bearer {k}"));
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    // Feeds never end: read the headers only.
    let is_stream = headers
        .get("content-type")
        .is_some_and(|v| v.to_str().unwrap_or("").starts_with("text/event-stream"));
    let body = if is_stream {
        String::new()
    } else {
        resp.text().await.unwrap()
    };
    (status, headers, body)
}

fn error_of(body: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(body).expect("a JSON error body");
    v["error"].as_str().expect("an error reason").to_owned()
}

#[tokio::test]
async fn each_role_reaches_its_routes_and_no_further() {
    use reqwest::Method;
    let dir = tempfile::tempdir().unwrap();
    let (store, k) = store_with_keys(dir.path());
    let (hub, addr) = start(&store, Auth::keys(store.clone(), 1000)).await;
    let url = |p: &str| format!("http://{addr}{p}");
    let before = hub.stats();

    // Guests (no key, or a guest key): health, live battles, the page.
    for key in [None, Some(k.guest.as_str())] {
        for path in ["/health", "/live-battles", "/"] {
            let (s, _, _) = call(Method::GET, url(path), key).await;
            assert_eq!(s, 200, "{path} as {key:?}");
        }
    }
    // Without a key a user route is 401 with a reason and a challenge.
    let (s, h, body) = call(Method::GET, url("/stories"), None).await;
    assert_eq!(s, 401);
    assert!(error_of(&body).contains("needs a user key"), "{body}");
    assert!(h.contains_key("www-authenticate"));
    // A guest key on a user route: 403, naming both roles.
    let (s, _, body) = call(Method::GET, url("/stories"), Some(&k.guest)).await;
    assert_eq!(s, 403);
    assert!(error_of(&body).contains("needs the user role; the key has guest"));
    // Users: feeds, REST, history; not plugin management or ingest.
    for path in [
        "/stories",
        "/predict",
        "/burn-bar",
        "/telemetry/live",
        "/races",
    ] {
        let (s, _, body) = call(Method::GET, url(path), Some(&k.user)).await;
        assert_eq!(s, 200, "{path}: {body}");
    }
    let (s, h, _) = call(Method::GET, url("/feed?kinds=story"), Some(&k.user)).await;
    assert_eq!(s, 200);
    assert!(
        h["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    for (m, path) in [
        (Method::GET, "/plugins"),
        (Method::POST, "/plugins/overtake/promote"),
        (Method::POST, "/ingest"),
    ] {
        let (s, _, body) = call(m.clone(), url(path), Some(&k.user)).await;
        assert_eq!(s, 403, "{m} {path}: {body}");
        let (s, _, _) = call(m.clone(), url(path), None).await;
        assert_eq!(s, 401, "{m} {path} without a key");
    }
    // Admins pass the guard; this server has no plugins or ingest configured,
    // so the routes themselves answer 503.
    let (s, _, body) = call(Method::GET, url("/plugins"), Some(&k.admin)).await;
    assert_eq!(s, 503, "{body}");
    // Unknown and revoked keys are 401 everywhere, even on guest routes.
    for bad in ["pw_not-a-key", k.revoked.as_str()] {
        let (s, _, body) = call(Method::GET, url("/health"), Some(bad)).await;
        assert_eq!(s, 401);
        assert_eq!(error_of(&body), "unknown or revoked API key");
    }
    // An unknown path is still a plain 404, whatever the key.
    let (s, _, _) = call(Method::GET, url("/nope"), None).await;
    assert_eq!(s, 404);
    // Nothing above published or subscribed anything lasting.
    let after = hub.stats();
    assert_eq!(after.last_id, before.last_id);
}

#[tokio::test]
async fn the_key_may_come_as_a_query_parameter_and_is_removed_before_the_route() {
    let dir = tempfile::tempdir().unwrap();
    let (store, k) = store_with_keys(dir.path());
    let (_, addr) = start(&store, Auth::keys(store.clone(), 1000)).await;
    // `/stories` refuses unknown parameters: a 200 shows `api_key` was taken out.
    let (s, _, body) = call(
        reqwest::Method::GET,
        format!("http://{addr}/stories?limit=5&api_key={}", k.user),
        None,
    )
    .await;
    assert_eq!(s, 200, "{body}");
    let (s, _, _) = call(
        reqwest::Method::GET,
        format!("http://{addr}/stories?api_key={}", k.user),
        Some(&k.admin),
    )
    .await;
    assert_eq!(s, 400, "two different keys are ambiguous");
    // X-Api-Key works too.
    let resp = reqwest::Client::new()
        .get(format!("http://{addr}/predict"))
        .header("x-api-key", &k.user)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn a_key_over_its_rate_gets_429_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let (store, k) = store_with_keys(dir.path());
    let (_, addr) = start(&store, Auth::keys(store.clone(), 1000)).await;
    let url = format!("http://{addr}/stories");
    // 3 per minute: the bucket holds 3.
    for _ in 0..3 {
        let (s, _, _) = call(reqwest::Method::GET, url.clone(), Some(&k.slow)).await;
        assert_eq!(s, 200);
    }
    let (s, h, body) = call(reqwest::Method::GET, url.clone(), Some(&k.slow)).await;
    assert_eq!(s, 429, "{body}");
    let retry: u64 = h["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=20).contains(&retry), "retry after {retry} s");
    assert!(error_of(&body).contains("rate limit"));
    // Another key is not affected.
    let (s, _, _) = call(reqwest::Method::GET, url, Some(&k.user)).await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn with_auth_off_everything_is_open() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = store_with_keys(dir.path());
    let (_, addr) = start(&store, Auth::off()).await;
    let (s, _, _) = call(reqwest::Method::GET, format!("http://{addr}/stories"), None).await;
    assert_eq!(s, 200);
    let health = support::get_json(format!("http://{addr}/health")).await;
    assert_eq!(health["auth"], "off");
    assert_eq!(health["store"], true);
}

/// A small race in the store: 30 stories and predictions, 2 cars × 3 laps.
fn archive_race(store: &Store) {
    store
        .begin_race(&RaceInfo {
            race_id: "test-race".into(),
            name: "Test Grand Prix".into(),
            year: Some(2024),
            circuit: None,
            total_laps: Some(3),
            started_ms: None,
        })
        .unwrap();
    let archiver = store.archiver("test-race").unwrap();
    for i in 1..=30u64 {
        let story = i % 3 != 0;
        let cars = vec![(i % 2 + 1).to_string(), (2 - i % 2).to_string()];
        let json = serde_json::json!({
            "id": i,
            "kind": if story { "story" } else { "prediction" },
            "cars": cars,
            "importance": 0.5,
            "data": {"body": {"headline": format!("story {i}, \"quoted\""), "kind": "overtake"}},
        });
        archiver
            .send(ArchiveItem::Insight(InsightRow {
                event_id: i,
                kind: if story { "story" } else { "prediction" }.into(),
                window_start_ms: 1000 * i as i64,
                cars,
                importance: 0.5,
                subkind: Some(if story { "overtake" } else { "p_overtake" }.into()),
                headline: story.then(|| format!("story {i}, \"quoted\"")),
                value: (!story).then_some(0.25),
                plugin: "stories@1.0.0".into(),
                model_version: "none".into(),
                content_hash: "ab".into(),
                json: json.to_string(),
            }))
            .unwrap();
    }
    for car in ["1", "2"] {
        for lap in 1..=3u16 {
            archiver
                .send(ArchiveItem::Lap(LapRow {
                    car: car.into(),
                    lap,
                    completed_ms: 90_000 * i64::from(lap),
                    lap_time_s: Some(90.0 + f64::from(lap)),
                    position: Some(car.parse().unwrap()),
                    metrics: vec![("fuel_kg_lap".into(), 1.5)],
                }))
                .unwrap();
        }
    }
    archiver.finish().unwrap();
}

#[tokio::test]
async fn history_pages_and_scrubs_and_exports_csv() {
    let dir = tempfile::tempdir().unwrap();
    let (store, k) = store_with_keys(dir.path());
    archive_race(&store);
    let (_, addr) = start(&store, Auth::keys(store.clone(), 1000)).await;
    let get = |path: String| {
        let key = k.user.clone();
        async move {
            call(
                reqwest::Method::GET,
                format!("http://{addr}{path}"),
                Some(&key),
            )
            .await
        }
    };

    // Page through everything, 7 at a time: every id once, in order.
    let mut ids = Vec::new();
    let mut after = String::new();
    loop {
        let (s, _, body) = get(format!("/history/test-race?limit=7{after}")).await;
        assert_eq!(s, 200, "{body}");
        let page: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(page["race"]["race_id"], "test-race");
        ids.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["id"].as_u64().unwrap()),
        );
        match page["next_after"].as_u64() {
            Some(n) => after = format!("&after={n}"),
            None => break,
        }
    }
    assert_eq!(ids, (1..=30).collect::<Vec<_>>());
    // Scrub to 10 s into the race, stories only.
    let (_, _, body) = get("/history/test-race?at_ms=10000&kinds=story&limit=1000".into()).await;
    let page: serde_json::Value = serde_json::from_str(&body).unwrap();
    let got: Vec<u64> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_u64().unwrap())
        .collect();
    assert_eq!(got, [1, 2, 4, 5, 7, 8, 10]);
    // Refusals: unknown race 404, bad parameters 400.
    let (s, _, body) = get("/history/no-such-race".into()).await;
    assert_eq!(s, 404, "{body}");
    for bad in ["limit=0", "kinds=metric", "car=abc", "page=2"] {
        let (s, _, body) = get(format!("/history/test-race?{bad}")).await;
        assert_eq!(s, 400, "{bad}: {body}");
    }
    let (s, _, _) = get("/history/bad%20id".into()).await;
    assert_eq!(s, 400);

    // CSV exports: a header and one row per item, quoting intact.
    let (s, h, body) = get("/export/test-race/stories.csv".into()).await;
    assert_eq!(s, 200);
    assert!(h["content-type"].to_str().unwrap().starts_with("text/csv"));
    let mut rows = csv::Reader::from_reader(body.as_bytes());
    let headers = rows.headers().unwrap().clone();
    let headline = headers
        .iter()
        .position(|h| h == "headline")
        .expect("a headline column");
    let records: Vec<_> = rows.records().map(Result::unwrap).collect();
    assert_eq!(records.len(), 20);
    assert_eq!(&records[0][headline], "story 1, \"quoted\"");
    let (s, _, body) = get("/export/test-race/laps.csv".into()).await;
    assert_eq!(s, 200);
    assert_eq!(
        csv::Reader::from_reader(body.as_bytes()).records().count(),
        6
    );
    let (s, _, _) = get("/export/test-race/predictions.csv".into()).await;
    assert_eq!(s, 200);
    let (s, _, _) = get("/export/test-race/frames.csv".into()).await;
    assert_eq!(s, 404);
    // Guests cannot export.
    let (s, _, _) = call(
        reqwest::Method::GET,
        format!("http://{addr}/export/test-race/stories.csv"),
        Some(&k.guest),
    )
    .await;
    assert_eq!(s, 403);

    // Driver analytics and the race list.
    let (s, _, body) = get("/analytics/driver/1?race=test-race".into()).await;
    assert_eq!(s, 200, "{body}");
    let (s, _, _) = get("/analytics/driver/77".into()).await;
    assert_eq!(s, 404);
    let (_, _, body) = get("/races".into()).await;
    let races: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(races["races"][0]["race_id"], "test-race");
    assert_eq!(races["races"][0]["insights"], 30);
}
