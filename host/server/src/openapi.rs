//! `GET /openapi.json`: the OpenAPI 3.1 document of every route, generated
//! from the code.
//!
//! Each handler carries a `#[utoipa::path]` annotation (method, path,
//! parameters, request body, its own responses, the role it needs as
//! `security`); `ApiDoc` collects them, and the response bodies the server
//! owns derive [`utoipa::ToSchema`]. Bodies whose types live in other crates
//! (the store's pages, plugin-management JSON) are documented as objects with
//! a description rather than copied here, where they would drift.
//!
//! The key check in [`crate::auth`] answers before any handler, with the same
//! statuses on every route of a role group, so its responses are not repeated
//! on each handler: `AuthResponses` adds them to each operation from
//! [`ROUTES`], the one list of `(method, path, role)` that the tests hold
//! against the document *and* against the live router (a route missing from
//! either, or guarded by another role than documented, fails them).

use std::sync::OnceLock;

use axum::http::header;
use axum::response::IntoResponse;
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{ContentBuilder, HeaderBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi, PartialSchema, ToSchema};

use crate::auth::Role;

/// Every route the server serves: method, path (axum's `{param}` syntax,
/// which is also OpenAPI's) and the role its group in
/// [`router`](crate::router()) requires.
pub const ROUTES: &[(&str, &str, Role)] = &[
    ("GET", "/", Role::Guest),
    ("GET", "/health", Role::Guest),
    ("GET", "/live-battles", Role::Guest),
    ("GET", "/metrics", Role::Guest),
    ("GET", "/openapi.json", Role::Guest),
    ("GET", "/feed", Role::User),
    ("GET", "/ws", Role::User),
    ("GET", "/stories", Role::User),
    ("GET", "/predict", Role::User),
    ("GET", "/burn-bar", Role::User),
    ("GET", "/telemetry/live", Role::User),
    ("GET", "/races", Role::User),
    ("GET", "/history/{race_id}", Role::User),
    ("GET", "/analytics/driver/{number}", Role::User),
    ("GET", "/export/{race_id}/{file}", Role::User),
    ("GET", "/plugins", Role::Admin),
    ("POST", "/plugins", Role::Admin),
    ("POST", "/plugins/{name}/params", Role::Admin),
    ("POST", "/plugins/{name}/shadow", Role::Admin),
    ("POST", "/plugins/{name}/promote", Role::Admin),
    ("POST", "/plugins/{name}/rollback", Role::Admin),
    ("POST", "/ingest", Role::Admin),
];

/// Every refusal's body: `{"error": "<reason>"}` (from [`crate::ApiError`],
/// the key check and plugin management alike).
#[derive(ToSchema)]
pub struct ErrorBody {
    /// Why the request was refused, for a person to read.
    pub error: String,
}

/// `POST /ingest`'s `202` body (built in [`crate::ingest`]).
#[derive(ToSchema)]
pub struct IngestAccepted {
    /// Rows the engine took.
    pub accepted: u64,
}

/// A refused ingest batch (built in [`crate::ingest`]).
#[derive(ToSchema)]
pub struct IngestRefusal {
    /// Why the batch was refused.
    pub error: String,
    /// The NDJSON line (or FlatBuffers row), 1-based, to blame; absent when
    /// no single line is.
    #[schema(required = false)]
    pub line: Option<u64>,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Pitwall",
        version = env!("CARGO_PKG_VERSION"),
        description = "Live motorsport telemetry: ingest, insight feeds (SSE, WebSocket), the live race, \
                       history and CSV exports, plugin management.\n\n\
                       A key (from `pitwall keys create`) travels as `Authorization: Bearer <key>`, \
                       `X-Api-Key: <key>` or the `api_key` query parameter. Roles: **guest** (no key \
                       needed), **user**, **admin**, each including the one below. With auth off every \
                       request is an admin.",
    ),
    paths(
        crate::dashboard::index,
        crate::router::health,
        crate::router::live_battles,
        crate::router::metrics_text,
        serve_document,
        crate::sse::feed,
        crate::ws::feed,
        crate::router::stories,
        crate::router::predict,
        crate::router::burn_bar,
        crate::router::telemetry_live,
        crate::history::races,
        crate::history::history,
        crate::history::driver,
        crate::history::export,
        crate::plugins::list,
        crate::plugins::deploy,
        crate::plugins::params,
        crate::plugins::shadow,
        crate::plugins::promote,
        crate::plugins::rollback,
        crate::ingest::ingest,
    ),
    components(schemas(ErrorBody)),
    tags(
        (name = "server", description = "Health, metrics, the dashboard and this document."),
        (name = "live", description = "The live race as of the latest frame."),
        (name = "feeds", description = "Insights as they are published, with resume."),
        (name = "history", description = "The store: archived races, history, analytics, CSV exports."),
        (name = "plugins", description = "Plugin and model management, applied at window boundaries."),
        (name = "ingest", description = "Live telemetry into the engine."),
    ),
    modifiers(&SecuritySchemes, &AuthResponses),
)]
struct ApiDoc;

/// The three ways a key travels ([`crate::auth`]).
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let c = doc.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        c.add_security_scheme(
            "api_key_header",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-Api-Key"))),
        );
        c.add_security_scheme(
            "api_key_query",
            SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::with_description(
                "api_key",
                "For `EventSource` and `WebSocket`, which cannot set headers; removed from the \
                 query before the route sees it.",
            ))),
        );
    }
}

/// The key check's answers and the role's security requirement, added to
/// every operation of its role group from [`ROUTES`] (one place says which
/// role a route needs).
struct AuthResponses;

/// `(status, reason, roles it applies to)`: what [`crate::auth`] answers
/// before the handler runs.
fn auth_refusals(role: Role) -> Vec<(&'static str, &'static str)> {
    let mut r = vec![
        (
            "400",
            "More than one API key in the request (the key check).",
        ),
        (
            "401",
            if role == Role::Guest {
                "An unknown or revoked API key (the key check: no key at all is a guest)."
            } else {
                "No API key, or an unknown or revoked one (the key check)."
            },
        ),
    ];
    if role > Role::Guest {
        r.push((
            "403",
            "The key's role is below the one this route needs (the key check).",
        ));
    }
    r.push((
        "429",
        "Over the key's (or, without a key, the client address's) rate limit (the key check).",
    ));
    r.push(("503", "The key store could not be read (the key check)."));
    r
}

impl Modify for AuthResponses {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        for &(method, path, role) in ROUTES {
            let Some(item) = doc.paths.paths.get_mut(path) else {
                continue;
            };
            let op = match method {
                "GET" => item.get.as_mut(),
                "POST" => item.post.as_mut(),
                _ => None,
            };
            let Some(op) = op else { continue };
            // The role as the security requirement: any of the three ways a
            // key travels; a guest route also works with none (`{}`).
            let scopes = [role.as_str()];
            let mut security: Vec<SecurityRequirement> = Vec::new();
            if role == Role::Guest {
                security.push(SecurityRequirement::default());
            }
            for scheme in ["bearer", "api_key_header", "api_key_query"] {
                security.push(SecurityRequirement::new(scheme, scopes));
            }
            op.security = Some(security);
            for (status, reason) in auth_refusals(role) {
                match op.responses.responses.get_mut(status) {
                    Some(RefOr::T(existing)) => {
                        existing.description = format!("{} Or: {reason}", existing.description);
                    }
                    Some(RefOr::Ref(_)) => {}
                    None => {
                        let mut b = ResponseBuilder::new().description(reason).content(
                            "application/json",
                            ContentBuilder::new()
                                .schema(Some(Ref::from_schema_name("ErrorBody")))
                                .build(),
                        );
                        b = match status {
                            "429" => b.header(
                                "Retry-After",
                                HeaderBuilder::new()
                                    .schema(Some(u64::schema()))
                                    .description(Some("Seconds until the bucket has a request."))
                                    .build(),
                            ),
                            "401" => b.header(
                                "WWW-Authenticate",
                                HeaderBuilder::new()
                                    .schema(Some(String::schema()))
                                    .description(Some("`Bearer realm=\"pitwall\"`"))
                                    .build(),
                            ),
                            _ => b,
                        };
                        op.responses
                            .responses
                            .insert(status.to_owned(), RefOr::T(b.build()));
                    }
                }
            }
        }
    }
}

/// The document, built from the annotations.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The document as served: built and serialized once per process.
fn document_json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        document()
            .to_json()
            .expect("an OpenAPI document has string keys only")
    })
}

#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "server",
    summary = "This document",
    description = "The OpenAPI 3.1 document of every route, generated from the code.\n\n**Role:** guest.",
    responses((status = 200, description = "The document.", body = Object, content_type = "application/json")),
)]
pub(crate) async fn serve_document() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            // The document changes with the binary: a client should check
            // again rather than keep one from an older server.
            (header::CACHE_CONTROL, "no-cache"),
        ],
        document_json(),
    )
}

#[cfg(test)]
mod tests;
