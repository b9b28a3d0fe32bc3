//! Typed column buffers: one row group's values of one column, in Parquet's
//! physical representation, plus the definition levels of a nullable column.
//!
//! A table writer keeps one buffer per column in a struct of named fields
//! ([`Req`] for required columns, [`Opt`] for nullable ones), so a row is
//! filled field by field with the compiler checking each value's type, and
//! the schema field and the column writer are both derived from the same
//! [`Kind`]: the two can never disagree.

use std::marker::PhantomData;
use std::sync::Arc;

use parquet::basic::{LogicalType, Repetition, Type as PhysicalType};
use parquet::data_type::{
    BoolType, ByteArray, ByteArrayType, DataType, DoubleType, FloatType, Int32Type, Int64Type,
};
use parquet::errors::ParquetError;
use parquet::file::writer::SerializedColumnWriter;
use parquet::schema::types::{Type, TypePtr};

/// A column's value type: how a Rust value is stored (physical type, logical
/// annotation) in Parquet.
pub(crate) trait Kind {
    /// The parquet crate's type for the physical column.
    type Data: DataType;
    /// What a row gives for this column.
    type In<'a>;
    const PHYSICAL: PhysicalType;
    /// The logical annotation (unsigned widths, UTF-8), if any.
    fn logical() -> Option<LogicalType>;
    fn encode(v: Self::In<'_>) -> <Self::Data as DataType>::T;
}

/// `BOOLEAN`.
pub(crate) struct Bool;
/// `INT32` annotated `UINT_8`.
pub(crate) struct U8;
/// `INT32` annotated `UINT_16`.
pub(crate) struct U16;
/// `INT32` annotated `UINT_32` (stored as the same 32 bits, as the spec says).
pub(crate) struct U32;
/// `INT64` annotated `UINT_64` (stored as the same 64 bits).
pub(crate) struct U64;
/// Plain `INT64`.
pub(crate) struct I64;
/// `FLOAT`.
pub(crate) struct F32;
/// `DOUBLE`.
pub(crate) struct F64;
/// `BYTE_ARRAY` annotated `STRING` (UTF-8).
pub(crate) struct Utf8;

impl Kind for Bool {
    type Data = BoolType;
    type In<'a> = bool;
    const PHYSICAL: PhysicalType = PhysicalType::BOOLEAN;
    fn logical() -> Option<LogicalType> {
        None
    }
    fn encode(v: bool) -> bool {
        v
    }
}

impl Kind for U8 {
    type Data = Int32Type;
    type In<'a> = u8;
    const PHYSICAL: PhysicalType = PhysicalType::INT32;
    fn logical() -> Option<LogicalType> {
        Some(LogicalType::integer(8, false))
    }
    fn encode(v: u8) -> i32 {
        i32::from(v)
    }
}

impl Kind for U16 {
    type Data = Int32Type;
    type In<'a> = u16;
    const PHYSICAL: PhysicalType = PhysicalType::INT32;
    fn logical() -> Option<LogicalType> {
        Some(LogicalType::integer(16, false))
    }
    fn encode(v: u16) -> i32 {
        i32::from(v)
    }
}

impl Kind for U32 {
    type Data = Int32Type;
    type In<'a> = u32;
    const PHYSICAL: PhysicalType = PhysicalType::INT32;
    fn logical() -> Option<LogicalType> {
        Some(LogicalType::integer(32, false))
    }
    fn encode(v: u32) -> i32 {
        // Unsigned 32-bit values are stored as their bit pattern in INT32.
        v as i32
    }
}

impl Kind for U64 {
    type Data = Int64Type;
    type In<'a> = u64;
    const PHYSICAL: PhysicalType = PhysicalType::INT64;
    fn logical() -> Option<LogicalType> {
        Some(LogicalType::integer(64, false))
    }
    fn encode(v: u64) -> i64 {
        // Unsigned 64-bit values are stored as their bit pattern in INT64.
        v as i64
    }
}

impl Kind for I64 {
    type Data = Int64Type;
    type In<'a> = i64;
    const PHYSICAL: PhysicalType = PhysicalType::INT64;
    fn logical() -> Option<LogicalType> {
        None
    }
    fn encode(v: i64) -> i64 {
        v
    }
}

impl Kind for F32 {
    type Data = FloatType;
    type In<'a> = f32;
    const PHYSICAL: PhysicalType = PhysicalType::FLOAT;
    fn logical() -> Option<LogicalType> {
        None
    }
    fn encode(v: f32) -> f32 {
        v
    }
}

impl Kind for F64 {
    type Data = DoubleType;
    type In<'a> = f64;
    const PHYSICAL: PhysicalType = PhysicalType::DOUBLE;
    fn logical() -> Option<LogicalType> {
        None
    }
    fn encode(v: f64) -> f64 {
        v
    }
}

impl Kind for Utf8 {
    type Data = ByteArrayType;
    type In<'a> = &'a str;
    const PHYSICAL: PhysicalType = PhysicalType::BYTE_ARRAY;
    fn logical() -> Option<LogicalType> {
        Some(LogicalType::String)
    }
    fn encode(v: &str) -> ByteArray {
        ByteArray::from(v)
    }
}

/// One buffered column of a table, whatever its type: what the table writer
/// needs to declare it in the schema and to write a row group.
pub(crate) trait Column {
    /// The column's schema field.
    fn field(&self) -> Result<TypePtr, ParquetError>;
    /// Writes the buffered values as this column's chunk of a row group, and
    /// empties the buffer.
    fn write_chunk(&mut self, w: &mut SerializedColumnWriter<'_>) -> Result<(), ParquetError>;
}

/// The values (and, when nullable, definition levels) shared by [`Req`] and [`Opt`].
struct Buffer<K: Kind> {
    name: String,
    values: Vec<<K::Data as DataType>::T>,
    /// One level per row of a nullable column: 1 = value, 0 = null.
    def: Vec<i16>,
    _kind: PhantomData<K>,
}

impl<K: Kind> Buffer<K> {
    fn new(name: String) -> Self {
        Buffer {
            name,
            values: Vec::new(),
            def: Vec::new(),
            _kind: PhantomData,
        }
    }

    fn field(&self, repetition: Repetition) -> Result<TypePtr, ParquetError> {
        Ok(Arc::new(
            Type::primitive_type_builder(&self.name, K::PHYSICAL)
                .with_repetition(repetition)
                .with_logical_type(K::logical())
                .build()?,
        ))
    }

    fn write_chunk(
        &mut self,
        w: &mut SerializedColumnWriter<'_>,
        nullable: bool,
    ) -> Result<(), ParquetError> {
        let def = nullable.then_some(self.def.as_slice());
        w.typed::<K::Data>().write_batch(&self.values, def, None)?;
        self.values.clear();
        self.def.clear();
        Ok(())
    }
}

/// A required column: every row has a value.
pub(crate) struct Req<K: Kind>(Buffer<K>);

impl<K: Kind> Req<K> {
    pub(crate) fn new(name: impl Into<String>) -> Self {
        Req(Buffer::new(name.into()))
    }

    pub(crate) fn push(&mut self, v: K::In<'_>) {
        self.0.values.push(K::encode(v));
    }
}

impl<K: Kind> Column for Req<K> {
    fn field(&self) -> Result<TypePtr, ParquetError> {
        self.0.field(Repetition::REQUIRED)
    }
    fn write_chunk(&mut self, w: &mut SerializedColumnWriter<'_>) -> Result<(), ParquetError> {
        self.0.write_chunk(w, false)
    }
}

/// A nullable column.
pub(crate) struct Opt<K: Kind>(Buffer<K>);

impl<K: Kind> Opt<K> {
    pub(crate) fn new(name: impl Into<String>) -> Self {
        Opt(Buffer::new(name.into()))
    }

    pub(crate) fn push(&mut self, v: Option<K::In<'_>>) {
        match v {
            Some(v) => {
                self.0.values.push(K::encode(v));
                self.0.def.push(1);
            }
            None => self.0.def.push(0),
        }
    }
}

impl<K: Kind> Column for Opt<K> {
    fn field(&self) -> Result<TypePtr, ParquetError> {
        self.0.field(Repetition::OPTIONAL)
    }
    fn write_chunk(&mut self, w: &mut SerializedColumnWriter<'_>) -> Result<(), ParquetError> {
        self.0.write_chunk(w, true)
    }
}

/// `None` (null) for NaN, the frame's and the engine's "no value"; any other
/// number as it is (an infinity, unlike in JSON, is a valid `DOUBLE`).
pub(crate) fn not_nan_f64(v: f64) -> Option<f64> {
    (!v.is_nan()).then_some(v)
}

/// [`not_nan_f64`] for `f32` fields.
pub(crate) fn not_nan_f32(v: f32) -> Option<f32> {
    (!v.is_nan()).then_some(v)
}
