//! API keys, roles and per-key rate limits in front of every route.
//!
//! Three roles, each including the one below it (issue 6):
//!
//! * **guest** — `/health`, `/live-battles`, the dashboard page, `/metrics`,
//!   `/openapi.json`. Requests without a key are guests.
//! * **user** — the feeds (`/feed`, `/ws`), `/stories`, `/predict`,
//!   `/burn-bar`, `/telemetry/live`, `/races`, `/history`, `/analytics`, the
//!   CSV exports.
//! * **admin** — plugin and model management (`/plugins…`) and `POST /ingest`.
//!
//! A key travels as `Authorization: Bearer <key>`, `X-Api-Key: <key>`, or the
//! `api_key` query parameter — the last because a browser's `EventSource` and
//! `WebSocket` cannot set headers. The parameter is removed from the request
//! before the route sees it, so the routes' strict query parsing (unknown
//! parameter → 400) holds and the secret reaches no handler.
//!
//! Answers: no key where one is needed → 401; a key that is unknown or revoked
//! → 401 (on every route: a wrong key is a mistake worth telling, not a
//! silent downgrade to guest); a key whose role is too low → 403; over the
//! key's rate → 429 with `Retry-After`. A refused request never reaches its
//! route, so it changes nothing.
//!
//! Keys live hashed in the store ([`pitwall_store::Store::verify_key`]); there
//! is no default key — the first admin key comes from `pitwall keys create`.
//! With [`AuthMode::Off`] every request is an admin and nothing is limited:
//! the job picks that only when told to, or when the store holds no key and
//! the server listens on loopback (see the CLI's `--auth`).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
pub use pitwall_store::Role;
use pitwall_store::Store;

use crate::router::AppState;

/// Requests per minute an anonymous caller (per client address) may make
/// when keys are required.
pub const DEFAULT_GUEST_RATE_PER_MINUTE: u32 = 600;

/// Whether keys are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// Every request is an admin; nothing is rate limited.
    Off,
    /// Keys are checked against the store.
    Keys,
}

impl AuthMode {
    pub fn name(self) -> &'static str {
        match self {
            AuthMode::Off => "off",
            AuthMode::Keys => "keys",
        }
    }
}

/// Who a request is, once its key (or the lack of one) has been looked at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub role: Role,
    /// The key's id; `None` for an anonymous guest or with auth off.
    pub key_id: Option<i64>,
    pub user: Option<String>,
}

/// The key checker and the rate limiters, shared by every route.
#[derive(Clone)]
pub struct Auth {
    mode: AuthMode,
    store: Option<Store>,
    guest_rate: u32,
    limiters: Arc<Mutex<Limiters>>,
}

#[derive(Default)]
struct Limiters {
    by_key: HashMap<i64, Arc<DefaultDirectRateLimiter>>,
    by_addr: HashMap<IpAddr, Arc<DefaultDirectRateLimiter>>,
}

/// Bounds the anonymous limiters kept: beyond it the map is cleared (a
/// cleared address just starts a fresh bucket), so a scan from many
/// addresses cannot grow memory without bound.
const MAX_TRACKED_ADDRS: usize = 10_000;

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("mode", &self.mode)
            .field("guest_rate", &self.guest_rate)
            .finish_non_exhaustive()
    }
}

impl Auth {
    /// No checks: every request is an admin.
    pub fn off() -> Self {
        Self {
            mode: AuthMode::Off,
            store: None,
            guest_rate: DEFAULT_GUEST_RATE_PER_MINUTE,
            limiters: Arc::default(),
        }
    }

    /// Keys checked against `store`; anonymous callers are guests limited
    /// to `guest_rate_per_minute` per client address.
    pub fn keys(store: Store, guest_rate_per_minute: u32) -> Self {
        Self {
            mode: AuthMode::Keys,
            store: Some(store),
            guest_rate: guest_rate_per_minute,
            limiters: Arc::default(),
        }
    }

    pub fn mode(&self) -> AuthMode {
        self.mode
    }

    /// Who `secret` belongs to (`None`: no key given).
    fn identify(&self, secret: Option<&str>) -> Result<Caller, AuthError> {
        let Some(store) = self.store.as_ref().filter(|_| self.mode == AuthMode::Keys) else {
            return Ok(Caller {
                role: Role::Admin,
                key_id: None,
                user: None,
            });
        };
        let Some(secret) = secret else {
            return Ok(Caller {
                role: Role::Guest,
                key_id: None,
                user: None,
            });
        };
        match store.verify_key(secret) {
            Ok(Some(k)) => Ok(Caller {
                role: k.role,
                key_id: Some(k.id),
                user: Some(k.user),
            })
            .inspect(|_| self.ensure_key_limiter(k.id, k.rate_per_minute)),
            Ok(None) => Err(AuthError::BadKey),
            Err(e) => {
                tracing::error!(error = %e, "API key lookup failed");
                Err(AuthError::Store)
            }
        }
    }

    fn ensure_key_limiter(&self, id: i64, per_minute: u32) {
        let mut l = self.limiters.lock().unwrap_or_else(|p| p.into_inner());
        l.by_key
            .entry(id)
            .or_insert_with(|| Arc::new(limiter(per_minute)));
    }

    /// Takes one request from the caller's bucket; `Err(seconds)` to wait.
    fn admit(&self, caller: &Caller, addr: Option<IpAddr>) -> Result<(), u64> {
        if self.mode == AuthMode::Off {
            return Ok(());
        }
        let lim = {
            let mut l = self.limiters.lock().unwrap_or_else(|p| p.into_inner());
            match (caller.key_id, addr) {
                (Some(id), _) => l.by_key.get(&id).cloned(),
                (None, Some(ip)) => {
                    if l.by_addr.len() >= MAX_TRACKED_ADDRS && !l.by_addr.contains_key(&ip) {
                        l.by_addr.clear();
                    }
                    Some(
                        l.by_addr
                            .entry(ip)
                            .or_insert_with(|| Arc::new(limiter(self.guest_rate)))
                            .clone(),
                    )
                }
                (None, None) => None,
            }
        };
        match lim.map(|l| l.check()) {
            None | Some(Ok(())) => Ok(()),
            Some(Err(not_until)) => {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                Err(wait.as_secs() + u64::from(wait.subsec_nanos() > 0))
            }
        }
    }
}

/// A token bucket of `per_minute` requests (burst: all of them).
fn limiter(per_minute: u32) -> DefaultDirectRateLimiter {
    let n = NonZeroU32::new(per_minute.max(1)).expect("max(1) is not zero");
    RateLimiter::direct(Quota::per_minute(n))
}

/// Why a request was refused before reaching its route.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("this route needs a {needed} key (send `Authorization: Bearer <key>`)")]
    NoKey { needed: Role },
    #[error("unknown or revoked API key")]
    BadKey,
    #[error("this route needs the {needed} role; the key has {has}")]
    WrongRole { needed: Role, has: Role },
    #[error("rate limit reached for this key; retry in {retry_after_s} s")]
    RateLimited { retry_after_s: u64 },
    #[error("the key store could not be read")]
    Store,
    #[error("more than one API key in the request")]
    Ambiguous,
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        let status = match &self {
            AuthError::NoKey { .. } | AuthError::BadKey => StatusCode::UNAUTHORIZED,
            AuthError::WrongRole { .. } => StatusCode::FORBIDDEN,
            AuthError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            AuthError::Store => StatusCode::SERVICE_UNAVAILABLE,
            AuthError::Ambiguous => StatusCode::BAD_REQUEST,
        };
        let result = match &self {
            AuthError::NoKey { .. } => "no_key",
            AuthError::BadKey => "bad_key",
            AuthError::WrongRole { .. } => "wrong_role",
            AuthError::RateLimited { .. } => "rate_limited",
            AuthError::Store => "store",
            AuthError::Ambiguous => "ambiguous",
        };
        metrics::counter!("pitwall_auth_refused_total", "reason" => result).increment(1);
        let mut resp = (
            status,
            Json(serde_json::json!({ "error": self.to_string() })),
        )
            .into_response();
        match &self {
            AuthError::RateLimited { retry_after_s } => {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_s));
            }
            AuthError::NoKey { .. } | AuthError::BadKey => {
                resp.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"pitwall\""),
                );
            }
            _ => {}
        }
        resp
    }
}

/// The client's address, put in each request's extensions by [`crate::serve()`].
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

/// Takes the key out of the request: from the headers, or from the
/// `api_key` query parameter (which is removed from the URI).
fn take_key(req: &mut Request) -> Result<Option<String>, AuthError> {
    let mut found = Vec::new();
    if let Some(v) = req.headers().get(header::AUTHORIZATION) {
        let v = v.to_str().map_err(|_| AuthError::BadKey)?;
        let key = v
            .strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("bearer "))
            .ok_or(AuthError::BadKey)?;
        found.push(key.trim().to_owned());
    }
    if let Some(v) = req.headers().get("x-api-key") {
        found.push(v.to_str().map_err(|_| AuthError::BadKey)?.trim().to_owned());
    }
    if let Some(query) = req.uri().query()
        && query.split('&').any(|p| p.starts_with("api_key="))
    {
        let mut kept = Vec::new();
        for pair in query.split('&') {
            match pair.strip_prefix("api_key=") {
                Some(v) => found.push(percent_decode(v)),
                None => kept.push(pair),
            }
        }
        let path = req.uri().path().to_owned();
        let pq = if kept.is_empty() {
            path
        } else {
            format!("{path}?{}", kept.join("&"))
        };
        let mut parts = req.uri().clone().into_parts();
        parts.path_and_query = Some(pq.parse().map_err(|_| AuthError::BadKey)?);
        *req.uri_mut() = axum::http::Uri::from_parts(parts).map_err(|_| AuthError::BadKey)?;
    }
    found.dedup();
    match found.len() {
        0 => Ok(None),
        1 => Ok(found.pop()),
        _ => Err(AuthError::Ambiguous),
    }
}

/// `%XX` and `+` decoding for the query parameter (keys are URL-safe, but a
/// client may still encode them).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) => {
                        out.push(v);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn check(st: &AppState, needed: Role, mut req: Request, next: Next) -> Response {
    let addr = req.extensions().get::<PeerAddr>().map(|p| p.0.ip());
    let caller = match take_key(&mut req).and_then(|k| st.auth.identify(k.as_deref())) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    if caller.role < needed {
        return if caller.key_id.is_none() {
            AuthError::NoKey { needed }
        } else {
            AuthError::WrongRole {
                needed,
                has: caller.role,
            }
        }
        .into_response();
    }
    if let Err(retry_after_s) = st.auth.admit(&caller, addr) {
        return AuthError::RateLimited { retry_after_s }.into_response();
    }
    req.extensions_mut().insert(caller);
    next.run(req).await
}

/// Route layer: guests and up.
pub(crate) async fn guest(State(st): State<AppState>, req: Request, next: Next) -> Response {
    check(&st, Role::Guest, req, next).await
}

/// Route layer: users and admins.
pub(crate) async fn user(State(st): State<AppState>, req: Request, next: Next) -> Response {
    check(&st, Role::User, req, next).await
}

/// Route layer: admins only.
pub(crate) async fn admin(State(st): State<AppState>, req: Request, next: Next) -> Response {
    check(&st, Role::Admin, req, next).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("pw_abc"), "pw_abc");
        assert_eq!(percent_decode("a%2Db%5f"), "a-b_");
        assert_eq!(percent_decode("a%zz"), "a%zz");
        assert_eq!(percent_decode("a%2"), "a%2");
    }

    #[test]
    fn the_query_key_is_taken_out_of_the_uri() {
        let mut req = Request::builder()
            .uri("/feed?kinds=story&api_key=pw_x&cars=1")
            .body(axum::body::Body::empty())
            .unwrap();
        assert_eq!(take_key(&mut req).unwrap().as_deref(), Some("pw_x"));
        assert_eq!(req.uri().to_string(), "/feed?kinds=story&cars=1");
        let mut only = Request::builder()
            .uri("/feed?api_key=pw_x")
            .body(axum::body::Body::empty())
            .unwrap();
        take_key(&mut only).unwrap();
        assert_eq!(only.uri().to_string(), "/feed");
    }

    #[test]
    fn two_different_keys_are_refused_and_the_same_twice_is_not() {
        let mut req = Request::builder()
            .uri("/feed?api_key=pw_a")
            .header("x-api-key", "pw_b")
            .body(axum::body::Body::empty())
            .unwrap();
        assert!(matches!(take_key(&mut req), Err(AuthError::Ambiguous)));
        let mut same = Request::builder()
            .uri("/feed?api_key=pw_a")
            .header("authorization", "Bearer pw_a")
            .body(axum::body::Body::empty())
            .unwrap();
        assert_eq!(take_key(&mut same).unwrap().as_deref(), Some("pw_a"));
    }

    #[test]
    fn a_non_bearer_authorization_is_a_bad_key() {
        let mut req = Request::builder()
            .uri("/health")
            .header("authorization", "Basic dXNlcjpwdw==")
            .body(axum::body::Body::empty())
            .unwrap();
        assert!(matches!(take_key(&mut req), Err(AuthError::BadKey)));
    }
}
