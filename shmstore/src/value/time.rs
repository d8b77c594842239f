//! [`Timestamp`]: a point in time as nanoseconds since the Unix epoch.

use core::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::ValueError;
use crate::layout::{Field, ShmType, TypeLayout, ValueKind};

/// A point in time: signed nanoseconds since 1970-01-01T00:00:00Z (the Unix epoch), which
/// counts from 1677-09-21 to 2262-04-11.
///
/// Layout: `#[repr(transparent)]` over `unix_nanos: i64`. Every value is valid; it converts to
/// and from [`SystemTime`], and displays as RFC 3339 in UTC.
///
/// ```
/// use std::time::{Duration, SystemTime, UNIX_EPOCH};
/// use shmstore::value::Timestamp;
///
/// let t = Timestamp::from_unix_nanos(1_500_000_000);
/// assert_eq!(SystemTime::from(t), UNIX_EPOCH + Duration::from_millis(1_500));
/// assert_eq!(t.to_string(), "1970-01-01T00:00:01.500000000Z");
/// let now = Timestamp::now();
/// assert!(now > t);
/// assert_eq!(Timestamp::try_from(SystemTime::from(now))?, now);
/// # Ok::<(), shmstore::value::ValueError>(())
/// ```
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(transparent)]
pub struct Timestamp {
    unix_nanos: i64,
}

// SAFETY: `Timestamp` is `repr(transparent)` over an `i64`, which is `Zeroable` and `Pod`
// (every bit pattern valid, no padding, no pointer, no drop glue); it is `Copy` and `'static`.
unsafe impl bytemuck::Zeroable for Timestamp {}
// SAFETY: as for `Zeroable` just above.
unsafe impl bytemuck::Pod for Timestamp {}

// SAFETY: `Pod` holds (above); the one field is an `i64` at offset 0 (`repr(transparent)`), so
// the size and alignment are `i64`'s, which are what the layout reads from `i64::LAYOUT` (and
// `i64::LAYOUT` asserts they are the compiler's).
unsafe impl ShmType for Timestamp {
    const LAYOUT: TypeLayout = TypeLayout::structure(
        "Timestamp",
        i64::LAYOUT.size(),
        i64::LAYOUT.align(),
        &[Field::new("unix_nanos", 0, &i64::LAYOUT)],
    )
    .with_kind(ValueKind::Timestamp);
}

impl Timestamp {
    /// The Unix epoch, 1970-01-01T00:00:00Z (all zeroes).
    pub const UNIX_EPOCH: Timestamp = Timestamp { unix_nanos: 0 };

    /// The time `unix_nanos` nanoseconds after the epoch (before it when negative).
    pub const fn from_unix_nanos(unix_nanos: i64) -> Timestamp {
        Timestamp { unix_nanos }
    }

    /// Nanoseconds since the epoch (negative before it).
    pub const fn unix_nanos(self) -> i64 {
        self.unix_nanos
    }

    /// The current time of the system clock, saturated at the range a `Timestamp` holds.
    pub fn now() -> Timestamp {
        let now = SystemTime::now();
        Timestamp::try_from(now).unwrap_or(match now.duration_since(UNIX_EPOCH) {
            Ok(_) => Timestamp::from_unix_nanos(i64::MAX),
            Err(_) => Timestamp::from_unix_nanos(i64::MIN),
        })
    }
}

impl From<Timestamp> for SystemTime {
    /// The same instant (every `Timestamp` is within `SystemTime`'s range on Unix).
    fn from(t: Timestamp) -> SystemTime {
        let magnitude = Duration::from_nanos(t.unix_nanos.unsigned_abs());
        if t.unix_nanos >= 0 {
            UNIX_EPOCH + magnitude
        } else {
            UNIX_EPOCH - magnitude
        }
    }
}

impl TryFrom<SystemTime> for Timestamp {
    type Error = ValueError;

    /// The same instant, to the nanosecond.
    ///
    /// # Errors
    ///
    /// [`ValueError::TimeOutOfRange`] for a time outside 1677-09-21 to 2262-04-11.
    fn try_from(time: SystemTime) -> Result<Timestamp, ValueError> {
        let (nanos, negative) = match time.duration_since(UNIX_EPOCH) {
            Ok(after) => (after.as_nanos(), false),
            Err(before) => (before.duration().as_nanos(), true),
        };
        let signed = if negative {
            0i128.checked_sub_unsigned(nanos)
        } else {
            i128::try_from(nanos).ok()
        };
        signed
            .and_then(|n| i64::try_from(n).ok())
            .map(Timestamp::from_unix_nanos)
            .ok_or_else(|| {
                let seconds = i64::try_from(nanos / 1_000_000_000).unwrap_or(i64::MAX);
                ValueError::TimeOutOfRange {
                    seconds: if negative { -seconds } else { seconds },
                }
            })
    }
}

impl fmt::Display for Timestamp {
    /// RFC 3339 in UTC with nanoseconds, as operators read it: `2026-12-06T15:36:46.123456789Z`
    /// (`1677-09-21T00:12:43.145224192Z` to `2262-04-11T23:47:16.854775807Z`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seconds = self.unix_nanos.div_euclid(1_000_000_000);
        let nanos = self.unix_nanos.rem_euclid(1_000_000_000);
        let (days, second_of_day) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
        let (year, month, day) = civil_from_days(days);
        write!(
            f,
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
            second_of_day / 3600,
            second_of_day / 60 % 60,
            second_of_day % 60
        )
    }
}

/// The proleptic Gregorian date of `days` since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, exact for every `i64` nanosecond timestamp).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * shifted_month + 2) / 5 + 1) as u32;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_to_and_from_system_time_on_both_sides_of_the_epoch() {
        for nanos in [0, 1, -1, 1_796_554_822_666_698_771, i64::MAX, i64::MIN] {
            let t = Timestamp::from_unix_nanos(nanos);
            assert_eq!(Timestamp::try_from(SystemTime::from(t)), Ok(t), "{nanos}");
        }
    }

    #[test]
    fn a_time_out_of_range_is_an_error() {
        let far = UNIX_EPOCH + Duration::from_secs(300 * 365 * 24 * 3600);
        let error = Timestamp::try_from(far).unwrap_err();
        assert!(matches!(error, ValueError::TimeOutOfRange { seconds } if seconds > 0));
        assert!(error.to_string().contains("1677 to 2262"));
        let past = UNIX_EPOCH - Duration::from_secs(300 * 365 * 24 * 3600);
        assert!(matches!(
            Timestamp::try_from(past),
            Err(ValueError::TimeOutOfRange { seconds }) if seconds < 0
        ));
    }

    #[test]
    fn displays_as_rfc_3339_in_utc() {
        let cases = [
            (0, "1970-01-01T00:00:00.000000000Z"),
            (-1, "1969-12-31T23:59:59.999999999Z"),
            (951_782_400_000_000_000, "2000-02-29T00:00:00.000000000Z"),
            (1_796_554_822_666_698_771, "2026-12-06T11:00:22.666698771Z"),
            (i64::MAX, "2262-04-11T23:47:16.854775807Z"),
            (i64::MIN, "1677-09-21T00:12:43.145224192Z"),
        ];
        for (nanos, text) in cases {
            assert_eq!(Timestamp::from_unix_nanos(nanos).to_string(), text);
        }
    }

    #[test]
    fn layout_is_one_i64() {
        assert_eq!(Timestamp::LAYOUT.size(), core::mem::size_of::<Timestamp>());
        assert_eq!(
            Timestamp::LAYOUT.align(),
            core::mem::align_of::<Timestamp>()
        );
        assert_eq!(Timestamp::LAYOUT.kind(), ValueKind::Timestamp);
        assert!(Timestamp::now() > Timestamp::UNIX_EPOCH);
    }
}
