//! One Parquet file being written: the temporary file, the encoder, and the
//! row-group cut.
//!
//! Rows are buffered column by column (see [`crate::column`]) and written as
//! one row group every `row_group_rows` rows, so a whole race never sits in
//! memory: only one row group's values do. The file is written beside its
//! final name (`NAME.tmp`) and renamed into place by [`Table::finish`], so a
//! crash or an error never leaves a truncated file where a complete one is
//! expected; a table dropped unfinished removes its temporary file.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parquet::basic::Compression;
use parquet::errors::ParquetError;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::Type;

use crate::column::Column;
use crate::error::LakeError;

/// What a finished export wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stats {
    /// The Parquet file.
    pub path: PathBuf,
    /// Rows written.
    pub rows: u64,
    /// Row groups written (each at most the writer's row-group size).
    pub row_groups: usize,
    /// Size of the file, bytes.
    pub bytes: u64,
}

/// The state of the encoder: not started until the columns are known (a
/// frames file learns its aggregate columns from the first frame).
enum Encoder {
    Pending(File),
    /// Boxed: the encoder is large and made once per file.
    Open(Box<SerializedFileWriter<BufWriter<File>>>),
    /// Taken by `finish` (or lost to an error).
    Done,
}

pub(crate) struct Table {
    path: PathBuf,
    tmp: PathBuf,
    encoder: Encoder,
    row_group_rows: usize,
    metadata: Vec<KeyValue>,
    /// Rows buffered in the columns, not yet in a row group.
    buffered: usize,
    rows: u64,
    row_groups: usize,
    /// The file is complete under its final name.
    renamed: bool,
}

impl Table {
    /// Creates the temporary file now, so an unwritable destination fails
    /// before any work is done.
    pub(crate) fn create(
        path: &Path,
        row_group_rows: usize,
        metadata: Vec<KeyValue>,
    ) -> Result<Self, LakeError> {
        let mut name = path.file_name().unwrap_or_default().to_os_string();
        name.push(".tmp");
        let tmp = path.with_file_name(name);
        let file = File::create(&tmp).map_err(|source| LakeError::Io {
            path: path.to_path_buf(),
            action: "creating the file",
            source,
        })?;
        Ok(Table {
            path: path.to_path_buf(),
            tmp,
            encoder: Encoder::Pending(file),
            row_group_rows: row_group_rows.max(1),
            metadata,
            buffered: 0,
            rows: 0,
            row_groups: 0,
            renamed: false,
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    fn parquet_err(&self, source: ParquetError) -> LakeError {
        LakeError::Parquet {
            path: self.path.clone(),
            source,
        }
    }

    /// The error for a table used after `finish` or after an error closed it.
    fn closed(&self) -> LakeError {
        self.parquet_err(ParquetError::General(
            "the writer is closed (finished, or failed earlier)".into(),
        ))
    }

    /// Fixes the schema (the columns, in file order) and starts the encoder.
    /// Does nothing once started.
    pub(crate) fn start(&mut self, columns: &[&mut dyn Column]) -> Result<(), LakeError> {
        if !matches!(self.encoder, Encoder::Pending(_)) {
            return Ok(());
        }
        let Encoder::Pending(file) = std::mem::replace(&mut self.encoder, Encoder::Done) else {
            unreachable!("checked above");
        };
        let open = || -> Result<_, ParquetError> {
            let fields = columns
                .iter()
                .map(|c| c.field())
                .collect::<Result<Vec<_>, _>>()?;
            let schema = Arc::new(
                Type::group_type_builder("schema")
                    .with_fields(fields)
                    .build()?,
            );
            let props = WriterProperties::builder()
                // Pure-Rust Snappy: fast, and what every lake engine reads.
                .set_compression(Compression::SNAPPY)
                .set_max_row_group_row_count(Some(self.row_group_rows))
                .set_key_value_metadata(Some(self.metadata.clone()))
                .build();
            SerializedFileWriter::new(
                BufWriter::with_capacity(1 << 20, file),
                schema,
                Arc::new(props),
            )
        };
        let writer = open().map_err(|e| self.parquet_err(e))?;
        self.encoder = Encoder::Open(Box::new(writer));
        Ok(())
    }

    /// Counts one row pushed into every column; true when a row group is full
    /// and the caller should [`flush`](Self::flush).
    pub(crate) fn row_pushed(&mut self) -> bool {
        self.buffered += 1;
        self.buffered >= self.row_group_rows
    }

    /// Writes the buffered rows as one row group (nothing when none are buffered).
    pub(crate) fn flush(&mut self, columns: &mut [&mut dyn Column]) -> Result<(), LakeError> {
        if self.buffered == 0 {
            return Ok(());
        }
        self.start(columns)?;
        let Encoder::Open(writer) = &mut self.encoder else {
            return Err(self.closed());
        };
        let result = (|| -> Result<(), ParquetError> {
            let mut group = writer.next_row_group()?;
            for c in columns.iter_mut() {
                let mut w = group.next_column()?.ok_or_else(|| {
                    ParquetError::General("more columns buffered than in the schema".into())
                })?;
                c.write_chunk(&mut w)?;
                w.close()?;
            }
            group.close()?;
            Ok(())
        })();
        result.map_err(|e| self.parquet_err(e))?;
        self.rows += self.buffered as u64;
        self.buffered = 0;
        self.row_groups += 1;
        Ok(())
    }

    /// Writes the last row group and the footer, syncs the file and renames it
    /// into place.
    pub(crate) fn finish(&mut self, columns: &mut [&mut dyn Column]) -> Result<Stats, LakeError> {
        self.start(columns)?;
        self.flush(columns)?;
        let Encoder::Open(writer) = std::mem::replace(&mut self.encoder, Encoder::Done) else {
            return Err(self.closed());
        };
        let buf = writer.into_inner().map_err(|e| self.parquet_err(e))?;
        let io = |action, source| LakeError::Io {
            path: self.path.clone(),
            action,
            source,
        };
        let file = buf
            .into_inner()
            .map_err(|e| io("writing the file", e.into_error()))?;
        file.sync_all().map_err(|e| io("syncing the file", e))?;
        let bytes = file
            .metadata()
            .map_err(|e| io("reading the file's size", e))?
            .len();
        drop(file);
        std::fs::rename(&self.tmp, &self.path)
            .map_err(|e| io("renaming the finished file into place", e))?;
        self.renamed = true;
        Ok(Stats {
            path: self.path.clone(),
            rows: self.rows,
            row_groups: self.row_groups,
            bytes,
        })
    }
}

impl Drop for Table {
    fn drop(&mut self) {
        if !self.renamed {
            // Unfinished (an error, or a writer dropped early): no half file.
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}
