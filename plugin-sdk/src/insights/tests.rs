use super::*;
use proptest::prelude::*;

fn sample() -> InsightsData {
    InsightsData {
        window_start_ms: 61_000,
        stories: vec![
            Story::builder("catching", "#4 is closing on #1: 0.8 s, -0.2 s a lap")
                .cars(["4", "1"])
                .importance(0.7)
                .evidence("interval_s", 0.8)
                .evidence("closing_s_per_lap", -0.2)
                .build()
                .unwrap(),
        ],
        predictions: vec![
            Prediction::builder("p_attack", "4", "1")
                .probability(0.35)
                .horizon_laps(2)
                .contribution("drs", 0.25)
                .build()
                .unwrap(),
        ],
        metrics: vec![CarMetric::new("44", "pace_kmh", 231.5, "km/h").unwrap()],
    }
}

/// Hand-writes an `Insights` buffer with one prediction, bypassing the SDK's
/// checks, as a hostile or buggy guest could.
fn raw_prediction(
    version: u16,
    kind: &str,
    attacker: u16,
    defender: u16,
    p: f64,
    horizon: u16,
) -> Vec<u8> {
    let mut fbb = FlatBufferBuilder::new();
    let kind = fbb.create_string(kind);
    let pred = fb::PredictionOut::create(
        &mut fbb,
        &fb::PredictionOutArgs {
            kind: Some(kind),
            attacker,
            defender,
            probability: p,
            horizon_laps: horizon,
            contributions: None,
        },
    );
    let preds = fbb.create_vector(&[pred]);
    let root = fb::Insights::create(
        &mut fbb,
        &fb::InsightsArgs {
            insights_version: version,
            window_start_ms: 5,
            stories: None,
            predictions: Some(preds),
            metrics: None,
        },
    );
    fbb.finish(root, None);
    fbb.finished_data().to_vec()
}

#[test]
fn round_trips_through_the_flatbuffer() {
    let data = sample();
    let bytes = data.to_flatbuffer();
    assert_eq!(InsightsData::from_flatbuffer(&bytes).unwrap(), data);
    assert_eq!(
        read_insights(&bytes).unwrap().insights_version(),
        INSIGHTS_VERSION
    );
    // The builder-reusing variant writes the same bytes, call after call.
    let mut fbb = FlatBufferBuilder::new();
    assert_eq!(data.write_flatbuffer(&mut fbb).unwrap(), &bytes[..]);
    assert_eq!(data.write_flatbuffer(&mut fbb).unwrap(), &bytes[..]);
    let empty = InsightsData::empty(-3);
    assert!(empty.is_empty());
    assert_eq!(
        InsightsData::from_flatbuffer(&empty.to_flatbuffer()).unwrap(),
        empty
    );
}

#[test]
fn wrong_version_is_refused() {
    let err =
        InsightsData::from_flatbuffer(&raw_prediction(0, "p_attack", 4, 1, 0.5, 1)).unwrap_err();
    assert_eq!(
        err,
        InsightsError::UnsupportedVersion {
            found: 0,
            expected: 1
        }
    );
    assert!(err.to_string().contains("missing"), "{err}");
    let err =
        InsightsData::from_flatbuffer(&raw_prediction(2, "p_attack", 4, 1, 0.5, 1)).unwrap_err();
    assert!(matches!(
        err,
        InsightsError::UnsupportedVersion { found: 2, .. }
    ));
}

#[test]
fn errors_name_the_item_and_the_rule() {
    let ok = raw_prediction(1, "p_attack", 4, 1, 0.5, 1);
    assert_eq!(
        InsightsData::from_flatbuffer(&ok)
            .unwrap()
            .predictions
            .len(),
        1
    );
    let cases: [(Vec<u8>, &str); 5] = [
        (
            raw_prediction(1, "p_attack", 4, 1, 1.5, 1),
            "probability = 1.5 is outside 0..=1",
        ),
        (
            raw_prediction(1, "p_attack", 4, 1, f64::NAN, 1),
            "not a finite number",
        ),
        (raw_prediction(1, "", 4, 1, 0.5, 1), "prediction kind \"\""),
        (
            raw_prediction(1, "p_attack", 4, 4, 0.5, 1),
            "both car \"4\"",
        ),
        (raw_prediction(1, "p_attack", 4, 1, 0.5, 0), "horizon_laps"),
    ];
    for (bytes, want) in cases {
        let err = InsightsData::from_flatbuffer(&bytes).unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(
                err,
                InsightsError::Item {
                    list: "predictions",
                    index: 0,
                    ..
                }
            ),
            "{msg}"
        );
        assert!(
            msg.starts_with("predictions[0]: ") && msg.contains(want),
            "{msg}"
        );
    }
}

#[test]
fn stories_and_metrics_are_checked_too() {
    let mut fbb = FlatBufferBuilder::new();
    let good_name = fbb.create_string("pace_kmh");
    let good = fb::CarMetricOut::create(
        &mut fbb,
        &fb::CarMetricOutArgs {
            car: 1,
            name: Some(good_name),
            value: 1.0,
            unit: None,
        },
    );
    // A metric without a name.
    let bad = fb::CarMetricOut::create(
        &mut fbb,
        &fb::CarMetricOutArgs {
            car: 1,
            name: None,
            value: 1.0,
            unit: None,
        },
    );
    let metrics = fbb.create_vector(&[good, bad]);
    let root = fb::Insights::create(
        &mut fbb,
        &fb::InsightsArgs {
            insights_version: 1,
            window_start_ms: 0,
            stories: None,
            predictions: None,
            metrics: Some(metrics),
        },
    );
    fbb.finish(root, None);
    let err = InsightsData::from_flatbuffer(fbb.finished_data())
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("metrics[1]: metric name \"\""), "{err}");

    let stories = repeated_car_story();
    let err = InsightsData::from_flatbuffer(&stories)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("stories[0]: ") && err.contains("\"7\" twice"),
        "{err}"
    );
}

/// A reply with one story that names car 7 twice.
fn repeated_car_story() -> Vec<u8> {
    let mut fbb = FlatBufferBuilder::new();
    let headline = fbb.create_string("h");
    let kind = fbb.create_string("battle");
    let cars = fbb.create_vector(&[7u16, 7]);
    let story = fb::StoryOut::create(
        &mut fbb,
        &fb::StoryOutArgs {
            kind: Some(kind),
            cars: Some(cars),
            headline: Some(headline),
            importance: 0.5,
            evidence: None,
        },
    );
    let stories = fbb.create_vector(&[story]);
    let root = fb::Insights::create(
        &mut fbb,
        &fb::InsightsArgs {
            insights_version: 1,
            window_start_ms: 0,
            stories: Some(stories),
            predictions: None,
            metrics: None,
        },
    );
    fbb.finish(root, None);
    fbb.finished_data().to_vec()
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    for bytes in [
        &b""[..],
        b"\0\0\0",
        b"hello world, not a flatbuffer",
        &[0xff; 64],
    ] {
        assert!(InsightsData::from_flatbuffer(bytes).is_err());
    }
    // A race frame is not a reply.
    // A race frame is not a reply, though its first two fields line up.
    let frame = crate::frame::RaceFrameData {
        window_start_ms: 61_000,
        ..Default::default()
    };
    let err = InsightsData::from_flatbuffer(&frame.to_flatbuffer()).unwrap_err();
    assert_eq!(err, InsightsError::EchoedFrame);
}

#[test]
fn cars_must_be_racing_numbers_to_encode() {
    let mut data = sample();
    data.metrics
        .push(CarMetric::new("VER", "pace_kmh", 1.0, "").unwrap());
    let err = data.try_to_flatbuffer().unwrap_err();
    assert_eq!(
        err,
        InsightsError::CarNumber {
            list: "metrics",
            index: 1,
            car: "VER".into()
        }
    );
    for bad in ["044", "70000", "-1"] {
        assert_eq!(car_number(bad), None, "{bad}");
    }
    assert_eq!(car_number("0"), Some(0));
    assert_eq!(car_number("65535"), Some(65_535));
}

#[test]
fn window_echo_and_provenance() {
    let bytes = sample().to_flatbuffer();
    assert!(InsightsData::from_flatbuffer_for_window(&bytes, 61_000).is_ok());
    assert_eq!(
        InsightsData::from_flatbuffer_for_window(&bytes, 62_000).unwrap_err(),
        InsightsError::WrongWindow {
            expected: 62_000,
            found: 61_000
        }
    );
    let insights = sample().with_provenance("gap-watch@1.0.0", "none").unwrap();
    assert_eq!(insights.len(), 3);
    assert!(
        insights
            .iter()
            .all(|i| i.provenance.plugin() == "gap-watch@1.0.0"
                && i.provenance.window_start_ms() == 61_000)
    );
    assert!(matches!(insights[0].body, crate::InsightBody::Story(_)));
    assert!(matches!(insights[2].body, crate::InsightBody::Metric(_)));
    assert!(sample().with_provenance("Bad", "none").is_err());
}

fn ident() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9_]{0,12}"
}

fn car() -> impl Strategy<Value = u16> {
    any::<u16>()
}

fn finite() -> impl Strategy<Value = f64> {
    prop_oneof![
        proptest::num::f64::NORMAL | proptest::num::f64::ZERO | proptest::num::f64::SUBNORMAL,
        -1e6..1e6f64,
    ]
}

fn named() -> impl Strategy<Value = Vec<(String, f64)>> {
    proptest::collection::btree_map(ident(), finite(), 0..4).prop_map(|m| m.into_iter().collect())
}

fn story() -> impl Strategy<Value = Story> {
    (
        ident(),
        "[ -~]{1,40}",
        proptest::collection::btree_set(car(), 0..4),
        0.0..=1.0f64,
        named(),
    )
        .prop_filter("headline not blank", |(_, h, ..)| !h.trim().is_empty())
        .prop_map(|(kind, headline, cars, imp, ev)| {
            let mut b = Story::builder(kind, headline)
                .cars(cars.iter().map(u16::to_string))
                .importance(imp);
            for (n, v) in ev {
                b = b.evidence(n, v);
            }
            b.build().unwrap()
        })
}

fn prediction() -> impl Strategy<Value = Prediction> {
    (
        ident(),
        car(),
        car(),
        0.0..=1.0f64,
        1u32..=u32::from(u16::MAX),
        named(),
    )
        .prop_filter("distinct cars", |(_, a, d, ..)| a != d)
        .prop_map(|(kind, a, d, p, h, contrib)| {
            let mut b = Prediction::builder(kind, a.to_string(), d.to_string())
                .probability(p)
                .horizon_laps(h);
            for (n, v) in contrib {
                b = b.contribution(n, v);
            }
            b.build().unwrap()
        })
}

fn metric() -> impl Strategy<Value = CarMetric> {
    (car(), ident(), finite(), "[ -~]{0,16}")
        .prop_map(|(c, n, v, u)| CarMetric::new(c.to_string(), n, v, u).unwrap())
}

fn insights() -> impl Strategy<Value = InsightsData> {
    (
        any::<i64>(),
        proptest::collection::vec(story(), 0..4),
        proptest::collection::vec(prediction(), 0..4),
        proptest::collection::vec(metric(), 0..4),
    )
        .prop_map(
            |(window_start_ms, stories, predictions, metrics)| InsightsData {
                window_start_ms,
                stories,
                predictions,
                metrics,
            },
        )
}

proptest! {
    #[test]
    fn any_valid_reply_round_trips(data in insights()) {
        let bytes = data.to_flatbuffer();
        prop_assert_eq!(InsightsData::from_flatbuffer(&bytes).unwrap(), data);
    }

    /// Truncated or bit-flipped replies are decoded or refused, never a panic;
    /// what is decoded is always valid (it went through the builders).
    #[test]
    fn corrupt_replies_never_panic(
        data in insights(),
        cut in any::<prop::sample::Index>(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
    ) {
        let bytes = data.to_flatbuffer();
        let truncated = &bytes[..cut.index(bytes.len())];
        let _ = InsightsData::from_flatbuffer(truncated);
        let mut flipped = bytes.clone();
        for (i, x) in flips {
            let i = i.index(flipped.len());
            flipped[i] ^= x;
        }
        if let Ok(back) = InsightsData::from_flatbuffer(&flipped) {
            // Re-encoding what was accepted gives a reply that decodes to the same.
            prop_assert_eq!(InsightsData::from_flatbuffer(&back.to_flatbuffer()).unwrap(), back);
        }
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = InsightsData::from_flatbuffer(&bytes);
    }
}
