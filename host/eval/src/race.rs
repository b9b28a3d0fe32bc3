//! One recorded race through the race-intelligence plugins, as WASM, and
//! everything `pitwall eval` reports about it.
//!
//! The race's frames are built exactly as `pitwall replay` builds them
//! ([`pitwall_race::session::race_frames`]), every frame goes through the
//! plugins in a [`PluginSet`] (the production runtime, not a native shortcut),
//! and the published insights are compared with the race's truth: the
//! overtake model's predictions at the evaluation samples
//! ([`overtake::samples`]) and the stories against overtakes, pit stops and
//! SC/VSC periods ([`stories::evaluate`]).

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use pitwall_plugin_overtake::model::OvertakeModel;
use pitwall_plugin_sdk::InsightBody;
use pitwall_runtime::{Boundary, PluginSet, Runtime, RuntimeConfig};
use serde::Serialize;

use crate::overtake::{self, BinaryReport, Sample, SampleSpec};
use crate::stories::{self, StoryReport, TimedStory};
use crate::truth::{RaceTruth, TruthError};

/// The plugins an evaluation runs (bundle keys = plugin names).
pub const PLUGINS: [&str; 4] = ["battles", "overtake", "fuel", "stories"];

/// A tyre-age difference at most this big is the "hard slice", laps.
pub const HARD_SLICE_TYRE_AGE: f64 = 5.0;

/// What went wrong evaluating a race.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("reading the race: {0}")]
    Race(#[from] pitwall_race::RaceDataError),
    #[error("ground truth: {0}")]
    Truth(#[from] TruthError),
    #[error("{path}: {source}")]
    Plugin {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("plugin runtime: {0}")]
    Runtime(String),
    #[error("{0} evaluation samples got no prediction from the overtake plugin")]
    MissingPredictions(usize),
}

/// Model vs baseline on one set of samples.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    pub model: BinaryReport,
    pub baseline: BinaryReport,
}

/// Per-plugin call time over the race.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PluginTime {
    pub plugin: String,
    pub frames: u64,
    pub mean_us: f64,
}

/// Everything measured on one race.
#[derive(Debug, Clone, Serialize)]
pub struct RaceEvaluation {
    pub race: String,
    pub frames: usize,
    /// The overtake model's version (the file's `version`) and what it was trained on.
    pub model_version: String,
    pub trained_on: Vec<String>,
    /// All samples; the hard slice (|tyre-age difference| ≤ 5 laps).
    pub overtake: Comparison,
    pub overtake_hard_slice: Comparison,
    pub stories: StoryReport,
    pub plugin_time: Vec<PluginTime>,
    /// The samples with both probabilities, for anyone who wants to dig.
    #[serde(skip)]
    pub samples: Vec<(Sample, f64, f64)>,
}

/// Evaluates the race in `dir` with `model` as the overtake plugin's
/// parameters (`None`: the model bundled with the plugin).
pub fn evaluate_race(
    dir: &Path,
    model_json: Option<&[u8]>,
    plugin_dir: &Path,
) -> Result<RaceEvaluation, EvalError> {
    let race = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let frames = pitwall_race::session::race_frames(dir, 1000)?;
    let truth = RaceTruth::load(dir, &frames)?;
    let model: OvertakeModel = match model_json {
        Some(b) => serde_json::from_slice(b)
            .map_err(|e| EvalError::Runtime(format!("the overtake model file: {e}")))?,
        None => pitwall_plugin_overtake::model::bundled(),
    };
    let spec = SampleSpec {
        horizon_laps: model.horizon_laps,
        battle_gap_s: model.battle_gap_s,
    };

    // The plugins, as WASM, in the production runtime. The deadline is
    // generous: this measures quality, and a shared machine can deschedule a
    // µs call past a tight deadline.
    let cfg = RuntimeConfig {
        deadline: Duration::from_secs(2),
        ..RuntimeConfig::default()
    };
    // One set per plugin, so each plugin's time per frame is measured alone.
    let mut sets = Vec::new();
    for name in PLUGINS {
        let mut set = PluginSet::new(
            Runtime::new(cfg.clone()).map_err(|e| EvalError::Runtime(e.to_string()))?,
        );
        let control = set.control();
        let path = plugin_dir.join(format!("{name}.wasm"));
        let wasm = std::fs::read(&path).map_err(|source| EvalError::Plugin { path, source })?;
        let mut tickets = vec![
            control
                .deploy(&wasm, Boundary::Next)
                .map_err(|e| EvalError::Runtime(format!("{name}: {e}")))?,
        ];
        if let (Some(b), "overtake") = (model_json, name) {
            tickets.push(
                control
                    .set_params(name, b.to_vec(), Boundary::Next)
                    .map_err(|e| EvalError::Runtime(format!("overtake params: {e}")))?,
            );
        }
        set.apply_pending(frames.first().map_or(0, |f| f.window_start_ms));
        for t in tickets {
            t.wait(Duration::from_secs(120))
                .map_err(|e| EvalError::Runtime(format!("loading {name}: {e:?}")))?;
        }
        sets.push((name, set, Duration::ZERO));
    }

    let mut predictions: HashMap<(usize, u16, u16), f64> = HashMap::new();
    let mut story_list = Vec::new();
    let mut fbb = flatbuffers::FlatBufferBuilder::with_capacity(16 * 1024);
    for (i, f) in frames.iter().enumerate() {
        let bytes = f.write_flatbuffer(&mut fbb);
        for (_, set, spent) in &mut sets {
            let t0 = Instant::now();
            let out = set.on_frame(bytes, f.window_start_ms);
            *spent += t0.elapsed();
            for ins in &out.insights {
                match &ins.insight.body {
                    InsightBody::Prediction(p) if p.kind() == pitwall_plugin_overtake::KIND => {
                        let (a, d) = (p.cars().attacker.parse(), p.cars().defender.parse());
                        if let (Ok(a), Ok(d)) = (a, d) {
                            predictions.insert((i, a, d), p.probability());
                        }
                    }
                    InsightBody::Story(s) => story_list.push(TimedStory {
                        ts_ms: f.window_start_ms,
                        kind: s.kind().to_string(),
                        cars: s.cars().iter().filter_map(|c| c.parse().ok()).collect(),
                        importance: s.importance(),
                    }),
                    _ => {}
                }
            }
        }
    }
    let plugin_time = sets
        .iter()
        .map(|(name, set, spent)| {
            let calls = set.stats(name).map_or(0, |s| s.calls);
            PluginTime {
                plugin: name.to_string(),
                frames: calls,
                mean_us: spent.as_secs_f64() * 1e6 / frames.len().max(1) as f64,
            }
        })
        .collect();

    let samples = overtake::samples(&race, &frames, &truth, spec);
    let mut scored = Vec::with_capacity(samples.len());
    let mut missing = 0;
    for (i, s) in samples {
        match predictions.get(&(i, s.attacker, s.defender)) {
            Some(&p) => {
                let b = model.baseline_probability(&s.features);
                scored.push((s, p, b));
            }
            None => missing += 1,
        }
    }
    if missing > 0 {
        return Err(EvalError::MissingPredictions(missing));
    }
    let compare = |rows: &[&(Sample, f64, f64)]| {
        let s: Vec<Sample> = rows.iter().map(|r| r.0.clone()).collect();
        let p: Vec<f64> = rows.iter().map(|r| r.1).collect();
        let b: Vec<f64> = rows.iter().map(|r| r.2).collect();
        Comparison {
            model: overtake::report(&s, &p, 2024),
            baseline: overtake::report(&s, &b, 2024),
        }
    };
    let all: Vec<&(Sample, f64, f64)> = scored.iter().collect();
    let hard: Vec<&(Sample, f64, f64)> = scored
        .iter()
        .filter(|r| r.0.features.tyre_age_diff.abs() <= HARD_SLICE_TYRE_AGE)
        .collect();
    Ok(RaceEvaluation {
        race,
        frames: frames.len(),
        model_version: model.version.clone(),
        trained_on: model.training.races.clone(),
        overtake: compare(&all),
        overtake_hard_slice: compare(&hard),
        stories: stories::evaluate_with(&story_list, &truth, tolerances(&frames)),
        plugin_time,
        samples: scored,
    })
}

/// Story-matching tolerances for these frames. A race with positions
/// resolves a pass to a few metres; one from timing tables only sees the
/// order at its three timing points per lap (line and sector ends, ~30–40 s
/// apart), so a pass can only be told at the next one: its overtake
/// tolerance is a sector, 45 s.
pub fn tolerances(frames: &[pitwall_plugin_sdk::frame::RaceFrameData]) -> stories::Tolerances {
    let has_distances = frames
        .iter()
        .flat_map(|f| &f.cars)
        .any(|c| c.lap_distance_m.is_finite() && c.lap_distance_m > 0.0);
    if has_distances {
        stories::Tolerances::default()
    } else {
        stories::Tolerances {
            overtake_ms: 45_000,
            ..stories::Tolerances::default()
        }
    }
}

/// The overtake samples of the race in `dir` (features and labels only, no
/// plugins): what `pitwall train overtake` fits on.
pub fn race_samples(dir: &Path, spec: SampleSpec) -> Result<Vec<Sample>, EvalError> {
    let race = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let frames = pitwall_race::session::race_frames(dir, 1000)?;
    let truth = RaceTruth::load(dir, &frames)?;
    Ok(overtake::samples(&race, &frames, &truth, spec)
        .into_iter()
        .map(|(_, s)| s)
        .collect())
}
