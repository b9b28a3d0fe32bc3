//! Pitwall's embedded store (issue 6).
