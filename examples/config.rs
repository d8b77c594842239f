//! The configuration shared by `config_writer` and `config_reader` (included by both).

use shmstore::value::{EnumField, FixedStr, FixedVec, Flag, Opt, Timestamp};
use shmstore::{ShmEnum, ShmType};

/// The region both services use.
pub const REGION: &str = "shmstore-example.config";

/// How much a service logs. Stored as its `u32` discriminant: a reader built before a newer
/// writer added a level gets `Err(UnknownVariant)` with the raw value, never undefined
/// behaviour.
#[derive(ShmEnum, Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

/// A service configuration, in shmstore's field types only: no hand-rolled wrapper, no
/// padding field (the derive refuses padding, and these types have none wherever they sit).
/// Every process that opens the region checks it against this layout.
#[derive(ShmType, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
#[shm(default_zeroed)] // `ServiceConfig::default()` is the all-zero value
pub struct ServiceConfig {
    /// Requests per second each client may make.
    pub rate: f64,
    /// When the writer published this configuration.
    pub updated_at: Timestamp,
    /// At most this many requests in flight, or no limit.
    pub request_limit: Opt<u32>,
    /// The service's name, at most 60 bytes of UTF-8.
    pub service_name: FixedStr<60>,
    /// The host it runs on.
    pub hostname: FixedStr<60>,
    pub log_level: EnumField<LogLevel>,
    /// The upstream ports, up to 16.
    pub upstream_ports: FixedVec<u16, 16>,
    /// Feature flag: serve TLS.
    pub tls: Flag,
    /// Feature flag: refuse new work while an operator repairs something.
    pub maintenance: Flag,
}

impl ServiceConfig {
    /// The configuration the writer starts with.
    pub fn initial() -> Result<ServiceConfig, shmstore::value::ValueError> {
        let mut config = ServiceConfig {
            rate: 50.0,
            updated_at: Timestamp::now(),
            ..ServiceConfig::default()
        };
        config.service_name.set("billing-api")?; // refused, not cut, if it does not fit
        config.hostname.set("localhost")?;
        config.log_level.set(LogLevel::Info);
        config.upstream_ports.extend_from_slice(&[8080])?;
        Ok(config)
    }

    /// One line for the terminal. Every read of text, a list or an enum is checked: a peer
    /// that wrote a too-long length, invalid UTF-8 or an unknown level shows as an error.
    pub fn describe(&self) -> String {
        let shown =
            |r: Result<String, shmstore::value::ValueError>| r.unwrap_or_else(|e| format!("<{e}>"));
        format!(
            "{} on {}: rate {}/s, limit {}, log {}, upstreams {}, tls {}, maintenance {} \
             (updated {})",
            shown(self.service_name.as_str().map(str::to_string)),
            shown(self.hostname.as_str().map(str::to_string)),
            self.rate,
            self.request_limit
                .get()
                .map_or_else(|| "none".to_string(), |l| l.to_string()),
            self.log_level, // the variant's name, or the raw value a newer writer stored
            shown(self.upstream_ports.as_slice().map(|p| format!("{p:?}"))),
            self.tls,
            self.maintenance,
            self.updated_at, // RFC 3339, UTC
        )
    }
}
