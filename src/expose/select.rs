//! `match[]` series selectors, as Prometheus's `/federate` takes them
//! (https://prometheus.io/docs/prometheus/latest/querying/basics/#time-series-selectors):
//! `up`, `{job="a"}`, `{__name__=~"container_.*",namespace!="kube-system"}`, and, as
//! Prometheus 3 writes them, quoted UTF-8 names (`{"http.requests", "service.name"="a"}`).
//! Regexes are RE2 syntax, fully anchored, `.` matching newlines too, as Prometheus compiles
//! them. Several selectors are OR'ed.

use regex::Regex;

use crate::store::SeriesView;

/// How a matcher compares a label's value.
#[derive(Debug)]
enum Test {
    Equal(String),
    NotEqual(String),
    Matches(Regex),
    NotMatches(Regex),
}

impl Test {
    fn passes(&self, value: &str) -> bool {
        match self {
            Test::Equal(expected) => value == expected,
            Test::NotEqual(expected) => value != expected,
            Test::Matches(regex) => regex.is_match(value),
            Test::NotMatches(regex) => !regex.is_match(value),
        }
    }
}

/// One label matcher; `__name__` is the metric name. A series without the label has it empty.
#[derive(Debug)]
struct Matcher {
    label: String,
    test: Test,
}

impl Matcher {
    fn passes(&self, series: &SeriesView) -> bool {
        let value = if self.label == "__name__" {
            series.name()
        } else {
            series
                .labels()
                .find(|(name, _)| *name == self.label)
                .map_or("", |(_, value)| value)
        };
        self.test.passes(value)
    }
}

/// One selector: all of its matchers must pass.
#[derive(Debug)]
pub struct Selector(Vec<Matcher>);

/// The selectors of one scrape; a series is shown when any of them selects it.
#[derive(Debug, Default)]
pub struct Selection(Vec<Selector>);

impl Selection {
    /// Reads the selectors; an error is the one-line reason of the first that does not parse.
    pub fn parse<'a>(selectors: impl IntoIterator<Item = &'a str>) -> Result<Selection, String> {
        selectors
            .into_iter()
            .map(|text| {
                Selector::parse(text).map_err(|reason| format!("match[] {text:?}: {reason}"))
            })
            .collect::<Result<_, _>>()
            .map(Selection)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn selects(&self, series: &SeriesView) -> bool {
        self.0
            .iter()
            .any(|selector| selector.0.iter().all(|m| m.passes(series)))
    }
}

impl Selector {
    pub fn parse(text: &str) -> Result<Selector, String> {
        let mut cursor = Cursor { rest: text };
        let mut matchers = Vec::new();
        cursor.skip_space();
        let name = cursor.identifier(true);
        if let Some(name) = name {
            matchers.push(Matcher {
                label: "__name__".into(),
                test: Test::Equal(name.to_owned()),
            });
        }
        cursor.skip_space();
        if cursor.eat("{") {
            loop {
                cursor.skip_space();
                if cursor.eat("}") {
                    break;
                }
                matchers.push(cursor.matcher(name.is_some())?);
                cursor.skip_space();
                if cursor.eat("}") {
                    break;
                }
                if !cursor.eat(",") {
                    return Err(cursor.unexpected("',' or '}'"));
                }
            }
        } else if name.is_none() {
            return Err(cursor.unexpected("a metric name or '{'"));
        }
        cursor.skip_space();
        if !cursor.rest.is_empty() {
            return Err(cursor.unexpected("the end"));
        }
        let names = matchers.iter().filter(|m| m.label == "__name__").count();
        if name.is_some() && names > 1 {
            return Err("metric name must not be set twice".into());
        }
        if matchers.iter().all(|m| m.test.passes("")) {
            return Err("vector selector must contain at least one non-empty matcher".into());
        }
        Ok(Selector(matchers))
    }
}

struct Cursor<'t> {
    rest: &'t str,
}

impl<'t> Cursor<'t> {
    fn skip_space(&mut self) {
        self.rest = self.rest.trim_start();
    }

    fn eat(&mut self, token: &str) -> bool {
        match self.rest.strip_prefix(token) {
            Some(rest) => {
                self.rest = rest;
                true
            }
            None => false,
        }
    }

    fn unexpected(&self, wanted: &str) -> String {
        match self.rest.chars().next() {
            Some(c) => format!("unexpected {c:?}, wanted {wanted}"),
            None => format!("unexpected end, wanted {wanted}"),
        }
    }

    /// A legacy metric name (with colons) or label name, if one starts here.
    fn identifier(&mut self, metric: bool) -> Option<&'t str> {
        let end = self
            .rest
            .char_indices()
            .find(|&(i, c)| {
                !(c.is_ascii_alphabetic()
                    || c == '_'
                    || (metric && c == ':')
                    || (i > 0 && c.is_ascii_digit()))
            })
            .map_or(self.rest.len(), |(i, _)| i);
        let (name, rest) = self.rest.split_at(end);
        self.rest = rest;
        (!name.is_empty()).then_some(name)
    }

    fn matcher(&mut self, named: bool) -> Result<Matcher, String> {
        let label = match self.identifier(false) {
            Some(label) => label.to_owned(),
            None if self.rest.starts_with(['"', '\'', '`']) => self.string()?,
            None => return Err(self.unexpected("a label name")),
        };
        self.skip_space();
        let op = ["=~", "!~", "!=", "="]
            .into_iter()
            .find(|op| self.rest.starts_with(op));
        let Some(op) = op else {
            // A quoted name alone is the metric name (Prometheus 3).
            if self.rest.starts_with([',', '}']) && !named {
                return Ok(Matcher {
                    label: "__name__".into(),
                    test: Test::Equal(label),
                });
            }
            return Err(self.unexpected("a matcher operator"));
        };
        self.eat(op);
        self.skip_space();
        let value = self.string()?;
        let regex = || {
            Regex::new(&format!("^(?s:{value})$"))
                .map_err(|e| format!("bad regex {value:?}: {}", error_line(&e.to_string())))
        };
        let test = match op {
            "=" => Test::Equal(value.clone()),
            "!=" => Test::NotEqual(value.clone()),
            "=~" => Test::Matches(regex()?),
            _ => Test::NotMatches(regex()?),
        };
        Ok(Matcher { label, test })
    }

    /// A PromQL string: `"..."` or `'...'` with Go escapes, or `` `...` `` as it is.
    fn string(&mut self) -> Result<String, String> {
        let quote = self
            .rest
            .chars()
            .next()
            .filter(|c| matches!(c, '"' | '\'' | '`'))
            .ok_or_else(|| self.unexpected("a quoted string"))?;
        let mut chars = self.rest[1..].char_indices();
        let mut out = String::new();
        while let Some((i, c)) = chars.next() {
            if c == quote {
                self.rest = &self.rest[1 + i + 1..];
                return Ok(out);
            }
            if c != '\\' || quote == '`' {
                out.push(c);
                continue;
            }
            let (_, escaped) = chars.next().ok_or("unterminated string")?;
            let mut hex = |digits: usize| -> Result<char, String> {
                let text: String = (0..digits)
                    .filter_map(|_| chars.next().map(|(_, c)| c))
                    .collect();
                u32::from_str_radix(&text, 16)
                    .ok()
                    .filter(|_| text.len() == digits)
                    .and_then(char::from_u32)
                    .ok_or_else(|| format!("bad escape \\{escaped}{text}"))
            };
            out.push(match escaped {
                'n' => '\n',
                't' => '\t',
                'r' => '\r',
                'a' => '\x07',
                'b' => '\x08',
                'f' => '\x0c',
                'v' => '\x0b',
                '\\' | '"' | '\'' => escaped,
                'x' => hex(2)?,
                'u' => hex(4)?,
                'U' => hex(8)?,
                other => return Err(format!("unknown escape \\{other}")),
            });
        }
        Err("unterminated string".into())
    }
}

/// The line of a regex crate error that says what is wrong: its messages end with it, after
/// lines that point at the pattern.
fn error_line(text: &str) -> &str {
    text.lines().last().unwrap_or(text).trim()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::intern::{Atom, Tuple};
    use crate::store::Schema;
    use std::sync::Arc;

    fn series(name: &str, labels: &[(&str, &str)]) -> SeriesView {
        let names: Vec<&str> = labels.iter().map(|(n, _)| *n).collect();
        SeriesView {
            schema: Arc::new(Schema::new(name, &names)),
            values: Tuple::new(0, labels.iter().map(|(_, v)| Atom::new(v))),
            value: 1.0,
            timestamp_ms: 0,
        }
    }

    fn selects(selector: &str, s: &SeriesView) -> bool {
        Selection::parse([selector]).unwrap().selects(s)
    }

    #[test]
    fn selectors_match_as_prometheus_does() {
        let cpu = series(
            "container_cpu_usage_seconds_total",
            &[("namespace", "default"), ("pod", "web-1")],
        );
        let system = series("container_memory_rss", &[("namespace", "kube-system")]);
        let up = series("up", &[("job", "a")]);
        assert!(selects("up", &up));
        assert!(!selects("up", &cpu));
        assert!(selects("{job=\"a\"}", &up));
        assert!(selects(
            r#"{__name__=~"container_.*",namespace!="kube-system"}"#,
            &cpu
        ));
        assert!(!selects(
            r#"{__name__=~"container_.*",namespace!="kube-system"}"#,
            &system
        ));
        assert!(!selects(r#"{__name__=~"container"}"#, &cpu), "anchored");
        assert!(selects(
            r#"container_cpu_usage_seconds_total{pod=~'web-\\d+'}"#,
            &cpu
        ));
        assert!(selects("{pod!~`db.*`, __name__=~\".+\"}", &cpu));
        assert!(
            selects(r#"{__name__="up", missing=""}"#, &up),
            "absent is empty"
        );
        assert!(selects(r#"{"up"}"#, &up), "a quoted name alone");
        let dotted = series("http.requests", &[("service.name", "a")]);
        assert!(selects(r#"{"http.requests", "service.name"="a"}"#, &dotted));
        assert!(selects("{job=\"\\x61\"}", &up));
    }

    #[test]
    fn several_selectors_are_ored() {
        let selection = Selection::parse(["up", "{job=\"b\"}"]).unwrap();
        assert!(selection.selects(&series("up", &[])));
        assert!(selection.selects(&series("x", &[("job", "b")])));
        assert!(!selection.selects(&series("x", &[("job", "c")])));
    }

    #[test]
    fn bad_selectors_say_why() {
        for (selector, reason) in [
            ("{job=~\".*\"}", "at least one non-empty matcher"),
            ("{}", "at least one non-empty matcher"),
            ("{job=\"\"}", "at least one non-empty matcher"),
            ("up{", "wanted a label name"),
            ("up{job=\"a\"", "wanted ',' or '}'"),
            ("{job=~\"(\"}", "bad regex"),
            ("{job==\"a\"}", "wanted a quoted string"),
            ("up{__name__=\"x\"}", "set twice"),
            ("", "wanted a metric name"),
            ("up extra", "wanted the end"),
            ("{job=\"a}", "unterminated"),
        ] {
            let error = Selection::parse([selector]).unwrap_err();
            assert!(error.contains(reason), "{selector}: {error}");
            assert!(!error.contains('\n'), "one line: {error}");
        }
    }
}
