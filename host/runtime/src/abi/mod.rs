//! One binding module per supported ABI major, and the registry that picks one.
//!
//! A plugin declares its ABI in the `pitwall:abi` section; the host looks up
//! the binding for that major here and checks the minor with
//! [`AbiVersion::check_plugin`]. The import module name carries the major
//! (`pitwall_v1`), so when ABI 2 arrives, `v2.rs` is added beside `v1.rs` and a
//! plugin built for ABI 1 keeps linking against the functions it was built for
//! (as Zed keeps `since_vX_Y_Z` modules for old extensions).
//!
//! A binding describes its imports and exports as data, so a plugin that
//! imports something the host does not provide, or exports a required
//! function with the wrong signature, is refused at load time with a message
//! naming the function, before it is instantiated.

pub mod v1;

use pitwall_plugin_sdk::AbiVersion;
use wasmtime::{ExternType, FuncType, Linker, Module, ValType};

use crate::error::{LoadError, SupportedAbis};
use crate::store::HostState;

/// A wasm value type in a binding's signatures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    I32,
    I64,
}

/// A function signature.
#[derive(Debug, Clone, Copy)]
pub struct Sig {
    pub params: &'static [Ty],
    pub results: &'static [Ty],
}

impl Sig {
    fn matches(&self, ft: &FuncType) -> bool {
        let same = |tys: &[Ty], vals: &mut dyn ExactSizeIterator<Item = ValType>| {
            tys.len() == vals.len()
                && tys.iter().zip(vals).all(|(t, v)| match t {
                    Ty::I32 => matches!(v, ValType::I32),
                    Ty::I64 => matches!(v, ValType::I64),
                })
        };
        same(self.params, &mut ft.params()) && same(self.results, &mut ft.results())
    }
}

impl std::fmt::Display for Sig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list = |tys: &[Ty]| {
            tys.iter()
                .map(|t| match t {
                    Ty::I32 => "i32",
                    Ty::I64 => "i64",
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        write!(f, "func({}) -> ({})", list(self.params), list(self.results))
    }
}

/// An export the guest provides.
#[derive(Debug, Clone, Copy)]
pub struct ExportSpec {
    pub name: &'static str,
    /// `None` for the memory export.
    pub sig: Option<Sig>,
    pub required: bool,
}

/// Everything the host knows about one ABI major.
pub struct Binding {
    /// The newest version this binding runs (plugins of the same major and a
    /// minor up to this one).
    pub abi: AbiVersion,
    /// The import module name, e.g. `pitwall_v1`.
    pub import_module: &'static str,
    /// Host functions, by name.
    pub imports: &'static [(&'static str, Sig)],
    /// Guest exports, by name.
    pub exports: &'static [ExportSpec],
    link: fn(&mut Linker<HostState>) -> wasmtime::Result<()>,
}

impl std::fmt::Debug for Binding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Binding")
            .field("abi", &self.abi)
            .field("import_module", &self.import_module)
            .finish_non_exhaustive()
    }
}

/// The bindings this host has, oldest first.
pub static BINDINGS: &[&Binding] = &[&v1::BINDING];

/// The ABI versions this host runs (one per binding: the newest minor of each major).
pub fn supported() -> SupportedAbis {
    SupportedAbis(BINDINGS.iter().map(|b| b.abi).collect())
}

/// The binding that runs a plugin declaring `abi`, or why there is none.
pub fn binding_for(abi: AbiVersion) -> Result<&'static Binding, LoadError> {
    let unsupported = |reason| LoadError::UnsupportedAbi {
        reason,
        supported: supported(),
    };
    match BINDINGS.iter().find(|b| b.abi.major == abi.major) {
        Some(b) => {
            b.abi.check_plugin(abi).map_err(unsupported)?;
            Ok(b)
        }
        None => {
            // Report against the binding nearest in major: that error names both versions.
            let nearest = BINDINGS
                .iter()
                .min_by_key(|b| b.abi.major.abs_diff(abi.major))
                .expect("at least one binding");
            Err(unsupported(
                nearest
                    .abi
                    .check_plugin(abi)
                    .expect_err("different major never runs"),
            ))
        }
    }
}

impl Binding {
    /// Adds this binding's host functions to `linker`.
    pub(crate) fn link(&self, linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
        (self.link)(linker)
    }

    /// Checks a compiled module's imports and exports against this binding.
    pub(crate) fn check_module(&self, module: &Module) -> Result<(), LoadError> {
        for import in module.imports() {
            let (m, n) = (import.module(), import.name());
            let provided = || {
                self.imports
                    .iter()
                    .map(|(n, _)| format!("{}::{n}", self.import_module))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let spec = (m == self.import_module)
                .then(|| self.imports.iter().find(|(name, _)| *name == n))
                .flatten();
            let Some((_, sig)) = spec else {
                return Err(LoadError::UnknownImport {
                    module: m.to_string(),
                    name: n.to_string(),
                    abi: self.abi,
                    provided: provided(),
                });
            };
            match import.ty() {
                ExternType::Func(ft) if sig.matches(&ft) => {}
                other => {
                    return Err(LoadError::ImportType {
                        module: m.to_string(),
                        name: n.to_string(),
                        abi: self.abi,
                        found: describe(&other),
                        expected: sig.to_string(),
                    });
                }
            }
        }
        for spec in self.exports {
            let expected = || spec.sig.map_or("memory".to_string(), |s| s.to_string());
            match (module.get_export(spec.name), spec.sig) {
                (None, _) if spec.required => {
                    return Err(LoadError::MissingExport {
                        name: spec.name,
                        abi: self.abi,
                        expected: expected(),
                    });
                }
                (None, _) => {}
                (Some(ExternType::Memory(_)), None) => {}
                (Some(ExternType::Func(ft)), Some(sig)) if sig.matches(&ft) => {}
                (Some(other), _) => {
                    return Err(LoadError::ExportType {
                        name: spec.name.to_string(),
                        abi: self.abi,
                        found: describe(&other),
                        expected: expected(),
                    });
                }
            }
        }
        Ok(())
    }

    /// Whether the module exports `name`.
    pub(crate) fn exports_fn(module: &Module, name: &str) -> bool {
        matches!(module.get_export(name), Some(ExternType::Func(_)))
    }
}

fn describe(ty: &ExternType) -> String {
    match ty {
        ExternType::Func(ft) => {
            let list = |it: &mut dyn Iterator<Item = ValType>| {
                it.map(|v| v.to_string()).collect::<Vec<_>>().join(", ")
            };
            format!(
                "func({}) -> ({})",
                list(&mut ft.params()),
                list(&mut ft.results())
            )
        }
        ExternType::Memory(_) => "a memory".into(),
        ExternType::Table(_) => "a table".into(),
        ExternType::Global(_) => "a global".into(),
        ExternType::Tag(_) => "a tag".into(),
    }
}

/// A bound guest: the exports of whichever ABI the plugin speaks. Each major
/// adds a variant; the instance code matches on it.
pub(crate) enum Guest {
    V1(v1::Exports),
}

impl Guest {
    pub(crate) fn bind(
        binding: &Binding,
        instance: &wasmtime::Instance,
        store: &mut wasmtime::Store<HostState>,
    ) -> Result<Guest, String> {
        match binding.abi.major {
            1 => v1::Exports::bind(instance, store).map(Guest::V1),
            other => Err(format!("no guest binding for ABI major {other}")),
        }
    }

    pub(crate) fn v1(&self) -> &v1::Exports {
        match self {
            Guest::V1(e) => e,
        }
    }
}
