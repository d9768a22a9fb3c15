//! Which format a scrape is answered in, from its `Accept` header, as "Scrape protocol content
//! negotiation" (https://prometheus.io/docs/instrumenting/content_negotiation/) says: the
//! media range of highest weight that we can serve wins; nothing we can serve, or no header,
//! is answered in text 0.0.4, never with an error.

use crate::base::label_text::Escaping;

/// An exposition format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `text/plain; version=0.0.4`.
    Text004,
    /// `text/plain; version=1.0.0`: 0.0.4 with quoted UTF-8 names.
    Text100,
    /// `application/openmetrics-text; version=0.0.1`.
    OpenMetrics001,
    /// `application/openmetrics-text; version=1.0.0`.
    OpenMetrics100,
    /// `application/openmetrics-text; version=2.0.0`: composite values, UTF-8 names.
    OpenMetrics200,
    /// `application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily;
    /// encoding=delimited`: length-delimited `MetricFamily` messages.
    Protobuf,
}

impl Format {
    pub fn is_open_metrics(self) -> bool {
        matches!(
            self,
            Format::OpenMetrics001 | Format::OpenMetrics100 | Format::OpenMetrics200
        )
    }

    /// Whether the format can carry names outside the legacy set, quoted.
    fn carries_utf8(self) -> bool {
        self != Format::Text004
    }
}

/// What a scrape asked for, as we will answer it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    pub format: Format,
    pub escaping: Escaping,
    /// Whether the scraper named the scheme, which the answer then repeats.
    escaping_asked: bool,
}

impl Default for Negotiated {
    fn default() -> Negotiated {
        Negotiated {
            format: Format::Text004,
            escaping: Escaping::Underscores,
            escaping_asked: false,
        }
    }
}

impl Negotiated {
    /// The `Content-Type` of the answer: the format's media type and version, and its
    /// `escaping` where names may have been escaped. Text 1.0.0, OpenMetrics 1.0.0 and
    /// protobuf always name it (the spec requires it of 1.0.0 formats); text 0.0.4 and
    /// OpenMetrics 0.0.1 only when the scraper named a scheme, so that a scraper that
    /// never heard of escaping gets the header it always got.
    pub fn content_type(&self) -> String {
        let base = match self.format {
            Format::Text004 => "text/plain; version=0.0.4; charset=utf-8",
            Format::Text100 => "text/plain; version=1.0.0; charset=utf-8",
            Format::OpenMetrics001 => "application/openmetrics-text; version=0.0.1; charset=utf-8",
            Format::OpenMetrics100 => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            // The spec fixes the header, and its names are never escaped.
            Format::OpenMetrics200 => {
                return "application/openmetrics-text; version=2.0.0; charset=utf-8".to_owned()
            }
            Format::Protobuf => {
                "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; \
                 encoding=delimited"
            }
        };
        let names_scheme = matches!(
            self.format,
            Format::Text100 | Format::OpenMetrics100 | Format::Protobuf
        );
        if names_scheme || self.escaping_asked {
            format!("{base}; escaping={}", self.escaping.as_param())
        } else {
            base.to_owned()
        }
    }
}

/// One media range of an `Accept` header: `type/subtype;param=value;q=0.5`.
struct MediaRange<'a> {
    media_type: &'a str,
    params: Vec<(&'a str, &'a str)>,
    /// Weight in thousandths (RFC 9110 section 12.4.2).
    weight: u16,
}

impl<'a> MediaRange<'a> {
    fn parse(text: &'a str) -> Option<MediaRange<'a>> {
        let mut parts = text.split(';');
        let media_type = parts.next()?.trim();
        if !media_type.contains('/') {
            return None;
        }
        let mut range = MediaRange {
            media_type,
            params: Vec::new(),
            weight: 1000,
        };
        for param in parts {
            let (name, value) = param.split_once('=')?;
            let (name, value) = (name.trim(), value.trim().trim_matches('"'));
            if name.eq_ignore_ascii_case("q") {
                range.weight = parse_weight(value)?;
            } else {
                range.params.push((name, value));
            }
        }
        Some(range)
    }

    fn param(&self, name: &str) -> Option<&'a str> {
        self.params
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| *value)
    }

    /// The format this range asks for, if we serve it. `*/*`, `text/*` and `text/plain`
    /// without a version are text 0.0.4; OpenMetrics without a version is 0.0.1, as
    /// prometheus/common reads it.
    fn format(&self) -> Option<Format> {
        let version = self.param("version");
        let media_type = self.media_type.to_ascii_lowercase();
        match media_type.as_str() {
            "*/*" | "text/*" => Some(Format::Text004),
            "text/plain" => match version {
                None | Some("0.0.4") => Some(Format::Text004),
                Some("1.0.0") => Some(Format::Text100),
                _ => None,
            },
            "application/openmetrics-text" => match version {
                None | Some("0.0.1") => Some(Format::OpenMetrics001),
                Some("1.0.0") => Some(Format::OpenMetrics100),
                Some("2.0.0") => Some(Format::OpenMetrics200),
                _ => None,
            },
            "application/vnd.google.protobuf" => {
                let family = self.param("proto") == Some("io.prometheus.client.MetricFamily");
                (family && self.param("encoding") == Some("delimited")).then_some(Format::Protobuf)
            }
            _ => None,
        }
    }
}

/// A q-value, `0` to `1` with up to three decimals, in thousandths (RFC 9110 section 12.4.2),
/// as `Accept` and `Accept-Encoding` weigh their elements.
pub fn parse_weight(text: &str) -> Option<u16> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths: u16 = format!("{fraction:0<3}").parse().ok()?;
    match whole {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// The answer to an `Accept` header. Ranges are taken by weight, highest first, and in the
/// order written among equal weights; a range that does not parse is passed over, as is one
/// of weight 0. The scheme is the chosen range's `escaping`, `underscores` when it names none
/// or one we do not know; a format that cannot quote names (text 0.0.4) escapes even when
/// asked to allow UTF-8.
pub fn negotiate(accept: Option<&str>) -> Negotiated {
    let Some(accept) = accept else {
        return Negotiated::default();
    };
    let mut ranges: Vec<MediaRange> = accept
        .split(',')
        .filter_map(MediaRange::parse)
        .filter(|range| range.weight > 0)
        .collect();
    ranges.sort_by_key(|range| std::cmp::Reverse(range.weight));
    let Some((range, format)) = ranges
        .iter()
        .find_map(|range| Some((range, range.format()?)))
    else {
        return Negotiated::default();
    };
    let asked = range.param("escaping").and_then(Escaping::from_param);
    let escaping = match asked {
        _ if format == Format::OpenMetrics200 => Escaping::AllowUtf8,
        Some(Escaping::AllowUtf8) if !format.carries_utf8() => Escaping::Underscores,
        Some(scheme) => scheme,
        None => Escaping::Underscores,
    };
    Negotiated {
        format,
        escaping,
        escaping_asked: asked.is_some(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chosen(accept: &str) -> (Format, Escaping, String) {
        let negotiated = negotiate(Some(accept));
        (
            negotiated.format,
            negotiated.escaping,
            negotiated.content_type(),
        )
    }

    #[test]
    fn nothing_or_anything_is_text_0_0_4_as_before() {
        assert_eq!(negotiate(None), Negotiated::default());
        for accept in [
            "*/*",
            "",
            "text/plain",
            "text/*;q=0.3",
            "image/png",
            "garbage;;",
        ] {
            let (format, escaping, content_type) = chosen(accept);
            assert_eq!(format, Format::Text004, "{accept}");
            assert_eq!(escaping, Escaping::Underscores);
            assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
        }
    }

    #[test]
    fn the_highest_weight_we_serve_wins() {
        let (format, ..) = chosen(
            "application/openmetrics-text;version=1.0.0;q=0.2,text/plain;version=1.0.0;q=0.9",
        );
        assert_eq!(format, Format::Text100);
        let (format, ..) = chosen("application/json, application/openmetrics-text;q=0.1");
        assert_eq!(format, Format::OpenMetrics001);
        let (format, ..) = chosen("application/vnd.google.protobuf;encoding=text;q=1,*/*;q=0.1");
        assert_eq!(format, Format::Text004, "text protobuf is not served");
        let (format, ..) = chosen("application/openmetrics-text;version=3.0.0,text/plain;q=0");
        assert_eq!(format, Format::Text004);
    }

    #[test]
    fn openmetrics_2_is_served_only_when_asked_by_version_with_utf8_names() {
        let prometheus_3_15 = "application/openmetrics-text;version=2.0.0;q=0.7,application/openmetrics-text;version=1.0.0;escaping=underscores;q=0.6,*/*;q=0.5";
        let (format, escaping, content_type) = chosen(prometheus_3_15);
        assert_eq!(format, Format::OpenMetrics200);
        assert_eq!(escaping, Escaping::AllowUtf8);
        assert_eq!(
            content_type,
            "application/openmetrics-text; version=2.0.0; charset=utf-8"
        );
        let (_, escaping, _) = chosen("application/openmetrics-text;version=2.0.0;escaping=dots");
        assert_eq!(escaping, Escaping::AllowUtf8, "never escaped");
        let prometheus_2_42 = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(chosen(prometheus_2_42).0, Format::OpenMetrics100);
        assert_eq!(
            chosen("application/openmetrics-text").0,
            Format::OpenMetrics001
        );
    }

    #[test]
    fn equal_weights_keep_their_written_order() {
        let (format, ..) = chosen("text/plain;version=1.0.0,application/openmetrics-text");
        assert_eq!(format, Format::Text100);
    }

    #[test]
    fn weights_are_read_exactly() {
        assert_eq!(parse_weight("0.5"), Some(500));
        assert_eq!(parse_weight("1"), Some(1000));
        assert_eq!(parse_weight("1.000"), Some(1000));
        assert_eq!(parse_weight("0.125"), Some(125));
        for bad in ["1.5", "2", "0.1234", "-0.1", "x", "0.a"] {
            assert_eq!(parse_weight(bad), None, "{bad}");
        }
    }

    #[test]
    fn utf8_is_not_allowed_on_text_0_0_4_but_other_schemes_are() {
        let (_, escaping, content_type) = chosen("text/plain;version=0.0.4;escaping=allow-utf-8");
        assert_eq!(escaping, Escaping::Underscores);
        assert_eq!(
            content_type,
            "text/plain; version=0.0.4; charset=utf-8; escaping=underscores"
        );
        let (_, escaping, _) = chosen("text/plain;version=0.0.4;escaping=values");
        assert_eq!(escaping, Escaping::Values);
        let (_, escaping, content_type) = chosen("text/plain;version=1.0.0;escaping=allow-utf8");
        assert_eq!(escaping, Escaping::AllowUtf8);
        assert_eq!(
            content_type,
            "text/plain; version=1.0.0; charset=utf-8; escaping=allow-utf-8"
        );
        let (_, escaping, _) = chosen("text/plain;version=1.0.0;escaping=nonsense");
        assert_eq!(escaping, Escaping::Underscores);
    }
}
