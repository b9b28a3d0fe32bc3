use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::Value;
use tower::ServiceExt;

use super::*;
use crate::{AppState, Auth, FeedHub, Health, HubConfig, router};

fn doc_json() -> Value {
    serde_json::from_str(document_json()).expect("the served document is JSON")
}

/// `(method, path)` of every operation in the document.
fn documented() -> BTreeSet<(String, String)> {
    let doc = doc_json();
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths is an object") {
        for method in item.as_object().expect("a path item is an object").keys() {
            ops.insert((method.to_ascii_uppercase(), path.clone()));
        }
    }
    ops
}

fn listed() -> BTreeSet<(String, String)> {
    ROUTES
        .iter()
        .map(|(m, p, _)| (m.to_string(), p.to_string()))
        .collect()
}

/// `path` with each `{param}` replaced by a value its handler accepts, so
/// the answer comes from the handler and not from a parameter check.
fn concrete(path: &str) -> String {
    path.replace("{race_id}", "race-1")
        .replace("{number}", "44")
        .replace("{name}", "overtake")
        .replace("{file}", "predictions.csv")
}

async fn status(app: &axum::Router, method: &Method, path: &str, key: Option<&str>) -> StatusCode {
    let mut req = Request::builder().method(method).uri(concrete(path));
    if let Some(k) = key {
        req = req.header("authorization", format!("Bearer {k}"));
    }
    app.clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .expect("the router is infallible")
        .status()
}

/// A server with nothing behind its routes (no store, plugins, ingest or
/// recorder): every route still answers from its handler (200, 4xx, 503),
/// which is what tells it apart from axum's routing 404/405.
fn bare_state() -> AppState {
    AppState::new(
        FeedHub::new(HubConfig::default()),
        || Health::ok(Vec::new()),
    )
}

#[test]
fn the_document_lists_exactly_the_routes() {
    assert_eq!(documented(), listed());
    let distinct: BTreeSet<_> = ROUTES.iter().map(|(m, p, _)| (m, p)).collect();
    assert_eq!(distinct.len(), ROUTES.len(), "ROUTES holds a duplicate");
}

/// The `.route("…")` paths written in the router's sources: a route added
/// there but not to [`ROUTES`] (nor the document) fails here.
#[test]
fn every_path_in_the_router_sources_is_listed() {
    let mut in_source = BTreeSet::new();
    for src in [
        include_str!("../router.rs"),
        include_str!("../history.rs"),
        include_str!("../plugins.rs"),
    ] {
        for (i, _) in src.match_indices(".route(") {
            let rest = src[i + ".route(".len()..].trim_start();
            let lit = rest
                .strip_prefix('"')
                .and_then(|r| r.split_once('"'))
                .map(|(p, _)| p)
                .expect("a route path is a string literal");
            in_source.insert(lit.to_owned());
        }
    }
    let paths: BTreeSet<String> = ROUTES.iter().map(|(_, p, _)| p.to_string()).collect();
    assert_eq!(in_source, paths);
}

/// Every listed method and path is served, and on a listed path every
/// other method is axum's 405: the router's methods are exactly the list's.
#[tokio::test]
async fn the_router_serves_exactly_the_listed_routes() {
    let app = router(bare_state());
    let listed = listed();
    let paths: BTreeSet<&str> = ROUTES.iter().map(|(_, p, _)| *p).collect();
    for path in paths {
        for method in [
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ] {
            let s = status(&app, &method, path, None).await;
            if listed.contains(&(method.to_string(), path.to_owned())) {
                assert!(
                    s != StatusCode::NOT_FOUND && s != StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {path}: {s}, as if not routed"
                );
            } else {
                assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            }
        }
    }
    // The check can tell: a path that is not routed is a 404.
    assert_eq!(
        status(&app, &Method::GET, "/no-such-route", None).await,
        StatusCode::NOT_FOUND
    );
}

/// With keys on, each route refuses exactly the callers below its listed
/// role, and the document says the same role.
#[tokio::test]
async fn each_route_needs_the_role_it_is_documented_with() {
    let dir = tempfile::tempdir().unwrap();
    let store = pitwall_store::Store::open(&dir.path().join("pitwall.db")).unwrap();
    let guest = store.create_key("kiosk", Role::Guest, None).unwrap().secret;
    let user = store
        .create_key("producer", Role::User, None)
        .unwrap()
        .secret;
    let admin = store.create_key("ops", Role::Admin, None).unwrap().secret;
    let app = router(bare_state().with_auth(Auth::keys(store, 10_000)));
    let doc = doc_json();
    for &(method, path, role) in ROUTES {
        let m: Method = method.parse().unwrap();
        let anonymous = status(&app, &m, path, None).await;
        assert_eq!(
            anonymous == StatusCode::UNAUTHORIZED,
            role > Role::Guest,
            "{method} {path} without a key: {anonymous}"
        );
        for (key, has) in [
            (&guest, Role::Guest),
            (&user, Role::User),
            (&admin, Role::Admin),
        ] {
            let s = status(&app, &m, path, Some(key)).await;
            assert_eq!(
                s == StatusCode::FORBIDDEN,
                has < role,
                "{method} {path} with a {has} key: {s}"
            );
            assert_ne!(s, StatusCode::UNAUTHORIZED, "{method} {path}: {has} key");
        }

        let op = &doc["paths"][path][method.to_ascii_lowercase()];
        let description = op["description"].as_str().unwrap_or_default();
        assert!(
            description.contains(&format!("**Role:** {role}.")),
            "{method} {path}: {description}"
        );
        let security = op["security"].as_array().expect("every route has security");
        let schemes: BTreeSet<&str> = security
            .iter()
            .flat_map(|req| req.as_object().unwrap().keys().map(String::as_str))
            .collect();
        assert_eq!(
            schemes,
            BTreeSet::from(["bearer", "api_key_header", "api_key_query"]),
            "{method} {path}"
        );
        for req in security {
            for roles in req.as_object().unwrap().values() {
                assert_eq!(
                    roles,
                    &serde_json::json!([role.to_string()]),
                    "{method} {path}"
                );
            }
        }
        // Optional (`{}`) exactly where no key is needed.
        let optional = security.iter().any(|r| r.as_object().unwrap().is_empty());
        assert_eq!(optional, role == Role::Guest, "{method} {path}");
        let statuses: BTreeSet<&str> = op["responses"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        for (code, _) in auth_refusals(role) {
            assert!(statuses.contains(code), "{method} {path} lacks {code}");
        }
    }
}

#[test]
fn the_document_is_openapi_3_1_in_shape() {
    let doc = doc_json();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["info"]["title"], "Pitwall");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["type"], "http");
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["api_key_header"]["type"], "apiKey");
    assert_eq!(schemes["api_key_header"]["in"], "header");
    assert_eq!(schemes["api_key_header"]["name"], "X-Api-Key");
    assert_eq!(schemes["api_key_query"]["in"], "query");
    assert_eq!(schemes["api_key_query"]["name"], "api_key");
    let tags: BTreeSet<&str> = doc["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    let paths = doc["paths"].as_object().unwrap();
    assert!(!paths.is_empty());
    let mut operation_ids = BTreeSet::new();
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            let what = format!("{method} {path}");
            let op_tags = op["tags"].as_array().expect("tags");
            assert!(!op_tags.is_empty(), "{what} has no tag");
            for t in op_tags {
                assert!(
                    tags.contains(t.as_str().unwrap()),
                    "{what}: tag {t} undeclared"
                );
            }
            assert!(
                op["summary"].as_str().is_some_and(|s| !s.is_empty()),
                "{what}"
            );
            let responses = op["responses"].as_object().expect("responses");
            assert!(!responses.is_empty(), "{what} has no response");
            for (code, r) in responses {
                assert!(code.parse::<u16>().is_ok(), "{what}: status {code}");
                assert!(
                    r["description"].as_str().is_some_and(|d| !d.is_empty()),
                    "{what} {code} has no description"
                );
            }
            assert!(
                responses.keys().any(|c| c.starts_with('2') || c == "101"),
                "{what} has no success response"
            );
            // Path parameters are declared, one for each `{param}`.
            let declared: BTreeSet<&str> = op["parameters"]
                .as_array()
                .map(|ps| {
                    ps.iter()
                        .filter(|p| p["in"] == "path")
                        .map(|p| p["name"].as_str().unwrap())
                        .collect()
                })
                .unwrap_or_default();
            let in_path: BTreeSet<&str> = path
                .split('/')
                .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
                .collect();
            assert_eq!(declared, in_path, "{what}");
            if let Some(id) = op["operationId"].as_str() {
                operation_ids.insert(format!("{path} {id}"));
            }
        }
    }
    // Every `$ref` names a schema the document holds.
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    assert!(!refs.is_empty());
    for r in refs {
        let name = r
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("unexpected $ref {r}"));
        assert!(schemas.contains_key(name), "dangling $ref {r}");
    }
}

fn collect_refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("$ref", Value::String(s)) => out.push(s),
                    _ => collect_refs(v, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

/// The request bodies carry the content types their handlers read.
#[test]
fn request_bodies_name_their_content_types() {
    let doc = doc_json();
    let types = |path: &str| -> BTreeSet<String> {
        doc["paths"][path]["post"]["requestBody"]["content"]
            .as_object()
            .unwrap_or_else(|| panic!("{path} has no request body"))
            .keys()
            .cloned()
            .collect()
    };
    assert_eq!(
        types("/ingest"),
        BTreeSet::from([
            crate::ingest::NDJSON.into(),
            crate::ingest::FLATBUFFERS.into()
        ])
    );
    for wasm in ["/plugins", "/plugins/{name}/shadow"] {
        assert!(types(wasm).contains("application/wasm"), "{wasm}");
    }
    assert!(types("/plugins/{name}/params").contains("application/json"));
}

/// What the refusals really send has the documented `ErrorBody` shape.
#[tokio::test]
async fn refusals_have_the_documented_error_body() {
    let doc = doc_json();
    let props: BTreeSet<&str> = doc["components"]["schemas"]["ErrorBody"]["properties"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let responses = [
        crate::ApiError::bad("car", "x").into_response(),
        crate::ApiError::Unavailable("no store").into_response(),
        crate::auth::AuthError::BadKey.into_response(),
        crate::auth::AuthError::WrongRole {
            needed: Role::Admin,
            has: Role::User,
        }
        .into_response(),
    ];
    for r in responses {
        let bytes = axum::body::to_bytes(r.into_body(), 1 << 16).await.unwrap();
        let body: Value = serde_json::from_slice(&bytes).unwrap();
        let keys: BTreeSet<&str> = body
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, props, "{body}");
    }
}
