//! The live routes through the real server on loopback: answers before the
//! first frame, after one, and the 4xx for bad parameters and unknown cars.

use pitwall_plugin_sdk::frame::{CarFrameData, RaceFrameData};
use pitwall_plugin_sdk::insight::{CarMetric, Insight, Prediction, Provenance};
use pitwall_runtime::PublishedInsight;
use pitwall_server::{AppState, FeedHub, Health, HubConfig, LiveView, router, serve};
use tokio::net::TcpListener;

async fn start() -> (LiveView, String) {
    let live = LiveView::new();
    let state = AppState::new(
        FeedHub::new(HubConfig::default()),
        || Health::ok(Vec::new()),
    )
    .with_live(live.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve(listener, router(state), std::future::pending()));
    (live, format!("http://{addr}"))
}

async fn get(url: String) -> (u16, serde_json::Value) {
    let resp = reqwest::get(url).await.unwrap();
    let status = resp.status().as_u16();
    let body = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}")),
    )
}

fn insight(
    window: i64,
    plugin: &str,
    body: impl Into<pitwall_plugin_sdk::InsightBody>,
) -> PublishedInsight {
    PublishedInsight {
        insight: Insight::new(
            Provenance::from_parts(window, plugin, "none").unwrap(),
            body,
        ),
        content_hash: "abc".into(),
    }
}

const ROUTES: [(&str, &str); 4] = [
    ("/live-battles", "battles"),
    ("/predict", "predictions"),
    ("/burn-bar", "cars"),
    ("/telemetry/live", "cars"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_routes_answer_empty_then_the_race_and_refuse_bad_queries() {
    let (live, base) = start().await;
    for (path, list) in ROUTES {
        let (status, body) = get(format!("{base}{path}")).await;
        assert_eq!(status, 200, "{path}: {body}");
        assert_eq!(body["window_start_ms"], serde_json::Value::Null, "{path}");
        assert_eq!(body[list], serde_json::json!([]), "{path}");
    }

    let frame = RaceFrameData {
        window_start_ms: 5_000,
        window_end_ms: 6_000,
        session: "t".into(),
        cars: [(1u16, 1u8), (4, 2)]
            .map(|(car, position)| CarFrameData {
                car,
                position,
                ..Default::default()
            })
            .to_vec(),
        ..Default::default()
    };
    let w = frame.window_start_ms;
    let m = |name: &str, v: f64, unit: &str| {
        insight(
            w,
            "battles@1.0.0",
            CarMetric::new("4", name, v, unit).unwrap(),
        )
    };
    let insights = vec![
        m("battle_defender", 1.0, ""),
        m("battle_interval_s", 0.7, "s"),
        m("battle_duration_s", 12.0, "s"),
        m("battle_laps", 1.0, "lap"),
        insight(
            w,
            "overtake@1.0.0",
            Prediction::builder("p_overtake", "4", "1")
                .probability(0.4)
                .horizon_laps(3)
                .contribution("base", -1.0)
                .build()
                .unwrap(),
        ),
        insight(
            w,
            "fuel@1.0.0",
            CarMetric::new("1", "fuel_kg_total", 12.5, "kg").unwrap(),
        ),
    ];
    live.update(&frame, &insights, &[]);

    let (status, b) = get(format!("{base}/live-battles")).await;
    assert_eq!(status, 200);
    assert_eq!(b["window_start_ms"], 5_000);
    assert_eq!(b["battles"][0]["attacker"], "4");
    assert_eq!(b["battles"][0]["overtake"]["probability"], 0.4);
    assert_eq!(
        b["battles"][0]["overtake"]["contributions"][0]["name"],
        "base"
    );
    assert_eq!(b["battles"][0]["provenance"]["plugin"], "battles@1.0.0");
    let (_, p) = get(format!("{base}/predict?car=1")).await;
    assert_eq!(p["predictions"][0]["provenance"]["model_version"], "none");
    let (_, f) = get(format!("{base}/burn-bar")).await;
    assert_eq!(
        (f["unit"].clone(), f["cars"][0]["total"].clone()),
        ("kg".into(), 12.5.into())
    );
    let (_, t) = get(format!("{base}/telemetry/live?car=4")).await;
    assert_eq!(t["cars"].as_array().unwrap().len(), 1);
    assert_eq!(t["cars"][0]["position"], 2);

    for (path, _) in ROUTES {
        for (query, status, needle) in [
            ("car=abc", 400, "bad car: `abc` is not a racing number"),
            ("car=1000", 400, "not a racing number"),
            ("car=1&car=4", 400, "given more than once"),
            ("cars=1", 400, "unknown parameter"),
            ("car=44", 404, "car 44 is not in the race"),
        ] {
            let (got, body) = get(format!("{base}{path}?{query}")).await;
            assert_eq!(got, status, "{path}?{query}: {body}");
            let err = body["error"].as_str().unwrap();
            assert!(err.contains(needle), "{path}?{query}: {err}");
        }
    }
}
