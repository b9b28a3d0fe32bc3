//! [`export_plugin!`](crate::export_plugin): everything docs/plugin-abi.md
//! asks of a module, generated from one line.
//!
//! ```ignore
//! pitwall_plugin_sdk::export_plugin!(GapWatch, name = "gap-watch", version = "1.0.0", kind = story_generator);
//! pitwall_plugin_sdk::export_plugin!(Counter, name = "counter", version = env!("CARGO_PKG_VERSION"),
//!                                    kind = story_generator, state_version = 1);
//! ```
//!
//! It implements [`ExportedPlugin`](crate::ExportedPlugin) for the type (on
//! every target, so the native harness sees the same metadata) and, on
//! `wasm32` only:
//!
//! * the custom sections `pitwall:abi` (4 bytes: major, minor as `u16` LE)
//!   and `pitwall:info` (the `PluginInfo` JSON, built with `concat!` from the
//!   literals, so the host can read it without running anything);
//! * the exports `pitwall_alloc`, `pitwall_init`, `pitwall_on_frame` and, with
//!   `state_version`, `pitwall_snapshot` and `pitwall_restore`.
//!
//! `kind` is `story_generator`, `car_model` or `pair_model`, and the type must
//! implement the matching trait ([`StoryGenerator`](crate::StoryGenerator), …);
//! with `state_version = N` it must also implement [`Stateful`](crate::Stateful).
//! The name and version are checked at compile time.
//!
//! A panic inside the plugin aborts, which on `wasm32-unknown-unknown` is a
//! trap: the host counts the failure and the instance is not reused in a
//! broken state (no unwinding across the boundary, no UB).

use crate::abi::ABI_VERSION;

/// The `pitwall:abi` section: ABI major then minor, `u16` little-endian.
pub const ABI_SECTION: [u8; 4] = {
    let major = ABI_VERSION.major.to_le_bytes();
    let minor = ABI_VERSION.minor.to_le_bytes();
    [major[0], major[1], minor[0], minor[1]]
};

/// [`ABI_VERSION`] as the string written in `pitwall:info` (a literal, so
/// `concat!` can use it; a test checks that the two agree).
#[doc(hidden)]
#[macro_export]
macro_rules! __pitwall_abi_str {
    () => {
        "1.0"
    };
}

/// Copies a string into a byte array of its exact length, at compile time
/// (a `link_section` static must be an array).
pub const fn str_bytes<const N: usize>(s: &str) -> [u8; N] {
    let b = s.as_bytes();
    assert!(b.len() == N, "length mismatch");
    let mut out = [0u8; N];
    let mut i = 0;
    while i < N {
        out[i] = b[i];
        i += 1;
    }
    out
}

/// The plugin-name rule of [`info`](mod@crate::info), usable in a `const` assertion.
pub const fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    if b.is_empty() || b.len() > crate::info::MAX_NAME_LEN || !b[0].is_ascii_lowercase() {
        return false;
    }
    if b[b.len() - 1] == b'-' {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-') {
            return false;
        }
        if c == b'-' && i + 1 < b.len() && b[i + 1] == b'-' {
            return false;
        }
        i += 1;
    }
    true
}

/// The `MAJOR.MINOR.PATCH` rule of [`info`](mod@crate::info), usable in a `const` assertion.
pub const fn valid_version(v: &str) -> bool {
    let b = v.as_bytes();
    let (mut parts, mut digits, mut i) = (1, 0, 0);
    let mut leading_zero = false;
    while i < b.len() {
        let c = b[i];
        if c == b'.' {
            if digits == 0 {
                return false;
            }
            parts += 1;
            digits = 0;
            leading_zero = false;
        } else if c.is_ascii_digit() {
            if leading_zero {
                return false;
            }
            if digits == 0 && c == b'0' {
                leading_zero = true;
            }
            digits += 1;
            if digits > 19 {
                return false;
            }
        } else {
            return false;
        }
        i += 1;
    }
    parts == 3 && digits > 0
}

/// Maps a kind name to the SDK's glue (internal to [`export_plugin!`](crate::export_plugin)).
#[doc(hidden)]
#[macro_export]
macro_rules! __pitwall_kind {
    (const story_generator) => {
        $crate::PluginKind::StoryGenerator
    };
    (const car_model) => {
        $crate::PluginKind::CarModel
    };
    (const pair_model) => {
        $crate::PluginKind::PairModel
    };
    (init story_generator) => {
        $crate::plugin::drive::init_story
    };
    (init car_model) => {
        $crate::plugin::drive::init_car
    };
    (init pair_model) => {
        $crate::plugin::drive::init_pair
    };
    (frame story_generator) => {
        $crate::plugin::drive::story
    };
    (frame car_model) => {
        $crate::plugin::drive::car
    };
    (frame pair_model) => {
        $crate::plugin::drive::pair
    };
    ($what:ident $other:ident) => {
        ::core::compile_error!(::core::concat!(
            "unknown plugin kind `",
            ::core::stringify!($other),
            "`: use story_generator, car_model or pair_model"
        ))
    };
}

/// Exports a plugin type; see the [`export`](crate::export) module docs.
#[macro_export]
macro_rules! export_plugin {
    ($ty:ty, name = $name:literal, version = $version:expr, kind = $kind:ident, state_version = $sv:literal $(,)?) => {
        $crate::__pitwall_export_impl!($ty, $name, $version, $kind,
            ::core::option::Option::Some($sv),
            ::core::concat!(",\"state_version\":", ::core::stringify!($sv)),
            snapshot(p, buf) => ::core::option::Option::Some($crate::plugin::drive::snapshot(p, buf)),
            restore(p, old, state) => ::core::option::Option::Some($crate::plugin::drive::restore(p, old, state)));
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            #[unsafe(no_mangle)]
            pub extern "C" fn pitwall_snapshot() -> i64 {
                // SAFETY: wasm32 plugins are single-threaded and the host does not re-enter.
                unsafe { $crate::export::wasm::snapshot::<$ty>() }
            }
            #[unsafe(no_mangle)]
            pub extern "C" fn pitwall_restore(ptr: i32, len: i32, state_version: i32) -> i32 {
                // SAFETY: as above; the host passes a range inside this module's memory.
                unsafe { $crate::export::wasm::restore::<$ty>(ptr, len, state_version) }
            }
        };
    };
    ($ty:ty, name = $name:literal, version = $version:expr, kind = $kind:ident $(,)?) => {
        $crate::__pitwall_export_impl!($ty, $name, $version, $kind,
            ::core::option::Option::None, "",
            snapshot(_p, _buf) => ::core::option::Option::None,
            restore(_p, _old, _state) => ::core::option::Option::None);
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __pitwall_export_impl {
    ($ty:ty, $name:literal, $version:expr, $kind:ident, $sv:expr, $sv_json:expr,
     snapshot($p:pat_param, $buf:pat_param) => $snap:expr,
     restore($rp:pat_param, $old:pat_param, $state:pat_param) => $restore:expr) => {
        const _: () = ::core::assert!(
            $crate::export::valid_name($name),
            "invalid plugin name: use 1 to 64 characters from [a-z0-9-], starting with a letter"
        );
        const _: () = ::core::assert!(
            $crate::export::valid_version($version),
            "invalid plugin version: use MAJOR.MINOR.PATCH, e.g. \"1.0.0\""
        );

        impl $crate::ExportedPlugin for $ty {
            const NAME: &'static str = $name;
            const VERSION: &'static str = $version;
            const KIND: $crate::PluginKind = $crate::__pitwall_kind!(const $kind);
            const STATE_VERSION: ::core::option::Option<u32> = $sv;
            const INFO_JSON: &'static str = ::core::concat!(
                "{\"name\":\"", $name,
                "\",\"version\":\"", $version,
                "\",\"kind\":\"", ::core::stringify!($kind),
                "\",\"abi\":\"", $crate::__pitwall_abi_str!(), "\"",
                $sv_json,
                "}"
            );
            fn create() -> Self {
                <$ty as ::core::default::Default>::default()
            }
            fn init(&mut self, ctx: &mut $crate::Context) -> $crate::PluginResult {
                ($crate::__pitwall_kind!(init $kind))(self, ctx)
            }
            fn on_frame(
                &mut self,
                frame: &$crate::Frame<'_>,
                ctx: &mut $crate::Context,
                out: &mut $crate::Output,
            ) -> $crate::PluginResult {
                ($crate::__pitwall_kind!(frame $kind))(self, frame, ctx, out)
            }
            fn snapshot(&self, buf: &mut ::std::vec::Vec<u8>) -> ::core::option::Option<$crate::PluginResult> {
                let ($p, $buf) = (self, buf);
                $snap
            }
            fn restore(&mut self, old: u32, state: &[u8]) -> ::core::option::Option<$crate::PluginResult> {
                let ($rp, $old, $state) = (self, old, state);
                $restore
            }
        }

        #[cfg(target_arch = "wasm32")]
        const _: () = {
            #[used]
            #[unsafe(link_section = "pitwall:abi")]
            static PITWALL_ABI: [u8; 4] = $crate::export::ABI_SECTION;

            const INFO: &str = <$ty as $crate::ExportedPlugin>::INFO_JSON;
            #[used]
            #[unsafe(link_section = "pitwall:info")]
            static PITWALL_INFO: [u8; INFO.len()] = $crate::export::str_bytes::<{ INFO.len() }>(INFO);

            #[unsafe(no_mangle)]
            pub extern "C" fn pitwall_alloc(len: i32) -> i32 {
                // SAFETY: wasm32 plugins are single-threaded and the host does not re-enter.
                unsafe { $crate::export::wasm::alloc::<$ty>(len) }
            }
            #[unsafe(no_mangle)]
            pub extern "C" fn pitwall_init() -> i32 {
                // SAFETY: as above.
                unsafe { $crate::export::wasm::init::<$ty>() }
            }
            #[unsafe(no_mangle)]
            pub extern "C" fn pitwall_on_frame(ptr: i32, len: i32) -> i64 {
                // SAFETY: as above; the host passes a range inside this module's memory.
                unsafe { $crate::export::wasm::on_frame::<$ty>(ptr, len) }
            }
        };
    };
}

/// The ABI glue on `wasm32`: one [`Runtime`](crate::Runtime) per module.
#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub mod wasm {
    use std::any::Any;
    use std::cell::UnsafeCell;

    use crate::plugin::{ExportedPlugin, Runtime};

    /// The module's one runtime. A `wasm32-unknown-unknown` module has one
    /// thread and the host never re-enters an export from an import, so one
    /// `&mut` at a time is guaranteed by the ABI rather than by a lock.
    struct Slot(UnsafeCell<Option<Box<dyn Any>>>);
    // SAFETY: no threads on wasm32-unknown-unknown (see above).
    unsafe impl Sync for Slot {}
    static SLOT: Slot = Slot(UnsafeCell::new(None));

    /// # Safety
    /// Single-threaded, not re-entered (the ABI's guarantees).
    unsafe fn runtime<P: ExportedPlugin>() -> &'static mut Runtime<P> {
        // SAFETY: see the function's contract.
        let slot = unsafe { &mut *SLOT.0.get() };
        slot.get_or_insert_with(|| Box::new(Runtime::<P>::default()))
            .downcast_mut::<Runtime<P>>()
            .expect("one plugin type per module")
    }

    /// `(ptr << 32) | len`, the ABI's packed reply.
    fn pack(bytes: &[u8]) -> i64 {
        ((bytes.as_ptr() as u32 as i64) << 32) | i64::from(bytes.len() as u32)
    }

    /// Bytes `ptr..ptr+len` if the range lies inside linear memory.
    fn memory_range(ptr: i32, len: i32) -> Option<(usize, usize)> {
        let (ptr, len) = (usize::try_from(ptr).ok()?, usize::try_from(len).ok()?);
        let size = core::arch::wasm32::memory_size::<0>() * 65_536;
        (ptr.checked_add(len)? <= size).then_some((ptr, len))
    }

    /// # Safety
    /// See [`runtime`].
    pub unsafe fn alloc<P: ExportedPlugin>(len: i32) -> i32 {
        let Ok(len) = usize::try_from(len) else {
            return 0;
        };
        // SAFETY: caller's contract.
        let rt = unsafe { runtime::<P>() };
        rt.alloc(len).map_or(0, |b| b.as_mut_ptr() as i32)
    }

    /// # Safety
    /// See [`runtime`].
    pub unsafe fn init<P: ExportedPlugin>() -> i32 {
        // SAFETY: caller's contract.
        let rt = unsafe { runtime::<P>() };
        rt.init().map_or_else(|e| e.code(), |()| 0)
    }

    /// # Safety
    /// See [`runtime`]; `ptr..ptr+len` is checked against linear memory.
    pub unsafe fn on_frame<P: ExportedPlugin>(ptr: i32, len: i32) -> i64 {
        // SAFETY: caller's contract.
        let rt = unsafe { runtime::<P>() };
        let Some((p, n)) = memory_range(ptr, len) else {
            return -1;
        };
        let (start, cap) = rt.input_range();
        let result = if p == start as usize && n <= cap {
            rt.on_frame_in_input(n)
        } else {
            // The host wrote elsewhere than `pitwall_alloc` said: copy it in.
            // SAFETY: the range lies inside linear memory (checked above) and
            // is not the input buffer, which `on_frame` overwrites.
            let bytes = unsafe { std::slice::from_raw_parts(p as *const u8, n) }.to_vec();
            rt.on_frame(&bytes)
        };
        result.map_or_else(|e| i64::from(e.code()), pack)
    }

    /// # Safety
    /// See [`runtime`].
    pub unsafe fn snapshot<P: ExportedPlugin>() -> i64 {
        // SAFETY: caller's contract.
        let rt = unsafe { runtime::<P>() };
        rt.snapshot().map_or_else(|e| i64::from(e.code()), pack)
    }

    /// # Safety
    /// See [`runtime`]; `ptr..ptr+len` is checked against linear memory.
    pub unsafe fn restore<P: ExportedPlugin>(ptr: i32, len: i32, state_version: i32) -> i32 {
        // SAFETY: caller's contract.
        let rt = unsafe { runtime::<P>() };
        let Some((p, n)) = memory_range(ptr, len) else {
            return -1;
        };
        let Ok(old) = u32::try_from(state_version) else {
            return -1;
        };
        let (start, cap) = rt.input_range();
        let result = if p == start as usize && n <= cap {
            rt.restore_from_input(n, old)
        } else {
            // SAFETY: inside linear memory, checked above.
            let bytes = unsafe { std::slice::from_raw_parts(p as *const u8, n) }.to_vec();
            rt.restore(&bytes, old)
        };
        result.map_or_else(|e| e.code(), |()| 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abi_literal_and_section_match_abi_version() {
        assert_eq!(__pitwall_abi_str!(), ABI_VERSION.to_string());
        let s = ABI_SECTION;
        assert_eq!(u16::from_le_bytes([s[0], s[1]]), ABI_VERSION.major);
        assert_eq!(u16::from_le_bytes([s[2], s[3]]), ABI_VERSION.minor);
        assert_eq!(str_bytes::<3>("abc"), *b"abc");
    }

    #[test]
    fn const_checks_agree_with_the_runtime_rules() {
        use crate::info::{parse_version, validate_name};
        for name in [
            "gap-watch",
            "a",
            "a1",
            "x-y-z",
            "",
            "A",
            "1a",
            "a-",
            "a--b",
            "a_b",
            "é",
        ] {
            assert_eq!(valid_name(name), validate_name(name).is_ok(), "{name:?}");
        }
        assert!(!valid_name(&"a".repeat(65)));
        for v in [
            "1.0.0",
            "0.0.1",
            "10.20.30",
            "1.0",
            "1.0.0.0",
            "01.0.0",
            "1..0",
            "1.0.x",
            "",
            "1.0.0-rc1",
            ".1.0",
        ] {
            assert_eq!(valid_version(v), parse_version(v).is_ok(), "{v:?}");
        }
    }
}
