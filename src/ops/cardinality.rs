//! Where the series come from: the tables Prometheus's TSDB status page shows
//! (`GET /api/v1/status/tsdb`, prometheus.io/docs/prometheus/latest/querying/api/#tsdb-stats),
//! computed from a snapshot of the store, so that writers are not held up. When the series or
//! memory limit refuses series, the first question is which metric exploded: these tables
//! answer it, on the API in Prometheus's JSON shape and on the landing page.

use std::collections::{HashMap, HashSet};

use serde_json::{json, Value};

use crate::store::Snapshot;

/// How many rows each table has unless `?limit=` says otherwise, as in Prometheus.
pub const DEFAULT_LIMIT: usize = 10;

/// The tables, each sorted by count (then name) and cut at the limit.
#[derive(Debug, Default, PartialEq)]
pub struct Cardinality {
    pub series: usize,
    /// Distinct `name=value` pairs, `__name__` among them.
    pub label_pairs: usize,
    pub min_time_ms: i64,
    pub max_time_ms: i64,
    pub series_by_metric_name: Vec<(String, u64)>,
    pub value_count_by_label_name: Vec<(String, u64)>,
    /// Bytes of the distinct values of each label name, as Prometheus counts them.
    pub memory_by_label_name: Vec<(String, u64)>,
    pub series_by_label_value_pair: Vec<(String, u64)>,
}

/// The `limit` query parameter as Prometheus reads it: a positive integer, 10 when absent.
pub fn parse_limit(value: Option<&str>) -> Result<usize, String> {
    match value {
        None => Ok(DEFAULT_LIMIT),
        Some(text) => match text.parse::<usize>() {
            Ok(limit) if limit > 0 => Ok(limit),
            _ => Err("limit must be a positive number".into()),
        },
    }
}

/// The largest `count` first, names in order among equals, at most `limit` of them.
fn top(counts: impl IntoIterator<Item = (String, u64)>, limit: usize) -> Vec<(String, u64)> {
    let mut rows: Vec<(String, u64)> = counts.into_iter().collect();
    rows.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    rows.truncate(limit);
    rows
}

impl Cardinality {
    /// The tables of `snapshot`, each cut at `limit` rows.
    pub fn of(snapshot: &Snapshot, limit: usize) -> Cardinality {
        let mut by_name: HashMap<&str, u64> = HashMap::new();
        let mut values_by_label: HashMap<&str, HashSet<&str>> = HashMap::new();
        let mut by_pair: HashMap<(&str, &str), u64> = HashMap::new();
        let (mut min_time, mut max_time) = (i64::MAX, i64::MIN);
        for series in &snapshot.series {
            *by_name.entry(series.name()).or_default() += 1;
            let name = std::iter::once(("__name__", series.name()));
            for (label, value) in name.chain(series.labels()) {
                values_by_label.entry(label).or_default().insert(value);
                *by_pair.entry((label, value)).or_default() += 1;
            }
            min_time = min_time.min(series.timestamp_ms);
            max_time = max_time.max(series.timestamp_ms);
        }
        let memory = values_by_label.iter().map(|(label, values)| {
            let bytes = values.iter().map(|v| v.len() as u64).sum();
            (label.to_string(), bytes)
        });
        Cardinality {
            series: snapshot.series.len(),
            label_pairs: by_pair.len(),
            min_time_ms: if snapshot.series.is_empty() {
                0
            } else {
                min_time
            },
            max_time_ms: if snapshot.series.is_empty() {
                0
            } else {
                max_time
            },
            series_by_metric_name: top(
                by_name
                    .iter()
                    .map(|(name, count)| (name.to_string(), *count)),
                limit,
            ),
            value_count_by_label_name: top(
                values_by_label
                    .iter()
                    .map(|(label, values)| (label.to_string(), values.len() as u64)),
                limit,
            ),
            memory_by_label_name: top(memory, limit),
            series_by_label_value_pair: top(
                by_pair
                    .iter()
                    .map(|((label, value), count)| (format!("{label}={value}"), *count)),
                limit,
            ),
        }
    }

    /// Prometheus's answer: `{"status":"success","data":{...}}`. The store keeps one sample per
    /// series and no chunks, so `chunkCount` is 0.
    pub fn to_json(&self) -> Value {
        let rows = |rows: &[(String, u64)]| -> Value {
            rows.iter()
                .map(|(name, value)| json!({"name": name, "value": value}))
                .collect()
        };
        json!({
            "status": "success",
            "data": {
                "headStats": {
                    "numSeries": self.series,
                    "numLabelPairs": self.label_pairs,
                    "chunkCount": 0,
                    "minTime": self.min_time_ms,
                    "maxTime": self.max_time_ms,
                },
                "seriesCountByMetricName": rows(&self.series_by_metric_name),
                "labelValueCountByLabelName": rows(&self.value_count_by_label_name),
                "memoryInBytesByLabelName": rows(&self.memory_by_label_name),
                "seriesCountByLabelValuePair": rows(&self.series_by_label_value_pair),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Sample, Store};

    fn store_of(series: &[(&str, &[(&str, &str)])]) -> Store {
        let store = Store::new(1000);
        for (i, (name, labels)) in series.iter().enumerate() {
            let sample = Sample {
                value: 1.0,
                timestamp_ms: 1000 + i as i64,
            };
            store.apply_text((name, labels), sample, 0);
        }
        store
    }

    #[test]
    fn tables_count_series_values_and_pairs_largest_first() {
        let store = store_of(&[
            ("up", &[("instance", "a"), ("job", "node")]),
            ("up", &[("instance", "b"), ("job", "node")]),
            ("up", &[("instance", "c"), ("job", "api")]),
            ("requests_total", &[("instance", "a"), ("job", "api")]),
        ]);
        let tables = Cardinality::of(&store.snapshot(), 2);
        assert_eq!(tables.series, 4);
        assert_eq!(
            tables.series_by_metric_name,
            [("up".into(), 3), ("requests_total".into(), 1)]
        );
        assert_eq!(
            tables.value_count_by_label_name,
            [("instance".into(), 3), ("__name__".into(), 2)]
        );
        assert_eq!(
            tables.series_by_label_value_pair,
            [("__name__=up".into(), 3), ("instance=a".into(), 2)]
        );
        assert_eq!(tables.memory_by_label_name[0], ("__name__".into(), 16));
        assert_eq!((tables.min_time_ms, tables.max_time_ms), (1000, 1003));
        let json = tables.to_json();
        assert_eq!(json["data"]["headStats"]["numSeries"], 4);
        assert_eq!(json["data"]["seriesCountByMetricName"][0]["name"], "up");
        assert_eq!(json["data"]["seriesCountByMetricName"][0]["value"], 3);
    }

    #[test]
    fn the_limit_is_a_positive_number_ten_by_default() {
        assert_eq!(parse_limit(None), Ok(10));
        assert_eq!(parse_limit(Some("3")), Ok(3));
        for bad in ["0", "-1", "x", ""] {
            assert!(parse_limit(Some(bad)).is_err(), "{bad}");
        }
    }
}
