//! Durations and byte sizes as operators write them in Prometheus flags and configs.

use std::time::Duration;

/// Parses a duration the way Prometheus's `model.ParseDuration` does: one or more
/// `<integer><unit>` parts, largest unit first, with units `y w d h m s ms`; `0` alone is zero.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    const UNITS: [(&str, u64); 7] = [
        ("y", 365 * 24 * 3_600_000),
        ("w", 7 * 24 * 3_600_000),
        ("d", 24 * 3_600_000),
        ("h", 3_600_000),
        ("ms", 1),
        ("m", 60_000),
        ("s", 1_000),
    ];
    let invalid = || format!("invalid duration {text:?} (want e.g. 30s, 5m, 1h30m, or 0)");
    if text.is_empty() {
        return Err(invalid());
    }
    let mut rest = text;
    let mut total_ms: u64 = 0;
    let mut last_unit_rank = usize::MAX;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(invalid());
        }
        let number: u64 = rest[..digits].parse().map_err(|_| invalid())?;
        rest = &rest[digits..];
        let (rank, (unit, ms_per_unit)) = UNITS
            .iter()
            .enumerate()
            .find(|(_, (unit, _))| rest.starts_with(unit))
            .ok_or_else(invalid)?;
        // Ranks follow size except that "ms" is listed before "m" so it matches first.
        let size_rank = if *unit == "ms" { UNITS.len() } else { rank };
        if last_unit_rank != usize::MAX && size_rank <= last_unit_rank {
            return Err(invalid());
        }
        last_unit_rank = size_rank;
        rest = &rest[unit.len()..];
        total_ms = number
            .checked_mul(*ms_per_unit)
            .and_then(|ms| total_ms.checked_add(ms))
            .ok_or_else(invalid)?;
    }
    Ok(Duration::from_millis(total_ms))
}

/// Parses a byte size: a plain number of bytes, or a number with `B`, `KiB`, `MiB`, `GiB`
/// (also `KB`, `MB`, `GB`, `K`, `M`, `G`, read as powers of 1024 as Prometheus flags do).
pub fn parse_size(text: &str) -> Result<usize, String> {
    let invalid =
        || format!("invalid size {text:?} (want e.g. 512KiB, 32MiB or a number of bytes)");
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Err(invalid());
    }
    let number: usize = text[..digits].parse().map_err(|_| invalid())?;
    let multiplier: usize = match &text[digits..] {
        "" | "B" => 1,
        "K" | "KB" | "KiB" => 1 << 10,
        "M" | "MB" | "MiB" => 1 << 20,
        "G" | "GB" | "GiB" => 1 << 30,
        _ => return Err(invalid()),
    };
    number.checked_mul(multiplier).ok_or_else(invalid)
}

/// Formats a byte size as `parse_size` reads it: whole GiB, MiB or KiB when it is one, else
/// MiB with one decimal (`64MiB`, `57.6MiB`), for logs and the landing page.
pub fn format_size(bytes: u64) -> String {
    for (unit, size) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
        if bytes >= size && bytes.is_multiple_of(size) {
            return format!("{}{unit}", bytes / size);
        }
    }
    if bytes < 1 << 20 {
        return format!("{bytes}B");
    }
    format!("{:.1}MiB", bytes as f64 / (1u64 << 20) as f64)
}

/// Formats a duration back into the shortest Prometheus spelling, for logs and the landing page.
pub fn format_duration(duration: Duration) -> String {
    let mut ms = duration.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ] {
        if ms >= size {
            out.push_str(&format!("{}{unit}", ms / size));
            ms %= size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_formatted_as_flags_take_them() {
        assert_eq!(format_size(64 << 20), "64MiB");
        assert_eq!(format_size(2 << 30), "2GiB");
        assert_eq!(format_size(1536), "1536B");
        assert_eq!(format_size(4 << 10), "4KiB");
        assert_eq!(format_size(60_397_977), "57.6MiB");
        assert_eq!(parse_size(&format_size(512 << 20)), Ok(512 << 20));
    }

    #[test]
    fn durations_in_prometheus_spelling() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1m500ms"), Ok(Duration::from_millis(60_500)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172_800)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
    }

    #[test]
    fn bad_durations_are_refused() {
        for bad in [
            "",
            "5",
            "m",
            "5x",
            "1.5h",
            "30m1h",
            "5m5m",
            "-5m",
            "99999999999999999999y",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn sizes_in_binary_units() {
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size("512KiB"), Ok(512 * 1024));
        assert_eq!(parse_size("32MiB"), Ok(32 << 20));
        assert_eq!(parse_size("1GB"), Ok(1 << 30));
        assert_eq!(parse_size("7B"), Ok(7));
    }

    #[test]
    fn bad_sizes_are_refused() {
        for bad in [
            "",
            "MiB",
            "1.5MiB",
            "12 MiB",
            "3TiB",
            "-1",
            "99999999999999999999G",
        ] {
            assert!(parse_size(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn durations_format_back_to_their_spelling() {
        assert_eq!(format_duration(Duration::from_secs(300)), "5m");
        assert_eq!(
            format_duration(Duration::from_millis(5_400_250)),
            "1h30m250ms"
        );
        assert_eq!(format_duration(Duration::ZERO), "0s");
    }
}
