//! Hostile: declares ABI 9.0, which no host speaks. The host must refuse it
//! from its custom sections alone, before compiling or instantiating, with a
//! message that says to rebuild against a current SDK. Its exports are
//! otherwise complete, so nothing but the version gets it refused.

/// The ABI this module claims.
pub const DECLARED_ABI: (u16, u16) = (9, 0);

/// The `pitwall:info` JSON it carries.
pub const INFO: &str =
    r#"{"name":"hostile-abi","version":"0.1.0","kind":"story_generator","abi":"9.0"}"#;

#[cfg(target_arch = "wasm32")]
mod exports {
    #[used]
    #[unsafe(link_section = "pitwall:abi")]
    static ABI: [u8; 4] = [9, 0, 0, 0];

    #[used]
    #[unsafe(link_section = "pitwall:info")]
    static INFO_SECTION: [u8; super::INFO.len()] =
        pitwall_plugin_sdk::export::str_bytes::<{ super::INFO.len() }>(super::INFO);

    static mut BUF: [u8; 65_536] = [0; 65_536];

    #[unsafe(no_mangle)]
    pub extern "C" fn pitwall_alloc(len: i32) -> i32 {
        if !(0..=65_536).contains(&len) {
            return 0;
        }
        // A static buffer: this module is never meant to run.
        (&raw mut BUF) as i32
    }

    #[unsafe(no_mangle)]
    pub extern "C" fn pitwall_on_frame(_ptr: i32, _len: i32) -> i64 {
        -2
    }
}

#[cfg(test)]
mod tests {
    use pitwall_plugin_sdk::{ABI_VERSION, AbiVersion, PluginInfo};

    #[test]
    fn a_host_refuses_it_with_a_useful_message() {
        let info: PluginInfo = serde_json::from_str(super::INFO).unwrap();
        assert_eq!(
            info.abi(),
            AbiVersion::new(super::DECLARED_ABI.0, super::DECLARED_ABI.1)
        );
        let err = ABI_VERSION
            .check_plugin(info.abi())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("major version 9") && err.contains("rebuild"),
            "{err}"
        );
    }
}
