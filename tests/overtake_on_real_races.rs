//! Issue 5's overtake-model acceptance on the two bundled real races:
//!
//! * trained on one race (`pitwall train overtake`'s library path) and
//!   evaluated on the *other* through the WASM plugins
//!   (`pitwall eval`'s library path): sample protocol, AUC with a bootstrap
//!   interval over pairs, Brier, and the baseline beside it;
//! * the model-parameters file swapped into a running replay: the plugin's
//!   insights carry the new model version from the next window on, with no
//!   code change.
//!
//! The floors below are what the model reaches today minus a margin, so a
//! regression fails; the targets (AUC ≥ 0.95, Brier ≤ 0.07) are not
//! met with two races of training data — see docs/plugins.md.

#[path = "support/race_frames.rs"]
mod race_frames;

use std::path::Path;
use std::time::Duration;

use pitwall_eval::fit::{FitOptions, fit};
use pitwall_eval::overtake::SampleSpec;
use pitwall_eval::race::{evaluate_race, race_samples};
use pitwall_plugin_sdk::InsightBody;
use pitwall_runtime::{Boundary, PluginSet, Runtime, RuntimeConfig};

fn train_on(dir: &Path) -> Vec<u8> {
    let samples = race_samples(dir, SampleSpec::default()).expect("training race reads");
    let race = dir.file_name().unwrap().to_string_lossy().into_owned();
    let model = fit(
        &samples,
        std::slice::from_ref(&race),
        SampleSpec::default(),
        FitOptions::default(),
        &format!("test/{race}"),
    )
    .expect("the model fits");
    model.validate().unwrap();
    serde_json::to_vec(&model).unwrap()
}

#[test]
fn trained_on_bahrain_evaluated_on_austria_through_the_wasm_plugins() {
    let params = train_on(&race_frames::bahrain_dir());
    let e = evaluate_race(
        &race_frames::austria_dir(),
        Some(&params),
        pitwall_plugins_bundle::plugin_dir(),
    )
    .expect("evaluation runs");
    println!(
        "{}",
        serde_json::to_string_pretty(&(&e.overtake, &e.overtake_hard_slice, &e.plugin_time))
            .unwrap()
    );
    let (m, b) = (&e.overtake.model, &e.overtake.baseline);
    // The protocol: one sample per lap per battling pair; Austria has ~475.
    assert!(m.samples > 400 && m.positives > 50, "{m:?}");
    assert_eq!(m.samples, b.samples);
    assert!(m.auc.is_finite() && m.auc > 0.84, "model AUC {}", m.auc);
    assert!(m.auc_ci.0 < m.auc && m.auc < m.auc_ci.1, "{:?}", m.auc_ci);
    assert!(m.brier < 0.12, "model Brier {}", m.brier);
    // Not worse than the baseline (interval, closing rate, tyre age) overall
    // or on the hard slice, beyond the noise of a few samples.
    assert!(m.auc >= b.auc - 0.01, "model {} baseline {}", m.auc, b.auc);
    let (hm, hb) = (
        &e.overtake_hard_slice.model,
        &e.overtake_hard_slice.baseline,
    );
    assert!(
        hm.auc >= hb.auc - 0.02,
        "hard slice: model {} baseline {}",
        hm.auc,
        hb.auc
    );
    // Every plugin answered every frame.
    for t in &e.plugin_time {
        assert_eq!(t.frames, e.frames as u64, "{t:?}");
    }
}

#[test]
fn trained_on_austria_evaluated_on_the_timing_only_bahrain_race() {
    let params = train_on(&race_frames::austria_dir());
    let e = evaluate_race(
        &race_frames::bahrain_dir(),
        Some(&params),
        pitwall_plugins_bundle::plugin_dir(),
    )
    .expect("evaluation runs on a race with timing tables only");
    let (m, b) = (&e.overtake.model, &e.overtake.baseline);
    println!("model {m:?}\nbaseline {b:?}");
    assert!(m.samples > 300 && m.positives > 40, "{m:?}");
    assert!(m.auc > 0.77, "model AUC {}", m.auc);
    assert!(m.auc >= b.auc - 0.01, "model {} baseline {}", m.auc, b.auc);
}

#[test]
fn a_new_model_file_takes_effect_at_the_next_window() {
    let frames = race_frames::austria_frames();
    let mut set = PluginSet::new(
        Runtime::new(RuntimeConfig {
            deadline: Duration::from_secs(2),
            ..RuntimeConfig::default()
        })
        .unwrap(),
    );
    let control = set.control();
    let wasm = std::fs::read(pitwall_plugins_bundle::wasm_path("overtake")).unwrap();
    let t = control.deploy(&wasm, Boundary::Next).unwrap();
    set.apply_pending(frames[0].window_start_ms);
    t.wait(Duration::from_secs(60)).unwrap();

    // A second model: the bundled one with its base rate moved, under a new version.
    let mut model = pitwall_plugin_overtake::model::bundled();
    model.version = "test/shifted".into();
    model.context.intercept += 1.0;
    let new_params = serde_json::to_vec(&model).unwrap();

    let swap_at = frames.len() / 2;
    let mut before = Vec::new();
    let mut after = Vec::new();
    let mut ticket = None;
    for (i, f) in frames.iter().enumerate() {
        if i == swap_at {
            ticket = Some(
                control
                    .set_params("overtake", new_params.clone(), Boundary::Next)
                    .unwrap(),
            );
        }
        let out = set.on_frame(&f.bytes, f.window_start_ms);
        for ins in &out.insights {
            if let InsightBody::Prediction(p) = &ins.insight.body {
                let row = (i, ins.model_version().to_string(), p.probability());
                if i < swap_at {
                    before.push(row)
                } else {
                    after.push(row)
                }
            }
        }
    }
    ticket.unwrap().wait(Duration::from_secs(10)).unwrap();
    assert!(!before.is_empty() && !after.is_empty());
    // Before the swap: the bundled model (no parameter file).
    assert!(
        before
            .iter()
            .all(|r| r.1 == pitwall_plugin_sdk::insight::NO_MODEL),
        "{:?}",
        before[0]
    );
    // From the swap's window on, every prediction names the new file.
    let new_version = &after[0].1;
    assert_ne!(new_version, pitwall_plugin_sdk::insight::NO_MODEL);
    assert!(after.iter().all(|r| &r.1 == new_version));
    assert_eq!(
        after[0].0, swap_at,
        "the first window after the swap uses the new model"
    );
    // And the model really changed: a higher base rate, higher probabilities.
    let mean =
        |rows: &[(usize, String, f64)]| rows.iter().map(|r| r.2).sum::<f64>() / rows.len() as f64;
    assert!(
        mean(&after) > mean(&before),
        "{} vs {}",
        mean(&after),
        mean(&before)
    );
}
