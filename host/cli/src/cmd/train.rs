//! `pitwall train overtake --data DIR...`: fits the overtake model (experts and
//! stacker, and the baseline `pitwall eval` compares with) on recorded races and
//! writes the model-parameters file the `overtake` plugin loads — the same file
//! a running replay can hot-swap (`NAME.params.json` in a watched plugin folder).

use std::path::PathBuf;

use anyhow::Context;
use pitwall_eval::fit::{FitOptions, fit};
use pitwall_eval::overtake::SampleSpec;
use pitwall_eval::race::race_samples;

#[derive(clap::Args, Debug)]
pub struct TrainArgs {
    #[command(subcommand)]
    pub model: TrainModel,
}

#[derive(clap::Subcommand, Debug)]
pub enum TrainModel {
    /// The overtake mixture of experts.
    Overtake(TrainOvertakeArgs),
}

#[derive(clap::Args, Debug)]
pub struct TrainOvertakeArgs {
    /// Session folders to train on (OpenF1 with positions or timing tables;
    /// each needs `openf1_overtakes.csv`, the ground truth). Repeat the flag.
    #[arg(long, required = true)]
    pub data: Vec<PathBuf>,
    /// Where to write the model (JSON), e.g. `overtake.params.json`.
    #[arg(long)]
    pub out: PathBuf,
    /// A pass within this many laps is a positive label.
    #[arg(long, default_value_t = 3)]
    pub horizon_laps: u16,
    /// Pairs closer than this are battles (sampled and predicted), seconds.
    #[arg(long, default_value_t = 2.0)]
    pub battle_gap_s: f64,
    /// L2 penalty on the standardised features.
    #[arg(long, default_value_t = FitOptions::default().alpha)]
    pub alpha: f64,
    /// Version written into the file (default: from the races and the settings).
    #[arg(long)]
    pub version: Option<String>,
}

pub fn run(args: &TrainArgs) -> anyhow::Result<()> {
    match &args.model {
        TrainModel::Overtake(a) => overtake(a),
    }
}

fn overtake(a: &TrainOvertakeArgs) -> anyhow::Result<()> {
    if a.horizon_laps == 0 {
        anyhow::bail!("--horizon-laps must be at least 1");
    }
    if !(a.battle_gap_s.is_finite() && a.battle_gap_s > 0.0) {
        anyhow::bail!("--battle-gap-s must be > 0");
    }
    let spec = SampleSpec {
        horizon_laps: a.horizon_laps,
        battle_gap_s: a.battle_gap_s,
    };
    let mut samples = Vec::new();
    let mut races = Vec::new();
    for dir in &a.data {
        let s = race_samples(dir, spec).with_context(|| format!("reading {}", dir.display()))?;
        let pos = s.iter().filter(|s| s.label).count();
        eprintln!(
            "{}: {} samples (one per lap per battling pair), {pos} passes within {} laps",
            dir.display(),
            s.len(),
            a.horizon_laps
        );
        races.push(dir.file_name().map_or_else(
            || dir.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        ));
        samples.extend(s);
    }
    let version = a.version.clone().unwrap_or_else(|| {
        format!(
            "overtake-moe/h{}/g{}/a{}/{}",
            a.horizon_laps,
            a.battle_gap_s,
            a.alpha,
            races.join("+")
        )
    });
    let opts = FitOptions {
        alpha: a.alpha,
        ..FitOptions::default()
    };
    let model = fit(&samples, &races, spec, opts, &version)?;
    model.validate().map_err(anyhow::Error::msg)?;
    let json = serde_json::to_string_pretty(&model)?;
    std::fs::write(&a.out, json + "\n").with_context(|| format!("writing {}", a.out.display()))?;
    eprintln!(
        "wrote {} ({} samples, {} passes; experts: {})",
        a.out.display(),
        model.training.samples,
        model.training.positives,
        model
            .experts
            .iter()
            .map(|e| format!("{} ×{:.2}", e.name, e.weight))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}
