//! `GET /`: the producer dashboard, one self-contained HTML page (plain JS,
//! no build step, nothing fetched from outside the server). It reads the
//! public endpoints only: `/live-battles`, `/burn-bar`, `/telemetry/live`,
//! `/feed?kinds=story,race_state` (SSE) and `/plugins`, and posts to the
//! plugin-management routes from its plugin panel.

use axum::http::header;
use axum::response::IntoResponse;

/// The page, with `__BUNDLED_OVERTAKE_PARAMS__` still to fill in.
const PAGE: &str = include_str!("../assets/dashboard.html");

/// The overtake model that ships with the bundle: the panel offers it as a
/// one-click alternative to swap to.
pub const BUNDLED_OVERTAKE_PARAMS: &str =
    include_str!("../../../plugins/overtake/model/overtake.params.json");

/// The page as served: the bundled parameters embedded in a JSON script tag.
pub fn page() -> String {
    // `</` cannot end the script element early once escaped; JSON reads `<\/` as `</`.
    PAGE.replace(
        "__BUNDLED_OVERTAKE_PARAMS__",
        &BUNDLED_OVERTAKE_PARAMS.replace("</", "<\\/"),
    )
}

#[utoipa::path(
    get,
    path = "/",
    tag = "server",
    summary = "The producer dashboard",
    description = "One self-contained HTML page reading the public feeds.\n\n**Role:** guest.",
    responses((status = 200, description = "The page.", body = String, content_type = "text/html; charset=utf-8")),
)]
pub(crate) async fn index() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        page(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_embeds_the_bundled_model_as_json() {
        let p = page();
        assert!(!p.contains("__BUNDLED_OVERTAKE_PARAMS__"));
        let start = p
            .find(r#"<script type="application/json" id="bundled-overtake">"#)
            .unwrap();
        let rest = &p[start..];
        let json = &rest[rest.find('>').unwrap() + 1..rest.find("</script>").unwrap()];
        let v: serde_json::Value = serde_json::from_str(json).unwrap();
        assert!(v.get("experts").is_some());
    }

    #[test]
    fn page_fetches_nothing_from_outside() {
        let p = page();
        for bad in ["http://", "https://", "//cdn", "src=\"http"] {
            assert!(
                !p.contains(bad),
                "the page must be self-contained: found {bad}"
            );
        }
        for route in [
            "/live-battles",
            "/burn-bar",
            "/feed?kinds=",
            "/plugins",
            "/telemetry/live",
        ] {
            assert!(p.contains(route), "the page uses {route}");
        }
    }
}
