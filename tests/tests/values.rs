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
