//! Structured logs on stderr, in logfmt (as Prometheus's go-kit logger writes) or JSON.
//!
//! Nothing is logged per request at `info`: a startup line, a shutdown line, and rate-limited
//! warnings are what an operator reads.

use std::fmt::{Display, Write as _};
use std::io::Write as _;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use once_cell::sync::OnceCell;

use crate::base::utc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

impl Level {
    fn as_str(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

impl FromStr for Level {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "debug" => Ok(Level::Debug),
            "info" => Ok(Level::Info),
            "warn" => Ok(Level::Warn),
            "error" => Ok(Level::Error),
            _ => Err(format!("{text:?} is not one of debug, info, warn, error")),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Logfmt,
    Json,
}

impl FromStr for Format {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "logfmt" => Ok(Format::Logfmt),
            "json" => Ok(Format::Json),
            _ => Err(format!("{text:?} is not one of logfmt, json")),
        }
    }
}

static SETTINGS: OnceCell<(Level, Format)> = OnceCell::new();

/// Sets the level and format once, at startup; later calls are ignored.
pub fn init(level: Level, format: Format) {
    let _ = SETTINGS.set((level, format));
}

/// Writes one log line when `level` is at or above the configured level.
pub fn log(level: Level, message: &str, fields: &[(&str, &dyn Display)]) {
    let (min_level, format) = *SETTINGS.get().unwrap_or(&(Level::Info, Format::Logfmt));
    if level < min_level {
        return;
    }
    let line = format_line(
        format,
        &utc::rfc3339(SystemTime::now()),
        level,
        message,
        fields,
    );
    // A closed stderr must not take the server down: the line is lost, nothing else.
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

pub fn info(message: &str, fields: &[(&str, &dyn Display)]) {
    log(Level::Info, message, fields)
}

pub fn warn(message: &str, fields: &[(&str, &dyn Display)]) {
    log(Level::Warn, message, fields)
}

pub fn error(message: &str, fields: &[(&str, &dyn Display)]) {
    log(Level::Error, message, fields)
}

fn format_line(
    format: Format,
    time: &str,
    level: Level,
    message: &str,
    fields: &[(&str, &dyn Display)],
) -> String {
    let all = [
        ("ts", &time as &dyn Display),
        ("level", &level.as_str()),
        ("msg", &message),
    ];
    let mut line = String::with_capacity(128);
    match format {
        Format::Logfmt => {
            for (i, (key, value)) in all.iter().chain(fields).enumerate() {
                if i > 0 {
                    line.push(' ');
                }
                let value = value.to_string();
                let bare = !value.is_empty()
                    && !value.contains(|c: char| c <= ' ' || c == '"' || c == '=' || c == '\\');
                if bare {
                    let _ = write!(line, "{key}={value}");
                } else {
                    let _ = write!(line, "{key}={}", json_string(&value));
                }
            }
        }
        Format::Json => {
            line.push('{');
            for (i, (key, value)) in all.iter().chain(fields).enumerate() {
                if i > 0 {
                    line.push(',');
                }
                let _ = write!(
                    line,
                    "{}:{}",
                    json_string(key),
                    json_string(&value.to_string())
                );
            }
            line.push('}');
        }
    }
    line.push('\n');
    line
}

/// A JSON string literal; logfmt quotes values the same way.
fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c < ' ' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Lets one line through per interval and counts the rest, so that a sender stuck on bad data
/// cannot flood the log; the next line that passes says how many were held back.
pub struct RateLimited {
    interval: Duration,
    last: Mutex<Option<Instant>>,
    suppressed: AtomicU64,
}

impl RateLimited {
    pub const fn new(interval: Duration) -> Self {
        RateLimited {
            interval,
            last: Mutex::new(None),
            suppressed: AtomicU64::new(0),
        }
    }

    /// Returns how many lines were held back since the last one, or `None` to hold this one.
    pub fn admit(&self, now: Instant) -> Option<u64> {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        match *last {
            Some(previous) if now.duration_since(previous) < self.interval => {
                self.suppressed.fetch_add(1, Ordering::Relaxed);
                None
            }
            _ => {
                *last = Some(now);
                Some(self.suppressed.swap(0, Ordering::Relaxed))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logfmt_quotes_only_values_that_need_it() {
        let line = format_line(
            Format::Logfmt,
            "2026-01-02T03:04:05.006Z",
            Level::Warn,
            "write rejected",
            &[("reason", &"bad \"name\"\nx"), ("code", &400)],
        );
        assert_eq!(
            line,
            "ts=2026-01-02T03:04:05.006Z level=warn msg=\"write rejected\" reason=\"bad \\\"name\\\"\\nx\" code=400\n"
        );
    }

    #[test]
    fn json_lines_are_objects_of_strings() {
        let line = format_line(
            Format::Json,
            "T",
            Level::Info,
            "started",
            &[("address", &"[::]:9201")],
        );
        assert_eq!(
            line,
            "{\"ts\":\"T\",\"level\":\"info\",\"msg\":\"started\",\"address\":\"[::]:9201\"}\n"
        );
    }

    #[test]
    fn rate_limit_holds_lines_back_and_counts_them() {
        let limiter = RateLimited::new(Duration::from_secs(10));
        let start = Instant::now();
        assert_eq!(limiter.admit(start), Some(0));
        assert_eq!(limiter.admit(start + Duration::from_secs(1)), None);
        assert_eq!(limiter.admit(start + Duration::from_secs(2)), None);
        assert_eq!(limiter.admit(start + Duration::from_secs(11)), Some(2));
    }

    #[test]
    fn levels_and_formats_parse() {
        assert_eq!("warn".parse::<Level>(), Ok(Level::Warn));
        assert!("verbose".parse::<Level>().is_err());
        assert_eq!("json".parse::<Format>(), Ok(Format::Json));
        assert!("text".parse::<Format>().is_err());
    }
}
