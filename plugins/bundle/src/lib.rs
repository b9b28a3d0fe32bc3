//! The repository's WASM plugins, built and located.
//!
//! This crate's build script compiles every plugin under `plugins/` for
//! `wasm32-unknown-unknown` (profile `plugin`: `panic = "abort"`, size-optimised)
//! in a nested cargo build, and copies the modules to [`plugin_dir`]
//! (`target/plugins/<key>.wasm`). Depending on this crate, even as a
//! dev-dependency, is all a test or binary needs to find up-to-date modules:
//!
//! ```no_run
//! let spin = pitwall_plugins_bundle::wasm_path("hostile-spin");
//! let bytes = std::fs::read(spin)?;
//! for p in pitwall_plugins_bundle::examples() {
//!     println!("{} {}@{} at {}", p.key, p.name, p.version, p.path().display());
//! }
//! # Ok::<(), std::io::Error>(())
//! ```

use std::path::{Path, PathBuf};

/// What a plugin is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// A real example plugin (ships with the main run).
    Example,
    /// Race intelligence (issue 5): battles, overtake model, fuel and Burn
    /// Bar, stories; trained and evaluated on real races.
    Race,
    /// A test fixture for hot swaps (`counter` in two versions).
    SwapTest,
    /// Misbehaves on purpose; the runtime's tests check it is contained.
    Hostile,
}

include!("list.rs");

/// One plugin of the bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PluginSpec {
    /// File stem in [`plugin_dir`] (unique; `counter-v1`, `counter-v2` share a name).
    pub key: &'static str,
    /// The cargo package.
    pub package: &'static str,
    /// The plugin name in its `pitwall:info`.
    pub name: &'static str,
    /// The plugin version in its `pitwall:info`.
    pub version: &'static str,
    pub role: Role,
}

impl PluginSpec {
    /// Where its `.wasm` file is.
    pub fn path(&self) -> PathBuf {
        plugin_dir().join(format!("{}.wasm", self.key))
    }

    /// `name@version`.
    pub fn id(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }
}

/// Every plugin the bundle builds.
pub const PLUGINS: &[PluginSpec] = &{
    let mut out = [PluginSpec {
        key: "",
        package: "",
        name: "",
        version: "",
        role: Role::Example,
    }; LIST.len()];
    let mut i = 0;
    while i < LIST.len() {
        let (key, package, name, version, role) = LIST[i];
        out[i] = PluginSpec {
            key,
            package,
            name,
            version,
            role,
        };
        i += 1;
    }
    out
};

/// The directory holding the built modules (`<workspace>/target/plugins`).
pub fn plugin_dir() -> &'static Path {
    Path::new(env!("PITWALL_PLUGIN_DIR"))
}

/// The plugin with file stem `key` (see [`PLUGINS`]).
pub fn spec(key: &str) -> Option<&'static PluginSpec> {
    PLUGINS.iter().find(|p| p.key == key)
}

/// Path of the module with file stem `key` (e.g. `gap-watch`, `counter-v2`,
/// `hostile-spin`).
///
/// # Panics
/// If `key` is not one of [`PLUGINS`]: a typo in a test should fail loudly,
/// not look like a missing file.
pub fn wasm_path(key: &str) -> PathBuf {
    match spec(key) {
        Some(p) => p.path(),
        None => panic!(
            "no plugin {key:?} in the bundle; known: {}",
            PLUGINS.iter().map(|p| p.key).collect::<Vec<_>>().join(", ")
        ),
    }
}

/// The example plugins.
pub fn examples() -> impl Iterator<Item = &'static PluginSpec> {
    PLUGINS.iter().filter(|p| p.role == Role::Example)
}

/// The race-intelligence plugins (battles, overtake, fuel, stories).
pub fn race() -> impl Iterator<Item = &'static PluginSpec> {
    PLUGINS.iter().filter(|p| p.role == Role::Race)
}

/// What the main run (`pitwall run`, `pitwall replay --example-plugins`)
/// loads: the race-intelligence plugins.
pub fn shipped() -> impl Iterator<Item = &'static PluginSpec> {
    race()
}

/// The hostile plugins.
pub fn hostile() -> impl Iterator<Item = &'static PluginSpec> {
    PLUGINS.iter().filter(|p| p.role == Role::Hostile)
}

#[cfg(test)]
mod tests;
