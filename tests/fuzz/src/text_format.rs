//! A strict reader of the Prometheus text format 0.0.4, written apart from the exporter's encoder
//! so that the fuzz targets can hold `/metrics` against what the store holds.
//!
//! It refuses everything `expfmt.TextParser` (what `promtool check metrics` and client libraries
//! read with) refuses, including its less obvious rules: a `# HELP` or `# TYPE` line for `x_sum`
//! belongs to summary or histogram `x` when `x` is already known, a family gets one HELP and one
//! TYPE (before its samples), and `le` in a histogram or `quantile` in a summary must be a float
//! that Go's `strconv.ParseFloat` takes. It is stricter than expfmt where the exporter promises
//! more: canonical spacing, no other comments, no series twice.

use std::collections::{HashMap, HashSet};

/// One sample line, with its label values unescaped.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
    pub timestamp_ms: Option<i64>,
}

#[derive(Default)]
struct Family {
    help_seen: bool,
    kind: Option<String>,
    has_samples: bool,
}

/// Parses a whole page; the error names the line and what is wrong with it.
pub fn parse(page: &[u8]) -> Result<Vec<Sample>, String> {
    let text = std::str::from_utf8(page).map_err(|e| format!("page is not UTF-8: {e}"))?;
    if !text.is_empty() && !text.ends_with('\n') {
        return Err("page does not end with a newline".into());
    }
    let mut reader = Reader::default();
    for (index, line) in text.split_terminator('\n').enumerate() {
        reader
            .line(line)
            .map_err(|problem| format!("line {}: {problem}: {line:?}", index + 1))?;
    }
    Ok(reader.samples)
}

#[derive(Default)]
struct Reader {
    families: HashMap<String, Family>,
    seen: HashSet<(String, Vec<(String, String)>)>,
    samples: Vec<Sample>,
}

impl Reader {
    fn line(&mut self, line: &str) -> Result<(), String> {
        if let Some(comment) = line.strip_prefix("# ") {
            return self.comment(comment);
        }
        let sample = sample_line(line)?;
        let family_name = self.family_of(&sample.name);
        let family = self.families.entry(family_name).or_default();
        family.has_samples = true;
        let bound_label = match family.kind.as_deref() {
            Some("histogram") => Some("le"),
            Some("summary") => Some("quantile"),
            _ => None,
        };
        for (label, value) in &sample.labels {
            if Some(label.as_str()) == bound_label && go_parse_float(value).is_none() {
                return Err(format!("{label}={value:?} is not a float"));
            }
        }
        if !self
            .seen
            .insert((sample.name.clone(), sorted(&sample.labels)))
        {
            return Err("the same series twice".into());
        }
        self.samples.push(sample);
        Ok(())
    }

    fn comment(&mut self, comment: &str) -> Result<(), String> {
        let (keyword, rest) = comment.split_once(' ').ok_or("comment without a keyword")?;
        let (name, argument) = rest.split_once(' ').ok_or("comment without a name")?;
        if !is_metric_name(name) {
            return Err(format!("invalid metric name {name:?}"));
        }
        let family_name = self.family_of(name);
        let family = self.families.entry(family_name.clone()).or_default();
        match keyword {
            "HELP" => {
                if family.help_seen {
                    return Err(format!("second HELP for family {family_name}"));
                }
                unescape_help(argument)?;
                family.help_seen = true;
            }
            "TYPE" => {
                if family.kind.is_some() || family.has_samples {
                    return Err(format!("second or late TYPE for family {family_name}"));
                }
                if !matches!(
                    argument,
                    "counter" | "gauge" | "histogram" | "summary" | "untyped"
                ) {
                    return Err(format!("unknown type {argument:?}"));
                }
                family.kind = Some(argument.to_owned());
            }
            _ => return Err(format!("unexpected comment keyword {keyword:?}")),
        }
        Ok(())
    }

    /// The family a line about `name` belongs to, the way expfmt decides it: the family of that
    /// very name if known, else summary or histogram `x` for `x_sum`, `x_count` (and `x_bucket`
    /// for histograms), else a new family.
    fn family_of(&self, name: &str) -> String {
        if self.families.contains_key(name) {
            return name.to_owned();
        }
        let kind_of = |base: &str| self.families.get(base).and_then(|f| f.kind.as_deref());
        for suffix in ["_sum", "_count", "_bucket"] {
            if let Some(base) = name.strip_suffix(suffix) {
                match kind_of(base) {
                    Some("histogram") => return base.to_owned(),
                    Some("summary") if suffix != "_bucket" => return base.to_owned(),
                    _ => {}
                }
            }
        }
        name.to_owned()
    }
}

/// Label pairs sorted by name, to compare label sets.
pub fn sorted(labels: &[(String, String)]) -> Vec<(String, String)> {
    let mut labels = labels.to_vec();
    labels.sort();
    labels
}

fn sample_line(line: &str) -> Result<Sample, String> {
    let name_end = line.find(['{', ' ']).ok_or("sample line without a value")?;
    let name = &line[..name_end];
    if !is_metric_name(name) {
        return Err(format!("invalid metric name {name:?}"));
    }
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(block) = rest.strip_prefix('{') {
        rest = label_block(block, &mut labels)?;
    }
    let rest = rest.strip_prefix(' ').ok_or("no space before the value")?;
    let (value, timestamp) = match rest.split_once(' ') {
        Some((value, timestamp)) => (value, Some(timestamp)),
        None => (rest, None),
    };
    let value = sample_value(value)?;
    let timestamp_ms = match timestamp {
        Some(t) => Some(
            t.parse::<i64>()
                .map_err(|_| format!("timestamp {t:?} is not an integer"))?,
        ),
        None => None,
    };
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value,
        timestamp_ms,
    })
}

/// Reads `name="value",...}` and returns what follows the closing brace.
fn label_block<'a>(
    mut rest: &'a str,
    labels: &mut Vec<(String, String)>,
) -> Result<&'a str, String> {
    if let Some(after) = rest.strip_prefix('}') {
        return Err(format!("empty label block before {after:?}"));
    }
    loop {
        let (name, after) = rest.split_once("=\"").ok_or("label without =\"")?;
        if !is_label_name(name) || name == "__name__" {
            return Err(format!("invalid label name {name:?}"));
        }
        if labels.iter().any(|(n, _)| n == name) {
            return Err(format!("label {name} twice"));
        }
        let (value, after) = label_value(after)?;
        labels.push((name.to_owned(), value));
        if let Some(after) = after.strip_prefix(',') {
            rest = after;
        } else if let Some(after) = after.strip_prefix('}') {
            return Ok(after);
        } else {
            return Err("label value not followed by , or }".into());
        }
    }
}

/// Unescapes a label value up to its closing quote; returns it and what follows the quote.
fn label_value(text: &str) -> Result<(String, &str), String> {
    let mut value = String::new();
    let mut chars = text.char_indices();
    while let Some((index, c)) = chars.next() {
        match c {
            '"' => return Ok((value, &text[index + 1..])),
            '\\' => match chars.next() {
                Some((_, '\\')) => value.push('\\'),
                Some((_, '"')) => value.push('"'),
                Some((_, 'n')) => value.push('\n'),
                other => return Err(format!("invalid escape {other:?} in a label value")),
            },
            '\n' => return Err("raw newline in a label value".into()),
            c => value.push(c),
        }
    }
    Err("unterminated label value".into())
}

fn unescape_help(text: &str) -> Result<String, String> {
    let mut help = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('\\') => help.push('\\'),
                Some('n') => help.push('\n'),
                other => return Err(format!("invalid escape {other:?} in HELP")),
            }
        } else {
            help.push(c);
        }
    }
    Ok(help)
}

/// A sample value as the exporter spells it: `NaN`, `+Inf`, `-Inf`, or a decimal float.
fn sample_value(token: &str) -> Result<f64, String> {
    match token {
        "NaN" => return Ok(f64::NAN),
        "+Inf" => return Ok(f64::INFINITY),
        "-Inf" => return Ok(f64::NEG_INFINITY),
        _ => {}
    }
    let digits = token.strip_prefix('-').unwrap_or(token);
    let canonical = digits.starts_with(|c: char| c.is_ascii_digit())
        && digits
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | '+' | '-'));
    match token.parse::<f64>() {
        Ok(value) if canonical && value.is_finite() => Ok(value),
        _ => Err(format!("value {token:?} is not a float")),
    }
}

/// What Go's `strconv.ParseFloat(s, 64)` accepts, less what expfmt refuses on top of it (any
/// of `p`, `P`, `_`): so no hexadecimal floats, no signed NaN, and no value beyond `f64`'s range.
fn go_parse_float(text: &str) -> Option<f64> {
    if text.contains(['p', 'P', '_']) {
        return None;
    }
    let unsigned = text.strip_prefix(['+', '-']).unwrap_or(text);
    let signed = unsigned.len() != text.len();
    let lower = unsigned.to_ascii_lowercase();
    match lower.as_str() {
        "nan" if !signed => return Some(f64::NAN),
        "inf" | "infinity" => return text.parse().ok(),
        _ => {}
    }
    let decimal = !lower.is_empty()
        && lower
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | '+' | '-'));
    let value: f64 = text.parse().ok()?;
    (decimal && value.is_finite()).then_some(value)
}

fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}
