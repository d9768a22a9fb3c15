//! OpenTelemetry metric names, units and attribute keys as Prometheus names, by the rules of
//! Prometheus 3's OTLP receiver (the `prometheus/otlptranslator` module: `MetricNamer`,
//! `UnitNamer`, `LabelNamer`, with Prometheus's default `otlp` settings, which keep label
//! names' repeated underscores and prefix `key` to one starting with a single `_`), which
//! follow the OpenTelemetry spec "Prometheus and OpenMetrics Compatibility".

use std::borrow::Cow;

/// `otlp.translation_strategy`: whether names are escaped to the classic character set, and
/// whether unit and type suffixes are added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    /// Prometheus 3's default: `http.server.duration` in `ms` is
    /// `http_server_duration_milliseconds`.
    #[default]
    UnderscoreEscapingWithSuffixes,
    UnderscoreEscapingWithoutSuffixes,
    /// UTF-8 names kept, suffixes added: `http.server.duration_milliseconds`.
    NoUtf8EscapingWithSuffixes,
    /// Names exactly as sent.
    NoTranslation,
}

impl Strategy {
    const ALL: [Strategy; 4] = [
        Strategy::UnderscoreEscapingWithSuffixes,
        Strategy::UnderscoreEscapingWithoutSuffixes,
        Strategy::NoUtf8EscapingWithSuffixes,
        Strategy::NoTranslation,
    ];

    pub fn from_name(name: &str) -> Option<Strategy> {
        Strategy::ALL
            .into_iter()
            .find(|strategy| strategy.name() == name)
    }

    /// The name Prometheus's configuration gives it.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::UnderscoreEscapingWithSuffixes => "UnderscoreEscapingWithSuffixes",
            Strategy::UnderscoreEscapingWithoutSuffixes => "UnderscoreEscapingWithoutSuffixes",
            Strategy::NoUtf8EscapingWithSuffixes => "NoUTF8EscapingWithSuffixes",
            Strategy::NoTranslation => "NoTranslation",
        }
    }

    pub fn escapes(self) -> bool {
        matches!(
            self,
            Strategy::UnderscoreEscapingWithSuffixes | Strategy::UnderscoreEscapingWithoutSuffixes
        )
    }

    fn adds_suffixes(self) -> bool {
        matches!(
            self,
            Strategy::UnderscoreEscapingWithSuffixes | Strategy::NoUtf8EscapingWithSuffixes
        )
    }
}

/// What an OpenTelemetry metric is, for the suffixes its name gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    Gauge,
    MonotonicCounter,
    NonMonotonicCounter,
    Histogram,
    Summary,
}

/// OpenTelemetry units (UCUM) and the words Prometheus names use for them; a unit not here is
/// used as it is.
const UNITS: [(&str, &str); 26] = [
    ("d", "days"),
    ("h", "hours"),
    ("min", "minutes"),
    ("s", "seconds"),
    ("ms", "milliseconds"),
    ("us", "microseconds"),
    ("ns", "nanoseconds"),
    ("By", "bytes"),
    ("KiBy", "kibibytes"),
    ("MiBy", "mebibytes"),
    ("GiBy", "gibibytes"),
    ("TiBy", "tibibytes"),
    ("KBy", "kilobytes"),
    ("MBy", "megabytes"),
    ("GBy", "gigabytes"),
    ("TBy", "terabytes"),
    ("m", "meters"),
    ("V", "volts"),
    ("A", "amperes"),
    ("J", "joules"),
    ("W", "watts"),
    ("g", "grams"),
    ("Cel", "celsius"),
    ("Hz", "hertz"),
    ("1", ""),
    ("%", "percent"),
];

/// The denominators of `x/y` units.
const PER_UNITS: [(&str, &str); 7] = [
    ("s", "second"),
    ("m", "minute"),
    ("h", "hour"),
    ("d", "day"),
    ("w", "week"),
    ("mo", "month"),
    ("y", "year"),
];

fn look_up<'u>(table: &[(&str, &'u str)], unit: &'u str) -> &'u str {
    table
        .iter()
        .find(|(otel, _)| *otel == unit)
        .map_or(unit, |(_, prometheus)| prometheus)
}

/// The main and `per_` suffixes of a unit: `By/s` gives `bytes` and `per_second`; a part in
/// braces (an annotation such as `{request}`) gives none.
fn unit_suffixes(unit: &str) -> (String, String) {
    let (main, per) = match unit.split_once('/') {
        Some((main, per)) => (main, Some(per)),
        None => (unit, None),
    };
    let usable = |part: &str| !part.is_empty() && !part.contains(['{', '}']);
    let main = main.trim();
    let main = if usable(main) {
        look_up(&UNITS, main).to_owned()
    } else {
        String::new()
    };
    let per = match per.map(str::trim) {
        Some(per) if usable(per) => format!("per_{}", look_up(&PER_UNITS, per)),
        _ => String::new(),
    };
    (main, per)
}

fn is_metric_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == ':'
}

/// A unit suffix made of metric-name characters: others become `_`, runs of `_` one, and a
/// leading `_` goes.
fn clean_unit(unit: &str) -> String {
    let mut out = String::with_capacity(unit.len());
    for c in unit.chars() {
        let c = if is_metric_char(c) { c } else { '_' };
        if !(c == '_' && out.ends_with('_')) {
            out.push(c);
        }
    }
    out.trim_start_matches('_').to_owned()
}

/// The Prometheus metric name of an OpenTelemetry metric; `Err` with the reason when the name
/// it makes is empty or only underscores.
pub fn metric_name(
    strategy: Strategy,
    name: &str,
    unit: &str,
    kind: NameKind,
) -> Result<String, String> {
    let built = if !strategy.escapes() {
        if strategy.adds_suffixes() {
            name_with_suffixes(name, unit, kind)
        } else {
            name.to_owned()
        }
    } else if strategy.adds_suffixes() {
        normalized_name(name, unit, kind)
    } else {
        let mut joined = name
            .split(|c: char| !is_metric_char(c) && c != '_')
            .filter(|token| !token.is_empty())
            .collect::<Vec<_>>()
            .join("_");
        if joined.starts_with(|c: char| c.is_ascii_digit()) {
            joined.insert(0, '_');
        }
        joined
    };
    if built.is_empty() {
        return Err(format!("the metric name {name:?} makes an empty name"));
    }
    if built != name && built.chars().all(|c| c == '_') {
        return Err(format!("the metric name {name:?} makes the name {built:?}"));
    }
    Ok(built)
}

/// `UnderscoreEscapingWithSuffixes`: the name cut into runs of metric-name characters (so runs
/// of anything else, `_` included, become one `_`), the unit's words added unless already
/// there, `total` moved to the end of a counter, `ratio` to the end of a gauge in `1`.
fn normalized_name(name: &str, unit: &str, kind: NameKind) -> String {
    let mut tokens: Vec<String> = name
        .split(|c: char| !is_metric_char(c))
        .filter(|token| !token.is_empty())
        .map(str::to_owned)
        .collect();
    let (main, per) = unit_suffixes(unit);
    let (mut main, mut per) = (clean_unit(&main), clean_unit(&per));
    if tokens.contains(&main) {
        main.clear();
    }
    if per == "per_" {
        per.clear();
    } else {
        per = per.trim_end_matches('_').to_owned();
        if tokens.contains(&per) {
            per.clear();
        }
    }
    if !per.is_empty() {
        main = main.trim_end_matches('_').to_owned();
    }
    for suffix in [main, per] {
        if !suffix.is_empty() {
            tokens.push(suffix);
        }
    }
    let mut move_to_end = |word: &str| {
        tokens.retain(|token| token != word);
        tokens.push(word.to_owned());
    };
    if kind == NameKind::MonotonicCounter {
        move_to_end("total");
    }
    if unit == "1" && kind == NameKind::Gauge {
        move_to_end("ratio");
    }
    let mut joined = tokens.join("_");
    if joined.starts_with(|c: char| c.is_ascii_digit()) {
        joined.insert(0, '_');
    }
    joined
}

/// `NoUTF8EscapingWithSuffixes`: the name as sent, with the unit's words, `_total` or `_ratio`
/// at the end unless the name ends so already.
fn name_with_suffixes(name: &str, unit: &str, kind: NameKind) -> String {
    fn trim_suffix<'n>(name: &'n str, suffix: &str) -> &'n str {
        match name.strip_suffix(suffix) {
            Some(rest) if name.len() > suffix.len() + 1 => &rest[..rest.len() - 1],
            _ => name,
        }
    }
    let mut name = name;
    let ratio = unit == "1" && kind == NameKind::Gauge;
    if ratio {
        name = trim_suffix(name, "ratio");
    }
    let total = kind == NameKind::MonotonicCounter;
    if total {
        name = trim_suffix(name, "total");
    }
    let (main, per) = unit_suffixes(unit);
    if !per.is_empty() {
        name = trim_suffix(name, &per);
    }
    let mut built = name.to_owned();
    if !main.is_empty() && !built.ends_with(&main) {
        built.push('_');
        built.push_str(&main);
    }
    for (add, suffix) in [
        (!per.is_empty(), per.as_str()),
        (total, "total"),
        (ratio, "ratio"),
    ] {
        if add {
            built.push('_');
            built.push_str(suffix);
        }
    }
    built
}

/// The unit Prometheus keeps in a family's metadata (`UnitNamer`): the unit's words, `x_per_y`,
/// cleaned of characters a name cannot hold unless names are UTF-8.
pub fn metadata_unit(strategy: Strategy, unit: &str) -> String {
    let (main, per) = unit_suffixes(unit);
    let (main, per) = if strategy.escapes() {
        (clean_unit(&main), clean_unit(&per))
    } else {
        (main, per)
    };
    let joined = match (main.is_empty(), per.is_empty()) {
        (false, false) => format!("{main}_{per}"),
        (false, true) => main,
        _ => per,
    };
    let joined = joined.strip_prefix('_').unwrap_or(&joined);
    joined.strip_suffix('_').unwrap_or(joined).to_owned()
}

/// The label name of an attribute key, sent as bytes (a name kept as it is, by a strategy that
/// does not escape, is checked for UTF-8 by the naming rules); `Err` with the reason when
/// there is none (an empty key, or one of underscores only).
pub fn label_name(strategy: Strategy, key: &[u8]) -> Result<Cow<'_, [u8]>, String> {
    if key.is_empty() {
        return Err("an attribute key is empty".into());
    }
    let only_underscores = |name: &[u8]| name.iter().all(|&c| c == b'_');
    let shown = || String::from_utf8_lossy(key);
    if !strategy.escapes() {
        return match only_underscores(key) {
            true => Err(format!(
                "the attribute key {:?} is only underscores",
                shown()
            )),
            false => Ok(Cow::Borrowed(key)),
        };
    }
    let valid = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let starts_badly = key[0].is_ascii_digit() || (key[0] == b'_' && !key.starts_with(b"__"));
    if key.iter().all(|&c| valid(c)) && !starts_badly && !only_underscores(key) {
        return Ok(Cow::Borrowed(key));
    }
    // One `_` per character that is not a name's, as Prometheus goes through a key by runes
    // (a byte that is not UTF-8 is one too).
    let mut name: String = String::from_utf8_lossy(key)
        .chars()
        .map(|c| {
            if c.is_ascii() && valid(c as u8) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert_str(0, "key_");
    } else if name.starts_with('_') && !name.starts_with("__") {
        name.insert_str(0, "key");
    }
    if only_underscores(name.as_bytes()) {
        return Err(format!(
            "the attribute key {:?} makes the label name {name:?}",
            shown()
        ));
    }
    Ok(Cow::Owned(name.into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use NameKind::*;
    use Strategy::*;

    /// Cases from the otlptranslator module's own tests and the OpenTelemetry compatibility
    /// spec's examples.
    #[test]
    fn metric_names_as_prometheus_makes_them() {
        let cases = [
            (
                "system.filesystem.usage",
                "By",
                Gauge,
                "system_filesystem_usage_bytes",
            ),
            (
                "http.server.duration",
                "ms",
                Histogram,
                "http_server_duration_milliseconds",
            ),
            ("requests", "1", MonotonicCounter, "requests_total"),
            (
                "requests_total",
                "{request}",
                MonotonicCounter,
                "requests_total",
            ),
            ("total_requests", "", MonotonicCounter, "requests_total"),
            ("cpu.utilization", "1", Gauge, "cpu_utilization_ratio"),
            ("ratio_cpu", "1", Gauge, "cpu_ratio"),
            ("queue.size", "1", NonMonotonicCounter, "queue_size"),
            ("network.io", "By/s", Gauge, "network_io_bytes_per_second"),
            ("speed", "m/h", Gauge, "speed_meters_per_hour"),
            ("speed", "m/{x}", Gauge, "speed_meters"),
            ("temperature", "Cel", Gauge, "temperature_celsius"),
            ("bytes_in", "By", Gauge, "bytes_in"),
            ("weird__name..x", "", Gauge, "weird_name_x"),
            ("2xx.count", "", Gauge, "_2xx_count"),
            ("a:b", "", Gauge, "a:b"),
            ("up", "custom unit", Gauge, "up_custom_unit"),
        ];
        for (name, unit, kind, want) in cases {
            let got = metric_name(UnderscoreEscapingWithSuffixes, name, unit, kind).unwrap();
            assert_eq!(got, want, "{name} {unit} {kind:?}");
        }
        assert!(metric_name(UnderscoreEscapingWithSuffixes, "...", "", Gauge).is_err());
        assert!(metric_name(UnderscoreEscapingWithSuffixes, "", "", Gauge).is_err());
    }

    #[test]
    fn other_strategies() {
        let name = |strategy, name, unit, kind| metric_name(strategy, name, unit, kind).unwrap();
        assert_eq!(
            name(
                NoUtf8EscapingWithSuffixes,
                "http.server.duration",
                "ms",
                Histogram
            ),
            "http.server.duration_milliseconds"
        );
        assert_eq!(
            name(
                NoUtf8EscapingWithSuffixes,
                "requests.total",
                "1",
                MonotonicCounter
            ),
            "requests_total"
        );
        assert_eq!(
            name(NoUtf8EscapingWithSuffixes, "bytes", "By/s", Gauge),
            "bytes_per_second"
        );
        assert_eq!(
            name(NoUtf8EscapingWithSuffixes, "used", "1", Gauge),
            "used_ratio"
        );
        assert_eq!(
            name(NoTranslation, "http.server.duration", "ms", Histogram),
            "http.server.duration"
        );
        assert_eq!(
            name(
                UnderscoreEscapingWithoutSuffixes,
                "http.server.dur__x",
                "ms",
                MonotonicCounter
            ),
            "http_server_dur__x"
        );
    }

    #[test]
    fn units_in_metadata() {
        assert_eq!(
            metadata_unit(UnderscoreEscapingWithSuffixes, "ms"),
            "milliseconds"
        );
        assert_eq!(
            metadata_unit(UnderscoreEscapingWithSuffixes, "By/s"),
            "bytes_per_second"
        );
        assert_eq!(metadata_unit(UnderscoreEscapingWithSuffixes, "1"), "");
        assert_eq!(
            metadata_unit(UnderscoreEscapingWithSuffixes, "{packet}"),
            ""
        );
        assert_eq!(metadata_unit(UnderscoreEscapingWithSuffixes, "a.b"), "a_b");
        assert_eq!(metadata_unit(NoUtf8EscapingWithSuffixes, "a.b"), "a.b");
    }

    #[test]
    fn label_names_as_prometheus_makes_them() {
        let strategy = UnderscoreEscapingWithSuffixes;
        for (key, want) in [
            ("service.name", "service_name"),
            ("http.status_code", "http_status_code"),
            ("a__b", "a__b"),
            ("a..b", "a__b"),
            ("_private", "key_private"),
            ("__reserved__", "__reserved__"),
            ("0day", "key_0day"),
            ("é", "key_"),
            ("host", "host"),
        ] {
            assert_eq!(
                label_name(strategy, key.as_bytes()).unwrap(),
                want.as_bytes(),
                "{key}"
            );
        }
        assert!(label_name(strategy, b"").is_err());
        assert!(label_name(strategy, b"..").is_err());
        assert_eq!(
            label_name(NoTranslation, b"service.name").unwrap(),
            &b"service.name"[..]
        );
        assert!(label_name(NoTranslation, b"__").is_err());
        assert_eq!(label_name(strategy, b"a\xffb").unwrap(), &b"a_b"[..]);
    }
}
