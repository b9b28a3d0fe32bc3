//! OpenF1 CSV: the `location` and `car_data` telemetry tables as an engine
//! [`Source`], and the event tables (`race_control`, `pit`, `stints`, `drivers`,
//! `session_result`, `overtakes`) as typed records and [`BroadcastEvent`]s.
//!
//! In: CSV files whose header holds OpenF1 API field names. Columns are matched by
//! header name, never by position (the Austria `location` files write
//! `date,session_key,z,x,driver_number,meeting_key,y`). Integers may be written as
//! floats (`1.0`, pandas), booleans as `True`/`False`, missing values as an empty
//! cell, `None`, `null` or `nan`.
//!
//! Out: records whose event time is milliseconds since the Unix epoch (UTC), as the
//! engine wants it. A line that cannot be read is a [`RaceDataError::Malformed`]
//! naming the file and its 1-based line (the header is line 1); nothing here panics
//! on bad input.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use pitwall_engine::broadcast::{BroadcastEvent, EventKind};
use pitwall_engine::schema::{ChannelSpec, ChannelType, KeySpec, KeyType, Schema, TimeSpec};
use pitwall_engine::source::{OnError, Source, SourceOptions};
use pitwall_engine::{EventTime, RowChunk, SourceError, TimeUnit};

use crate::error::RaceDataError;
use crate::time::parse_utc_ms;
use crate::timing::Gap;

// ---------------------------------------------------------------------------
// CSV plumbing (shared with `timing`)
// ---------------------------------------------------------------------------

/// Splits one CSV line into cells. Quotes (`"a,b"`, `""` for a literal quote) are
/// honoured; a quoted field cannot span lines (these tables never need it). A line
/// without quotes is split without copying.
pub(crate) fn split_csv_line(line: &str) -> Result<Vec<Cow<'_, str>>, String> {
    if !line.contains('"') {
        return Ok(line.split(',').map(Cow::Borrowed).collect());
    }
    let mut cells = Vec::new();
    let mut cur = String::new();
    let mut chars = line.chars().peekable();
    let mut in_quotes = false;
    let mut at_cell_start = true;
    while let Some(c) = chars.next() {
        if in_quotes {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    cur.push('"');
                } else {
                    in_quotes = false;
                    match chars.peek() {
                        None | Some(',') => {}
                        Some(_) => return Err("text after a closing quote".into()),
                    }
                }
            } else {
                cur.push(c);
            }
        } else if c == ',' {
            cells.push(Cow::Owned(std::mem::take(&mut cur)));
            at_cell_start = true;
            continue;
        } else if c == '"' && at_cell_start {
            in_quotes = true;
        } else if c == '"' {
            return Err("a quote inside an unquoted cell".into());
        } else {
            cur.push(c);
        }
        at_cell_start = false;
    }
    if in_quotes {
        return Err("unterminated quoted cell".into());
    }
    cells.push(Cow::Owned(cur));
    Ok(cells)
}

/// A CSV header: column names in file order.
pub(crate) struct Header {
    path: PathBuf,
    names: Vec<String>,
}

impl Header {
    /// Index of a column, if the file has it.
    pub(crate) fn opt(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }

    /// Index of a column the table cannot do without (error at line 1).
    pub(crate) fn req(&self, name: &str) -> Result<usize, RaceDataError> {
        self.opt(name).ok_or_else(|| {
            RaceDataError::malformed(
                &self.path,
                1,
                format!(
                    "header has no column {name:?} (columns: {})",
                    self.names.join(",")
                ),
            )
        })
    }
}

/// Text that means "no value" in OpenF1 dumps (pandas writes `None`/`nan`).
pub(crate) fn is_null_text(s: &str) -> bool {
    s.is_empty()
        || s.eq_ignore_ascii_case("none")
        || s.eq_ignore_ascii_case("null")
        || s.eq_ignore_ascii_case("nan")
}

/// Parses a whole number that may be written as a float (`3`, `3.0`); `3.5` is refused.
pub(crate) fn parse_int_text(s: &str) -> Option<i64> {
    if let Ok(v) = s.parse::<i64>() {
        return Some(v);
    }
    let f: f64 = s.parse().ok()?;
    (f.is_finite() && f.fract() == 0.0 && f.abs() < 9.0e15).then_some(f as i64)
}

/// Parses `True`/`False` (any case) or `1`/`0`/`1.0`/`0.0`.
pub(crate) fn parse_bool_text(s: &str) -> Option<bool> {
    if s.eq_ignore_ascii_case("true") {
        return Some(true);
    }
    if s.eq_ignore_ascii_case("false") {
        return Some(false);
    }
    match parse_int_text(s)? {
        0 => Some(false),
        1 => Some(true),
        _ => None,
    }
}

/// One data line of a CSV file, with typed accessors that turn a bad cell into a
/// [`RaceDataError::Malformed`] at this line.
pub(crate) struct Row<'a> {
    pub(crate) path: &'a Path,
    pub(crate) line: u64,
    cells: Vec<Cow<'a, str>>,
}

impl Row<'_> {
    pub(crate) fn err(&self, reason: impl Into<String>) -> RaceDataError {
        RaceDataError::malformed(self.path, self.line, reason)
    }

    /// The trimmed cell, `None` when the column is absent or the cell is null text.
    pub(crate) fn cell(&self, col: Option<usize>) -> Option<&str> {
        let s = self.cells.get(col?)?.trim();
        (!is_null_text(s)).then_some(s)
    }

    pub(crate) fn text(&self, col: Option<usize>) -> Option<String> {
        self.cell(col).map(str::to_string)
    }

    pub(crate) fn opt_f64(
        &self,
        col: Option<usize>,
        name: &str,
    ) -> Result<Option<f64>, RaceDataError> {
        match self.cell(col) {
            None => Ok(None),
            Some(s) => match s.parse::<f64>() {
                Ok(v) if v.is_finite() => Ok(Some(v)),
                _ => Err(self.err(format!("{name}: {s:?} is not a number"))),
            },
        }
    }

    pub(crate) fn f64(&self, col: usize, name: &str) -> Result<f64, RaceDataError> {
        self.opt_f64(Some(col), name)?
            .ok_or_else(|| self.err(format!("{name}: missing value")))
    }

    pub(crate) fn opt_int(
        &self,
        col: Option<usize>,
        name: &str,
    ) -> Result<Option<i64>, RaceDataError> {
        match self.cell(col) {
            None => Ok(None),
            Some(s) => parse_int_text(s)
                .map(Some)
                .ok_or_else(|| self.err(format!("{name}: {s:?} is not a whole number"))),
        }
    }

    pub(crate) fn opt_u32(
        &self,
        col: Option<usize>,
        name: &str,
    ) -> Result<Option<u32>, RaceDataError> {
        match self.opt_int(col, name)? {
            None => Ok(None),
            Some(v) => u32::try_from(v)
                .map(Some)
                .map_err(|_| self.err(format!("{name}: {v} is out of range"))),
        }
    }

    pub(crate) fn u32(&self, col: usize, name: &str) -> Result<u32, RaceDataError> {
        self.opt_u32(Some(col), name)?
            .ok_or_else(|| self.err(format!("{name}: missing value")))
    }

    pub(crate) fn opt_bool(
        &self,
        col: Option<usize>,
        name: &str,
    ) -> Result<Option<bool>, RaceDataError> {
        match self.cell(col) {
            None => Ok(None),
            Some(s) => parse_bool_text(s)
                .map(Some)
                .ok_or_else(|| self.err(format!("{name}: {s:?} is not a boolean"))),
        }
    }

    pub(crate) fn opt_ts(
        &self,
        col: Option<usize>,
        name: &str,
    ) -> Result<Option<EventTime>, RaceDataError> {
        match self.cell(col) {
            None => Ok(None),
            Some(s) => parse_utc_ms(s)
                .map(Some)
                .ok_or_else(|| self.err(format!("{name}: {s:?} is not an ISO-8601 timestamp"))),
        }
    }

    pub(crate) fn ts(&self, col: usize, name: &str) -> Result<EventTime, RaceDataError> {
        self.opt_ts(Some(col), name)?
            .ok_or_else(|| self.err(format!("{name}: missing value")))
    }

    pub(crate) fn gap(&self, col: Option<usize>, name: &str) -> Result<Gap, RaceDataError> {
        match self.cell(col) {
            None => Ok(Gap::None),
            Some(s) => Gap::parse(s).ok_or_else(|| self.err(format!("{name}: {s:?} is not a gap"))),
        }
    }
}

/// Reads a CSV text: `resolve` maps the header to column indexes once, `parse`
/// turns each non-blank data line into a record. A leading BOM and `\r\n` line
/// ends are accepted; a line whose cell count differs from the header's is malformed.
pub(crate) fn parse_csv<C, T>(
    path: &Path,
    text: &str,
    resolve: impl FnOnce(&Header) -> Result<C, RaceDataError>,
    mut parse: impl FnMut(&C, &Row<'_>) -> Result<T, RaceDataError>,
) -> Result<Vec<T>, RaceDataError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text.lines().enumerate();
    let header_line = loop {
        match lines.next() {
            None => {
                return Err(RaceDataError::Missing {
                    path: path.to_path_buf(),
                    reason: "empty file: no CSV header".into(),
                });
            }
            Some((_, l)) if l.trim().is_empty() => continue,
            Some((i, l)) => break (i, l),
        }
    };
    let names = split_csv_line(header_line.1)
        .map_err(|r| RaceDataError::malformed(path, header_line.0 as u64 + 1, r))?
        .into_iter()
        .map(|c| c.trim().to_string())
        .collect::<Vec<_>>();
    let header = Header {
        path: path.to_path_buf(),
        names,
    };
    let cols = resolve(&header)?;
    let mut out = Vec::new();
    for (i, l) in lines {
        if l.trim().is_empty() {
            continue;
        }
        let line = i as u64 + 1;
        let cells = split_csv_line(l).map_err(|r| RaceDataError::malformed(path, line, r))?;
        if cells.len() != header.names.len() {
            return Err(RaceDataError::malformed(
                path,
                line,
                format!(
                    "{} cells, the header has {} columns",
                    cells.len(),
                    header.names.len()
                ),
            ));
        }
        out.push(parse(&cols, &Row { path, line, cells })?);
    }
    Ok(out)
}

/// Reads a text file; a `.gz` file is decompressed (the bundled race is stored so).
pub(crate) fn read_text(path: &Path) -> Result<String, RaceDataError> {
    let io = |source| RaceDataError::Io {
        path: path.to_path_buf(),
        source,
    };
    if path.extension().is_some_and(|e| e == "gz") {
        use std::io::Read;
        let file = std::fs::File::open(path).map_err(io)?;
        let mut text = String::new();
        flate2::read::GzDecoder::new(std::io::BufReader::new(file))
            .read_to_string(&mut text)
            .map_err(io)?;
        return Ok(text);
    }
    std::fs::read_to_string(path).map_err(io)
}

// ---------------------------------------------------------------------------
// Telemetry: location and car_data
// ---------------------------------------------------------------------------

/// One OpenF1 `/location` sample: the car's position in 1/10 m.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LocationSample {
    pub ts: EventTime,
    pub driver_number: u32,
    pub x: f64,
    pub y: f64,
    pub z: f64,
    /// 1-based line in the file.
    pub line: u64,
}

/// Parses an OpenF1 `location` CSV (`date, driver_number, x, y, z`, any order, other
/// columns ignored). All five are required.
pub fn location_from_csv_str(
    path: &Path,
    text: &str,
) -> Result<Vec<LocationSample>, RaceDataError> {
    parse_csv(
        path,
        text,
        |h| {
            Ok([
                h.req("date")?,
                h.req("driver_number")?,
                h.req("x")?,
                h.req("y")?,
                h.req("z")?,
            ])
        },
        |c, r| {
            Ok(LocationSample {
                ts: r.ts(c[0], "date")?,
                driver_number: r.u32(c[1], "driver_number")?,
                x: r.f64(c[2], "x")?,
                y: r.f64(c[3], "y")?,
                z: r.f64(c[4], "z")?,
                line: r.line,
            })
        },
    )
}

/// One OpenF1 `/car_data` sample. Channel values are `None` where the cell is empty.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CarDataSample {
    pub ts: EventTime,
    pub driver_number: u32,
    pub speed: Option<f64>,
    pub rpm: Option<f64>,
    /// `n_gear` in OpenF1.
    pub gear: Option<f64>,
    pub throttle: Option<f64>,
    pub brake: Option<f64>,
    pub drs: Option<f64>,
    pub line: u64,
}

/// Parses an OpenF1 `car_data` CSV (`date, driver_number, rpm, speed, n_gear,
/// throttle, brake, drs`, any order). `date` and `driver_number` are required; a
/// channel column may be absent or empty.
pub fn car_data_from_csv_str(path: &Path, text: &str) -> Result<Vec<CarDataSample>, RaceDataError> {
    parse_csv(
        path,
        text,
        |h| {
            Ok((
                h.req("date")?,
                h.req("driver_number")?,
                [
                    h.opt("speed"),
                    h.opt("rpm"),
                    h.opt("n_gear"),
                    h.opt("throttle"),
                    h.opt("brake"),
                    h.opt("drs"),
                ],
            ))
        },
        |(d, n, ch), r| {
            Ok(CarDataSample {
                ts: r.ts(*d, "date")?,
                driver_number: r.u32(*n, "driver_number")?,
                speed: r.opt_f64(ch[0], "speed")?,
                rpm: r.opt_f64(ch[1], "rpm")?,
                gear: r.opt_f64(ch[2], "n_gear")?,
                throttle: r.opt_f64(ch[3], "throttle")?,
                brake: r.opt_f64(ch[4], "brake")?,
                drs: r.opt_f64(ch[5], "drs")?,
                line: r.line,
            })
        },
    )
}

/// One merged row: which table and file it came from, and its values in schema
/// order (`x, y, z` then, with car data, `speed, rpm, gear, throttle, brake, drs`).
#[derive(Debug, Clone, Copy)]
struct MergedRow {
    ts: EventTime,
    car: u32,
    /// 0 = location, 1 = car_data (location first at equal (ts, car)).
    table: u8,
    file: u32,
    line: u64,
    vals: [f64; 9],
}

/// Options of [`OpenF1LocationSource`]: the engine's [`SourceOptions`] (only
/// `chunk_rows`, `projection` and `on_error` matter).
pub type OpenF1Options = SourceOptions;

/// OpenF1 `location` (and, when present, `car_data`) of one session as ONE
/// time-ordered engine [`Source`] across all cars.
///
/// Layout of `dir` (a session folder): `location/*.csv` (e.g. the per-driver
/// `location_driver_<N>.csv`) or `location.csv`; optionally `car_data/*.csv` or
/// `car_data.csv`. Each file may hold one or many drivers.
///
/// Order: rows are merged by `(ts, car number, table, file, line)` — a k-way merge
/// of the per-file runs (done as a stable sort of the runs, which is the same
/// result), so the stream is the same whatever the directory listing order.
/// Location and car-data samples are not aligned in time, so they are *not* joined:
/// a location row carries `x, y, z` and has the car channels missing (`NaN`), a
/// car-data row the reverse; with car data present every channel is optional.
///
/// Schema: time `ts_ms` (ms), key `car` (int), channels `x, y, z` (float, unit `dm`
/// = 1/10 m) and with car data `speed, rpm, gear, throttle, brake, drs`.
///
/// Position = rows handed out; [`RowChunk::lines`] holds the 1-based row number in
/// the merged stream (use [`OpenF1LocationSource::origin`] for file and line).
/// The files are read and merged at `open` (≈ 30 MB for a whole race).
pub struct OpenF1LocationSource {
    name: String,
    schema: Schema,
    files: Vec<PathBuf>,
    rows: Vec<MergedRow>,
    projection: Vec<bool>,
    chunk_rows: usize,
    next: usize,
    /// Malformed lines skipped at open (`OnError::Skip`), reported with the first chunk.
    skipped: u64,
    skipped_reported: bool,
}

/// The CSV files of a table in a session folder: `<dir>/<table>/*.csv` (sorted by
/// name) or `<dir>/<table>.csv` (also `openf1_<table>.csv`).
fn table_files(dir: &Path, table: &str) -> Result<Vec<PathBuf>, RaceDataError> {
    let sub = dir.join(table);
    if sub.is_dir() {
        let rd = std::fs::read_dir(&sub).map_err(|source| RaceDataError::Io {
            path: sub.clone(),
            source,
        })?;
        let mut files = Vec::new();
        for e in rd {
            let e = e.map_err(|source| RaceDataError::Io {
                path: sub.clone(),
                source,
            })?;
            let p = e.path();
            if p.extension().is_some_and(|x| x == "csv") {
                files.push(p);
            }
        }
        files.sort();
        return Ok(files);
    }
    Ok(table_file(dir, table).into_iter().collect())
}

/// `<dir>/openf1_<table>.csv` or `<dir>/<table>.csv` (or either gzipped), whichever exists.
pub(crate) fn table_file(dir: &Path, table: &str) -> Option<PathBuf> {
    [
        format!("openf1_{table}.csv"),
        format!("{table}.csv"),
        format!("openf1_{table}.csv.gz"),
        format!("{table}.csv.gz"),
    ]
    .into_iter()
    .map(|n| dir.join(n))
    .find(|p| p.is_file())
}

fn telemetry_schema(with_car_data: bool) -> Schema {
    let ch = |name: &str, ty: ChannelType, unit: &str, range: Option<(f64, f64)>| ChannelSpec {
        name: name.into(),
        ty,
        unit: Some(unit.into()),
        min: range.map(|r| r.0),
        max: range.map(|r| r.1),
        optional: with_car_data,
        sampling: None,
    };
    let mut channels = vec![
        ch("x", ChannelType::Float, "dm", None),
        ch("y", ChannelType::Float, "dm", None),
        ch("z", ChannelType::Float, "dm", None),
    ];
    if with_car_data {
        channels.extend([
            ch("speed", ChannelType::Float, "km/h", Some((0.0, 400.0))),
            ch("rpm", ChannelType::Float, "1/min", Some((0.0, 20000.0))),
            ch("gear", ChannelType::Int, "", Some((0.0, 8.0))),
            ch("throttle", ChannelType::Float, "%", Some((0.0, 104.0))),
            ch("brake", ChannelType::Float, "%", Some((0.0, 100.0))),
            ch("drs", ChannelType::Int, "code", Some((0.0, 14.0))),
        ]);
    }
    Schema {
        time: TimeSpec {
            name: "ts_ms".into(),
            unit: TimeUnit::Ms,
        },
        key: KeySpec {
            name: "car".into(),
            ty: KeyType::Int,
        },
        channels,
    }
}

/// Parses one file line by line with `parse_text`; under `OnError::Skip` a
/// malformed data line is dropped and counted instead of failing.
fn parse_file_lenient<T>(
    path: &Path,
    on_error: OnError,
    skipped: &mut u64,
    parse_text: fn(&Path, &str) -> Result<Vec<T>, RaceDataError>,
    set_line: fn(&mut T, u64),
) -> Result<Vec<T>, RaceDataError> {
    let text = read_text(path)?;
    match parse_text(path, &text) {
        Ok(v) => Ok(v),
        Err(e) if on_error == OnError::Fail => Err(e),
        Err(_) => {
            // Re-parse line by line, keeping the header, to drop only the bad lines.
            let mut lines = text
                .lines()
                .enumerate()
                .filter(|(_, l)| !l.trim().is_empty());
            let Some((h, header)) = lines.next() else {
                return parse_text(path, &text);
            };
            let mut out = Vec::new();
            for (i, l) in lines {
                let line = i as u64 + 1;
                match parse_text(path, &format!("{header}\n{l}")) {
                    Ok(v) => out.extend(v.into_iter().map(|mut s| {
                        set_line(&mut s, line);
                        s
                    })),
                    Err(RaceDataError::Malformed {
                        line: 1, reason, ..
                    }) => {
                        return Err(RaceDataError::malformed(path, h as u64 + 1, reason));
                    }
                    Err(e) => {
                        *skipped += 1;
                        if *skipped <= 5 {
                            tracing::warn!("skipping {}:{line}: {e}", path.display());
                        }
                    }
                }
            }
            Ok(out)
        }
    }
}

impl OpenF1LocationSource {
    /// Reads and merges the session's `location` (required) and `car_data`
    /// (optional) files. Errors: no location file ([`RaceDataError::Missing`]), an
    /// unreadable file, or (with `OnError::Fail`) a malformed line.
    pub fn open(dir: impl AsRef<Path>, opts: &OpenF1Options) -> Result<Self, RaceDataError> {
        let dir = dir.as_ref();
        let loc_files = table_files(dir, "location")?;
        if loc_files.is_empty() {
            return Err(RaceDataError::Missing {
                path: dir.to_path_buf(),
                reason: "no OpenF1 location files (location/*.csv or location.csv)".into(),
            });
        }
        let car_files = table_files(dir, "car_data")?;
        let with_car = !car_files.is_empty();
        let mut rows = Vec::new();
        let mut files = Vec::new();
        let mut skipped = 0;
        let nan = f64::NAN;
        for path in &loc_files {
            let f = files.len() as u32;
            let samples = parse_file_lenient(
                path,
                opts.on_error,
                &mut skipped,
                location_from_csv_str,
                |s, l| s.line = l,
            )?;
            rows.extend(samples.iter().map(|s| MergedRow {
                ts: s.ts,
                car: s.driver_number,
                table: 0,
                file: f,
                line: s.line,
                vals: [s.x, s.y, s.z, nan, nan, nan, nan, nan, nan],
            }));
            files.push(path.clone());
        }
        for path in &car_files {
            let f = files.len() as u32;
            let samples = parse_file_lenient(
                path,
                opts.on_error,
                &mut skipped,
                car_data_from_csv_str,
                |s, l| s.line = l,
            )?;
            let v = |o: Option<f64>| o.unwrap_or(f64::NAN);
            rows.extend(samples.iter().map(|s| MergedRow {
                ts: s.ts,
                car: s.driver_number,
                table: 1,
                file: f,
                line: s.line,
                vals: [
                    nan,
                    nan,
                    nan,
                    v(s.speed),
                    v(s.rpm),
                    v(s.gear),
                    v(s.throttle),
                    v(s.brake),
                    v(s.drs),
                ],
            }));
            files.push(path.clone());
        }
        rows.sort_by_key(|r| (r.ts, r.car, r.table, r.file, r.line));
        let schema = telemetry_schema(with_car);
        let n = schema.channels.len();
        let projection = (0..n)
            .map(|c| opts.projection.get(c).copied().unwrap_or(true))
            .collect();
        Ok(OpenF1LocationSource {
            name: dir.display().to_string(),
            schema,
            files,
            rows,
            projection,
            chunk_rows: opts.chunk_rows.max(1),
            next: 0,
            skipped,
            skipped_reported: false,
        })
    }

    /// Rows in the merged stream.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Whether `car_data` was found (and the schema has the car channels).
    pub fn has_car_data(&self) -> bool {
        self.schema.channels.len() > 3
    }

    /// File and 1-based line of merged row `row` (1-based, as in [`RowChunk::lines`]).
    pub fn origin(&self, row: u64) -> Option<(&Path, u64)> {
        let r = self.rows.get(usize::try_from(row).ok()?.checked_sub(1)?)?;
        Some((self.files[r.file as usize].as_path(), r.line))
    }

    /// Malformed lines skipped at open (only with `OnError::Skip`).
    pub fn skipped(&self) -> u64 {
        self.skipped
    }
}

impl Source for OpenF1LocationSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn schema(&self) -> &Schema {
        &self.schema
    }

    fn next_chunk(&mut self) -> Result<Option<RowChunk>, SourceError> {
        if self.next >= self.rows.len() {
            return Ok(None);
        }
        let start = self.next;
        let end = (start + self.chunk_rows).min(self.rows.len());
        let n = self.schema.channels.len();
        let mut chunk = RowChunk::with_capacity(n, end - start, &self.projection);
        let mut last_car = u32::MAX;
        let mut last_key = 0;
        let mut buf = String::new();
        for (i, r) in self.rows[start..end].iter().enumerate() {
            if r.car != last_car {
                buf.clear();
                use std::fmt::Write;
                let _ = write!(buf, "{}", r.car);
                last_key = chunk.intern_key(&buf);
                last_car = r.car;
            }
            chunk.ts.push(r.ts);
            chunk.keys.push(last_key);
            chunk.lines.push((start + i + 1) as u64);
            for (c, col) in chunk.columns.iter_mut().enumerate() {
                if self.projection[c] {
                    col.push(r.vals[c]);
                }
            }
        }
        if !self.skipped_reported {
            chunk.skipped = self.skipped;
            self.skipped_reported = true;
        }
        chunk.end_position = end as u64;
        self.next = end;
        Ok(Some(chunk))
    }

    fn seek(&mut self, position: u64) -> Result<(), SourceError> {
        match usize::try_from(position) {
            Ok(p) if p <= self.rows.len() => {
                self.next = p;
                self.skipped_reported |= p > 0;
                Ok(())
            }
            _ => Err(SourceError::Seek {
                source_name: self.name.clone(),
                position,
                reason: format!("only {} rows", self.rows.len()),
            }),
        }
    }
}

// ---------------------------------------------------------------------------
// Event tables
// ---------------------------------------------------------------------------

/// One OpenF1 `/race_control` message.
#[derive(Debug, Clone, PartialEq)]
pub struct RaceControlMessage {
    pub ts: EventTime,
    pub meeting_key: Option<i64>,
    pub session_key: Option<i64>,
    /// The car it concerns (blue flags, penalties), if any.
    pub driver_number: Option<u32>,
    pub lap_number: Option<u32>,
    /// `Flag`, `SafetyCar`, `Drs`, `CarEvent`, `Other`, ...
    pub category: String,
    /// `GREEN`, `YELLOW`, `DOUBLE YELLOW`, `RED`, `CHEQUERED`, `CLEAR`, `BLUE`, ...
    pub flag: Option<String>,
    /// `Track`, `Sector`, `Driver`.
    pub scope: Option<String>,
    pub sector: Option<u32>,
    pub message: String,
    pub line: u64,
}

/// Track flags that become [`EventKind::Flag`]; other flags (blue, black and white)
/// concern one driver and become [`EventKind::Other`].
const TRACK_FLAGS: [&str; 6] = [
    "GREEN",
    "YELLOW",
    "DOUBLE YELLOW",
    "RED",
    "CHEQUERED",
    "CLEAR",
];

impl RaceControlMessage {
    /// The time penalty this message announces, if it is one
    /// ([`TimePenalty::from_message`](crate::classification::TimePenalty::from_message)).
    pub fn time_penalty(&self) -> Option<crate::classification::TimePenalty> {
        crate::classification::TimePenalty::from_message(self.ts, &self.message)
    }

    /// The broadcast event this message stands for:
    /// * flag `GREEN`/`YELLOW`/`DOUBLE YELLOW`/`RED`/`CHEQUERED`/`CLEAR` → `Flag`
    ///   with the flag as value (whatever the scope: a sector yellow is a yellow);
    /// * category `SafetyCar` whose message says `(VIRTUAL) SAFETY CAR DEPLOYED`
    ///   → `SafetyCar`/`VirtualSafetyCar` `DEPLOYED`; `... ENDING` or
    ///   `... IN THIS LAP` → `ENDING`;
    /// * anything else → `Other` with the message as value.
    ///
    /// `car` is the driver number when the message names one.
    pub fn to_event(&self) -> BroadcastEvent {
        let car = self.driver_number.map(|d| d.to_string());
        let msg = self.message.to_ascii_uppercase();
        let flag = self.flag.as_deref().map(str::to_ascii_uppercase);
        let (kind, value) = if let Some(f) = flag.filter(|f| TRACK_FLAGS.contains(&f.as_str())) {
            (EventKind::Flag, f)
        } else if self.category.eq_ignore_ascii_case("SafetyCar") && msg.contains("SAFETY CAR") {
            let kind = if msg.contains("VIRTUAL SAFETY CAR") {
                EventKind::VirtualSafetyCar
            } else {
                EventKind::SafetyCar
            };
            if msg.contains("DEPLOYED") {
                (kind, "DEPLOYED".to_string())
            } else if msg.contains("ENDING") || msg.contains("IN THIS LAP") {
                (kind, "ENDING".to_string())
            } else {
                (EventKind::Other, self.message.clone())
            }
        } else {
            (EventKind::Other, self.message.clone())
        };
        BroadcastEvent {
            ts: self.ts,
            kind,
            car,
            value,
        }
    }
}

/// Parses an OpenF1 `race_control` CSV. `date` is required; `message` and
/// `category` may be empty.
pub fn race_control_from_csv_str(
    path: &Path,
    text: &str,
) -> Result<Vec<RaceControlMessage>, RaceDataError> {
    parse_csv(
        path,
        text,
        |h| {
            Ok((
                h.req("date")?,
                [
                    h.opt("meeting_key"),
                    h.opt("session_key"),
                    h.opt("driver_number"),
                    h.opt("lap_number"),
                    h.opt("category"),
                    h.opt("flag"),
                    h.opt("scope"),
                    h.opt("sector"),
                    h.opt("message"),
                ],
            ))
        },
        |(d, c), r| {
            Ok(RaceControlMessage {
                ts: r.ts(*d, "date")?,
                meeting_key: r.opt_int(c[0], "meeting_key")?,
                session_key: r.opt_int(c[1], "session_key")?,
                driver_number: r.opt_u32(c[2], "driver_number")?,
                lap_number: r.opt_u32(c[3], "lap_number")?,
                category: r.text(c[4]).unwrap_or_default(),
                flag: r.text(c[5]),
                scope: r.text(c[6]),
                sector: r.opt_u32(c[7], "sector")?,
                message: r.text(c[8]).unwrap_or_default(),
                line: r.line,
            })
        },
    )
}

/// One OpenF1 `/pit` row: a car's visit to the pit lane.
#[derive(Debug, Clone, PartialEq)]
pub struct PitStop {
    /// When the car entered the pit lane.
    pub ts: EventTime,
    pub meeting_key: Option<i64>,
    pub session_key: Option<i64>,
    pub driver_number: u32,
    pub lap_number: Option<u32>,
    /// Seconds from pit entry to pit exit (pit-lane time, not the stationary time);
    /// missing when the car did not leave the pit lane (e.g. retired there).
    pub pit_duration: Option<f64>,
    pub line: u64,
}

impl PitStop {
    /// `PitIn` at `date`, and `PitOut` at `date + pit_duration` when the duration is
    /// known. This reads OpenF1's `date` as the pit-lane entry time and
    /// `pit_duration` as the time spent in the pit lane, entry to exit (which is how
    /// OpenF1 documents them); without a duration the car stays "in pit".
    pub fn to_events(&self) -> Vec<BroadcastEvent> {
        let car = Some(self.driver_number.to_string());
        let mut v = vec![BroadcastEvent {
            ts: self.ts,
            kind: EventKind::PitIn,
            car: car.clone(),
            value: String::new(),
        }];
        if let Some(d) = self.pit_duration.filter(|d| *d >= 0.0 && *d < 1.0e7) {
            v.push(BroadcastEvent {
                ts: self.ts + (d * 1000.0).round() as i64,
                kind: EventKind::PitOut,
                car,
                value: String::new(),
            });
        }
        v
    }
}

/// Parses an OpenF1 `pit` CSV (`date`, `driver_number` required).
pub fn pit_from_csv_str(path: &Path, text: &str) -> Result<Vec<PitStop>, RaceDataError> {
    parse_csv(
        path,
        text,
        |h| {
            Ok((
                h.req("date")?,
                h.req("driver_number")?,
                [
                    h.opt("meeting_key"),
                    h.opt("session_key"),
                    h.opt("lap_number"),
                    h.opt("pit_duration"),
                ],
            ))
        },
        |(d, n, c), r| {
            Ok(PitStop {
                ts: r.ts(*d, "date")?,
                driver_number: r.u32(*n, "driver_number")?,
                meeting_key: r.opt_int(c[0], "meeting_key")?,
                session_key: r.opt_int(c[1], "session_key")?,
                lap_number: r.opt_u32(c[2], "lap_number")?,
                pit_duration: r.opt_f64(c[3], "pit_duration")?,
                line: r.line,
            })
        },
    )
}

/// One OpenF1 `/stints` row: a run on one set of tyres.
#[derive(Debug, Clone, PartialEq)]
pub struct Stint {
    pub meeting_key: Option<i64>,
    pub session_key: Option<i64>,
    pub stint_number: u32,
    pub driver_number: u32,
    pub lap_start: Option<u32>,
    pub lap_end: Option<u32>,
    /// `SOFT`, `MEDIUM`, `HARD`, `INTERMEDIATE`, `WET`, ...
    pub compound: Option<String>,
    pub tyre_age_at_start: Option<u32>,
}

/// Parses an OpenF1 `stints` CSV (`stint_number`, `driver_number` required; numbers
/// may be written as floats).
pub fn stints_from_csv_str(path: &Path, text: &str) -> Result<Vec<Stint>, RaceDataError> {
    parse_csv(
        path,
        text,
        |h| {
            Ok((
                h.req("stint_number")?,
                h.req("driver_number")?,
                [
                    h.opt("meeting_key"),
                    h.opt("session_key"),
                    h.opt("lap_start"),
                    h.opt("lap_end"),
                    h.opt("compound"),
                    h.opt("tyre_age_at_start"),
                ],
            ))
        },
        |(s, n, c), r| {
            Ok(Stint {
                stint_number: r.u32(*s, "stint_number")?,
                driver_number: r.u32(*n, "driver_number")?,
                meeting_key: r.opt_int(c[0], "meeting_key")?,
                session_key: r.opt_int(c[1], "session_key")?,
                lap_start: r.opt_u32(c[2], "lap_start")?,
                lap_end: r.opt_u32(c[3], "lap_end")?,
                compound: r.text(c[4]),
                tyre_age_at_start: r.opt_u32(c[5], "tyre_age_at_start")?,
            })
        },
    )
}

/// One OpenF1 `/drivers` row (text fields as written; absent ones `None`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Driver {
    pub meeting_key: Option<i64>,
    pub session_key: Option<i64>,
    pub driver_number: u32,
    pub broadcast_name: Option<String>,
    pub full_name: Option<String>,
    pub name_acronym: Option<String>,
    pub team_name: Option<String>,
    pub team_colour: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub headshot_url: Option<String>,
    pub country_code: Option<String>,
}

/// Parses an OpenF1 `drivers` CSV (`driver_number` required).
pub fn drivers_from_csv_str(path: &Path, text: &str) -> Result<Vec<Driver>, RaceDataError> {
    const TEXT: [&str; 10] = [
        "broadcast_name",
        "full_name",
        "name_acronym",
        "team_name",
        "team_colour",
        "first_name",
        "last_name",
        "headshot_url",
        "country_code",
        "meeting_key",
    ];
    parse_csv(
        path,
        text,
        |h| {
            Ok((
                h.req("driver_number")?,
                h.opt("session_key"),
                TEXT.map(|n| h.opt(n)),
            ))
        },
        |(n, s, c), r| {
            Ok(Driver {
                driver_number: r.u32(*n, "driver_number")?,
                session_key: r.opt_int(*s, "session_key")?,
                meeting_key: r.opt_int(c[9], "meeting_key")?,
                broadcast_name: r.text(c[0]),
                full_name: r.text(c[1]),
                name_acronym: r.text(c[2]),
                team_name: r.text(c[3]),
                team_colour: r.text(c[4]),
                first_name: r.text(c[5]),
                last_name: r.text(c[6]),
                headshot_url: r.text(c[7]),
                country_code: r.text(c[8]),
            })
        },
    )
}

/// One OpenF1 `/session_result` row.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionResult {
    /// Finishing position; `None` for a car without a classification.
    pub position: Option<u32>,
    pub driver_number: u32,
    pub number_of_laps: Option<u32>,
    pub dnf: bool,
    pub dns: bool,
    pub dsq: bool,
    /// Race time in seconds (`None` for lapped cars, and for qualifying, where
    /// OpenF1 writes a list per part).
    pub duration: Option<f64>,
    /// Seconds behind the winner, or laps (`+1 LAP`).
    pub gap_to_leader: Gap,
    pub points: Option<f64>,
    pub meeting_key: Option<i64>,
    pub session_key: Option<i64>,
}

/// Parses an OpenF1 `session_result` CSV (`driver_number` required; missing
/// `dnf`/`dns`/`dsq` read as `false`). List-valued cells (qualifying's
/// `[q1, q2, q3]`) in `duration`/`gap_to_leader` read as missing.
pub fn session_result_from_csv_str(
    path: &Path,
    text: &str,
) -> Result<Vec<SessionResult>, RaceDataError> {
    parse_csv(
        path,
        text,
        |h| {
            Ok((
                h.req("driver_number")?,
                [
                    h.opt("position"),
                    h.opt("number_of_laps"),
                    h.opt("dnf"),
                    h.opt("dns"),
                    h.opt("dsq"),
                    h.opt("duration"),
                    h.opt("gap_to_leader"),
                    h.opt("points"),
                    h.opt("meeting_key"),
                    h.opt("session_key"),
                ],
            ))
        },
        |(n, c), r| {
            let is_list = |col: Option<usize>| r.cell(col).is_some_and(|s| s.starts_with('['));
            Ok(SessionResult {
                driver_number: r.u32(*n, "driver_number")?,
                position: r.opt_u32(c[0], "position")?,
                number_of_laps: r.opt_u32(c[1], "number_of_laps")?,
                dnf: r.opt_bool(c[2], "dnf")?.unwrap_or(false),
                dns: r.opt_bool(c[3], "dns")?.unwrap_or(false),
                dsq: r.opt_bool(c[4], "dsq")?.unwrap_or(false),
                duration: if is_list(c[5]) {
                    None
                } else {
                    r.opt_f64(c[5], "duration")?
                },
                gap_to_leader: if is_list(c[6]) {
                    Gap::None
                } else {
                    r.gap(c[6], "gap_to_leader")?
                },
                points: r.opt_f64(c[7], "points")?,
                meeting_key: r.opt_int(c[8], "meeting_key")?,
                session_key: r.opt_int(c[9], "session_key")?,
            })
        },
    )
}

/// One OpenF1 `/overtakes` row: `overtaking` passed `overtaken`, taking `position`.
#[derive(Debug, Clone, PartialEq)]
pub struct Overtake {
    pub ts: EventTime,
    pub meeting_key: Option<i64>,
    pub session_key: Option<i64>,
    pub overtaking_driver_number: u32,
    pub overtaken_driver_number: u32,
    /// The overtaking car's new position.
    pub position: Option<u32>,
}

/// Parses an OpenF1 `overtakes` CSV.
pub fn overtakes_from_csv_str(path: &Path, text: &str) -> Result<Vec<Overtake>, RaceDataError> {
    parse_csv(
        path,
        text,
        |h| {
            Ok((
                [
                    h.req("date")?,
                    h.req("overtaking_driver_number")?,
                    h.req("overtaken_driver_number")?,
                ],
                [
                    h.opt("meeting_key"),
                    h.opt("session_key"),
                    h.opt("position"),
                ],
            ))
        },
        |(q, c), r| {
            Ok(Overtake {
                ts: r.ts(q[0], "date")?,
                overtaking_driver_number: r.u32(q[1], "overtaking_driver_number")?,
                overtaken_driver_number: r.u32(q[2], "overtaken_driver_number")?,
                meeting_key: r.opt_int(c[0], "meeting_key")?,
                session_key: r.opt_int(c[1], "session_key")?,
                position: r.opt_u32(c[2], "position")?,
            })
        },
    )
}

macro_rules! file_reader {
    ($(#[$m:meta])* $name:ident, $parse:ident, $t:ty) => {
        $(#[$m])*
        pub fn $name(path: impl AsRef<Path>) -> Result<Vec<$t>, RaceDataError> {
            let path = path.as_ref();
            $parse(path, &read_text(path)?)
        }
    };
}

file_reader!(
    /// Reads an OpenF1 `location` CSV file.
    read_location, location_from_csv_str, LocationSample);
file_reader!(
    /// Reads an OpenF1 `car_data` CSV file.
    read_car_data, car_data_from_csv_str, CarDataSample);
file_reader!(
    /// Reads an OpenF1 `race_control` CSV file.
    read_race_control, race_control_from_csv_str, RaceControlMessage);
file_reader!(
    /// Reads an OpenF1 `pit` CSV file.
    read_pit, pit_from_csv_str, PitStop);
file_reader!(
    /// Reads an OpenF1 `stints` CSV file.
    read_stints, stints_from_csv_str, Stint);
file_reader!(
    /// Reads an OpenF1 `drivers` CSV file.
    read_drivers, drivers_from_csv_str, Driver);
file_reader!(
    /// Reads an OpenF1 `session_result` CSV file.
    read_session_result, session_result_from_csv_str, SessionResult);
file_reader!(
    /// Reads an OpenF1 `overtakes` CSV file.
    read_overtakes, overtakes_from_csv_str, Overtake);

/// The broadcast events of one session folder: `race_control` messages
/// ([`RaceControlMessage::to_event`]) and pit stops ([`PitStop::to_events`]), from
/// `openf1_race_control.csv`/`race_control.csv` and `openf1_pit.csv`/`pit.csv`
/// (either may be absent, not both). Sorted by event time; ties keep the order
/// race_control before pit, then file line, then `PitIn` before `PitOut`.
/// Rows of every session in the files are used: filter multi-session tables with
/// [`race_events_for_session`].
pub fn race_events(dir: impl AsRef<Path>) -> Result<Vec<BroadcastEvent>, RaceDataError> {
    race_events_for_session(dir, None)
}

/// [`race_events`], keeping only rows whose `session_key` is `session` (when given).
pub fn race_events_for_session(
    dir: impl AsRef<Path>,
    session: Option<i64>,
) -> Result<Vec<BroadcastEvent>, RaceDataError> {
    let dir = dir.as_ref();
    let rc = table_file(dir, "race_control");
    let pit = table_file(dir, "pit");
    if rc.is_none() && pit.is_none() {
        return Err(RaceDataError::Missing {
            path: dir.to_path_buf(),
            reason: "no race_control.csv or pit.csv (nor openf1_ prefixed)".into(),
        });
    }
    let keep = |s: Option<i64>| session.is_none() || s == session;
    let mut tagged: Vec<(EventTime, u8, u64, u8, BroadcastEvent)> = Vec::new();
    if let Some(p) = rc {
        for m in read_race_control(&p)? {
            if keep(m.session_key) {
                tagged.push((m.ts, 0, m.line, 0, m.to_event()));
            }
        }
    }
    if let Some(p) = pit {
        for s in read_pit(&p)? {
            if keep(s.session_key) {
                for (i, e) in s.to_events().into_iter().enumerate() {
                    tagged.push((e.ts, 1, s.line, i as u8, e));
                }
            }
        }
    }
    tagged.sort_by_key(|t| (t.0, t.1, t.2, t.3));
    Ok(tagged.into_iter().map(|t| t.4).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p() -> &'static Path {
        Path::new("t.csv")
    }

    fn line_of(e: RaceDataError) -> u64 {
        match e {
            RaceDataError::Malformed { line, .. } => line,
            other => panic!("expected Malformed, got {other}"),
        }
    }

    #[test]
    fn csv_split_handles_quotes() {
        let c = split_csv_line(r#"a,"b,c","say ""hi""",,d"#).unwrap();
        let c: Vec<&str> = c.iter().map(|s| s.as_ref()).collect();
        assert_eq!(c, ["a", "b,c", "say \"hi\"", "", "d"]);
        assert!(split_csv_line(r#"a,"b"#).is_err());
        assert!(split_csv_line(r#"a,"b"x"#).is_err());
        assert!(split_csv_line(r#"a,b"c"#).is_err());
    }

    #[test]
    fn location_columns_matched_by_name() {
        let a = "date,session_key,z,x,driver_number,meeting_key,y\n\
                 2024-06-30T13:00:00.263000+00:00,9550,7215,1295,1,1239,-1156\n";
        let b = "x,y,z,driver_number,date\n1295,-1156,7215,1,2024-06-30T13:00:00.263+00:00\n";
        let la = location_from_csv_str(p(), a).unwrap();
        let lb = location_from_csv_str(p(), b).unwrap();
        assert_eq!(la.len(), 1);
        assert_eq!((la[0].x, la[0].y, la[0].z), (1295.0, -1156.0, 7215.0));
        assert_eq!(la[0].ts, lb[0].ts);
        assert_eq!(la[0].ts % 1000, 263);
        assert_eq!(la[0].line, 2);
    }

    #[test]
    fn location_bad_line_reports_its_line() {
        let t = "date,driver_number,x,y,z\n\
                 2024-06-30T13:00:00+00:00,1,1,2,3\n\
                 \n\
                 2024-06-30T13:00:01+00:00,1,abc,2,3\n";
        assert_eq!(line_of(location_from_csv_str(p(), t).unwrap_err()), 4);
        let t = "date,driver_number,x,y\n";
        assert_eq!(line_of(location_from_csv_str(p(), t).unwrap_err()), 1);
        let t = "date,driver_number,x,y,z\n2024-06-30T13:00:00+00:00,1,1,2\n";
        assert_eq!(line_of(location_from_csv_str(p(), t).unwrap_err()), 2);
        let t = "date,driver_number,x,y,z\nnot-a-date,1,1,2,3\n";
        assert_eq!(line_of(location_from_csv_str(p(), t).unwrap_err()), 2);
    }

    fn write(dir: &Path, rel: &str, text: &str) {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    fn drain(src: &mut OpenF1LocationSource) -> Vec<(i64, String, Vec<f64>)> {
        let mut out = Vec::new();
        while let Some(c) = src.next_chunk().unwrap() {
            c.check_shape(&[0]).unwrap();
            for i in 0..c.len() {
                let vals = c
                    .columns
                    .iter()
                    .map(|col| col.get(i).copied().unwrap_or(f64::NAN))
                    .collect();
                out.push((c.ts[i], c.key_names[c.keys[i] as usize].to_string(), vals));
            }
        }
        out
    }

    #[test]
    fn location_merge_with_car_data_and_seek() {
        let d = tempfile::tempdir().unwrap();
        // Per-driver files, written in a different column order each.
        write(
            d.path(),
            "location/location_driver_44.csv",
            "date,session_key,z,x,driver_number,meeting_key,y\n\
             2024-06-30T13:00:00.000+00:00,1,3,1,44,1,2\n\
             2024-06-30T13:00:00.500+00:00,1,3,1,44,1,2\n",
        );
        write(
            d.path(),
            "location/location_driver_1.csv",
            "x,y,z,driver_number,date\n\
             10,20,30,1,2024-06-30T13:00:00.000+00:00\n\
             11,21,31,1,2024-06-30T13:00:00.250+00:00\n",
        );
        write(
            d.path(),
            "car_data/car_data.csv",
            "date,session_key,meeting_key,driver_number,rpm,speed,n_gear,throttle,brake,drs\n\
             2024-06-30T13:00:00.100+00:00,1,1,44,11000,280.0,7,100,0,12\n\
             2024-06-30T13:00:00.000+00:00,1,1,1,10000,250,6,99,100,\n",
        );
        let schema_probe =
            OpenF1LocationSource::open(d.path(), &SourceOptions::all(&telemetry_schema(true)))
                .unwrap();
        assert!(schema_probe.has_car_data());
        let mut src = schema_probe;
        assert_eq!(src.schema().channels.len(), 9);
        assert_eq!(src.schema().channel_index("gear"), Some(5));
        let rows = drain(&mut src);
        let order: Vec<(i64, &str)> = rows.iter().map(|r| (r.0 % 100_000, r.1.as_str())).collect();
        // ts 0: car 1 location, car 1 car_data, car 44 location; then 100 (44 car),
        // 250 (1 loc), 500 (44 loc).
        assert_eq!(
            order.iter().map(|o| o.1).collect::<Vec<_>>(),
            ["1", "1", "44", "44", "1", "44"]
        );
        assert!(rows.windows(2).all(|w| w[0].0 <= w[1].0));
        assert_eq!(rows[0].2[..3], [10.0, 20.0, 30.0]);
        assert!(rows[0].2[3].is_nan());
        assert_eq!(rows[1].2[3..8], [250.0, 10000.0, 6.0, 99.0, 100.0]);
        assert!(rows[1].2[8].is_nan() && rows[1].2[0].is_nan());
        assert_eq!(rows[3].2[8], 12.0);
        assert_eq!(src.origin(1).unwrap().1, 2);

        // Chunking and seek give the same rows.
        let mut opts = SourceOptions::all(&telemetry_schema(true));
        opts.chunk_rows = 4;
        let mut s2 = OpenF1LocationSource::open(d.path(), &opts).unwrap();
        let first = s2.next_chunk().unwrap().unwrap();
        assert_eq!(first.end_position, 4);
        let mut s3 = OpenF1LocationSource::open(d.path(), &opts).unwrap();
        s3.seek(first.end_position).unwrap();
        let rest = drain(&mut s3);
        assert_eq!(rest.len(), 2);
        assert_eq!(rest[0].0, rows[4].0);
        assert!(s3.seek(7).is_err());
    }

    #[test]
    fn location_without_car_data_and_projection() {
        let d = tempfile::tempdir().unwrap();
        write(
            d.path(),
            "location.csv",
            "date,driver_number,x,y,z\n2024-06-30T13:00:00Z,5,1,2,3\n",
        );
        let mut opts = SourceOptions::all(&telemetry_schema(false));
        opts.projection = vec![false, true, true];
        let mut src = OpenF1LocationSource::open(d.path(), &opts).unwrap();
        assert!(!src.has_car_data());
        assert!(!src.schema().channels[0].optional);
        let c = src.next_chunk().unwrap().unwrap();
        assert!(c.columns[0].is_empty());
        assert_eq!(c.columns[1], [2.0]);
        assert!(src.next_chunk().unwrap().is_none());
        // No location at all.
        let e = tempfile::tempdir().unwrap();
        assert!(matches!(
            OpenF1LocationSource::open(e.path(), &opts),
            Err(RaceDataError::Missing { .. })
        ));
    }

    #[test]
    fn location_skip_mode_drops_bad_lines() {
        let d = tempfile::tempdir().unwrap();
        write(
            d.path(),
            "location/a.csv",
            "date,driver_number,x,y,z\n2024-06-30T13:00:00Z,5,1,2,3\ngarbage\n2024-06-30T13:00:01Z,5,1,2,3\n",
        );
        let mut opts = SourceOptions::all(&telemetry_schema(false));
        assert_eq!(
            line_of(OpenF1LocationSource::open(d.path(), &opts).err().unwrap()),
            3
        );
        opts.on_error = OnError::Skip;
        let mut src = OpenF1LocationSource::open(d.path(), &opts).unwrap();
        assert_eq!(src.len(), 2);
        assert_eq!(src.skipped(), 1);
        assert_eq!(src.origin(2).unwrap().1, 4, "line numbers survive skipping");
        assert_eq!(src.next_chunk().unwrap().unwrap().skipped, 1);
    }

    #[test]
    fn car_data_reader() {
        let t = "date,session_key,meeting_key,driver_number,rpm,speed,n_gear,throttle,brake,drs\n\
                 2023-09-16T13:00:00.123000+00:00,9161,1219,55,10500,301,8,100,0,12\n\
                 2023-09-16T13:00:00.400000+00:00,9161,1219,55,,300.0,8.0,104,100,8\n";
        let v = car_data_from_csv_str(p(), t).unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].speed, Some(301.0));
        assert_eq!(v[0].drs, Some(12.0));
        assert_eq!(v[1].rpm, None);
        assert_eq!(v[1].gear, Some(8.0));
        let bad = format!("{t}2023-09-16T13:00:01Z,9161,1219,x55,1,1,1,1,1,1\n");
        assert_eq!(line_of(car_data_from_csv_str(p(), &bad).unwrap_err()), 4);
    }

    #[test]
    fn race_control_mapping() {
        let t = "meeting_key,session_key,date,driver_number,lap_number,category,flag,scope,sector,message\n\
1239,9550,2024-06-30T13:03:02+00:00,,1.0,Flag,GREEN,Track,,GREEN LIGHT - PIT EXIT OPEN\n\
1239,9550,2024-06-30T13:24:38+00:00,2.0,19.0,Flag,BLUE,Driver,,WAVED BLUE FLAG FOR CAR 2 (SAR)\n\
1239,9550,2024-06-30T14:17:59+00:00,,64.0,Flag,DOUBLE YELLOW,Sector,6.0,DOUBLE YELLOW IN TRACK SECTOR 6\n\
1239,9550,2024-06-30T14:20:23+00:00,,66.0,SafetyCar,,,,VIRTUAL SAFETY CAR DEPLOYED\n\
1239,9550,2024-06-30T14:21:09+00:00,,66.0,SafetyCar,,,,VIRTUAL SAFETY CAR ENDING\n\
1239,9550,2024-06-30T14:22:00+00:00,,67.0,SafetyCar,,,,SAFETY CAR DEPLOYED\n\
1239,9550,2024-06-30T14:25:00+00:00,,69.0,SafetyCar,,,,SAFETY CAR IN THIS LAP\n\
1239,9550,2024-06-30T14:26:00+00:00,,70.0,Other,,,,\"CAR 4 (NOR), TIME DELETED\"\n";
        let v = race_control_from_csv_str(p(), t).unwrap();
        let all: Vec<BroadcastEvent> = v.iter().map(|m| m.to_event()).collect();
        let ev: Vec<(EventKind, &str, Option<&str>)> = all
            .iter()
            .map(|e| (e.kind.clone(), e.value.as_str(), e.car.as_deref()))
            .collect();
        assert_eq!(ev[0], (EventKind::Flag, "GREEN", None));
        assert_eq!(ev[1].0, EventKind::Other);
        assert_eq!(ev[1].2, Some("2"));
        assert_eq!(ev[2], (EventKind::Flag, "DOUBLE YELLOW", None));
        assert_eq!(ev[3], (EventKind::VirtualSafetyCar, "DEPLOYED", None));
        assert_eq!(ev[4], (EventKind::VirtualSafetyCar, "ENDING", None));
        assert_eq!(ev[5], (EventKind::SafetyCar, "DEPLOYED", None));
        assert_eq!(ev[6], (EventKind::SafetyCar, "ENDING", None));
        assert_eq!(ev[7], (EventKind::Other, "CAR 4 (NOR), TIME DELETED", None));
        assert_eq!(v[2].sector, Some(6));
        assert_eq!(v[1].lap_number, Some(19));
        let bad = format!("{t}1239,9550,2024-06-30T14:26:00+00:00,,7.5,Other,,,,x\n");
        assert_eq!(
            line_of(race_control_from_csv_str(p(), &bad).unwrap_err()),
            10
        );
    }

    #[test]
    fn pit_events_and_race_events_order() {
        let d = tempfile::tempdir().unwrap();
        write(
            d.path(),
            "pit.csv",
            "date,session_key,pit_duration,meeting_key,driver_number,lap_number\n\
             2024-06-30T13:04:53.204000+00:00,9550,31.9,1239,16,1.0\n\
             2024-06-30T13:03:02+00:00,9550,,1239,2,1.0\n",
        );
        write(
            d.path(),
            "race_control.csv",
            "date,category,flag,message,session_key\n\
             2024-06-30T13:03:02+00:00,Flag,GREEN,GREEN LIGHT,9550\n\
             2024-06-30T13:00:02+00:00,Flag,RED,RED,9551\n",
        );
        let ev = race_events(d.path()).unwrap();
        let kinds: Vec<EventKind> = ev.iter().map(|e| e.kind.clone()).collect();
        assert_eq!(
            kinds,
            [
                EventKind::Flag,
                EventKind::Flag,
                EventKind::PitIn,
                EventKind::PitIn,
                EventKind::PitOut
            ]
        );
        assert_eq!(ev[2].car.as_deref(), Some("2"));
        assert_eq!(ev[4].ts - ev[3].ts, 31_900);
        assert_eq!(ev[4].car.as_deref(), Some("16"));
        assert!(ev.windows(2).all(|w| w[0].ts <= w[1].ts));
        let only = race_events_for_session(d.path(), Some(9550)).unwrap();
        assert_eq!(only.len(), 4);
        let bad = "date,driver_number\n2024-06-30T13:03:02+00:00,\n";
        assert_eq!(line_of(pit_from_csv_str(p(), bad).unwrap_err()), 2);
        let e = tempfile::tempdir().unwrap();
        assert!(matches!(
            race_events(e.path()),
            Err(RaceDataError::Missing { .. })
        ));
    }

    #[test]
    fn stints_drivers_results_overtakes() {
        let s = "meeting_key,session_key,stint_number,driver_number,lap_start,lap_end,compound,tyre_age_at_start\n\
                 1141,7765,1,23,1.0,2.0,MEDIUM,0.0\n\
                 1141,7765,2,23,3.0,,None,\n";
        let v = stints_from_csv_str(p(), s).unwrap();
        assert_eq!(v[0].lap_end, Some(2));
        assert_eq!(v[0].tyre_age_at_start, Some(0));
        assert_eq!(v[0].compound.as_deref(), Some("MEDIUM"));
        assert_eq!(
            (v[1].lap_end, v[1].compound.as_ref(), v[1].tyre_age_at_start),
            (None, None, None)
        );
        let bad = format!("{s}1141,7765,3,23,1.5,2,SOFT,0\n");
        assert_eq!(line_of(stints_from_csv_str(p(), &bad).unwrap_err()), 4);

        let d = "driver_number,full_name,team_name\n1,\"VERSTAPPEN, Max\",Red Bull Racing\n";
        let v = drivers_from_csv_str(p(), d).unwrap();
        assert_eq!(v[0].full_name.as_deref(), Some("VERSTAPPEN, Max"));
        assert_eq!(v[0].country_code, None);

        let r = "position,driver_number,number_of_laps,dnf,dns,dsq,duration,gap_to_leader,meeting_key,session_key,points\n\
                 1.0,63,71.0,False,False,False,5062.798,0,1239,9550,25.0\n\
                 13.0,18,70.0,False,False,False,,+1 LAP,1239,9550,0.0\n\
                 19.0,2,69.0,False,False,False,,+2 LAPS,1239,9550,0.0\n\
                 ,4,20.0,True,False,False,,,1239,9550,0.0\n\
                 3,5,,False,False,False,\"[90.1, 89.5, None]\",\"[0.1, 0.2, None]\",1,2,\n";
        let v = session_result_from_csv_str(p(), r).unwrap();
        assert_eq!(v[0].gap_to_leader, Gap::Seconds(0.0));
        assert_eq!(v[0].duration, Some(5062.798));
        assert_eq!(v[1].gap_to_leader, Gap::Laps(1));
        assert_eq!(v[2].gap_to_leader, Gap::Laps(2));
        assert_eq!(
            (v[3].position, v[3].dnf, v[3].gap_to_leader),
            (None, true, Gap::None)
        );
        assert_eq!((v[4].duration, v[4].number_of_laps), (None, None));
        let bad = format!("{r}1,7,71,maybe,False,False,,,1,2,0\n");
        assert_eq!(
            line_of(session_result_from_csv_str(p(), &bad).unwrap_err()),
            7
        );

        let o = "meeting_key,session_key,overtaking_driver_number,overtaken_driver_number,date,position\n\
                 1239,9550,14,22,2024-06-30T13:03:12.119000+00:00,14\n";
        let v = overtakes_from_csv_str(p(), o).unwrap();
        assert_eq!(
            (
                v[0].overtaking_driver_number,
                v[0].overtaken_driver_number,
                v[0].position
            ),
            (14, 22, Some(14))
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn garbage_lines_never_panic(good in 0usize..3, junk in "[ -~\"]{0,60}") {
            let header = "meeting_key,session_key,date,driver_number,lap_number,category,flag,scope,sector,message";
            let ok = "1,2,2024-06-30T13:00:00Z,,1.0,Flag,GREEN,Track,,GREEN";
            let mut text = format!("{header}\n");
            for _ in 0..good { text.push_str(ok); text.push('\n'); }
            text.push_str(&junk);
            text.push('\n');
            let bad_line = good as u64 + 2;
            let check = |r: Result<usize, RaceDataError>| match r {
                Ok(_) => Ok(()),
                Err(RaceDataError::Malformed { line, .. }) if line == bad_line => Ok(()),
                Err(e) => Err(TestCaseError::fail(format!("unexpected {e}"))),
            };
            check(race_control_from_csv_str(p(), &text).map(|v| v.len()))?;
            let t = text.replacen(header, "date,session_key,pit_duration,meeting_key,driver_number,lap_number", 1);
            // Header line of good rows may not match the pit table: only require no panic.
            let _ = pit_from_csv_str(p(), &t);
            let _ = stints_from_csv_str(p(), &text);
            let _ = location_from_csv_str(p(), &text);
            let _ = car_data_from_csv_str(p(), &text);
            let _ = session_result_from_csv_str(p(), &text);
            let _ = overtakes_from_csv_str(p(), &text);
            let _ = drivers_from_csv_str(p(), &text);
            let loc = format!("date,driver_number,x,y,z\n2024-06-30T13:00:00Z,1,1,2,3\n{junk}\n");
            match location_from_csv_str(p(), &loc) {
                Ok(_) => {}
                Err(RaceDataError::Malformed { line: 3, .. }) => {}
                Err(e) => return Err(TestCaseError::fail(format!("unexpected {e}"))),
            }
        }
    }

    // ---- real data ----

    #[test]
    fn real_austria_location_merge() {
        let Some(d) = crate::data_dir() else { return };
        let dir = d.join("f1/2024_austria_race");
        let mut opts = SourceOptions::all(&telemetry_schema(false));
        opts.chunk_rows = 50_000;
        let mut src = OpenF1LocationSource::open(&dir, &opts).unwrap();
        assert!(!src.has_car_data());
        let mut n = 0usize;
        let mut last = i64::MIN;
        let mut cars = std::collections::BTreeSet::new();
        let mut monotone = true;
        while let Some(c) = src.next_chunk().unwrap() {
            c.check_shape(&[0, 1, 2]).unwrap();
            for &t in &c.ts {
                monotone &= t >= last;
                last = t;
            }
            for k in &c.key_names {
                cars.insert(k.to_string());
            }
            n += c.len();
            assert_eq!(c.end_position as usize, n);
        }
        assert_eq!(n, 419_520);
        assert_eq!(cars.len(), 20);
        assert!(monotone, "merged stream is not time-ordered");
        let start = parse_utc_ms("2024-06-30T13:00:00.263Z").unwrap();
        assert_eq!(src.rows[0].ts, start);
        assert_eq!(last, parse_utc_ms("2024-06-30T14:31:28.065Z").unwrap());
    }

    #[test]
    fn real_austria_events() {
        let Some(d) = crate::data_dir() else { return };
        let dir = d.join("f1/2024_austria_race");
        let ev = race_events(&dir).unwrap();
        assert!(ev.windows(2).all(|w| w[0].ts <= w[1].ts));
        let lo = parse_utc_ms("2024-06-30T13:00:00Z").unwrap();
        let hi = parse_utc_ms("2024-06-30T14:35:00Z").unwrap();
        let pit_in = ev.iter().filter(|e| e.kind == EventKind::PitIn).count();
        assert_eq!(pit_in, 45);
        let pit_out = ev.iter().filter(|e| e.kind == EventKind::PitOut).count();
        assert!(pit_out > 0 && pit_out <= 45);
        let vsc: Vec<&BroadcastEvent> = ev
            .iter()
            .filter(|e| e.kind == EventKind::VirtualSafetyCar)
            .collect();
        assert_eq!(vsc.len(), 2);
        assert_eq!(vsc[0].value, "DEPLOYED");
        assert_eq!(vsc[1].value, "ENDING");
        assert!(vsc.iter().all(|e| (lo..=hi).contains(&e.ts)));
        let flags: Vec<&BroadcastEvent> = ev.iter().filter(|e| e.kind == EventKind::Flag).collect();
        assert!(
            flags
                .iter()
                .any(|e| e.value == "CHEQUERED" && (lo..=hi).contains(&e.ts))
        );
        assert!(flags.iter().any(|e| e.value == "YELLOW"));
        // The race-start green light and everything after it lie in the race span
        // (a pre-race GREEN at 12:20 is real and kept).
        assert!(flags.iter().filter(|e| e.ts >= lo).count() >= 4);
        for e in ev
            .iter()
            .filter(|e| matches!(e.kind, EventKind::PitIn | EventKind::PitOut))
        {
            assert!((lo..=hi).contains(&e.ts), "pit event outside race: {e:?}");
        }

        let res = read_session_result(dir.join("openf1_session_result.csv")).unwrap();
        assert_eq!(res.len(), 20);
        assert_eq!(res[0].position, Some(1));
        assert_eq!(
            res.iter()
                .filter(|r| r.gap_to_leader == Gap::Laps(1))
                .count(),
            6
        );
        assert_eq!(read_stints(dir.join("stints.csv")).unwrap().len(), 65);
        assert_eq!(read_drivers(dir.join("drivers.csv")).unwrap().len(), 20);
        assert_eq!(
            read_overtakes(dir.join("openf1_overtakes.csv"))
                .unwrap()
                .len(),
            296
        );
    }

    #[test]
    fn real_multi_session_stints_with_float_ints() {
        let Some(d) = crate::data_dir() else { return };
        let v = read_stints(d.join("f1/openf1_multi_session_2023_2025/stints.csv")).unwrap();
        assert_eq!(v.len(), 27_974);
    }
}
