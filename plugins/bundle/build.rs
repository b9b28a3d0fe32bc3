//! Builds every plugin of the repository for `wasm32-unknown-unknown`, so
//! `cargo test`, `cargo run` and CI always find up-to-date `.wasm` files
//! without a separate step (the same approach as substrate's wasm-builder).
//!
//! * A **nested** `cargo build --profile plugin --target wasm32-unknown-unknown`
//!   with its own target dir (`target/wasm-plugins`): the outer cargo holds
//!   the lock on `target/`, so sharing it would deadlock. The outer cargo's
//!   environment (target dir, rustflags, jobserver, clippy's wrapper, build
//!   script variables) is removed so the nested build is an ordinary one.
//! * The target is installed with rustup when missing.
//! * Output goes to `target/wasm-plugins/build.log`; on failure its tail is
//!   printed and the build fails.
//! * The `.wasm` files are copied to `target/plugins/<key>.wasm`, only when
//!   their bytes changed (a file watcher sees real changes only).
//! * Reruns when anything under `plugins/` or `plugin-sdk/` changes.
//!
//! `PITWALL_SKIP_PLUGIN_BUILD=1` skips the nested build (e.g. a docs-only
//! build on a machine without the target); `plugin_dir()` then holds
//! whatever an earlier build left there.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

#[derive(Clone, Copy)]
#[allow(dead_code)]
enum Role {
    Example,
    Race,
    SwapTest,
    Hostile,
}

include!("src/list.rs");

const TARGET: &str = "wasm32-unknown-unknown";
const PROFILE: &str = "plugin";

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest
        .parent()
        .and_then(Path::parent)
        .expect("plugins/bundle lives two levels below the workspace root")
        .to_path_buf();
    let nested_target = root.join("target").join("wasm-plugins");
    let dist = root.join("target").join("plugins");
    println!("cargo:rustc-env=PITWALL_PLUGIN_DIR={}", dist.display());
    for p in ["plugins", "plugin-sdk", "Cargo.toml", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", root.join(p).display());
    }
    println!("cargo:rerun-if-env-changed=PITWALL_SKIP_PLUGIN_BUILD");
    if std::env::var_os("PITWALL_SKIP_PLUGIN_BUILD").is_some_and(|v| v == "1") {
        println!("pitwall plugins: skipped (PITWALL_SKIP_PLUGIN_BUILD=1)");
        return;
    }
    if let Err(e) = build(&root, &nested_target, &dist) {
        eprintln!("\nerror: building the WASM plugins failed\n\n{e}\n");
        std::process::exit(1);
    }
}

fn cargo_command(cargo: &str) -> Command {
    let mut cmd = Command::new(cargo);
    // Drop what the outer cargo set for itself or for this build script;
    // keep the user's own cargo configuration (CARGO_HOME, CARGO_NET_*, ...).
    const PREFIXES: [&str; 10] = [
        "CARGO_BUILD_",
        "CARGO_TARGET_",
        "CARGO_PKG_",
        "CARGO_MANIFEST_",
        "CARGO_CFG_",
        "CARGO_FEATURE_",
        "CARGO_PROFILE_",
        "CARGO_ENCODED_",
        "CARGO_MAKEFLAGS",
        "CARGO_PRIMARY_",
    ];
    for (k, _) in std::env::vars_os() {
        let Some(k) = k.to_str() else { continue };
        let outer = PREFIXES.iter().any(|p| k.starts_with(p))
            || matches!(
                k,
                "CARGO"
                    | "CARGO_CRATE_NAME"
                    | "RUSTFLAGS"
                    | "RUSTDOCFLAGS"
                    | "RUSTC"
                    | "RUSTDOC"
                    | "RUSTC_WRAPPER"
                    | "RUSTC_WORKSPACE_WRAPPER"
                    | "RUSTC_LINKER"
                    | "CLIPPY_ARGS"
                    | "CLIPPY_CONF_DIR"
                    | "TARGET"
                    | "HOST"
                    | "OUT_DIR"
                    | "PROFILE"
                    | "OPT_LEVEL"
                    | "DEBUG"
                    | "NUM_JOBS"
                    | "DEBUG_ASSERTIONS"
            );
        if outer {
            cmd.env_remove(k);
        }
    }
    cmd
}

fn ensure_target() -> Result<(), String> {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .map_err(|e| format!("cannot run {rustc} --print sysroot: {e}"))?;
    let sysroot = String::from_utf8_lossy(&sysroot.stdout).trim().to_string();
    if Path::new(&sysroot)
        .join("lib/rustlib")
        .join(TARGET)
        .exists()
    {
        return Ok(());
    }
    println!("pitwall plugins: installing the {TARGET} target with rustup");
    let status = Command::new("rustup")
        .args(["target", "add", TARGET])
        .stdout(Stdio::null())
        .status()
        .map_err(|e| {
            format!(
                "the {TARGET} target is not installed (no {sysroot}/lib/rustlib/{TARGET}) and \
                 rustup could not be run ({e}); install the target for this toolchain, or set \
                 PITWALL_SKIP_PLUGIN_BUILD=1 to build without the plugins"
            )
        })?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`rustup target add {TARGET}` failed ({status})"))
    }
}

fn build(root: &Path, nested_target: &Path, dist: &Path) -> Result<(), String> {
    ensure_target()?;
    std::fs::create_dir_all(nested_target).map_err(|e| e.to_string())?;
    let log_path = nested_target.join("build.log");
    let log =
        std::fs::File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = cargo_command(&cargo);
    cmd.current_dir(root)
        .arg("build")
        .arg("--manifest-path")
        .arg(root.join("Cargo.toml"))
        .args(["--profile", PROFILE, "--target", TARGET, "--target-dir"])
        .arg(nested_target)
        .arg("--color=never");
    for (_, package, ..) in LIST {
        cmd.args(["-p", package]);
    }
    let status = cmd
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log)
        .status()
        .map_err(|e| format!("cannot run {cargo}: {e}"))?;
    if !status.success() {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(60)..].join("\n");
        return Err(format!(
            "`{cargo} build --profile {PROFILE} --target {TARGET}` failed ({status}); \
             full log: {}\n\n{tail}",
            log_path.display()
        ));
    }
    std::fs::create_dir_all(dist).map_err(|e| e.to_string())?;
    let out_dir = nested_target.join(TARGET).join(PROFILE);
    let mut total = 0;
    for (key, package, ..) in LIST {
        let src = out_dir.join(format!("{}.wasm", package.replace('-', "_")));
        let bytes = std::fs::read(&src).map_err(|e| format!("{}: {e}", src.display()))?;
        total += bytes.len();
        let dst = dist.join(format!("{key}.wasm"));
        if std::fs::read(&dst).ok().as_deref() != Some(&bytes[..]) {
            // Write then rename: a watcher never sees a half-written module.
            let tmp = dist.join(format!(".{key}.wasm.tmp"));
            std::fs::write(&tmp, &bytes).map_err(|e| format!("{}: {e}", tmp.display()))?;
            std::fs::rename(&tmp, &dst).map_err(|e| format!("{}: {e}", dst.display()))?;
        }
    }
    println!(
        "pitwall plugins: {} modules ({} KiB) in {}",
        LIST.len(),
        total / 1024,
        dist.display()
    );
    Ok(())
}
