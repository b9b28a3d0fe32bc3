//! The store's routes: `/races`, `/history/{race_id}` (scrub to a time,
//! page through insights), `/analytics/driver/{number}` and the CSV exports
//! `/export/{race_id}/{predictions|stories|laps}.csv`.
//!
//! Every store call is a blocking SQLite read, so it runs on tokio's
//! blocking pool: a long export never stalls the feeds on the same runtime.

use axum::Json;
use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use pitwall_store::{ExportKind, HistoryQuery, Store, StoreError};

use crate::error::ApiError;
use crate::feed::{KIND_PREDICTION, KIND_STORY, KINDS};
use crate::query::parse_event_id;
use crate::router::AppState;

/// Items per history page unless `limit` says otherwise.
pub const HISTORY_DEFAULT_LIMIT: usize = 100;
/// The most a page holds.
pub const HISTORY_MAX_LIMIT: usize = 1000;

/// The kinds the store keeps (metrics go to the per-lap table instead).
const STORED_KINDS: [&str; 2] = [KIND_STORY, KIND_PREDICTION];

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/races", get(races))
        .route("/history/{race_id}", get(history))
        .route("/analytics/driver/{number}", get(driver))
        .route("/export/{race_id}/{file}", get(export))
}

fn store(st: &AppState) -> Result<Store, ApiError> {
    st.store.clone().ok_or(ApiError::Unavailable(
        "this server has no store (run without --no-store)",
    ))
}

/// Runs a store read on the blocking pool and maps its errors.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(store_error),
        Err(e) => {
            tracing::error!(error = %e, "store task failed");
            Err(ApiError::Internal("the store task failed".into()))
        }
    }
}

fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::UnknownRace(id) => ApiError::NotFound(format!("no race `{id}` in the store")),
        StoreError::UnknownDriver(n) => ApiError::NotFound(format!("no driver #{n} in the store")),
        other => {
            tracing::error!(error = %other, "store read failed");
            ApiError::Internal("the store could not be read".into())
        }
    }
}

type QueryPairs = Result<Query<Vec<(String, String)>>, QueryRejection>;

fn pairs(q: QueryPairs) -> Result<Vec<(String, String)>, ApiError> {
    q.map(|Query(p)| p)
        .map_err(|e| ApiError::BadQuery(e.body_text()))
}

/// A race id as the store names races: letters, digits, `-`, `_`, `.`.
fn race_id(id: &str) -> Result<String, ApiError> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(id.to_owned())
    } else {
        Err(ApiError::bad(
            "race_id",
            format!("`{id}` is not a race id (letters, digits, `-`, `_`, `.`)"),
        ))
    }
}

fn car_number(param: &str, v: &str) -> Result<String, ApiError> {
    match v.parse::<u16>() {
        Ok(n) if n <= 999 => Ok(n.to_string()),
        _ => Err(ApiError::bad(
            param,
            format!("`{v}` is not a racing number (0-999)"),
        )),
    }
}

/// `GET /races`: the races in the store, with their insight and lap counts.
#[utoipa::path(
    get,
    path = "/races",
    tag = "history",
    summary = "The races in the store",
    description = "Every archived race with its insight and lap counts.\n\n**Role:** user.",
    responses(
        (status = 200, description = "`{\"races\": [RaceSummary]}`, each `{race_id, name, year, circuit, \
                                      total_laps, insights, laps}`.", body = Object),
        (status = 500, description = "The store could not be read.", body = crate::openapi::ErrorBody),
        (status = 503, description = "This server has no store (`--no-store`).", body = crate::openapi::ErrorBody),
    ),
)]
pub(crate) async fn races(State(st): State<AppState>) -> Result<Response, ApiError> {
    let store = store(&st)?;
    let races = blocking(move || store.races()).await?;
    Ok(Json(serde_json::json!({ "races": races })).into_response())
}

/// Parses `/history`'s parameters.
pub fn parse_history_query(
    race: String,
    pairs: &[(String, String)],
) -> Result<HistoryQuery, ApiError> {
    let mut q = HistoryQuery {
        race_id: race,
        at_ms: None,
        kinds: Vec::new(),
        car: None,
        after_id: None,
        limit: HISTORY_DEFAULT_LIMIT,
    };
    let known = "known: at_ms, kinds, car, after, limit";
    for (k, v) in pairs {
        match k.as_str() {
            "at_ms" => {
                q.at_ms = Some(v.trim().parse().map_err(|_| {
                    ApiError::bad(
                        "at_ms",
                        format!("`{v}` is not a time in ms since the epoch"),
                    )
                })?)
            }
            "kinds" => {
                for kind in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    // A feed kind the store keeps, or a story / prediction
                    // kind (`overtake`, `p_overtake`, ...).
                    let other_feed_kind = KINDS.contains(&kind) && !STORED_KINDS.contains(&kind);
                    let word = kind.len() <= 64
                        && kind
                            .bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
                    if other_feed_kind || !word {
                        return Err(ApiError::bad(
                            "kinds",
                            format!(
                                "`{kind}` is not kept in history (kept: {}, or a story or prediction kind such as overtake)",
                                STORED_KINDS.join(", ")
                            ),
                        ));
                    }
                    q.kinds.push(kind.to_owned());
                }
            }
            "car" => q.car = Some(car_number("car", v)?),
            "after" => q.after_id = Some(parse_event_id("after", v)?),
            "limit" => {
                q.limit = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=HISTORY_MAX_LIMIT).contains(n))
                    .ok_or_else(|| {
                        ApiError::bad("limit", format!("`{v}` is not in 1..={HISTORY_MAX_LIMIT}"))
                    })?
            }
            other => return Err(ApiError::bad(other, format!("unknown parameter ({known})"))),
        }
    }
    Ok(q)
}

/// `GET /history/{race_id}?at_ms=&kinds=&car=&after=&limit=`: stored stories
/// and predictions in event order; `at_ms` scrubs to a point of the race
/// (only insights of windows that started by then); page on with
/// `after=<next_after>`.
#[utoipa::path(
    get,
    path = "/history/{race_id}",
    tag = "history",
    summary = "Stored stories and predictions of a race",
    description = "Insights in event order; `at_ms` scrubs to a point of the race, `after` pages on.\n\n**Role:** user.",
    params(
        ("race_id" = String, Path, pattern = r"^[A-Za-z0-9._-]{1,128}$",
            description = "The race, as the store names it (letters, digits, `-`, `_`, `.`; see `/races`)."),
        ("at_ms" = Option<i64>, Query,
            description = "Scrub: only insights of windows that started by this time (ms since the epoch)."),
        ("kinds" = Option<String>, Query,
            description = "Comma-separated: `story`, `prediction` (the kinds history keeps; default both), or story / prediction kinds such as `overtake`, `pit_stop`, `p_overtake`."),
        ("car" = Option<u16>, Query, minimum = 0, maximum = 999, description = "Only insights about this racing number."),
        ("after" = Option<u64>, Query, description = "Only insights after this event id (the previous page's `next_after`)."),
        ("limit" = Option<usize>, Query, minimum = 1, maximum = 1000, description = "Items per page (1-1000, default 100)."),
    ),
    responses(
        (status = 200, description = "A HistoryPage: `{race, items, next_after}`: the race's summary, the items \
                                      (stories and predictions with their provenance) and `next_after` to page on \
                                      (`null` at the end).", body = Object),
        (status = 400, description = "A bad race id or query parameter (unknown, or out of range).", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such race in the store.", body = crate::openapi::ErrorBody),
        (status = 500, description = "The store could not be read.", body = crate::openapi::ErrorBody),
        (status = 503, description = "This server has no store (`--no-store`).", body = crate::openapi::ErrorBody),
    ),
)]
pub(crate) async fn history(
    State(st): State<AppState>,
    Path(race): Path<String>,
    query: QueryPairs,
) -> Result<Response, ApiError> {
    let q = parse_history_query(race_id(&race)?, &pairs(query)?)?;
    let store = store(&st)?;
    let page = blocking(move || store.history(&q)).await?;
    Ok(Json(page).into_response())
}

/// `GET /analytics/driver/{number}?race=ID`: one driver's race figures.
#[utoipa::path(
    get,
    path = "/analytics/driver/{number}",
    tag = "history",
    summary = "One driver's race figures",
    description = "A driver's analytics from the store, for one race or across races.\n\n**Role:** user.",
    params(
        ("number" = u16, Path, minimum = 0, maximum = 999, description = "The racing number (0-999)."),
        ("race" = Option<String>, Query, pattern = r"^[A-Za-z0-9._-]{1,128}$",
            description = "Only this race (default: every race of the driver)."),
    ),
    responses(
        (status = 200, description = "DriverAnalytics: `{number, code, name, team, races}`, per race: laps, best lap, \
                                      green-lap pace, positions, pit stops, overtakes, P(overtake), fuel.", body = Object),
        (status = 400, description = "A bad racing number, race id or query parameter.", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such driver (or race) in the store.", body = crate::openapi::ErrorBody),
        (status = 500, description = "The store could not be read.", body = crate::openapi::ErrorBody),
        (status = 503, description = "This server has no store (`--no-store`).", body = crate::openapi::ErrorBody),
    ),
)]
pub(crate) async fn driver(
    State(st): State<AppState>,
    Path(number): Path<String>,
    query: QueryPairs,
) -> Result<Response, ApiError> {
    let number = car_number("number", &number)?;
    let mut race = None;
    for (k, v) in pairs(query)? {
        match k.as_str() {
            "race" => race = Some(race_id(&v)?),
            other => {
                return Err(ApiError::bad(other, "unknown parameter (known: race)"));
            }
        }
    }
    let store = store(&st)?;
    let a = blocking(move || store.driver_analytics(&number, race.as_deref())).await?;
    Ok(Json(a).into_response())
}

/// `GET /export/{race_id}/{predictions|stories|laps}.csv`.
#[utoipa::path(
    get,
    path = "/export/{race_id}/{file}",
    tag = "history",
    summary = "CSV export of a race",
    description = "Predictions, stories or per-lap metrics of a race as CSV, as an attachment named \
                   `<race_id>-<file>`. Takes no query parameters.\n\n**Role:** user.",
    params(
        ("race_id" = String, Path, pattern = r"^[A-Za-z0-9._-]{1,128}$",
            description = "The race, as the store names it (letters, digits, `-`, `_`, `.`; see `/races`)."),
        ("file" = String, Path, description = "`predictions.csv`, `stories.csv` or `laps.csv`."),
    ),
    responses(
        (status = 200, description = "The CSV (with a header row).", body = String, content_type = "text/csv; charset=utf-8",
            headers(("Content-Disposition" = String, description = "`attachment; filename=\"<race_id>-<file>\"`"))),
        (status = 400, description = "A bad race id, or a query parameter (the export takes none).", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such export file, or no such race in the store.", body = crate::openapi::ErrorBody),
        (status = 500, description = "The store could not be read.", body = crate::openapi::ErrorBody),
        (status = 503, description = "This server has no store (`--no-store`).", body = crate::openapi::ErrorBody),
    ),
)]
pub(crate) async fn export(
    State(st): State<AppState>,
    Path((race, file)): Path<(String, String)>,
    query: QueryPairs,
) -> Result<Response, ApiError> {
    let race = race_id(&race)?;
    if let Some((k, _)) = pairs(query)?.first() {
        return Err(ApiError::bad(
            k,
            "unknown parameter (the export takes none)",
        ));
    }
    let kind: ExportKind = file
        .strip_suffix(".csv")
        .and_then(|k| k.parse().ok())
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "no export `{file}` (known: predictions.csv, stories.csv, laps.csv)"
            ))
        })?;
    let store = store(&st)?;
    let name = format!("{race}-{file}");
    let body = blocking(move || {
        let mut out = Vec::new();
        store.export_csv(kind, &race, &mut out)?;
        Ok(out)
    })
    .await?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        body,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn history_parameters_are_parsed_strictly() {
        let q = parse_history_query(
            "r".into(),
            &p(&[
                ("at_ms", "1719752594000"),
                ("kinds", "story,prediction"),
                ("car", "04"),
                ("after", "17"),
                ("limit", "5"),
            ]),
        )
        .unwrap();
        assert_eq!(q.at_ms, Some(1_719_752_594_000));
        assert_eq!(q.kinds, ["story", "prediction"]);
        assert_eq!(q.car.as_deref(), Some("4"));
        assert_eq!(q.after_id, Some(17));
        assert_eq!(q.limit, 5);
        let q = parse_history_query("r".into(), &p(&[("kinds", "overtake,pit_stop")])).unwrap();
        assert_eq!(q.kinds, ["overtake", "pit_stop"]);
        for bad in [
            ("kinds", "metric"),
            ("kinds", "race_state"),
            ("kinds", "Drop Table"),
            ("car", "abc"),
            ("limit", "0"),
            ("limit", "1001"),
            ("at_ms", "soon"),
            ("after", "-1"),
            ("page", "2"),
        ] {
            let e = parse_history_query("r".into(), &p(&[bad])).unwrap_err();
            assert_eq!(e.status(), 400, "{bad:?}");
        }
    }

    #[test]
    fn race_ids_are_plain_names() {
        assert!(race_id("2024-austria-race").is_ok());
        for bad in ["", "a/b", "a b", "x;drop", &"a".repeat(200)] {
            assert!(race_id(bad).is_err(), "{bad}");
        }
    }
}
