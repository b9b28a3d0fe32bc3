// The plugins this repository builds; included by build.rs and lib.rs so the
// two cannot disagree. (key, cargo package, plugin name, version, role)
const LIST: &[(&str, &str, &str, &str, Role)] = &[
    ("gap-watch", "pitwall-plugin-gap-watch", "gap-watch", "1.0.0", Role::Example),
    ("pace", "pitwall-plugin-pace", "pace", "1.0.0", Role::Example),
    ("drs-threat", "pitwall-plugin-drs-threat", "drs-threat", "1.0.0", Role::Example),
    ("battles", "pitwall-plugin-battles", "battles", "1.0.0", Role::Race),
    ("overtake", "pitwall-plugin-overtake", "overtake", "1.0.0", Role::Race),
    ("fuel", "pitwall-plugin-fuel", "fuel", "1.0.0", Role::Race),
    ("stories", "pitwall-plugin-stories", "stories", "1.0.0", Role::Race),
    ("counter-v1", "pitwall-plugin-counter", "counter", "1.0.0", Role::SwapTest),
    ("counter-v2", "pitwall-plugin-counter-v2", "counter", "2.0.0", Role::SwapTest),
    ("hostile-spin", "pitwall-plugin-hostile-spin", "hostile-spin", "0.1.0", Role::Hostile),
    ("hostile-alloc", "pitwall-plugin-hostile-alloc", "hostile-alloc", "0.1.0", Role::Hostile),
    ("hostile-trap", "pitwall-plugin-hostile-trap", "hostile-trap", "0.1.0", Role::Hostile),
    ("hostile-garbage", "pitwall-plugin-hostile-garbage", "hostile-garbage", "0.1.0", Role::Hostile),
    ("hostile-abi", "pitwall-plugin-hostile-abi", "hostile-abi", "0.1.0", Role::Hostile),
];
