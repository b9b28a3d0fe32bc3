//! Fits the lap-time model to the 2024 Bahrain GP and evaluates it on the 2024
//! Austrian GP, which the fit never sees; writes `gpu/models/lap_model.json`.
//!
//! ```sh
//! cargo run -p pitwall-gpu --example fit_lap_model -- --data ../shared/data [--out gpu/models/lap_model.json]
//! ```
//!
//! * Fit race, 2024 Bahrain (session 9472): OpenF1 laps
//!   (`2024_bahrain_race_timing/rel_lap_data.json`), stints and race control
//!   from `openf1_multi_session_2023_2025/`. Pit in/out laps come from the
//!   stint boundaries (the reshaped laps lack `is_pit_out_lap`).
//! * Held-out race, 2024 Austria (session 9550): it has no OpenF1 laps, so lap
//!   times are the start/finish crossing times that `pitwall-race`'s track
//!   model derives from the 4 Hz positions of all 20 cars (interpolated
//!   between samples), with the folder's stints and race control.
//! * Stint life per compound: the 90th percentile of stint lengths (laps run
//!   on a set, including its age at the start) over all 2024 races in the
//!   multi-session stints table.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use pitwall_gpu::fit::{self, LapRow};
use pitwall_gpu::model::{Compound, LapModel};
use pitwall_race::openf1::{self, Stint};
use pitwall_race::timing;
use pitwall_race::track::{TrackConfig, TrackModel, TrackSample};

const TRAFFIC_GAP_S: f64 = 1.0;
/// A stated prior (not identifiable from these races; see `model.rs`).
const CLIFF_S_PER_LAP: f64 = 0.1;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn main() -> Res<()> {
    let mut data = PathBuf::from("../shared/data");
    let mut out = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/models/lap_model.json"
    ));
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--data" => data = args.next().ok_or("--data needs a directory")?.into(),
            "--out" => out = args.next().ok_or("--out needs a file")?.into(),
            other => {
                return Err(format!(
                    "unknown argument {other:?} (expected --data DIR, --out FILE)"
                )
                .into());
            }
        }
    }
    let f1 = data.join("f1");
    let multi = f1.join("openf1_multi_session_2023_2025");

    // ---- fit race: 2024 Bahrain -------------------------------------------
    let all_stints = openf1::read_stints(multi.join("stints.csv"))?;
    let all_rc = openf1::read_race_control(multi.join("race_control.csv"))?;
    let bahrain_laps =
        timing::read_rel_lap_data(f1.join("2024_bahrain_race_timing/rel_lap_data.json"))?;
    let stints_9472: Vec<Stint> = all_stints
        .iter()
        .filter(|s| s.session_key == Some(9472))
        .cloned()
        .collect();
    let neutral_9472 = neutralised_laps(all_rc.iter().filter(|m| m.session_key == Some(9472)));
    // Lap start times of every car → gap to the car ahead at the line.
    let mut starts: Vec<(i64, u32, u32)> = bahrain_laps
        .iter()
        .filter_map(|l| Some((l.date_start?, l.driver_number, l.lap_number)))
        .collect();
    starts.sort();
    let gaps = gaps_ahead(&starts);
    let fit_rows: Vec<LapRow> = bahrain_laps
        .iter()
        .filter_map(|l| {
            let t = l.lap_duration?;
            row(
                l.driver_number,
                l.lap_number,
                t,
                &stints_9472,
                &neutral_9472,
                gaps.get(&(l.driver_number, l.lap_number)).copied(),
            )
        })
        .collect();
    println!(
        "fit race 2024 Bahrain: {} laps with compound and age",
        fit_rows.len()
    );
    let fitted = fit::fit(&fit_rows, TRAFFIC_GAP_S)?;
    let (pit_loss, stops) = fit::pit_loss(&fitted, &fit_rows, TRAFFIC_GAP_S)
        .ok_or("no pit stop pairs in the fit race")?;
    println!(
        "fitted on {} green racing laps ({} dropped as >3 sigma outliers), laps per compound S/M/H {:?}",
        fitted.laps_used, fitted.laps_dropped_as_outliers, fitted.laps_per_compound
    );

    // ---- stint life from all 2024 races ------------------------------------
    let sessions = std::fs::read_to_string(multi.join("sessions.csv"))?;
    let races: Vec<i64> = sessions
        .lines()
        .skip(1)
        .filter(|l| l.split(',').nth(6) == Some("Race"))
        .filter_map(|l| l.split(',').nth(1)?.parse().ok())
        .collect();
    let mut lengths: [Vec<u32>; 3] = Default::default();
    for s in all_stints
        .iter()
        .filter(|s| s.session_key.is_some_and(|k| races.contains(&k)))
    {
        if let (Some(c), Some(a), Some(b)) = (
            s.compound.as_deref().and_then(Compound::parse),
            s.lap_start,
            s.lap_end,
        ) && b >= a
        {
            lengths[c.index()].push(b - a + 1 + s.tyre_age_at_start.unwrap_or(0));
        }
    }
    let life = lengths.map(|mut v| {
        v.sort_unstable();
        v.get(v.len() * 9 / 10).map_or(30.0, |&x| f64::from(x))
    });
    println!(
        "stint life (p90 over {} 2024 races) S/M/H: {life:?}",
        races.len()
    );

    // A compound the fit race never ran on is not identified (2024 Bahrain:
    // no MEDIUM laps); it gets the mean of the fitted compounds, and the
    // source says so.
    let mut deg = fitted.deg_s_per_lap;
    let mut offset = fitted.compound_offset_s;
    let present: Vec<usize> = (0..3)
        .filter(|&c| fitted.laps_per_compound[c] > 0)
        .collect();
    let mut unfitted = vec![];
    for c in 0..3 {
        if fitted.laps_per_compound[c] == 0 && !present.is_empty() {
            deg[c] = present.iter().map(|&k| deg[k]).sum::<f64>() / present.len() as f64;
            offset[c] = present.iter().map(|&k| offset[k]).sum::<f64>() / present.len() as f64;
            unfitted.push(Compound::ALL[c]);
        }
    }
    if !unfitted.is_empty() {
        println!("not in the fit race, set to the mean of the others: {unfitted:?}");
    }
    let model = LapModel {
        source: "fitted on the 2024 Bahrain GP (OpenF1 laps, stints, race control; pitwall-race readers) by \
                 `cargo run -p pitwall-gpu --example fit_lap_model -- --data ../shared/data`; life = p90 stint \
                 length of 2024 races; cliff_s_per_lap is a prior"
            .to_string()
            + &if unfitted.is_empty() {
                String::new()
            } else {
                format!("; not in the fit race, mean of the fitted compounds: {unfitted:?}")
            },
        deg_s_per_lap: deg,
        compound_offset_s: offset,
        fuel_s_per_lap: fitted.fuel_s_per_lap,
        traffic_s: fitted.traffic_s,
        traffic_gap_s: TRAFFIC_GAP_S,
        noise_s: fitted.noise_s,
        life_laps: life,
        cliff_s_per_lap: CLIFF_S_PER_LAP,
        pit_loss_s: pit_loss,
        fit_base_s: fitted.base_s.clone(),
    };
    println!(
        "model: deg S/M/H {:.4?} s/lap, offset S/M/H {:.3?} s, fuel {:.4} s/lap, traffic {:.3} s, noise {:.3} s, pit loss {:.1} s (median of {stops} stops)",
        model.deg_s_per_lap,
        model.compound_offset_s,
        model.fuel_s_per_lap,
        model.traffic_s,
        model.noise_s,
        model.pit_loss_s
    );

    // ---- held-out race: 2024 Austria ---------------------------------------
    let aut = f1.join("2024_austria_race");
    let held_out = austria_rows(&aut)?;
    println!(
        "held-out race 2024 Austria: {} laps from the track model",
        held_out.len()
    );
    let report = fit::evaluate_online(&model, &held_out, 5, 1.0);
    println!("held-out next-lap prediction (green racing laps, online pace): {report:#?}");
    let in_sample = fit::evaluate_online(&model, &fit_rows, 5, 1.0);
    println!(
        "same online predictor replayed on the fit race (in-sample): rmse {:.3} s over {} laps",
        in_sample.rmse_s, in_sample.laps
    );

    let json = serde_json::to_string_pretty(&model)?;
    std::fs::write(&out, json + "\n")?;
    println!("wrote {}", out.display());
    Ok(())
}

/// Laps under SC/VSC: from each DEPLOYED message's lap to the matching
/// ENDING/IN THIS LAP message's lap, inclusive.
fn neutralised_laps<'a>(msgs: impl Iterator<Item = &'a openf1::RaceControlMessage>) -> Vec<u32> {
    let mut msgs: Vec<_> = msgs.filter(|m| m.category == "SafetyCar").collect();
    msgs.sort_by_key(|m| m.ts);
    let mut laps = vec![];
    let mut from = None;
    for m in msgs {
        let Some(l) = m.lap_number else { continue };
        let text = m.message.to_ascii_uppercase();
        if text.contains("DEPLOYED") {
            from.get_or_insert(l);
        } else if (text.contains("ENDING") || text.contains("IN THIS LAP"))
            && let Some(f) = from.take()
        {
            laps.extend(f..=l);
        }
    }
    laps
}

/// For lap-start events `(ts, driver, lap)` in time order: the time since the
/// previous event of another car (the car ahead on track at the line).
fn gaps_ahead(starts: &[(i64, u32, u32)]) -> BTreeMap<(u32, u32), f64> {
    let mut out = BTreeMap::new();
    for (k, &(ts, d, lap)) in starts.iter().enumerate() {
        if let Some(prev) = starts[..k].iter().rev().find(|p| p.1 != d) {
            out.insert((d, lap), (ts - prev.0) as f64 / 1000.0);
        }
    }
    out
}

fn row(
    driver: u32,
    lap: u32,
    lap_s: f64,
    stints: &[Stint],
    neutral: &[u32],
    gap: Option<f64>,
) -> Option<LapRow> {
    let mine: Vec<&Stint> = stints
        .iter()
        .filter(|s| s.driver_number == driver)
        .collect();
    let s = mine
        .iter()
        .find(|s| s.lap_start.is_some_and(|a| a <= lap) && s.lap_end.is_some_and(|b| lap <= b))?;
    let compound = Compound::parse(s.compound.as_deref()?)?;
    let start = s.lap_start?;
    let age = s.tyre_age_at_start.unwrap_or(0) + (lap - start);
    let has_next = mine.iter().any(|n| n.stint_number == s.stint_number + 1);
    Some(LapRow {
        driver,
        lap,
        lap_s,
        compound,
        age,
        gap_ahead_s: gap,
        green: !neutral.contains(&lap),
        pit_in: has_next && s.lap_end == Some(lap),
        pit_out: s.stint_number > 1 && start == lap,
    })
}

fn austria_rows(dir: &Path) -> Res<Vec<LapRow>> {
    let mut samples = vec![];
    for entry in std::fs::read_dir(dir.join("location"))? {
        let p = entry?.path();
        if p.extension().is_some_and(|e| e == "csv") {
            samples.extend(
                openf1::read_location(&p)?
                    .iter()
                    .map(TrackSample::from_openf1),
            );
        }
    }
    samples.sort_by_key(|s| (s.ts_ms, s.car));
    let model = TrackModel::from_samples(&samples, TrackConfig::default())
        .ok_or("track model: no reference line")?;
    let stints = openf1::read_stints(dir.join("stints.csv"))?;
    let neutral =
        neutralised_laps(openf1::read_race_control(dir.join("openf1_race_control.csv"))?.iter());
    let cars: Vec<u32> = {
        let mut c: Vec<u32> = samples.iter().map(|s| s.car).collect();
        c.sort_unstable();
        c.dedup();
        c
    };
    let mut crossings = vec![];
    for &car in &cars {
        for lap in 0..=80u32 {
            if let Some(t) = model.crossing_time_ms(car, lap) {
                crossings.push((t, car, lap + 1)); // crossing `lap` starts lap `lap + 1`
            }
        }
    }
    crossings.sort();
    let gaps = gaps_ahead(&crossings);
    let at: BTreeMap<(u32, u32), i64> = crossings.iter().map(|&(t, c, l)| ((c, l), t)).collect();
    let mut rows = vec![];
    for (&(car, lap), &t0) in &at {
        if let Some(&t1) = at.get(&(car, lap + 1))
            && let Some(r) = row(
                car,
                lap,
                (t1 - t0) as f64 / 1000.0,
                &stints,
                &neutral,
                gaps.get(&(car, lap)).copied(),
            )
        {
            rows.push(r);
        }
    }
    Ok(rows)
}
