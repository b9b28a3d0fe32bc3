//! WAT plugins for the tests, built from a reply template.
//!
//! A plugin's reply is an `Insights` FlatBuffer built here with the SDK and
//! embedded as a data segment; the guest copies it to its output area, patches
//! in the window it read from the frame (walking the FlatBuffer's vtable) and,
//! for counters, the number of frames it has seen as a metric value.

#![allow(dead_code)]

use pitwall_plugin_sdk::frame::RaceFrameData;
use pitwall_plugin_sdk::{CarMetric, InsightsData, Prediction, Story};
use pitwall_runtime::{PluginSet, Runtime, RuntimeConfig};

const WS_SENTINEL: i64 = 0x0123_4567_89ab_cdef;
const VALUE_SENTINEL: f64 = 987_654.321;

/// Escapes bytes for a WAT string.
pub fn wat_bytes(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("\\{b:02x}")).collect()
}

fn find(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len())
        .position(|w| w == needle)
        .expect("sentinel in template")
}

/// How a test plugin behaves.
#[derive(Clone)]
pub struct Spec {
    pub name: String,
    pub version: String,
    pub kind: &'static str,
    /// The `pitwall:abi` bytes; `None` = no section.
    pub abi: Option<[u8; 4]>,
    /// The `pitwall:info` JSON; `None` = derived from the fields; `Some("")` = no section.
    pub info: Option<String>,
    pub state_version: Option<u32>,
    /// Export snapshot/restore.
    pub stateful: bool,
    /// The reply's contents (window is patched in).
    pub reply: InsightsData,
    /// Patch the first metric's value with the frame count.
    pub counter: bool,
    /// WAT instructions run at the start of `pitwall_on_frame` (`$ptr`, `$len` in scope).
    pub prelude: String,
    /// Extra module fields (functions, …).
    pub extra: String,
    /// Extra imports (placed before any function).
    pub imports: String,
}

impl Spec {
    pub fn new(name: &str, version: &str) -> Spec {
        Spec {
            name: name.into(),
            version: version.into(),
            kind: "story_generator",
            abi: Some([1, 0, 0, 0]),
            info: None,
            state_version: None,
            stateful: false,
            reply: InsightsData::default(),
            counter: false,
            prelude: String::new(),
            extra: String::new(),
            imports: String::new(),
        }
    }

    /// A stateful counter: one metric `count` for car 1 = frames seen.
    pub fn counter(name: &str, version: &str) -> Spec {
        let mut s = Spec::new(name, version);
        s.kind = "car_model";
        s.state_version = Some(1);
        s.stateful = true;
        s.counter = true;
        s.reply.metrics = vec![CarMetric::new("1", "count", VALUE_SENTINEL, "").unwrap()];
        s
    }

    /// A plugin answering the same story, prediction and metric every frame.
    pub fn fixed(name: &str, version: &str, p: f64, metric: f64) -> Spec {
        let mut s = Spec::new(name, version);
        s.reply.stories = vec![
            Story::builder("battle", "NOR closes on VER")
                .cars(["4", "1"])
                .importance(0.8)
                .build()
                .unwrap(),
        ];
        s.reply.predictions = vec![
            Prediction::builder("p_overtake", "4", "1")
                .probability(p)
                .horizon_laps(3)
                .build()
                .unwrap(),
        ];
        s.reply.metrics = vec![CarMetric::new("4", "fuel_kg_per_lap", metric, "kg/lap").unwrap()];
        s
    }

    pub fn prelude(mut self, wat: &str) -> Spec {
        self.prelude = wat.into();
        self
    }

    pub fn info_json(&self) -> String {
        let sv = self
            .state_version
            .map_or(String::new(), |v| format!(",\"state_version\":{v}"));
        let abi = self.abi.map_or("1.0".to_string(), |a| {
            format!(
                "{}.{}",
                u16::from_le_bytes([a[0], a[1]]),
                u16::from_le_bytes([a[2], a[3]])
            )
        });
        format!(
            "{{\"name\":\"{}\",\"version\":\"{}\",\"kind\":\"{}\",\"abi\":\"{abi}\"{sv}}}",
            self.name, self.version, self.kind
        )
    }

    pub fn wat(&self) -> String {
        let mut reply = self.reply.clone();
        reply.window_start_ms = WS_SENTINEL;
        let template = reply.to_flatbuffer();
        let ws_off = find(&template, &WS_SENTINEL.to_le_bytes());
        let patch_value = if self.counter {
            let off = find(&template, &VALUE_SENTINEL.to_le_bytes());
            format!(
                "(f64.store (i32.const {}) (f64.convert_i64_u (global.get $count)))",
                32768 + off
            )
        } else {
            String::new()
        };
        let tl = template.len();
        let state = if self.stateful {
            r#"
  (func (export "pitwall_snapshot") (result i64)
    (i64.store (i32.const 512) (global.get $count))
    (i64.const 2199023255560))
  (func (export "pitwall_restore") (param $p i32) (param $l i32) (param $sv i32) (result i32)
    (if (i32.ne (local.get $l) (i32.const 8)) (then (return (i32.const 1))))
    (global.set $count (i64.load (local.get $p)))
    (i32.const 0))"#
        } else {
            ""
        };
        let abi = self.abi.map_or(String::new(), |a| {
            format!("(@custom \"pitwall:abi\" \"{}\")", wat_bytes(&a))
        });
        let info = match &self.info {
            Some(s) if s.is_empty() => String::new(),
            Some(s) => format!("(@custom \"pitwall:info\" \"{}\")", wat_bytes(s.as_bytes())),
            None => format!(
                "(@custom \"pitwall:info\" \"{}\")",
                wat_bytes(self.info_json().as_bytes())
            ),
        };
        format!(
            r#"(module
  {abi}
  {info}
  (import "pitwall_v1" "log" (func $log (param i32 i32 i32)))
  (import "pitwall_v1" "params_generation" (func $params_generation (result i64)))
  (import "pitwall_v1" "params_len" (func $params_len (result i32)))
  (import "pitwall_v1" "params_read" (func $params_read (param i32 i32) (result i32)))
  {imports}
  (memory (export "memory") 2)
  (global $count (mut i64) (i64.const 0))
  (data (i32.const 1024) "{data}")
  (data (i32.const 2048) "garbage-garbage-garbage-garbage!")
  (data (i32.const 3000) "hello from the guest")
  (func (export "pitwall_alloc") (param $len i32) (result i32)
    (local $need i32)
    (local.set $need (i32.add (i32.const 65536) (local.get $len)))
    (if (i32.gt_u (local.get $need) (i32.mul (memory.size) (i32.const 65536)))
      (then
        (if (i32.eq
              (memory.grow (i32.sub (i32.div_u (i32.add (local.get $need) (i32.const 65535)) (i32.const 65536)) (memory.size)))
              (i32.const -1))
          (then (return (i32.const 0))))))
    (i32.const 65536))
  (func $field (param $table i32) (param $idx i32) (result i32)
    (local $vt i32) (local $slot i32) (local $off i32)
    (local.set $vt (i32.sub (local.get $table) (i32.load (local.get $table))))
    (local.set $slot (i32.add (i32.const 4) (i32.mul (local.get $idx) (i32.const 2))))
    (if (i32.ge_u (local.get $slot) (i32.load16_u (local.get $vt))) (then (return (i32.const 0))))
    (local.set $off (i32.load16_u (i32.add (local.get $vt) (local.get $slot))))
    (if (i32.eqz (local.get $off)) (then (return (i32.const 0))))
    (i32.add (local.get $table) (local.get $off)))
  (func $window (param $ptr i32) (result i64)
    (local $f i32)
    (local.set $f (call $field (i32.add (local.get $ptr) (i32.load (local.get $ptr))) (i32.const 1)))
    (if (result i64) (local.get $f) (then (i64.load (local.get $f))) (else (i64.const 0))))
  (func (export "pitwall_on_frame") (param $ptr i32) (param $len i32) (result i64)
    {prelude}
    (global.set $count (i64.add (global.get $count) (i64.const 1)))
    (memory.copy (i32.const 32768) (i32.const 1024) (i32.const {tl}))
    (i64.store (i32.const {ws_at}) (call $window (local.get $ptr)))
    {patch_value}
    (i64.or (i64.shl (i64.const 32768) (i64.const 32)) (i64.const {tl})))
  {state}
  {extra}
)"#,
            data = wat_bytes(&template),
            prelude = self.prelude,
            ws_at = 32768 + ws_off,
            extra = self.extra,
            imports = self.imports,
        )
    }

    pub fn wasm(&self) -> Vec<u8> {
        wat::parse_str(self.wat()).unwrap_or_else(|e| panic!("{e}\n{}", self.wat()))
    }
}

/// A race frame for the window starting at `ws`.
pub fn frame(ws: i64) -> Vec<u8> {
    RaceFrameData {
        window_start_ms: ws,
        window_end_ms: ws + 1000,
        seq: (ws / 1000) as u64,
        session: "test".into(),
        ..RaceFrameData::default()
    }
    .to_flatbuffer()
}

pub fn runtime() -> Runtime {
    runtime_with(RuntimeConfig {
        max_instances: 32,
        ..RuntimeConfig::default()
    })
}

pub fn runtime_with(config: RuntimeConfig) -> Runtime {
    Runtime::new(config).expect("engine")
}

pub fn set() -> PluginSet {
    PluginSet::new(runtime())
}

/// The value of the `count` metric a counter published, with its version.
pub fn counts(outcome: &pitwall_runtime::FrameOutcome, plugin: &str) -> Vec<(String, f64)> {
    outcome
        .insights
        .iter()
        .filter(|i| i.plugin_name() == plugin)
        .filter_map(|i| match i.body() {
            pitwall_plugin_sdk::InsightBody::Metric(m) => {
                Some((i.plugin_version().to_string(), m.value()))
            }
            _ => None,
        })
        .collect()
}
