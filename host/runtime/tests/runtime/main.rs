//! Integration tests of the plugin runtime, one module per feature (as
//! wasmtime's own tests are laid out). Plugins are written in WAT (`common`).

mod common;
mod hostile;
mod loading;
mod params;
mod shadow;
mod swap;
mod watch;
