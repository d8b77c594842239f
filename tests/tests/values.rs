//! Issue 15, item 1: the value types of `shmstore::value` in a realistic configuration, written
//! by one process (`shm-helper values-writer`) and read by another (this test), including what a
//! peer that writes anything (another program, a newer build) can put in each field.

use core::mem::{offset_of, size_of};

use shmstore::layout::ValueKind;
use shmstore::value::{
    EnumField, FixedStr, FixedVec, Flag, Opt, Timestamp, UnknownVariant, ValueError,
};
use shmstore::{Shm, ShmType};
use shmstore_tests::{helper, region, LogLevel, ServiceConfig};

#[test]
fn a_realistic_config_derives_with_only_shmstore_types_and_no_padding_field() {
    // The derive proved it padding-free (or this would not compile); every byte is a field.
    let fields = ServiceConfig::LAYOUT.fields();
    let covered: usize = fields.iter().map(|f| f.layout().size()).sum();
    assert_eq!(covered, size_of::<ServiceConfig>());
    assert_eq!(size_of::<ServiceConfig>(), 192);
    let kinds: Vec<_> = fields.iter().map(|f| f.layout().kind()).collect();
    assert_eq!(kinds[1], ValueKind::Timestamp);
    assert_eq!(kinds[2], ValueKind::Optional);
    assert_eq!(kinds[3], ValueKind::Text { capacity: 60 });
    assert!(matches!(
        kinds[5],
        ValueKind::Enum { name: "LogLevel", variants } if variants.len() == 4
    ));
    assert_eq!(kinds[6], ValueKind::List { capacity: 16 });
    assert_eq!(kinds[7], ValueKind::Flag);
    // Zero initialisation for a struct that `#[derive(Default)]` would refuse (arrays over 32).
    let zero = ServiceConfig::default();
    assert_eq!(zero, shmstore::zeroed::<ServiceConfig>());
    assert_eq!(zero.service_name, "");
    assert_eq!(zero.log_level.get(), Ok(LogLevel::Error));
    assert_eq!(zero.request_limit.get(), None);
}

#[test]
fn a_config_written_by_one_process_is_read_by_another() {
    let (name, _cleanup) = region("values");
    let writer = helper!("values-writer", name, "valid");
    let lines = writer.finish_ok();
    assert_eq!(lines, ["written"]);

    let config = Shm::<ServiceConfig>::open(&name)
        .expect("open what the helper wrote")
        .read();
    assert_eq!(config, ServiceConfig::example());
    assert_eq!(config.service_name.as_str(), Ok("billing-api"));
    assert_eq!(config.hostname, "db-1.internal");
    assert_eq!(
        config.upstream_ports.as_slice(),
        Ok(&[8080, 8081, 9090][..])
    );
    assert!(config.tls.get());
    assert!(!config.maintenance.get());
    assert_eq!(config.log_level.get(), Ok(LogLevel::Info));
    assert_eq!(config.rate, 2.5);
    assert_eq!(
        config.updated_at,
        Timestamp::from_unix_nanos(1_796_554_822_666_698_771)
    );
    assert_eq!(config.request_limit.get(), Some(500));
}

#[test]
fn what_a_peer_forged_is_reported_field_by_field_and_never_crashes() {
    let (name, _cleanup) = region("values-forged");
    let writer = helper!("values-writer", name, "forged");
    assert_eq!(writer.finish_ok(), ["written"]);

    let shm = Shm::<ServiceConfig>::open(&name).expect("open what the helper wrote");
    let config = shm.read();
    assert_eq!(
        config.service_name.as_str(),
        Err(ValueError::LengthAboveCapacity {
            what: "text",
            len: 200,
            capacity: 60
        })
    );
    assert_eq!(
        config.hostname.as_str(),
        Err(ValueError::InvalidUtf8 {
            valid_up_to: 0,
            len: 13
        })
    );
    assert_eq!(
        config.log_level.get(),
        Err(UnknownVariant {
            enum_name: "LogLevel",
            raw: 99
        })
    );
    assert_eq!(
        config.upstream_ports.as_slice(),
        Err(ValueError::LengthAboveCapacity {
            what: "list",
            len: 40,
            capacity: 16
        })
    );
    assert!(config.tls.get(), "any non-zero byte is true");
    assert_eq!(
        config.request_limit.get(),
        Some(500),
        "any non-zero byte is present"
    );
    // Printing never panics and shows what can be shown.
    let shown = format!("{config:?}");
    assert!(shown.contains("LogLevel(<unknown 99>)"), "{shown}");
    assert!(shown.contains("is above the capacity 60"), "{shown}");
    // Errors convert into the crate's error, message intact.
    let error: shmstore::Error = config.log_level.get().unwrap_err().into();
    assert!(error
        .to_string()
        .contains("99 is not a variant of enum `LogLevel`"));

    // Writing repairs each field and leaves no stale byte behind it.
    {
        let mut guard = shm.lock().expect("lock");
        guard.service_name.set("billing").expect("fits");
        guard.hostname.set("db-2").expect("fits");
        guard.log_level.set(LogLevel::Warn);
        guard.upstream_ports.clear();
        guard.upstream_ports.push(443).expect("room");
    }
    let repaired = shm.read();
    assert_eq!(repaired.service_name, "billing");
    assert_eq!(repaired.hostname, "db-2");
    assert_eq!(repaired.log_level, LogLevel::Warn);
    assert_eq!(repaired.upstream_ports.as_slice(), Ok(&[443][..]));
}

// Each value type in a struct at an awkward place: right after a `u8`, right before a `u64`.
// The derive refuses any padding, so these compile only because the value types have none of
// their own; the sizes are chosen so that the fields meet end to end, as the user's must.

#[derive(ShmType, Clone, Copy)]
#[repr(C)]
struct TextBetween {
    tag: u8,
    text: FixedStr<3>,
    after: u64,
}

#[derive(ShmType, Clone, Copy)]
#[repr(C)]
struct ListBetween {
    tag: u8,
    list: FixedVec<u8, 6>,
    after: u64,
}

#[derive(ShmType, Clone, Copy)]
#[repr(C)]
struct FlagsBetween {
    tag: u8,
    flags: [Flag; 6],
    level: EnumField<Tiny>,
    after: u64,
}

#[derive(shmstore::ShmEnum, Clone, Copy, Debug, PartialEq)]
#[repr(u8)]
enum Tiny {
    A,
    B,
}

#[derive(ShmType, Clone, Copy)]
#[repr(C)]
struct OptBetween {
    tag: u8,
    opt: Opt<[u8; 3]>,
    more: u8,
    after: u64,
}

#[derive(ShmType, Clone, Copy)]
#[repr(C)]
struct WideBetween {
    tag: u64,
    list: FixedVec<u64, 2>,
    opt: Opt<u128>,
    time: Timestamp,
    after: u64,
}

#[test]
fn each_value_type_sits_after_a_u8_and_before_a_u64_without_padding() {
    assert_eq!(offset_of!(TextBetween, after), 8);
    assert_eq!(offset_of!(ListBetween, after), 8);
    assert_eq!(offset_of!(FlagsBetween, after), 8);
    assert_eq!(offset_of!(OptBetween, after), 8);
    assert_eq!(offset_of!(WideBetween, opt), 32);
    assert_eq!(size_of::<WideBetween>(), 80);
    for layout in [
        TextBetween::LAYOUT,
        ListBetween::LAYOUT,
        FlagsBetween::LAYOUT,
        OptBetween::LAYOUT,
        WideBetween::LAYOUT,
    ] {
        let covered: usize = layout.fields().iter().map(|f| f.layout().size()).sum();
        assert_eq!(covered, layout.size(), "{layout}");
    }
    let mut flags: FlagsBetween = shmstore::zeroed();
    flags.level.set(Tiny::B);
    assert_eq!(flags.level.get(), Ok(Tiny::B));
}

// ==== Issue 15, item 2: the region knows what the fields mean ====

/// `name = value` for every top-level field, as `shmstore get` will print them.
fn shown(view: &shmstore::inspect::Inspector) -> Vec<String> {
    view.values(&view.read())
        .iter()
        .map(|(name, value)| format!("{name} = {value}"))
        .collect()
}

#[test]
fn another_process_s_region_is_inspected_as_typed_values() {
    use shmstore::inspect::{Inspector, StoredKind, Value};
    let (name, _cleanup) = region("values-inspect");
    assert_eq!(
        helper!("values-writer", name, "valid").finish_ok(),
        ["written"]
    );
    let view = Inspector::open(&name).expect("inspect what the helper wrote");
    assert_eq!(view.header_fields().format_version, 2);
    let log_level = view.kinds().iter().find(|k| k.path == "log_level");
    assert!(matches!(
        log_level.map(|k| &k.kind),
        Some(StoredKind::Enum { name, variants }) if name == "LogLevel" && variants.len() == 4
    ));
    assert_eq!(
        shown(&view),
        [
            "rate = 2.5",
            "updated_at = 2026-12-06T11:00:22.666698771Z",
            "request_limit = 500",
            "service_name = \"billing-api\"",
            "hostname = \"db-1.internal\"",
            "log_level = Info",
            "upstream_ports = [8080, 8081, 9090]",
            "tls = true",
            "maintenance = false",
        ]
    );
    let bytes = view.read();
    assert_eq!(view.value(&bytes, "tls").unwrap(), Value::Flag(true));
    assert_eq!(
        view.value(&bytes, "updated_at").unwrap(),
        Value::Timestamp(Timestamp::from_unix_nanos(1_796_554_822_666_698_771))
    );
    let error = view.value(&bytes, "log_levle").unwrap_err();
    assert!(
        error
            .to_string()
            .contains("no such field; the type has rate, updated_at"),
        "{error}"
    );
}

#[test]
fn a_forged_region_is_inspected_field_by_field_and_never_crashes() {
    let (name, _cleanup) = region("values-inspect-forged");
    assert_eq!(
        helper!("values-writer", name, "forged").finish_ok(),
        ["written"]
    );
    let view = shmstore::inspect::Inspector::open(&name).expect("inspect what the helper wrote");
    let lines = shown(&view);
    assert!(
        lines[3].starts_with(
            "service_name = <error: the stored text length 200 is above the capacity 60"
        ),
        "{lines:?}"
    );
    assert!(
        lines[4].starts_with("hostname = <error: the stored text is not valid UTF-8"),
        "{lines:?}"
    );
    assert_eq!(lines[5], "log_level = 99 (unknown variant)");
    assert!(
        lines[6].starts_with("upstream_ports = <error: the stored list length 40"),
        "{lines:?}"
    );
    assert_eq!(lines[7], "tls = true");
    assert_eq!(lines[2], "request_limit = 500");
}

#[test]
fn a_set_of_several_fields_commits_atomically_and_a_typed_handle_reads_it() {
    let (name, _cleanup) = region("values-set");
    assert_eq!(
        helper!("values-writer", name, "forged").finish_ok(),
        ["written"]
    );
    let editor = shmstore::inspect::Editor::open(&name).expect("open for editing");
    assert_eq!(editor.type_name(), "ServiceConfig");
    let mut writes = Vec::new();
    for (field, text) in [
        ("service_name", "payments"),
        ("hostname", "db-2.internal"),
        ("log_level", "Debug"),
        ("upstream_ports", "[443, 8443]"),
        ("maintenance", "true"),
        ("request_limit", "none"),
        ("updated_at", "2027-01-02T03:04:05.5Z"),
        ("rate", "10"),
    ] {
        writes.extend(editor.parse_assignment(field, text).expect(field));
    }
    // A refusal says what to type instead and writes nothing.
    let refused = editor.parse_assignment("log_level", "Verbose").unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("log_level`: it takes one of Error, Warn, Info, Debug, not `Verbose`"),
        "{refused}"
    );
    let shm = Shm::<ServiceConfig>::open(&name).expect("typed open");
    let before = shm.version();
    let committed = editor.commit(&writes).expect("commit");
    assert!(committed.version > before && !committed.poisoned);
    let config = shm.read();
    assert_eq!(config.service_name, "payments");
    assert_eq!(config.hostname, "db-2.internal");
    assert_eq!(config.log_level.get(), Ok(LogLevel::Debug));
    assert_eq!(config.upstream_ports.as_slice(), Ok(&[443, 8443][..]));
    assert!(config.maintenance.get());
    assert!(config.tls.get());
    assert_eq!(config.request_limit.get(), None);
    assert_eq!(
        config.updated_at.to_string(),
        "2027-01-02T03:04:05.500000000Z"
    );
    assert_eq!(config.rate, 10.0);
    // No stale byte of the forged values is left behind the new ones.
    let mut expected = ServiceConfig::example();
    expected.service_name.set("payments").unwrap();
    expected.hostname.set("db-2.internal").unwrap();
    expected.log_level.set(LogLevel::Debug);
    expected.upstream_ports.clear();
    expected
        .upstream_ports
        .extend_from_slice(&[443, 8443])
        .unwrap();
    expected.maintenance.set(true);
    expected.request_limit.set(None);
    expected.updated_at = config.updated_at;
    expected.rate = 10.0;
    expected.tls = config.tls; // the forged 0x80, which no assignment touched
    assert_eq!(raw_bytes(&config), raw_bytes(&expected));
}

/// The bytes of a configuration, to compare what no field's `PartialEq` looks at (the unused
/// tails of text and lists).
fn raw_bytes(config: &ServiceConfig) -> &[u8] {
    // SAFETY: `ServiceConfig` is `ShmType`, so `Pod`: no padding, every byte initialised; the
    // slice borrows `config` for its lifetime and covers exactly its size.
    unsafe {
        std::slice::from_raw_parts(
            (config as *const ServiceConfig).cast::<u8>(),
            size_of::<ServiceConfig>(),
        )
    }
}

/// The same name, fields and representation as [`LogLevel`], one variant renamed: what a newer
/// build might have.
mod newer {
    use shmstore::value::{EnumField, FixedStr, FixedVec, Flag, Opt, Timestamp};
    use shmstore::ShmType;

    #[derive(shmstore::ShmEnum, Clone, Copy, Debug, PartialEq)]
    #[repr(u32)]
    pub enum LogLevel {
        Error,
        Warn,
        Info,
        Trace,
    }

    #[derive(ShmType, Clone, Copy, Debug)]
    #[repr(C)]
    pub struct ServiceConfig {
        pub rate: f64,
        pub updated_at: Timestamp,
        pub request_limit: Opt<u32>,
        pub service_name: FixedStr<60>,
        pub hostname: FixedStr<60>,
        pub log_level: EnumField<LogLevel>,
        pub upstream_ports: FixedVec<u16, 16>,
        pub tls: Flag,
        pub maintenance: Flag,
    }
}

#[test]
fn an_enum_with_other_variants_is_a_layout_mismatch_that_names_them() {
    let (name, _cleanup) = region("values-enum-mismatch");
    assert_eq!(
        helper!("values-writer", name, "valid").finish_ok(),
        ["written"]
    );
    let error = Shm::<newer::ServiceConfig>::open(&name).unwrap_err();
    let shmstore::Error::LayoutMismatch { differences, .. } = &error else {
        panic!("expected LayoutMismatch, got {error:?}");
    };
    assert_eq!(
        differences,
        &[
            "field `log_level`: `Debug` (3) is in the region but not here (removed or renamed): \
             a stored value would be misread or name no variant; keep every variant with its \
             value, and add new ones with new values"
        ]
    );
}

#[test]
fn a_plain_type_stays_format_version_1_and_a_forged_version_2_is_refused() {
    use shmstore::inspect::{Inspector, Value};
    use shmstore::{Error, Shm};
    use shmstore_tests::{plant, stored_bytes, Backend, Counter, Place};
    let place = Place::new(Backend::File, "plain-v1");
    let shm = Shm::<Counter>::create(&place, Counter::at(5)).unwrap();
    let view = Inspector::open(place.location()).unwrap();
    assert_eq!(view.header_fields().format_version, 1);
    assert!(view.kinds().is_empty());
    let values = view.values(&view.read());
    assert!(values
        .iter()
        .all(|(_, value)| matches!(value, Value::Number(_))));
    drop((shm, view));
    // The same region claiming format version 2 has no kinds table: refused, not misread.
    let mut bytes = stored_bytes(&place);
    bytes[8..12].copy_from_slice(&2u32.to_ne_bytes());
    plant(&place, &bytes);
    for error in [
        Shm::<Counter>::open(&place).unwrap_err(),
        Inspector::open(place.location()).unwrap_err(),
    ] {
        assert!(
            matches!(&error, Error::Corrupt { reason, .. } if reason.contains("no kinds table")),
            "{error:?}"
        );
    }
}

#[test]
fn an_editor_is_refused_where_the_mode_grants_only_reading() {
    use shmstore_tests::is_root;
    if !is_root() {
        eprintln!("skipped: needs root to run a helper as uid 65534");
        return;
    }
    let (name, _cleanup) = region("values-edit-readonly");
    let _shm = Shm::<ServiceConfig>::options()
        .mode(0o644)
        .create(&name, ServiceConfig::example())
        .unwrap();
    let lines = helper!("setuid-edit", name).finish_ok();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].starts_with("edit err PermissionDenied "),
        "{lines:?}"
    );
    assert_eq!(lines[1], "inspect ok ServiceConfig");
}
