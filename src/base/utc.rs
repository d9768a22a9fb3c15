//! Dates in UTC, as logs (RFC 3339) and HTTP's `Date` header (RFC 9110, section 5.6.7) write
//! them, from one conversion of a Unix time to a calendar date.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A moment split into the calendar fields both formats need.
struct Fields {
    year: u64,
    month: u64,
    day: u64,
    /// 0 for Thursday, the weekday of 1970-01-01.
    weekday_from_thursday: u64,
    hour: u64,
    minute: u64,
    second: u64,
    millisecond: u32,
}

impl Fields {
    /// Splits a time since the Unix epoch; times before it read as the epoch.
    fn of(time: SystemTime) -> Fields {
        let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
        let seconds = since_epoch.as_secs();
        let days = seconds / 86_400;
        let (year, month, day) = civil_from_days(days);
        let of_day = seconds % 86_400;
        Fields {
            year,
            month,
            day,
            weekday_from_thursday: days % 7,
            hour: of_day / 3600,
            minute: of_day / 60 % 60,
            second: of_day % 60,
            millisecond: since_epoch.subsec_millis(),
        }
    }
}

/// `2006-01-02T15:04:05.000Z`, as Prometheus's logs write time.
pub fn rfc3339(time: SystemTime) -> String {
    let f = Fields::of(time);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        f.year, f.month, f.day, f.hour, f.minute, f.second, f.millisecond
    )
}

/// `Sun, 06 Nov 1994 08:49:37 GMT`, the date format HTTP requires (RFC 9110, section 5.6.7).
pub fn http_date(time: SystemTime) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let f = Fields::of(time);
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        DAYS[f.weekday_from_thursday as usize],
        f.day,
        MONTHS[f.month as usize - 1],
        f.year,
        f.hour,
        f.minute,
        f.second
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01, by 400-year eras (Howard
/// Hinnant's `civil_from_days`).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// Days since 1970-01-01 of a proleptic Gregorian date, the inverse of [`civil_from_days`]
/// (Howard Hinnant's `days_from_civil`); negative before the epoch.
pub fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let shifted_month = (month + 9) % 12;
    let day_of_year = (153 * shifted_month + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(milliseconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(milliseconds)
    }

    #[test]
    fn log_timestamps_are_rfc3339_with_milliseconds() {
        assert_eq!(rfc3339(at(0)), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(at(951_782_400_123)), "2000-02-29T00:00:00.123Z");
        assert_eq!(rfc3339(at(1_798_761_599_000)), "2026-12-31T23:59:59.000Z");
    }

    #[test]
    fn http_dates_are_imf_fixdate() {
        assert_eq!(
            http_date(at(784_111_777_000)),
            "Sun, 06 Nov 1994 08:49:37 GMT"
        );
        assert_eq!(http_date(at(0)), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(
            http_date(at(951_782_400_999)),
            "Tue, 29 Feb 2000 00:00:00 GMT"
        );
        assert_eq!(
            http_date(at(4_102_444_799_000)),
            "Thu, 31 Dec 2099 23:59:59 GMT"
        );
    }

    #[test]
    fn days_from_civil_undoes_civil_from_days() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 2, 29), 11_016);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
        for days in [0, 59, 60, 11_016, 20_819, 47_481, 770_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y as i64, m as i64, d as i64), days as i64);
        }
    }

    #[test]
    fn times_before_the_epoch_read_as_the_epoch() {
        let before = UNIX_EPOCH - Duration::from_secs(10);
        assert_eq!(rfc3339(before), "1970-01-01T00:00:00.000Z");
    }
}
