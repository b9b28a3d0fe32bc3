//! The history store, API keys and roles through the real binary: keys made
//! with `pitwall keys`, the bundled race replayed by `pitwall run` into the
//! store, then `/history`, the CSV exports and `/analytics` read back and
//! compared with what the live feed published.

mod common;

use common::*;

/// Every story the feed still buffers (`/stories`, newest first), as ids.
fn feed_story_ids(addr: &str, key: &str) -> Vec<u64> {
    let auth = format!("Bearer {key}");
    let r = http(
        addr,
        "GET",
        "/stories?limit=500",
        &[("Authorization", &auth)],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let mut ids: Vec<u64> = r.json()["stories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_u64().unwrap())
        .collect();
    ids.sort_unstable();
    ids
}

#[test]
fn a_served_race_is_kept_in_the_store_and_read_back_with_keys() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("pitwall.db");
    let admin = create_key(&db, "ops", "admin");
    let user = create_key(&db, "producer", "user");
    assert!(admin.starts_with("pw_") && user.starts_with("pw_"));
    assert_ne!(admin, user);

    let mut served = serve_in(
        dir,
        &[
            "run",
            "--speed",
            "0",
            "--every",
            "3600",
            "--predict-runs",
            "0",
            "--plugin-deadline",
            "2s",
            "--stay",
        ],
    );
    let addr = served.addr.clone();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(600);
    while !served.over.load(std::sync::atomic::Ordering::SeqCst) {
        assert!(std::time::Instant::now() < deadline, "the race did not end");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(!served.exited(), "pitwall ended: {}", served.log());
    let with = |key: &str| format!("Bearer {key}");
    let get_as = |key: &str, path: &str| {
        let auth = with(key);
        http(&addr, "GET", path, &[("Authorization", &auth)], b"")
    };

    // Keys exist, so they are checked: guests see health, not the feeds.
    let (s, health) = get(&addr, "/health");
    assert_eq!(s, 200);
    assert_eq!(health["auth"], "keys", "{health}");
    assert_eq!(health["store"], true);
    let r = http(&addr, "GET", "/stories", &[], b"");
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap()
            .contains("needs a user key")
    );
    assert_eq!(get_as("pw_wrong", "/health").status, 401);
    let r = get_as(&user, "/plugins");
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(get_as(&admin, "/plugins").status, 200);

    // Prometheus metrics are a guest route; the data path's figures are there.
    let r = http(&addr, "GET", "/metrics", &[], b"");
    assert_eq!(r.status, 200);
    for name in [
        "pitwall_window_latency_seconds",
        "pitwall_plugin_call_seconds",
        "pitwall_windows_fired_total",
        "pitwall_feed_events_total",
        "pitwall_feed_subscribers",
        "pitwall_auth_refused_total",
    ] {
        assert!(r.body.contains(name), "no {name} in /metrics:\n{}", r.body);
    }

    // The race in the store.
    let r = get_as(&user, "/races");
    assert_eq!(r.status, 200, "{}", r.body);
    let races = r.json();
    let race = races["races"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["race_id"] == "2024-austria-race")
        .unwrap_or_else(|| panic!("the race is in the store: {races}"))
        .clone();
    assert_eq!(race["name"], "2024 Austrian Grand Prix");
    assert!(race["insights"].as_u64().unwrap() > 1000, "{race}");
    assert!(race["laps"].as_u64().unwrap() > 1000, "{race}");

    // History holds exactly the stories the feed published, same ids.
    let mut history = Vec::new();
    let mut after = String::new();
    loop {
        let r = get_as(
            &user,
            &format!("/history/2024-austria-race?kinds=story&limit=100{after}"),
        );
        assert_eq!(r.status, 200, "{}", r.body);
        let page = r.json();
        for item in page["items"].as_array().unwrap() {
            assert_eq!(item["kind"], "story", "{item}");
            history.push(item["id"].as_u64().unwrap());
        }
        match page["next_after"].as_u64() {
            Some(n) => after = format!("&after={n}"),
            None => break,
        }
    }
    // `/stories` pages at most the newest 500 the feed buffers; they are the
    // newest 500 of history, same ids. History goes back to the start.
    let feed = feed_story_ids(&addr, &user);
    assert_eq!(feed.len(), 500, "the race tells more than 500 stories");
    assert!(history.len() > feed.len(), "{} stories kept", history.len());
    assert_eq!(
        &history[history.len() - feed.len()..],
        &feed[..],
        "history and the feed disagree"
    );
    let r = get_as(
        &user,
        &format!(
            "/history/2024-austria-race?kinds=story&limit=1&after={}",
            history[0] - 1
        ),
    );
    let first = &r.json()["items"][0];
    assert!(
        first["data"]["body"]["headline"]
            .as_str()
            .unwrap()
            .ends_with("on lap 1"),
        "the first stored story is from lap 1: {first}"
    );

    // The stories export has one row per story.
    let r = get_as(&user, "/export/2024-austria-race/stories.csv");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/csv; charset=utf-8"));
    let mut csv = ::csv::Reader::from_reader(r.body.as_bytes());
    assert_eq!(csv.records().count(), history.len());
    // Laps: every classified car's laps, with lap times and the fuel metric.
    let r = get_as(&user, "/export/2024-austria-race/laps.csv");
    assert_eq!(r.status, 200);
    let mut csv = ::csv::Reader::from_reader(r.body.as_bytes());
    let headers = csv.headers().unwrap().clone();
    let col = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("no column {name}: {headers:?}"))
    };
    let (car, lap, time, fuel) = (
        col("car"),
        col("lap"),
        col("lap_time_s"),
        col("fuel_kg_lap"),
    );
    let rows: Vec<_> = csv.records().map(Result::unwrap).collect();
    let mut winner_laps: Vec<u32> = rows
        .iter()
        .filter(|r| &r[car] == "63")
        .map(|r| r[lap].parse().unwrap())
        .collect();
    winner_laps.sort_unstable();
    let n = winner_laps.len();
    winner_laps.dedup();
    assert_eq!(n, winner_laps.len(), "a lap twice: {winner_laps:?}");
    assert!(
        (1..=71).all(|l| winner_laps.contains(&l)),
        "Russell's 71 laps: {winner_laps:?}"
    );
    let timed = rows.iter().filter(|r| !r[time].is_empty()).count();
    assert!(
        timed * 10 >= rows.len() * 9,
        "{timed} of {} laps timed",
        rows.len()
    );
    let fuelled = rows.iter().filter(|r| !r[fuel].is_empty()).count();
    assert!(
        fuelled * 10 >= rows.len() * 9,
        "{fuelled} of {} laps with fuel",
        rows.len()
    );

    // Analytics for the winner.
    let r = get_as(&user, "/analytics/driver/63?race=2024-austria-race");
    assert_eq!(r.status, 200, "{}", r.body);
    let r = get_as(&user, "/analytics/driver/999");
    assert_eq!(r.status, 404, "{}", r.body);

    // A key revoked while the server runs stops working at once.
    let db = served.db();
    let list = pitwall(&["keys", "list", "--json", "--db", db.to_str().unwrap()]);
    assert!(list.status.success());
    let keys: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    let id = keys
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["user"] == "producer")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let out = pitwall(&[
        "keys",
        "revoke",
        &id.to_string(),
        "--db",
        db.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(get_as(&user, "/races").status, 401);
    served.stop();
}

#[test]
fn without_keys_the_server_refuses_a_non_loopback_address() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("pitwall.db");
    let out = pitwall(&[
        "run",
        "--no-plugins",
        "--listen",
        "0.0.0.0:0",
        "--db",
        db.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("without API keys") && err.contains("pitwall keys create"),
        "{err}"
    );
    // `--auth keys` with no key in the store is refused too.
    let out = pitwall(&[
        "run",
        "--no-plugins",
        "--auth",
        "keys",
        "--db",
        db.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("holds no API key"));
}
