//! What every line of the text formats (0.0.4, 1.0.0 and OpenMetrics) is made of: escaped
//! help and label values, floats spelled as Prometheus's `expfmt` spells them, and the start
//! of a sample line (https://prometheus.io/docs/instrumenting/exposition_formats/).

use std::borrow::Cow;

use crate::expose::page::Sink;

/// Escapes `\` and newline, as the format wants in `# HELP` text.
pub fn escape_help(text: &str) -> Cow<'_, str> {
    escape(text, false)
}

/// Escapes `\`, `"` and newline, as the format wants in label values.
pub fn escape_label_value(text: &str) -> Cow<'_, str> {
    escape(text, true)
}

fn escape(text: &str, quotes: bool) -> Cow<'_, str> {
    // Bytes, not chars: all three are ASCII, which never occurs inside a multi-byte character.
    let quote = if quotes { b'"' } else { b'\\' };
    if !crate::base::bytes::contains_any(text.as_bytes(), [b'\\', b'\n', quote]) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quotes => out.push_str("\\\""),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Writes `value` as Go's `strconv.FormatFloat(value, 'g', -1, 64)` does, which is what
/// Prometheus writes: `NaN`, `+Inf`, `-Inf`, and otherwise the shortest digits that read back
/// to the same float, in exponent form when the exponent is below -4 or at least 6
/// (`1e+06`, `1.5e-07`).
pub fn write_float(out: &mut impl Sink, value: f64) {
    if value.is_nan() {
        out.put(b"NaN");
    } else if value.is_infinite() {
        out.put(if value > 0.0 { b"+Inf" } else { b"-Inf" });
    } else if value == 0.0 {
        out.put_byte(b'0');
    } else {
        let magnitude = value.abs();
        let decimal = Decimal::of_few_places(magnitude).unwrap_or_else(|| Decimal::ryu(magnitude));
        decimal.write(out, value < 0.0);
    }
}

/// `10^places` for the places [`Decimal::of_few_places`] tries.
const POWERS_OF_TEN: [f64; 10] = [1.0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9];

/// The shortest decimal digits of a positive float, without leading or trailing zeros, and
/// the decimal exponent of the first: 1234.5 is `12345` and 3, 0.001 is `1` and -3. The
/// digits are `digits[start..]`.
struct Decimal {
    digits: [u8; 24],
    start: usize,
    exponent: i32,
}

impl Decimal {
    /// `n / 10^places`.
    fn of_integer(mut n: u64, mut places: i32) -> Decimal {
        while n != 0 && n.is_multiple_of(10) {
            (n, places) = (n / 10, places - 1);
        }
        let mut decimal = Decimal {
            digits: [0; 24],
            start: 24,
            exponent: -places - 1,
        };
        while n > 0 {
            decimal.start -= 1;
            decimal.digits[decimal.start] = b'0' + (n % 10) as u8;
            n /= 10;
            decimal.exponent += 1;
        }
        decimal
    }

    /// The usual values (integers below 2^53, and fractions of up to nine decimals such as
    /// `0.25` or `1234.5678`) without ryu, whose layout calls `memcpy` for a few bytes, which
    /// is slow with musl. `n / 10^k` is the shortest spelling of a float it reads back to when
    /// `n < 10^15`: two decimals of at most `k` places are then at least `10^-k` apart, more
    /// than the float's rounding interval (under `0.23 * 10^-k`), so no other, shorter decimal
    /// reads back to it too. Below 2^53 every integer is a float, shortest the same way.
    fn of_few_places(magnitude: f64) -> Option<Decimal> {
        for (places, &power) in POWERS_OF_TEN.iter().enumerate() {
            let scaled = magnitude * power;
            let limit = if places == 0 { MAX_EXACT_INTEGER } else { 1e15 };
            if scaled >= limit {
                return None;
            }
            let n = scaled as u64;
            if n as f64 == scaled {
                return (n as f64 / power == magnitude)
                    .then(|| Decimal::of_integer(n, places as i32));
            }
        }
        None
    }

    /// Any other value, from ryu's shortest digits (`123.456`, `1.5e-7`).
    fn ryu(magnitude: f64) -> Decimal {
        let mut ryu_buffer = ryu::Buffer::new();
        let text = ryu_buffer.format_finite(magnitude);
        let (mantissa, exponent) = match text.split_once(['e', 'E']) {
            Some((mantissa, exponent)) => (mantissa, exponent.parse::<i32>().unwrap_or(0)),
            None => (text, 0),
        };
        let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        let mut n = 0u64;
        for digit in whole.bytes().chain(fraction.bytes()) {
            n = n * 10 + u64::from(digit - b'0');
        }
        let mut decimal = Decimal::of_integer(n, fraction.len() as i32);
        decimal.exponent += exponent;
        decimal
    }

    /// Lays the digits out as Go does: with an exponent when it is below -4 or at least 6.
    fn write(&self, out: &mut impl Sink, negative: bool) {
        let digits = &self.digits[self.start..];
        let exponent = self.exponent;
        if negative {
            out.put_byte(b'-');
        }
        if !(-4..6).contains(&exponent) {
            out.put_byte(digits[0]);
            if digits.len() > 1 {
                out.put_byte(b'.');
                out.put(&digits[1..]);
            }
            out.put_byte(b'e');
            out.put_byte(if exponent < 0 { b'-' } else { b'+' });
            let exponent = exponent.unsigned_abs();
            if exponent >= 100 {
                out.put_byte(b'0' + (exponent / 100) as u8);
            }
            out.put_byte(b'0' + (exponent / 10 % 10) as u8);
            out.put_byte(b'0' + (exponent % 10) as u8);
            return;
        }
        // Plain decimal: the point goes after `exponent + 1` digits.
        let point = exponent + 1;
        if point <= 0 {
            out.put(b"0.");
            put_zeros(out, (-point) as usize);
            out.put(digits);
        } else if point as usize >= digits.len() {
            out.put(digits);
            put_zeros(out, point as usize - digits.len());
        } else {
            out.put(&digits[..point as usize]);
            out.put_byte(b'.');
            out.put(&digits[point as usize..]);
        }
    }
}

/// Below 2^53 every integer is a float.
const MAX_EXACT_INTEGER: f64 = 9_007_199_254_740_992.0;

fn put_zeros(out: &mut impl Sink, count: usize) {
    for _ in 0..count {
        out.put_byte(b'0');
    }
}

/// A series' metric name, and whether a text line writes it in quotes inside the braces.
#[derive(Clone, Copy)]
pub struct SeriesName<'a> {
    pub name: &'a str,
    pub quoted: bool,
}

/// Writes what a sample line starts with: the name with `suffix`, then the series' label block
/// (`{a="x"}`, or nothing), with `le` added when given. A quoted name goes inside the braces.
pub fn write_series_start(
    out: &mut impl Sink,
    name: SeriesName,
    suffix: &str,
    block: &[u8],
    le: Option<f64>,
) {
    if !name.quoted && le.is_none() {
        out.put(name.name.as_bytes());
        out.put(suffix.as_bytes());
        out.put(block);
        return;
    }
    let labels = block
        .strip_prefix(b"{")
        .and_then(|b| b.strip_suffix(b"}"))
        .unwrap_or(b"");
    if name.quoted {
        out.put(b"{\"");
        out.put(escape_label_value(name.name).as_bytes());
        out.put(escape_label_value(suffix).as_bytes());
        out.put_byte(b'"');
        if !labels.is_empty() || le.is_some() {
            out.put_byte(b',');
        }
    } else {
        out.put(name.name.as_bytes());
        out.put(suffix.as_bytes());
        if labels.is_empty() && le.is_none() {
            return;
        }
        out.put_byte(b'{');
    }
    out.put(labels);
    if let Some(le) = le {
        if !labels.is_empty() {
            out.put_byte(b',');
        }
        out.put(b"le=\"");
        write_float(out, le);
        out.put_byte(b'"');
    }
    out.put_byte(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn float(value: f64) -> String {
        let mut out = Vec::new();
        write_float(&mut out, value);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn floats_are_spelled_as_prometheus_spells_them() {
        let cases = [
            (f64::NAN, "NaN"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (0.0, "0"),
            (-0.0, "0"),
            (1.0, "1"),
            (-1.0, "-1"),
            (0.23, "0.23"),
            (3.14e42, "3.14e+42"),
            (-3.14e42, "-3.14e+42"),
            (-1.23e-45, "-1.23e-45"),
            (1.7560473e6, "1.7560473e+06"),
            (1e6, "1e+06"),
            (999999.0, "999999"),
            (123456.5, "123456.5"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (0.2342354, "0.2342354"),
            (-3.4567, "-3.4567"),
            (f64::MAX, "1.7976931348623157e+308"),
            (f64::MIN_POSITIVE, "2.2250738585072014e-308"),
            (5e-324, "5e-324"),
            (0.1 + 0.2, "0.30000000000000004"),
            (1234567890123.0, "1.234567890123e+12"),
            (250000000.0, "2.5e+08"),
            (-1234567.0, "-1.234567e+06"),
            (-999999.0, "-999999"),
            (9007199254740991.0, "9.007199254740991e+15"),
            (9007199254740992.0, "9.007199254740992e+15"),
            (1e21, "1e+21"),
        ];
        for (value, expected) in cases {
            assert_eq!(float(value), expected, "{value:e}");
            if value.is_finite() {
                assert_eq!(
                    float(value).parse::<f64>().unwrap(),
                    value,
                    "{expected} reads back"
                );
            }
        }
    }

    #[test]
    fn any_finite_float_reads_back_exactly_in_go_layout() {
        let mut bits: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..200_000 {
            bits ^= bits << 13;
            bits ^= bits >> 7;
            bits ^= bits << 17;
            let value = f64::from_bits(bits);
            if !value.is_finite() {
                continue;
            }
            let text = float(value);
            assert_eq!(text.parse::<f64>().unwrap(), value, "{text} for {value:e}");
            // Go writes an exponent exactly when the decimal exponent is below -4 or at least 6.
            let exponent: i32 = format!("{value:e}")
                .split_once('e')
                .unwrap()
                .1
                .parse()
                .unwrap();
            let go_uses_exponent = value != 0.0 && !(-4..6).contains(&exponent);
            assert_eq!(text.contains('e'), go_uses_exponent, "{text} for {value:e}");
        }
    }

    #[test]
    fn few_places_are_spelled_as_ryu_spells_them() {
        let spelled = |decimal: Decimal| {
            let mut out = Vec::new();
            decimal.write(&mut out, false);
            String::from_utf8(out).unwrap()
        };
        let mut bits: u64 = 0x2545_f491_4f6c_dd1d;
        let mut taken = 0;
        for _ in 0..100_000 {
            bits ^= bits << 13;
            bits ^= bits >> 7;
            bits ^= bits << 17;
            let places = (bits % 10) as usize;
            let decimal = ((bits >> 8) % 10u64.pow(15)) >> (bits >> 60);
            let value = decimal as f64 / POWERS_OF_TEN[places];
            // The decimal's float, and its neighbours, which need more digits.
            for value in [value, value.next_up(), value.next_down()] {
                if let Some(few) = Decimal::of_few_places(value) {
                    taken += 1;
                    assert_eq!(spelled(few), spelled(Decimal::ryu(value)), "{value:e}");
                }
            }
        }
        assert!(taken > 90_000, "the short path was taken {taken} times");
    }

    #[test]
    fn escaping_allocates_only_when_needed() {
        assert!(matches!(
            escape_label_value("plain value"),
            Cow::Borrowed(_)
        ));
        assert_eq!(escape_label_value("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
        assert_eq!(
            escape_help("two-line\n doc  str\\ing \"quoted\""),
            "two-line\\n doc  str\\\\ing \"quoted\""
        );
    }
}
