//! The built modules are what docs/plugin-abi.md says: checked on the bytes,
//! without a WASM runtime (the host's own tests run them).

use super::*;
use pitwall_plugin_sdk::{ABI_VERSION, AbiVersion, PluginInfo};

fn leb(bytes: &[u8], pos: &mut usize) -> u32 {
    let (mut v, mut shift) = (0u32, 0);
    loop {
        let b = bytes[*pos];
        *pos += 1;
        v |= u32::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return v;
        }
        shift += 7;
    }
}

fn name<'a>(bytes: &'a [u8], pos: &mut usize) -> &'a str {
    let len = leb(bytes, pos) as usize;
    let s = std::str::from_utf8(&bytes[*pos..*pos + len]).unwrap();
    *pos += len;
    s
}

/// Custom sections (name, content) and function export names.
fn parse(wasm: &[u8]) -> (Vec<(String, Vec<u8>)>, Vec<String>) {
    assert_eq!(&wasm[..8], b"\0asm\x01\0\0\0", "not a wasm core module");
    let (mut customs, mut exports) = (Vec::new(), Vec::new());
    let mut pos = 8;
    while pos < wasm.len() {
        let id = wasm[pos];
        pos += 1;
        let size = leb(wasm, &mut pos) as usize;
        let end = pos + size;
        let mut p = pos;
        match id {
            0 => {
                let n = name(wasm, &mut p).to_string();
                customs.push((n, wasm[p..end].to_vec()));
            }
            7 => {
                for _ in 0..leb(wasm, &mut p) {
                    let n = name(wasm, &mut p).to_string();
                    let kind = wasm[p];
                    p += 1;
                    leb(wasm, &mut p);
                    if kind == 0 || n == "memory" {
                        exports.push(n);
                    }
                }
            }
            _ => {}
        }
        pos = end;
    }
    (customs, exports)
}

fn section<'a>(customs: &'a [(String, Vec<u8>)], name: &str) -> &'a [u8] {
    let found: Vec<_> = customs.iter().filter(|(n, _)| n == name).collect();
    assert_eq!(found.len(), 1, "exactly one {name} section");
    &found[0].1
}

#[test]
fn every_module_is_built_and_declares_itself() {
    for p in PLUGINS {
        let wasm =
            std::fs::read(p.path()).unwrap_or_else(|e| panic!("{}: {e}", p.path().display()));
        let (customs, exports) = parse(&wasm);
        let abi = section(&customs, "pitwall:abi");
        let declared = AbiVersion::new(
            u16::from_le_bytes([abi[0], abi[1]]),
            u16::from_le_bytes([abi[2], abi[3]]),
        );
        let info: PluginInfo = serde_json::from_slice(section(&customs, "pitwall:info"))
            .unwrap_or_else(|e| panic!("{}: pitwall:info: {e}", p.key));
        assert_eq!(info.abi(), declared, "{}: sections disagree", p.key);
        assert_eq!(
            (info.name(), info.version()),
            (p.name, p.version),
            "{}",
            p.key
        );
        for required in ["memory", "pitwall_alloc", "pitwall_on_frame"] {
            assert!(
                exports.iter().any(|e| e == required),
                "{}: no export {required}: {exports:?}",
                p.key
            );
        }
        if p.key == "hostile-abi" {
            assert!(!ABI_VERSION.can_run(declared));
        } else {
            assert_eq!(declared, ABI_VERSION, "{}", p.key);
        }
        let stateful =
            ["pitwall_snapshot", "pitwall_restore"].map(|e| exports.iter().any(|x| x == e));
        if p.role == Role::SwapTest {
            assert_eq!(info.state_version(), Some(1), "{}", p.key);
        }
        // A plugin exports snapshot/restore exactly when it declares a state
        // version (the swap fixtures and stateful race plugins such as `fuel`).
        let declares = info.state_version().is_some();
        assert_eq!(stateful, [declares, declares], "{}: {exports:?}", p.key);
        // No WASI or other imports beyond pitwall_v1.
        assert!(
            !wasm.windows(22).any(|w| w == b"wasi_snapshot_preview1"),
            "{}",
            p.key
        );
    }
}

#[test]
fn lookups() {
    assert_eq!(wasm_path("gap-watch"), plugin_dir().join("gap-watch.wasm"));
    assert_eq!(examples().count(), 3);
    assert_eq!(hostile().count(), 5);
    assert_eq!(spec("counter-v2").unwrap().id(), "counter@2.0.0");
    let keys: std::collections::HashSet<_> = PLUGINS.iter().map(|p| p.key).collect();
    assert_eq!(keys.len(), PLUGINS.len());
}

#[test]
#[should_panic(expected = "known: gap-watch")]
fn unknown_keys_fail_loudly() {
    wasm_path("gap_watch");
}
