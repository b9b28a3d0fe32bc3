//! Feed query parameters: `kinds`, `cars`, `min_importance`, `last_event_id`,
//! parsed strictly so a typo is a 400 with a reason, not a silently empty
//! (or silently unfiltered) feed.

use crate::error::ApiError;
use crate::feed::{Filter, KINDS};

/// What a feed request asks for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FeedParams {
    pub filter: Filter,
    pub last_event_id: Option<u64>,
}

/// Parses the feed's query pairs. Unknown parameters are refused.
pub fn parse_feed_query(pairs: &[(String, String)]) -> Result<FeedParams, ApiError> {
    let mut p = FeedParams::default();
    for (key, value) in pairs {
        match key.as_str() {
            "kinds" => {
                for kind in list(value) {
                    let known = KINDS.iter().find(|k| **k == kind).ok_or_else(|| {
                        ApiError::bad(
                            "kinds",
                            format!("unknown kind `{kind}` (known: {})", KINDS.join(", ")),
                        )
                    })?;
                    p.filter.kinds.push(known);
                }
            }
            "cars" => {
                for car in list(value) {
                    match car.parse::<u16>() {
                        Ok(n) if n <= 999 => p.filter.cars.push(n.to_string()),
                        _ => {
                            return Err(ApiError::bad(
                                "cars",
                                format!("`{car}` is not a racing number (0-999)"),
                            ));
                        }
                    }
                }
            }
            "min_importance" => {
                let v: f64 = value.trim().parse().map_err(|_| {
                    ApiError::bad("min_importance", format!("`{value}` is not a number"))
                })?;
                if !(0.0..=1.0).contains(&v) {
                    return Err(ApiError::bad(
                        "min_importance",
                        format!("{v} is outside 0..=1"),
                    ));
                }
                p.filter.min_importance = Some(v);
            }
            "last_event_id" => p.last_event_id = Some(parse_event_id("last_event_id", value)?),
            other => {
                return Err(ApiError::bad(
                    other,
                    "unknown parameter (known: kinds, cars, min_importance, last_event_id)",
                ));
            }
        }
    }
    Ok(p)
}

/// The live routes' only parameter: `car=N` (a racing number, at most once).
pub fn parse_live_query(pairs: &[(String, String)]) -> Result<Option<u16>, ApiError> {
    let mut car = None;
    for (key, value) in pairs {
        match key.as_str() {
            "car" if car.is_some() => {
                return Err(ApiError::bad("car", "given more than once"));
            }
            "car" => match value.trim().parse::<u16>() {
                Ok(n) if n <= 999 => car = Some(n),
                _ => {
                    return Err(ApiError::bad(
                        "car",
                        format!("`{value}` is not a racing number (0-999)"),
                    ));
                }
            },
            other => return Err(ApiError::bad(other, "unknown parameter (known: car)")),
        }
    }
    Ok(car)
}

/// An event id as sent back by a client.
pub fn parse_event_id(param: &str, value: &str) -> Result<u64, ApiError> {
    value
        .trim()
        .parse()
        .map_err(|_| ApiError::bad(param, format!("`{value}` is not an event id")))
}

fn list(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Result<FeedParams, ApiError> {
        let v: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        parse_feed_query(&v)
    }

    #[test]
    fn parses_all_parameters() {
        let p = q(&[
            ("kinds", "story,prediction"),
            ("cars", "1, 04"),
            ("min_importance", "0.5"),
            ("last_event_id", "42"),
        ])
        .unwrap();
        assert_eq!(p.filter.kinds, vec!["story", "prediction"]);
        assert_eq!(p.filter.cars, vec!["1", "4"]);
        assert_eq!(p.filter.min_importance, Some(0.5));
        assert_eq!(p.last_event_id, Some(42));
    }

    #[test]
    fn refuses_bad_values_with_reasons() {
        for (pairs, needle) in [
            (vec![("kinds", "storyy")], "unknown kind `storyy`"),
            (vec![("cars", "x")], "`x` is not a racing number"),
            (vec![("cars", "1000")], "not a racing number"),
            (vec![("min_importance", "2")], "outside 0..=1"),
            (vec![("min_importance", "NaN")], "outside 0..=1"),
            (vec![("last_event_id", "-1")], "not an event id"),
            (vec![("kind", "story")], "unknown parameter"),
        ] {
            let err = q(&pairs).unwrap_err().to_string();
            assert!(err.contains(needle), "{err}");
        }
    }

    #[test]
    fn live_query_takes_one_car() {
        let q = |pairs: &[(&str, &str)]| {
            let v: Vec<(String, String)> = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            parse_live_query(&v)
        };
        assert_eq!(q(&[]).unwrap(), None);
        assert_eq!(q(&[("car", "04")]).unwrap(), Some(4));
        for (pairs, needle) in [
            (
                vec![("car", "abc")],
                "bad car: `abc` is not a racing number",
            ),
            (vec![("car", "1000")], "not a racing number"),
            (vec![("car", "-1")], "not a racing number"),
            (vec![("car", "1"), ("car", "2")], "given more than once"),
            (
                vec![("cars", "1")],
                "bad cars: unknown parameter (known: car)",
            ),
        ] {
            let err = q(&pairs).unwrap_err();
            assert_eq!(err.status(), axum::http::StatusCode::BAD_REQUEST);
            assert!(err.to_string().contains(needle), "{err}");
        }
    }
}
