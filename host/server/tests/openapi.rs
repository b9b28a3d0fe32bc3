//! `GET /openapi.json` through the real server on loopback, with keys
//! required: it is a guest route, served without a key, while a user route
//! on the same server refuses the same anonymous client.

use pitwall_server::{AppState, Auth, FeedHub, Health, HubConfig, router, serve};
use pitwall_store::{Role, Store};
use tokio::net::TcpListener;

#[tokio::test]
async fn the_document_is_served_to_a_client_without_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("pitwall.db")).unwrap();
    store.create_key("ops", Role::Admin, None).unwrap();
    let state = AppState::new(
        FeedHub::new(HubConfig::default()),
        || Health::ok(Vec::new()),
    )
    .with_auth(Auth::keys(store.clone(), 600))
    .with_store(store);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve(listener, router(state), std::future::pending()));

    let resp = reqwest::get(format!("http://{addr}/openapi.json"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(header("content-type"), "application/json");
    assert_eq!(header("cache-control"), "no-cache");
    let doc: serde_json::Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(
        doc,
        serde_json::to_value(pitwall_server::openapi::document()).unwrap()
    );
    for path in [
        "/openapi.json",
        "/health",
        "/feed",
        "/ingest",
        "/history/{race_id}",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} is documented");
    }

    // The same anonymous client is refused a user route: keys are on.
    let predict = reqwest::get(format!("http://{addr}/predict"))
        .await
        .unwrap();
    assert_eq!(predict.status(), 401);
}
