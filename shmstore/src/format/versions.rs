//! The versions table codec (`FORMAT.md`, "Versions table"): every type that shaped a region
//! through a migration, oldest first, each with its fingerprint and its encoded descriptor.
//!
//! Pure and hostile-safe: [`decode`] takes any bytes (a peer may have written them), never
//! panics, and never allocates more than the input's length justifies. It checks the table's
//! framing only; each entry's descriptor is decoded by [`Descriptor::decode`] when it is
//! shown.
//!
//! [`Descriptor::decode`]: super::Descriptor::decode

use super::header::{FORMAT_VERSION, MAX_DESCRIPTOR_LEN, OLDEST_FORMAT_VERSION};

/// The most bytes a versions table may take: a sanity bound against corrupt headers, like
/// the descriptor's.
pub(crate) const MAX_VERSIONS_LEN: usize = 16 << 20;

/// The fixed part of an entry: `u64` fingerprint, `u32` format version, `u32` length.
const ENTRY_FIXED_BYTES: usize = 16;

/// One type that shaped the region: a row of the versions table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KnownVersion {
    /// The type's layout fingerprint (`FORMAT.md`, "Fingerprint").
    pub(crate) fingerprint: u64,
    /// The format version its descriptor is encoded in (1 without kinds, 2 with them).
    pub(crate) format_version: u32,
    /// Its descriptor, encoded as a region stores it after the header.
    pub(crate) descriptor: Vec<u8>,
}

/// The table's bytes: `u32` count, then per entry `u64` fingerprint, `u32` format version,
/// `u32` descriptor length, the descriptor. Native endianness, no padding. `versions` holds
/// at least one entry, and each descriptor fits a `u32` length (a real one is at most
/// [`MAX_DESCRIPTOR_LEN`] bytes).
#[allow(dead_code)] // written by the migration, which lands next; the tests write it now
/// [`encode`] of the newest of `versions` that fit in a table opening accepts (at most
/// [`MAX_VERSIONS_LEN`] bytes): the oldest entries are left out first, since the newest are
/// the types of the binaries that run now. `None` when not even the newest entry fits.
pub(crate) fn encode_newest(versions: &[KnownVersion]) -> Option<Vec<u8>> {
    let entry_len = |version: &KnownVersion| ENTRY_FIXED_BYTES + version.descriptor.len();
    let mut len = 4 + versions.iter().map(entry_len).sum::<usize>();
    let mut oldest = 0;
    while len > MAX_VERSIONS_LEN && oldest < versions.len() {
        len -= entry_len(&versions[oldest]);
        oldest += 1;
    }
    (oldest < versions.len()).then(|| encode(&versions[oldest..]))
}

pub(crate) fn encode(versions: &[KnownVersion]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(versions.len() as u32).to_ne_bytes());
    for version in versions {
        out.extend_from_slice(&version.fingerprint.to_ne_bytes());
        out.extend_from_slice(&version.format_version.to_ne_bytes());
        out.extend_from_slice(&(version.descriptor.len() as u32).to_ne_bytes());
        out.extend_from_slice(&version.descriptor);
    }
    out
}

/// Reads [`encode`]'s bytes back, refusing a table that is empty, truncated, longer than
/// [`MAX_VERSIONS_LEN`], followed by trailing bytes, or whose entries claim an unknown format
/// version or a descriptor longer than [`MAX_DESCRIPTOR_LEN`]. The message says what is wrong
/// (for "the versions table is unreadable: …").
pub(crate) fn decode(bytes: &[u8]) -> Result<Vec<KnownVersion>, String> {
    if bytes.len() > MAX_VERSIONS_LEN {
        return Err(format!(
            "it is {} bytes long, more than the {MAX_VERSIONS_LEN} bytes a table may take",
            bytes.len()
        ));
    }
    let mut rest = bytes;
    let count = take_u32(&mut rest, "its entry count")? as usize;
    if count == 0 {
        return Err("it lists no version (a region without history has no table)".into());
    }
    // Every entry takes at least its fixed part: a forged count never sizes an allocation.
    if count > rest.len() / ENTRY_FIXED_BYTES {
        return Err(format!(
            "it claims {count} entries and holds {} bytes after the count, too few for them",
            rest.len()
        ));
    }
    let mut versions = Vec::with_capacity(count);
    for index in 0..count {
        let entry = |what: &str| format!("entry {} ({what})", index + 1);
        let fingerprint = take_u64(&mut rest, &entry("its fingerprint"))?;
        let format_version = take_u32(&mut rest, &entry("its format version"))?;
        if !(OLDEST_FORMAT_VERSION..=FORMAT_VERSION).contains(&format_version) {
            return Err(format!(
                "entry {} has format version {format_version}, and this build reads versions \
                 {OLDEST_FORMAT_VERSION} to {FORMAT_VERSION}",
                index + 1
            ));
        }
        let len = take_u32(&mut rest, &entry("its descriptor length"))? as usize;
        if len > MAX_DESCRIPTOR_LEN {
            return Err(format!(
                "entry {} claims a {len}-byte descriptor, more than {MAX_DESCRIPTOR_LEN}",
                index + 1
            ));
        }
        let descriptor = take(&mut rest, len, &entry("its descriptor"))?.to_vec();
        versions.push(KnownVersion {
            fingerprint,
            format_version,
            descriptor,
        });
    }
    if !rest.is_empty() {
        return Err(format!(
            "{} unexpected bytes follow its last entry",
            rest.len()
        ));
    }
    Ok(versions)
}

/// The first `n` bytes of `rest`, which then starts after them.
fn take<'a>(rest: &mut &'a [u8], n: usize, what: &str) -> Result<&'a [u8], String> {
    if n > rest.len() {
        return Err(format!(
            "it is truncated: {what} needs {n} bytes and {} are left",
            rest.len()
        ));
    }
    let (head, tail) = rest.split_at(n);
    *rest = tail;
    Ok(head)
}

fn take_u32(rest: &mut &[u8], what: &str) -> Result<u32, String> {
    let mut word = [0u8; 4];
    word.copy_from_slice(take(rest, 4, what)?);
    Ok(u32::from_ne_bytes(word))
}

fn take_u64(rest: &mut &[u8], what: &str) -> Result<u64, String> {
    let mut word = [0u8; 8];
    word.copy_from_slice(take(rest, 8, what)?);
    Ok(u64::from_ne_bytes(word))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::Descriptor;
    use crate::layout::ShmType;
    use proptest::prelude::*;

    fn two_versions() -> Vec<KnownVersion> {
        let of = |layout: &crate::layout::TypeLayout| {
            let descriptor = Descriptor::of(layout);
            KnownVersion {
                fingerprint: layout.fingerprint(),
                format_version: descriptor.format_version(),
                descriptor: descriptor.encode(),
            }
        };
        vec![of(&<u32>::LAYOUT), of(&<[u64; 2]>::LAYOUT)]
    }

    #[test]
    fn round_trips_and_each_descriptor_decodes() {
        let versions = two_versions();
        let bytes = encode(&versions);
        assert_eq!(decode(&bytes), Ok(versions.clone()));
        for version in decode(&bytes).unwrap() {
            assert!(Descriptor::decode(&version.descriptor, version.format_version).is_ok());
        }
        // The documented layout: count, then fingerprint, format version, length, bytes.
        assert_eq!(&bytes[..4], &2u32.to_ne_bytes());
        assert_eq!(&bytes[4..12], &versions[0].fingerprint.to_ne_bytes());
        assert_eq!(&bytes[12..16], &versions[0].format_version.to_ne_bytes());
        let len = versions[0].descriptor.len();
        assert_eq!(&bytes[16..20], &(len as u32).to_ne_bytes());
        assert_eq!(&bytes[20..20 + len], versions[0].descriptor.as_slice());
    }

    #[test]
    fn refuses_truncated_empty_trailing_and_unknown_tables() {
        let bytes = encode(&two_versions());
        for cut in 0..bytes.len() {
            let error = decode(&bytes[..cut]).unwrap_err();
            assert!(
                error.contains("truncated") || error.contains("too few"),
                "{cut}: {error}"
            );
        }
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(decode(&trailing).unwrap_err().contains("unexpected bytes"));
        assert!(decode(&0u32.to_ne_bytes())
            .unwrap_err()
            .contains("no version"));
        let mut huge_count = bytes.clone();
        huge_count[..4].copy_from_slice(&u32::MAX.to_ne_bytes());
        assert!(decode(&huge_count).unwrap_err().contains("too few"));
        let mut unknown_format = bytes.clone();
        unknown_format[12..16].copy_from_slice(&9u32.to_ne_bytes());
        assert!(decode(&unknown_format)
            .unwrap_err()
            .contains("format version 9"));
        let mut huge_descriptor = bytes;
        huge_descriptor[16..20].copy_from_slice(&u32::MAX.to_ne_bytes());
        assert!(decode(&huge_descriptor).unwrap_err().contains("more than"));
    }

    fn arbitrary_version() -> impl Strategy<Value = KnownVersion> {
        (
            any::<u64>(),
            OLDEST_FORMAT_VERSION..=FORMAT_VERSION,
            proptest::collection::vec(any::<u8>(), 0..64),
        )
            .prop_map(|(fingerprint, format_version, descriptor)| KnownVersion {
                fingerprint,
                format_version,
                descriptor,
            })
    }

    proptest! {
        #[test]
        fn decode_never_panics_on_arbitrary_bytes(
            bytes in proptest::collection::vec(any::<u8>(), 0..512),
        ) {
            if let Ok(versions) = decode(&bytes) {
                // Accepted bytes are exactly one encoding: no trailing bytes, no slack.
                prop_assert_eq!(encode(&versions), bytes);
            }
        }

        #[test]
        fn encode_then_decode_gives_the_table_back(
            versions in proptest::collection::vec(arbitrary_version(), 1..6),
        ) {
            prop_assert_eq!(decode(&encode(&versions)), Ok(versions));
        }
    }
}
