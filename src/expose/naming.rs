//! The names a scrape shows, in the escaping scheme it asked for
//! (https://prometheus.io/docs/instrumenting/escaping_schemes/).
//!
//! Most schemas hold legacy names only, which every scheme shows as they are, and the store
//! prepares `underscores`, the default, for the rest. So only the few schemas with other
//! names, under another scheme, are worked out here, once per scrape.

use std::borrow::Cow;

use crate::base::label_text::{is_legacy_name, Escaping};
use crate::store::{Schema, Snapshot};

/// Shows names in one scheme.
pub struct Naming {
    pub escaping: Escaping,
    /// The schemas whose names this scheme shows apart from the store's preparation, by
    /// address.
    shown: hashbrown::HashMap<usize, ShownSchema>,
}

/// A schema's names under a scheme other than `underscores`.
struct ShownSchema {
    name: Box<str>,
    prefixes: Box<[Box<str>]>,
    escaped: bool,
    labels_collide: bool,
}

impl Naming {
    /// The names of the snapshot's series in `escaping`.
    pub fn new(snapshot: &Snapshot, escaping: Escaping) -> Naming {
        let mut shown = hashbrown::HashMap::new();
        if escaping != Escaping::Underscores {
            for series in snapshot.series.iter().filter(|s| s.schema.escaped) {
                let schema = &series.schema;
                shown
                    .entry(std::sync::Arc::as_ptr(schema) as usize)
                    .or_insert_with(|| ShownSchema::of(schema, escaping));
            }
        }
        Naming { escaping, shown }
    }

    fn shown(&self, schema: &Schema) -> Option<&ShownSchema> {
        if self.shown.is_empty() {
            return None;
        }
        self.shown.get(&(schema as *const Schema as usize))
    }

    /// The metric name as shown.
    pub fn name<'a>(&'a self, schema: &'a Schema) -> &'a str {
        match self.shown(schema) {
            Some(shown) => &shown.name,
            None => schema.exposed_name(),
        }
    }

    /// What text formats write before each label value: `{name="`, then `,name="`.
    pub fn prefixes<'a>(&'a self, schema: &'a Schema) -> &'a [Box<str>] {
        match self.shown(schema) {
            Some(shown) => &shown.prefixes,
            None => &schema.prefixes,
        }
    }

    /// Whether a name was escaped, so that the series may show as another does.
    pub fn escaped(&self, schema: &Schema) -> bool {
        self.shown(schema).map_or(schema.escaped, |s| s.escaped)
    }

    /// Whether two of the schema's label names show alike, so its series cannot be shown.
    pub fn labels_collide(&self, schema: &Schema) -> bool {
        self.shown(schema)
            .map_or(schema.escaped_labels_collide, |s| s.labels_collide)
    }

    /// Any name as shown.
    pub fn escape<'n>(&self, name: &'n str, metric: bool) -> Cow<'n, str> {
        self.escaping.escape(name, metric)
    }

    /// Whether a text format writes the schema's metric name in quotes: with `allow-utf-8`,
    /// when it is outside the legacy set (a schema whose names needed no escaping has only
    /// legacy names, so most are settled without looking at the name).
    pub fn quoted(&self, schema: &Schema) -> bool {
        self.escaping == Escaping::AllowUtf8
            && schema.escaped
            && !is_legacy_name(&schema.name, true)
    }

    /// A family name as a text format's `# TYPE` and `# HELP` write it: in quotes with
    /// `allow-utf-8` when it is outside the legacy set.
    pub fn family_name<'n>(&self, name: &'n str) -> Cow<'n, str> {
        match self.escaping {
            Escaping::AllowUtf8 => quoted_if_needed(name, true),
            _ => Cow::Borrowed(name),
        }
    }
}

impl ShownSchema {
    fn of(schema: &Schema, escaping: Escaping) -> ShownSchema {
        let labels: Vec<Cow<str>> = schema
            .label_names
            .iter()
            .map(|name| escaping.escape(name, false))
            .collect();
        let mut sorted: Vec<&str> = labels.iter().map(|n| &**n).collect();
        sorted.sort_unstable();
        let name = escaping.escape(&schema.name, true);
        ShownSchema {
            escaped: matches!(name, Cow::Owned(_))
                || labels.iter().any(|n| matches!(n, Cow::Owned(_))),
            labels_collide: sorted.windows(2).any(|pair| pair[0] == pair[1]),
            prefixes: labels
                .iter()
                .enumerate()
                .map(|(i, label)| {
                    let separator = if i == 0 { '{' } else { ',' };
                    format!("{separator}{}=\"", quoted_if_needed(label, false)).into_boxed_str()
                })
                .collect(),
            name: name.into_owned().into_boxed_str(),
        }
    }
}

/// A name as text formats write it: as it is when in the legacy set, otherwise in double
/// quotes with `\`, `"` and newline escaped (text 1.0.0, and OpenMetrics with UTF-8 names).
pub fn quoted_if_needed(name: &str, metric: bool) -> Cow<'_, str> {
    if is_legacy_name(name, metric) {
        return Cow::Borrowed(name);
    }
    let mut out = String::with_capacity(name.len() + 2);
    out.push('"');
    for c in name.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::intern::{Atom, Tuple};
    use crate::store::SeriesView;
    use std::sync::Arc;

    fn snapshot(name: &str, labels: &[&str]) -> Snapshot {
        let schema = Arc::new(Schema::new(name, labels));
        Snapshot {
            series: vec![SeriesView {
                values: Tuple::new(0, labels.iter().map(|_| Atom::new("v"))),
                schema,
                value: 1.0,
                timestamp_ms: 0,
            }],
            ..Snapshot::default()
        }
    }

    #[test]
    fn each_scheme_shows_its_own_names_and_prefixes() {
        let snapshot = snapshot("http.requests", &["a.b", "c"]);
        let schema = &snapshot.series[0].schema;
        let cases = [
            (Escaping::Underscores, "http_requests", "{a_b=\""),
            (Escaping::Dots, "http_dot_requests", "{a_dot_b=\""),
            (Escaping::Values, "U__http_2E_requests", "{U__a_2E_b=\""),
            (Escaping::AllowUtf8, "http.requests", "{\"a.b\"=\""),
        ];
        for (escaping, name, prefix) in cases {
            let naming = Naming::new(&snapshot, escaping);
            assert_eq!(naming.name(schema), name);
            assert_eq!(&*naming.prefixes(schema)[0], prefix);
            assert_eq!(&*naming.prefixes(schema)[1], ",c=\"");
            assert_eq!(naming.escaped(schema), escaping != Escaping::AllowUtf8);
        }
    }

    #[test]
    fn labels_that_escape_alike_collide_only_where_they_do() {
        let snapshot = snapshot("m", &["a.b", "a_b"]);
        let schema = &snapshot.series[0].schema;
        assert!(Naming::new(&snapshot, Escaping::Underscores).labels_collide(schema));
        assert!(!Naming::new(&snapshot, Escaping::Dots).labels_collide(schema));
        assert!(!Naming::new(&snapshot, Escaping::AllowUtf8).labels_collide(schema));
    }

    #[test]
    fn names_outside_the_legacy_set_are_quoted() {
        assert_eq!(quoted_if_needed("up", true), "up");
        assert_eq!(quoted_if_needed("a:b", true), "a:b");
        assert_eq!(quoted_if_needed("a:b", false), "\"a:b\"");
        assert_eq!(
            quoted_if_needed("say \"hi\"\\", true),
            "\"say \\\"hi\\\"\\\\\""
        );
    }
}
