//! `pitwall plugin new NAME --kind story|car|pair`: writes a new plugin crate.
//!
//! The crate builds against `pitwall-plugin-sdk` (by path inside this
//! repository, or by version), implements the kind's trait with a small
//! working example, exports it with `export_plugin!`, and has a native test
//! through the SDK's harness, so `cargo test` passes the moment it is
//! generated and the author edits from a green start.
//!
//! The crate is standalone (`[workspace]` in its manifest) so it builds
//! wherever it is written; to make it part of the Pitwall workspace, remove
//! that table and add it to the root `members` (and to `plugins/bundle` to
//! have it built to WASM with the rest).

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// Which plugin kind to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScaffoldKind {
    Story,
    Car,
    Pair,
}

impl std::str::FromStr for ScaffoldKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "story" | "story_generator" => Ok(ScaffoldKind::Story),
            "car" | "car_model" => Ok(ScaffoldKind::Car),
            "pair" | "pair_model" => Ok(ScaffoldKind::Pair),
            other => Err(format!(
                "unknown plugin kind {other:?}: use story, car or pair"
            )),
        }
    }
}

impl fmt::Display for ScaffoldKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ScaffoldKind::Story => "story",
            ScaffoldKind::Car => "car",
            ScaffoldKind::Pair => "pair",
        })
    }
}

/// Where the generated crate gets the SDK from.
// The CLI may offer only one of the two; neither is dead API.
#[allow(dead_code)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SdkSource {
    /// A path to the `plugin-sdk` directory (inside this repository).
    Path(PathBuf),
    /// A registry version requirement, e.g. `"0.1"`.
    Version(String),
}

/// Writes the plugin crate `name` of `kind` into `target_dir/name` and
/// returns that directory. Refuses an invalid plugin name and an existing
/// directory (it never overwrites an author's work).
pub fn scaffold(
    name: &str,
    kind: ScaffoldKind,
    target_dir: &Path,
    sdk: &SdkSource,
) -> io::Result<PathBuf> {
    pitwall_plugin_sdk::info::validate_name(name).map_err(io::Error::other)?;
    let dir = target_dir.join(name);
    if dir.exists() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!(
                "{} already exists; choose another name or directory",
                dir.display()
            ),
        ));
    }
    std::fs::create_dir_all(dir.join("src"))?;
    std::fs::create_dir_all(dir.join("tests"))?;
    let sdk_dep = match sdk {
        SdkSource::Path(p) => {
            let p = std::fs::canonicalize(p)?;
            format!("{{ path = {:?} }}", p.display().to_string())
        }
        SdkSource::Version(v) => format!("{v:?}"),
    };
    let ty = type_name(name);
    let crate_ident = name.replace('-', "_");
    let fill = |t: &str| {
        t.replace("{{name}}", name)
            .replace("{{Type}}", &ty)
            .replace("{{crate}}", &crate_ident)
            .replace("{{sdk}}", &sdk_dep)
    };
    let (lib, test) = match kind {
        ScaffoldKind::Story => (STORY_LIB, STORY_TEST),
        ScaffoldKind::Car => (CAR_LIB, CAR_TEST),
        ScaffoldKind::Pair => (PAIR_LIB, PAIR_TEST),
    };
    std::fs::write(dir.join("Cargo.toml"), fill(CARGO_TOML))?;
    std::fs::write(dir.join("src/lib.rs"), fill(lib))?;
    std::fs::write(dir.join("tests/plugin.rs"), fill(test))?;
    std::fs::write(dir.join(".gitignore"), "/target\n")?;
    Ok(dir)
}

/// `gap-watch` -> `GapWatch`, `x2-model` -> `X2Model`.
fn type_name(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut c = part.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

const CARGO_TOML: &str = r##"[package]
name = "{{name}}"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
# cdylib: the .wasm the host loads; rlib: the native tests.
crate-type = ["cdylib", "rlib"]

[dependencies]
pitwall-plugin-sdk = {{sdk}}

# Standalone: remove this table to make the crate a member of an enclosing workspace.
[workspace]

# wasm32-unknown-unknown cannot unwind: a panic aborts (a trap the host counts).
[profile.release]
panic = "abort"
opt-level = "s"
lto = true
codegen-units = 1

# Build the module: cargo build --release --target wasm32-unknown-unknown
# It lands in target/wasm32-unknown-unknown/release/{{crate}}.wasm
"##;

const STORY_LIB: &str = r##"//! `{{name}}`: a story generator. Reads the whole race frame once per window
//! and tells stories. This example says who leads, once, and again whenever
//! the lead changes.

use pitwall_plugin_sdk::{Context, Frame, Output, PluginResult, StoryGenerator};

#[derive(Default)]
pub struct {{Type}} {
    leader: Option<u16>,
}

impl StoryGenerator for {{Type}} {
    fn on_frame(&mut self, frame: &Frame<'_>, _ctx: &mut Context, out: &mut Output) -> PluginResult {
        let Some(p1) = frame.running_order().first().map(|c| c.number()) else {
            return Ok(());
        };
        if self.leader != Some(p1) {
            self.leader = Some(p1);
            pitwall_plugin_sdk::debug!("new leader #{p1} in window {}", frame.seq());
            out.story("leader", &format!("#{p1} leads the race"))
                .car(p1)
                .importance(0.5)
                .evidence("lap", f64::from(frame.race().lap()))
                .emit()?;
        }
        Ok(())
    }
}

pitwall_plugin_sdk::export_plugin!({{Type}}, name = "{{name}}", version = "0.1.0", kind = story_generator);
"##;

const STORY_TEST: &str = r##"use pitwall_plugin_sdk::testing::{Harness, car, frame};
use {{crate}}::{{Type}};

#[test]
fn tells_each_new_leader_once() {
    let mut h = Harness::<{{Type}}>::new();
    let first = h.run(&frame(0, vec![car(1, 1, f64::NAN), car(4, 2, 0.8)])).unwrap();
    assert_eq!(first.stories[0].headline(), "#1 leads the race");
    let same = h.run(&frame(1, vec![car(1, 1, f64::NAN), car(4, 2, 0.6)])).unwrap();
    assert!(same.stories.is_empty());
    let swapped = h.run(&frame(2, vec![car(1, 2, 0.3), car(4, 1, f64::NAN)])).unwrap();
    assert_eq!(swapped.stories[0].cars(), ["4"]);
}
"##;

const CAR_LIB: &str = r##"//! `{{name}}`: a car model. Called once per car and window; returns
//! metrics. This example reports each car's speed at the end of the window,
//! and stays quiet for cars in the pit lane.

use pitwall_plugin_sdk::{Car, CarModel, Context, Frame, Output, PluginResult};

#[derive(Default)]
pub struct {{Type}};

impl CarModel for {{Type}} {
    fn on_car(&mut self, car: &Car<'_>, _frame: &Frame<'_>, _ctx: &mut Context, out: &mut Output) -> PluginResult {
        if let Some(speed) = car.speed_kmh().filter(|_| !car.in_pit()) {
            out.metric(car.number(), "speed_kmh", f64::from(speed), "km/h")?;
        }
        Ok(())
    }
}

pitwall_plugin_sdk::export_plugin!({{Type}}, name = "{{name}}", version = "0.1.0", kind = car_model);
"##;

const CAR_TEST: &str = r##"use pitwall_plugin_sdk::testing::{Harness, car, frame};
use {{crate}}::{{Type}};

#[test]
fn one_metric_per_car_on_track() {
    let mut h = Harness::<{{Type}}>::new();
    let mut f = frame(0, vec![car(1, 1, f64::NAN), car(4, 2, 0.8)]);
    f.cars[0].speed_kmh = 250.0;
    f.cars[1].in_pit = true;
    let r = h.run(&f).unwrap();
    assert_eq!(r.metrics.len(), 1);
    assert_eq!((r.metrics[0].car(), r.metrics[0].value()), ("1", 250.0));
}
"##;

const PAIR_LIB: &str = r##"//! `{{name}}`: a pair model. Called once per pair of cars next to each other
//! in the running order (attacker behind, defender ahead); returns
//! predictions. This example: the closer the attacker, the likelier a pass,
//! with the threshold from the model parameters (JSON `{"within_s": 1.0}`).

use pitwall_plugin_sdk::{Context, Frame, Output, Pair, PairModel, PluginResult};

#[derive(Default)]
pub struct {{Type}};

impl PairModel for {{Type}} {
    fn on_pair(&mut self, pair: &Pair<'_>, _frame: &Frame<'_>, ctx: &mut Context, out: &mut Output) -> PluginResult {
        let within = ctx
            .params_json::<pitwall_plugin_sdk::serde_json::Value>()?
            .and_then(|p| p.get("within_s")?.as_f64())
            .unwrap_or(1.0);
        let Some(gap) = pair.interval_s().filter(|g| *g < within) else {
            return Ok(());
        };
        let closeness = 1.0 - gap / within;
        out.prediction("p_overtake", pair.attacker.number(), pair.defender.number())
            .probability(0.5 * closeness)
            .horizon_laps(1)
            .contribution("closeness", closeness)
            .emit()?;
        Ok(())
    }
}

pitwall_plugin_sdk::export_plugin!({{Type}}, name = "{{name}}", version = "0.1.0", kind = pair_model);
"##;

const PAIR_TEST: &str = r##"use pitwall_plugin_sdk::testing::{Harness, car, frame};
use {{crate}}::{{Type}};

#[test]
fn close_pairs_get_a_prediction() {
    let mut h = Harness::<{{Type}}>::new();
    let f = frame(0, vec![car(1, 1, f64::NAN), car(4, 2, 0.5), car(16, 3, 3.0)]);
    let r = h.run(&f).unwrap();
    assert_eq!(r.predictions.len(), 1);
    assert_eq!(r.predictions[0].cars().attacker, "4");
    assert!((r.predictions[0].probability() - 0.25).abs() < 1e-12);
    h.set_params(br#"{"within_s": 4.0}"#.to_vec());
    assert_eq!(h.run(&f).unwrap().predictions.len(), 2);
}
"##;

#[cfg(test)]
mod tests {
    use super::*;

    fn sdk_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../plugin-sdk")
    }

    #[test]
    fn names_and_kinds() {
        assert_eq!(type_name("gap-watch"), "GapWatch");
        assert_eq!(type_name("x2-model"), "X2Model");
        assert_eq!("pair".parse::<ScaffoldKind>(), Ok(ScaffoldKind::Pair));
        assert!("fuel".parse::<ScaffoldKind>().is_err());
        let tmp = tempfile::tempdir().unwrap();
        let sdk = SdkSource::Path(sdk_dir());
        assert!(scaffold("Bad_Name", ScaffoldKind::Story, tmp.path(), &sdk).is_err());
        scaffold("twice", ScaffoldKind::Story, tmp.path(), &sdk).unwrap();
        let err = scaffold("twice", ScaffoldKind::Car, tmp.path(), &sdk).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        let v = scaffold(
            "by-version",
            ScaffoldKind::Car,
            tmp.path(),
            &SdkSource::Version("0.1".into()),
        )
        .unwrap();
        let manifest = std::fs::read_to_string(v.join("Cargo.toml")).unwrap();
        assert!(
            manifest.contains("pitwall-plugin-sdk = \"0.1\""),
            "{manifest}"
        );
    }

    /// Generates one crate of each kind and runs its own tests with cargo
    /// (sharing this workspace's target dir, so the SDK is not rebuilt).
    #[test]
    fn generated_crates_build_and_pass_their_tests() {
        let tmp = tempfile::tempdir().unwrap();
        let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/scaffold-test");
        for (name, kind) in [
            ("my-story", ScaffoldKind::Story),
            ("my-car", ScaffoldKind::Car),
            ("my-pair", ScaffoldKind::Pair),
        ] {
            let dir = scaffold(name, kind, tmp.path(), &SdkSource::Path(sdk_dir())).unwrap();
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let out = std::process::Command::new(cargo)
                .arg("test")
                .arg("--quiet")
                .current_dir(&dir)
                .env("CARGO_TARGET_DIR", &target)
                .env_remove("RUSTFLAGS")
                .env_remove("CARGO_ENCODED_RUSTFLAGS")
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{name}: cargo test failed\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}
