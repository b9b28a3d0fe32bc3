//! Hostile: valid metadata, but `pitwall_on_frame` returns garbage, written by
//! hand rather than with `export_plugin!`. Frame by frame it cycles through:
//!
//! 1. a pointer and length to bytes that are not a FlatBuffer;
//! 2. a range far outside linear memory;
//! 3. a well-formed `Insights` FlatBuffer whose prediction has probability 1.5
//!    (passes the verifier, fails validation);
//! 4. the input frame itself, echoed back;
//! 5. an `Insights` table of `insights_version` 7.
//!
//! The host must drop each reply, count the failure and carry on.

/// What the `n`-th call (1-based) returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Garbage {
    NotFlatBuffer,
    OutOfBounds,
    InvalidInsight,
    EchoFrame,
    WrongVersion,
}

impl Garbage {
    pub fn for_call(n: u64) -> Garbage {
        match (n.max(1) - 1) % 5 {
            0 => Garbage::NotFlatBuffer,
            1 => Garbage::OutOfBounds,
            2 => Garbage::InvalidInsight,
            3 => Garbage::EchoFrame,
            _ => Garbage::WrongVersion,
        }
    }
}

/// Bytes that are not a FlatBuffer.
pub const NOT_FLATBUFFER: &[u8] = b"this is not an Insights flatbuffer, just garbage bytes";

/// A hand-built reply: one prediction with `probability` and an `Insights`
/// table of `version`.
pub fn raw_reply(version: u16, probability: f64) -> Vec<u8> {
    use pitwall_plugin_sdk::frame::fb;
    let mut fbb = pitwall_plugin_sdk::flatbuffers::FlatBufferBuilder::new();
    let kind = fbb.create_string("p_attack");
    let p = fb::PredictionOut::create(
        &mut fbb,
        &fb::PredictionOutArgs {
            kind: Some(kind),
            attacker: 4,
            defender: 1,
            probability,
            horizon_laps: 1,
            contributions: None,
        },
    );
    let preds = fbb.create_vector(&[p]);
    let root = fb::Insights::create(
        &mut fbb,
        &fb::InsightsArgs {
            insights_version: version,
            window_start_ms: 0,
            stories: None,
            predictions: Some(preds),
            metrics: None,
        },
    );
    fbb.finish(root, None);
    fbb.finished_data().to_vec()
}

#[cfg(target_arch = "wasm32")]
mod exports {
    use super::*;
    use std::cell::UnsafeCell;

    #[used]
    #[unsafe(link_section = "pitwall:abi")]
    static ABI: [u8; 4] = pitwall_plugin_sdk::export::ABI_SECTION;

    const INFO: &str = concat!(
        r#"{"name":"hostile-garbage","version":"0.1.0","kind":"pair_model","abi":""#,
        pitwall_plugin_sdk::__pitwall_abi_str!(),
        r#""}"#
    );
    #[used]
    #[unsafe(link_section = "pitwall:info")]
    static INFO_SECTION: [u8; INFO.len()] =
        pitwall_plugin_sdk::export::str_bytes::<{ INFO.len() }>(INFO);

    struct State {
        input: Vec<u8>,
        reply: Vec<u8>,
        calls: u64,
    }
    struct Cell(UnsafeCell<State>);
    // SAFETY: wasm32-unknown-unknown has one thread; the host does not re-enter.
    unsafe impl Sync for Cell {}
    static STATE: Cell = Cell(UnsafeCell::new(State {
        input: Vec::new(),
        reply: Vec::new(),
        calls: 0,
    }));

    fn pack(ptr: usize, len: usize) -> i64 {
        ((ptr as u32 as i64) << 32) | i64::from(len as u32)
    }

    #[unsafe(no_mangle)]
    pub extern "C" fn pitwall_alloc(len: i32) -> i32 {
        // SAFETY: see `Cell`.
        let s = unsafe { &mut *STATE.0.get() };
        s.input.resize(len.max(0) as usize, 0);
        s.input.as_mut_ptr() as i32
    }

    #[unsafe(no_mangle)]
    pub extern "C" fn pitwall_on_frame(ptr: i32, len: i32) -> i64 {
        // SAFETY: see `Cell`.
        let s = unsafe { &mut *STATE.0.get() };
        s.calls += 1;
        match Garbage::for_call(s.calls) {
            Garbage::NotFlatBuffer => pack(NOT_FLATBUFFER.as_ptr() as usize, NOT_FLATBUFFER.len()),
            Garbage::OutOfBounds => pack(0x7FFF_0000, 1 << 20),
            Garbage::InvalidInsight => {
                s.reply = raw_reply(pitwall_plugin_sdk::INSIGHTS_VERSION, 1.5);
                pack(s.reply.as_ptr() as usize, s.reply.len())
            }
            Garbage::EchoFrame => pack(ptr as usize, len as usize),
            Garbage::WrongVersion => {
                s.reply = raw_reply(7, 0.5);
                pack(s.reply.as_ptr() as usize, s.reply.len())
            }
        }
    }
}
