//! `pitwall eval --data DIR [--params FILE] [--json]`: replays a recorded race
//! (any folder `pitwall replay` reads that has OpenF1's overtakes table,
//! including a timing-only race) through the race-intelligence plugins as WASM,
//! and reports the overtake model against its baseline (AUC with a bootstrap
//! interval over pairs, Brier score, calibration; all samples and the hard
//! slice of similar tyre ages) and the stories' recall and precision against
//! the race's overtakes, pit stops and SC/VSC periods.

use std::path::PathBuf;

use anyhow::Context;
use pitwall_eval::overtake::BinaryReport;
use pitwall_eval::race::{Comparison, RaceEvaluation, evaluate_race};
use pitwall_eval::stories::CategoryReport;

#[derive(clap::Args, Debug)]
pub struct EvalArgs {
    /// The race's session folder.
    #[arg(long)]
    pub data: PathBuf,
    /// The overtake model (a `pitwall train overtake` file); default: the model
    /// bundled with the plugin. Evaluate on a race the model was not trained on.
    #[arg(long)]
    pub params: Option<PathBuf>,
    /// Print JSON (keys `overtake.model.auc`, `overtake.model.brier`, ...) instead of tables.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &EvalArgs) -> anyhow::Result<()> {
    let params = match &args.params {
        Some(p) => Some(std::fs::read(p).with_context(|| format!("reading {}", p.display()))?),
        None => None,
    };
    let e = evaluate_race(
        &args.data,
        params.as_deref(),
        pitwall_plugins_bundle::plugin_dir(),
    )
    .with_context(|| format!("evaluating {}", args.data.display()))?;
    if e.trained_on.contains(&e.race) {
        eprintln!(
            "warning: the model was trained on {} itself: these figures are in-sample",
            e.race
        );
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&e)?);
    } else {
        print_tables(&e);
    }
    Ok(())
}

fn f3(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.3}")
    } else {
        "-".into()
    }
}

fn row(name: &str, r: &BinaryReport) -> String {
    format!(
        "  {name:<9} {:>7} {:>9} {:>6} [{} – {}] {:>7}",
        r.samples,
        r.positives,
        f3(r.auc),
        f3(r.auc_ci.0),
        f3(r.auc_ci.1),
        f3(r.brier)
    )
}

fn comparison(title: &str, c: &Comparison) {
    println!("{title}");
    println!(
        "  {:<9} {:>7} {:>9} {:>6}  95% CI (pairs)  {:>7}",
        "", "samples", "passes", "AUC", "Brier"
    );
    println!("{}", row("model", &c.model));
    println!("{}", row("baseline", &c.baseline));
}

fn category(name: &str, c: &CategoryReport) -> String {
    let pct = |x: Option<f64>| x.map_or("-".into(), |v| format!("{:.1} %", v * 100.0));
    format!(
        "  {name:<16} {:>6} {:>9} {:>9} {:>8} {:>10}",
        c.truth,
        c.recalled,
        pct(c.recall),
        c.stories,
        pct(c.precision)
    )
}

fn print_tables(e: &RaceEvaluation) {
    println!(
        "{}: {} frames; overtake model {} (trained on {})",
        e.race,
        e.frames,
        e.model_version,
        if e.trained_on.is_empty() {
            "-".into()
        } else {
            e.trained_on.join(", ")
        }
    );
    println!();
    comparison(
        "overtake within the horizon, one sample per lap per battling pair from lap 2:",
        &e.overtake,
    );
    comparison(
        "hard slice (tyre ages within 5 laps):",
        &e.overtake_hard_slice,
    );
    println!("calibration (model): bin, samples, mean predicted, observed");
    for b in &e.overtake.model.calibration {
        println!(
            "  [{:.1}, {:.1})  {:>5}  {:.3}  {:.3}",
            b.lo, b.hi, b.samples, b.mean_predicted, b.observed_rate
        );
    }
    println!();
    println!("stories vs the OpenF1 tables:");
    println!(
        "  {:<16} {:>6} {:>9} {:>9} {:>8} {:>10}",
        "", "truth", "recalled", "recall", "stories", "precision"
    );
    println!("{}", category("on-track passes", &e.stories.overtakes));
    println!("{}", category("pit stops", &e.stories.pit_stops));
    println!("{}", category("SC/VSC periods", &e.stories.sc_vsc));
    println!();
    println!("plugin time per frame (WASM, one set per plugin):");
    for t in &e.plugin_time {
        println!(
            "  {:<10} {:>8.1} µs  ({} calls)",
            t.plugin, t.mean_us, t.frames
        );
    }
}
