//! Race frames and window aggregates as Parquet (issue 6).
