//! Loading: custom sections, ABI versions, imports and exports are checked
//! before anything runs, and refusals say what to do.

use pitwall_runtime::{Boundary, LoadError};
use sha2::{Digest, Sha256};

use crate::common::{Spec, frame, runtime, set};

fn refuse(wasm: &[u8]) -> String {
    let err = runtime().compile(wasm).expect_err("must be refused");
    err.to_string()
}

#[test]
fn a_well_behaved_plugin_loads_and_answers_with_provenance() {
    let mut set = set();
    let wasm = Spec::fixed("echo", "1.0.0", 0.3, 10.0).wasm();
    let ticket = set.control().deploy(&wasm, Boundary::Next).unwrap();
    let out = set.on_frame(&frame(5_000), 5_000);
    assert_eq!(
        ticket.try_outcome().unwrap().unwrap().window_start_ms,
        5_000
    );
    assert_eq!(out.insights.len(), 3, "{out:?}");
    let hash = Sha256::digest(&wasm)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    for i in &out.insights {
        assert_eq!(i.plugin_name(), "echo");
        assert_eq!(i.plugin_version(), "1.0.0");
        assert_eq!(i.window_start_ms(), 5_000);
        assert_eq!(i.model_version(), "none");
        assert_eq!(i.content_hash(), hash);
    }
    let json = serde_json::to_string(&out.insights[0]).unwrap();
    assert!(
        json.contains(&hash) && json.contains("echo@1.0.0"),
        "{json}"
    );
    let stats = set.stats("echo").unwrap();
    assert_eq!((stats.calls, stats.ok, stats.insights_published), (1, 1, 3));
    let status = set.control().status();
    let p = status.plugin("echo").unwrap();
    assert_eq!(p.live.id, "echo@1.0.0");
    assert_eq!(p.live.content_hash.to_string(), hash);
}

#[test]
fn missing_sections_are_refused_before_compiling() {
    let mut s = Spec::fixed("echo", "1.0.0", 0.3, 1.0);
    s.abi = None;
    let msg = refuse(&s.wasm());
    assert!(
        msg.contains("pitwall:abi") && msg.contains("export macro"),
        "{msg}"
    );
    let mut s = Spec::fixed("echo", "1.0.0", 0.3, 1.0);
    s.info = Some(String::new());
    let msg = refuse(&s.wasm());
    assert!(msg.contains("pitwall:info"), "{msg}");
}

#[test]
fn malformed_sections_are_refused() {
    let mut s = Spec::fixed("echo", "1.0.0", 0.3, 1.0);
    s.info = Some(
        "{\"name\":\"Echo!\",\"version\":\"1.0.0\",\"kind\":\"story_generator\",\"abi\":\"1.0\"}"
            .into(),
    );
    let msg = refuse(&s.wasm());
    assert!(msg.contains("invalid plugin name"), "{msg}");
    let mut s = Spec::fixed("echo", "1.0.0", 0.3, 1.0);
    s.abi = Some([1, 0, 1, 0]);
    s.info = Some(Spec::fixed("echo", "1.0.0", 0.3, 1.0).info_json());
    let msg = refuse(&s.wasm());
    assert!(
        msg.contains("disagree") || msg.contains("declares ABI 1.0"),
        "{msg}"
    );
    assert!(matches!(
        runtime().compile(b"\0asm\x01\0\0\0garbage").unwrap_err(),
        LoadError::NotWasm(_)
    ));
}

#[test]
fn wrong_abi_versions_are_refused_with_what_to_do() {
    let mut s = Spec::fixed("echo", "1.0.0", 0.3, 1.0);
    s.abi = Some([2, 0, 0, 0]);
    let msg = refuse(&s.wasm());
    assert!(
        msg.contains("major version 2") && msg.contains("rebuild"),
        "{msg}"
    );
    s.abi = Some([1, 0, 7, 0]);
    let msg = refuse(&s.wasm());
    assert!(msg.contains("1.7") && msg.contains("newer"), "{msg}");
    s.abi = Some([0, 0, 1, 0]);
    let msg = refuse(&s.wasm());
    assert!(msg.contains("major version 0"), "{msg}");
}

#[test]
fn unknown_imports_are_refused() {
    let mut s = Spec::fixed("echo", "1.0.0", 0.3, 1.0);
    s.imports = r#"(import "pitwall_v1" "open_socket" (func (param i32)))"#.into();
    let msg = refuse(&s.wasm());
    assert!(
        msg.contains("pitwall_v1::open_socket") && msg.contains("no WASI"),
        "{msg}"
    );
    let mut s = Spec::fixed("echo", "1.0.0", 0.3, 1.0);
    s.imports = r#"(import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))"#.into();
    let msg = refuse(&s.wasm());
    assert!(msg.contains("wasi_snapshot_preview1::fd_write"), "{msg}");
    let mut s = Spec::fixed("echo", "1.0.0", 0.3, 1.0);
    s.imports = r#"(import "pitwall_v1" "params_len" (func (param i32)))"#.into();
    let msg = refuse(&s.wasm());
    assert!(
        msg.contains("params_len") && msg.contains("func() -> (i32)"),
        "{msg}"
    );
}

#[test]
fn missing_or_mistyped_exports_are_refused() {
    let wat = format!(
        r#"(module (@custom "pitwall:abi" "\01\00\00\00") (@custom "pitwall:info" "{}")
             (memory (export "memory") 1)
             (func (export "pitwall_alloc") (param i32) (result i32) (i32.const 0)))"#,
        crate::common::wat_bytes(Spec::new("echo", "1.0.0").info_json().as_bytes())
    );
    let msg = refuse(&wat::parse_str(&wat).unwrap());
    assert!(
        msg.contains("pitwall_on_frame") && msg.contains("requires"),
        "{msg}"
    );
    let wat = wat.replace(
        "(param i32) (result i32) (i32.const 0))",
        "(param i32) (result i32) (i32.const 0))
         (func (export \"pitwall_on_frame\") (param i32 i32) (result i32) (i32.const 0))",
    );
    let msg = refuse(&wat::parse_str(&wat).unwrap());
    assert!(
        msg.contains("pitwall_on_frame") && msg.contains("func(i32, i32) -> (i64)"),
        "{msg}"
    );
}

#[test]
fn compiling_the_same_bytes_twice_hits_the_cache() {
    let rt = runtime();
    let wasm = Spec::fixed("echo", "1.0.0", 0.3, 1.0).wasm();
    let a = rt.compile(&wasm).unwrap();
    let b = rt.compile(&wasm).unwrap();
    assert!(std::sync::Arc::ptr_eq(&a, &b));
}

#[test]
fn unload_stops_calls() {
    let mut set = set();
    let control = set.control();
    control
        .deploy(
            &Spec::fixed("echo", "1.0.0", 0.3, 1.0).wasm(),
            Boundary::Next,
        )
        .unwrap();
    assert_eq!(set.on_frame(&frame(0), 0).insights.len(), 3);
    let t = control.unload("echo", Boundary::At(2_000)).unwrap();
    assert_eq!(set.on_frame(&frame(1_000), 1_000).insights.len(), 3);
    let out = set.on_frame(&frame(2_000), 2_000);
    assert!(out.insights.is_empty());
    assert_eq!(t.try_outcome().unwrap().unwrap().window_start_ms, 2_000);
    assert!(set.stats("echo").is_none());
    assert!(
        control
            .unload("echo", Boundary::Next)
            .unwrap()
            .try_outcome()
            .is_none()
    );
    set.on_frame(&frame(3_000), 3_000);
}
