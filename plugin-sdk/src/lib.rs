//! Pitwall plugin SDK.
