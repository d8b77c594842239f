//! The configuration shared by `config_writer` and `config_reader` (included by both).

use shmstore::ShmType;

/// The region both services use.
pub const REGION: &str = "shmstore-example.config";

/// A service configuration: plain fixed-size data, checked against the region's layout by
/// every process that opens it.
#[derive(ShmType, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
pub struct Config {
    /// Bumped by the writer for every new configuration.
    pub generation: u64,
    /// Requests per second each client may make.
    pub rate_limit: u32,
    /// 0 = error … 4 = trace.
    pub log_level: u32,
    /// The upstream address, `upstream_len` bytes of UTF-8.
    pub upstream: [u8; 48],
    pub upstream_len: u32,
    /// Non-zero when the writer is done and readers should exit.
    pub shutdown: u32,
}

impl Config {
    pub fn new(generation: u64, rate_limit: u32, log_level: u32, upstream: &str) -> Config {
        let mut bytes = [0u8; 48];
        let len = upstream.len().min(bytes.len());
        bytes[..len].copy_from_slice(&upstream.as_bytes()[..len]);
        Config {
            generation,
            rate_limit,
            log_level,
            upstream: bytes,
            upstream_len: len as u32,
            shutdown: 0,
        }
    }

    pub fn upstream(&self) -> &str {
        let len = (self.upstream_len as usize).min(self.upstream.len());
        std::str::from_utf8(&self.upstream[..len]).unwrap_or("<not UTF-8>")
    }
}
