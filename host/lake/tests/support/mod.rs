//! Shared by the lake tests: the bundled races as frames (replayed once per
//! test binary) and a Parquet reader that owns nothing of the writer's code.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field;
use pitwall_plugin_sdk::frame::RaceFrameData;

/// `data/NAME` of the workspace.
pub fn data_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../data")
        .join(name)
}

/// Every frame of a bundled race, as `pitwall replay --frames-out` and
/// `pitwall export parquet` build them (`race_frames`, 1 s windows).
fn replay(name: &str) -> Vec<RaceFrameData> {
    pitwall_race::session::race_frames(&data_dir(name), 1000)
        .unwrap_or_else(|e| panic!("replaying {name}: {e}"))
}

/// `data/2024-austria-race` (OpenF1 positions: track state, DRS, distances).
pub fn austria() -> &'static [RaceFrameData] {
    static F: OnceLock<Vec<RaceFrameData>> = OnceLock::new();
    F.get_or_init(|| replay("2024-austria-race"))
}

/// `data/2024-bahrain-race` (OpenF1 timing tables only).
pub fn bahrain() -> &'static [RaceFrameData] {
    static F: OnceLock<Vec<RaceFrameData>> = OnceLock::new();
    F.get_or_init(|| replay("2024-bahrain-race"))
}

/// One row read back: column name to value, in file order.
pub type Row = Vec<(String, Field)>;

/// Every row of a Parquet file, through the parquet crate's record reader.
pub fn read_rows(path: &Path) -> Vec<Row> {
    let reader = SerializedFileReader::new(File::open(path).unwrap()).unwrap();
    reader
        .get_row_iter(None)
        .unwrap()
        .map(|r| {
            r.unwrap()
                .get_column_iter()
                .map(|(n, f)| (n.clone(), f.clone()))
                .collect()
        })
        .collect()
}

/// Rows per row group of a Parquet file.
pub fn row_group_sizes(path: &Path) -> Vec<i64> {
    let reader = SerializedFileReader::new(File::open(path).unwrap()).unwrap();
    reader
        .metadata()
        .row_groups()
        .iter()
        .map(|g| g.num_rows())
        .collect()
}

/// `name -> (physical type, logical type, nullable)` of every column.
pub fn schema(path: &Path) -> BTreeMap<String, (String, String, bool)> {
    let reader = SerializedFileReader::new(File::open(path).unwrap()).unwrap();
    let descr = reader.metadata().file_metadata().schema_descr_ptr();
    descr
        .columns()
        .iter()
        .map(|c| {
            (
                c.name().to_string(),
                (
                    format!("{:?}", c.physical_type()),
                    format!("{:?}", c.logical_type_ref()),
                    c.self_type().is_optional(),
                ),
            )
        })
        .collect()
}

/// Column names in file order.
pub fn column_names(path: &Path) -> Vec<String> {
    let reader = SerializedFileReader::new(File::open(path).unwrap()).unwrap();
    let descr = reader.metadata().file_metadata().schema_descr_ptr();
    descr
        .columns()
        .iter()
        .map(|c| c.name().to_string())
        .collect()
}

/// The value of `name` in `row`.
pub fn get<'a>(row: &'a Row, name: &str) -> &'a Field {
    &row.iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no column {name}"))
        .1
}
