//! Command-line flags, spelled as Prometheus spells them.
//!
//! argh cannot declare dotted names, so every flag is declared with dashes
//! (`--web-listen-address`) and the dotted spelling (`--web.listen-address`, its first dash a
//! dot) is rewritten before parsing; `--flag=value` is split too. A flag absent from the
//! command line may come from `K8S_EXPORTER_<NAME>` (dots and dashes as `_`, upper case);
//! the command line wins.

use std::time::Duration;

use argh::FromArgs;

use crate::base::units::{parse_duration, parse_size};
use crate::ops::log::{Format, Level};
use crate::ops::sizing::Given;
use crate::otlp::names::Strategy;
use crate::otlp::receive::OTLP_PATHS;
use crate::web::socket::parse_mode;
use crate::write::names::NameRules;

fn parse_strategy(text: &str) -> Result<Strategy, String> {
    Strategy::from_name(text).ok_or_else(|| {
        format!("{text:?} is not UnderscoreEscapingWithSuffixes, UnderscoreEscapingWithoutSuffixes, NoUTF8EscapingWithSuffixes nor NoTranslation")
    })
}

/// Names given as one comma-separated value (so that an environment variable can hold them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NameList(pub Vec<String>);

/// A comma-separated list, blanks around items and empty items left out.
fn parse_list(text: &str) -> Result<NameList, String> {
    Ok(NameList(
        text.split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(str::to_owned)
            .collect(),
    ))
}

/// `--memory.limit`: where the memory limit comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryLimit {
    /// The limit of the process's cgroup, read again while running; none outside one.
    Auto,
    /// A fixed number of bytes.
    Bytes(u64),
    /// No limit: the defaults and no guard.
    Off,
}

fn parse_memory_limit(text: &str) -> Result<MemoryLimit, String> {
    match text {
        "auto" => Ok(MemoryLimit::Auto),
        "0" => Ok(MemoryLimit::Off),
        size => parse_size(size)
            .map(|bytes| MemoryLimit::Bytes(bytes as u64))
            .map_err(|e| format!("{e}, auto or 0")),
    }
}

fn parse_name_rules(text: &str) -> Result<NameRules, String> {
    match text {
        "utf8" => Ok(NameRules::Utf8),
        "legacy" => Ok(NameRules::Legacy),
        other => Err(format!("{other:?} is neither utf8 nor legacy")),
    }
}

/// Receives Prometheus remote write on /write and serves the newest sample of every series on
/// /metrics, for a second Prometheus to scrape.
#[derive(FromArgs, Debug)]
pub struct Flags {
    /// address to listen on, host:port (":PORT" means all interfaces) or unix:/path/to.sock;
    /// may be given more than once (default ":9201")
    #[argh(option)]
    web_listen_address: Vec<String>,

    /// file mode of the Unix sockets --web.listen-address names, in octal (default 0660)
    #[argh(option, default = "0o660", from_str_fn(parse_mode))]
    pub web_unix_socket_mode: u32,

    /// path under which bridged series are served (default "/metrics")
    #[argh(option, default = "String::from(\"/metrics\")")]
    pub web_telemetry_path: String,

    /// path under which the exporter's own metrics are served (default "/metrics/exporter")
    #[argh(option, default = "String::from(\"/metrics/exporter\")")]
    pub web_exporter_telemetry_path: String,

    /// worker threads answering requests (default: number of CPUs, at least 2)
    #[argh(option)]
    pub web_threads: Option<usize>,

    /// add each sample's timestamp to /metrics (off: the scraper stamps samples itself)
    #[argh(switch)]
    pub web_expose_timestamps: bool,

    /// web configuration file for TLS and basic auth, in the format of Prometheus exporters
    /// (exporter-toolkit); without it, plain HTTP and no auth
    #[argh(option)]
    pub web_config_file: Option<String>,

    /// most connections open at once; more get 503 and are closed (default 512)
    #[argh(option, default = "512")]
    pub web_max_connections: usize,

    /// most bytes held at once by write bodies being received and answers being sent; beyond
    /// it, 503 (default 256MiB, or derived from --memory.limit)
    #[argh(option, from_str_fn(parse_size))]
    pub web_max_bytes_in_flight: Option<usize>,

    /// time for a whole request to arrive, from its first byte, and for the first one on a
    /// new connection (default 30s)
    #[argh(
        option,
        default = "Duration::from_secs(30)",
        from_str_fn(parse_duration)
    )]
    pub web_read_timeout: Duration,

    /// time for a client to receive a whole answer (default 1m)
    #[argh(
        option,
        default = "Duration::from_secs(60)",
        from_str_fn(parse_duration)
    )]
    pub web_write_timeout: Duration,

    /// how long a kept-alive connection may wait for its next request (default 5m)
    #[argh(
        option,
        default = "Duration::from_secs(300)",
        from_str_fn(parse_duration)
    )]
    pub web_idle_timeout: Duration,

    /// drop a series not written for this long, e.g. 5m; 0 keeps series forever (default 5m)
    #[argh(
        option,
        default = "Duration::from_secs(300)",
        from_str_fn(parse_duration)
    )]
    pub series_ttl: Duration,

    /// most series held; new series beyond it are dropped and counted (default 2000000, or
    /// derived from --memory.limit)
    #[argh(option)]
    pub series_max: Option<usize>,

    /// largest compressed write request body, e.g. 32MiB (default 32MiB)
    #[argh(option, default = "32 << 20", from_str_fn(parse_size))]
    pub write_max_bytes: usize,

    /// largest decompressed write request, e.g. 32MiB (default 32MiB, or derived from
    /// --memory.limit)
    #[argh(option, from_str_fn(parse_size))]
    pub write_max_decoded_bytes: Option<usize>,

    /// memory the server keeps under: auto (the limit of its cgroup, as a pod's
    /// resources.limits.memory sets it; none outside a limited cgroup), a size (512MiB), or 0
    /// for none. Sizes left to their defaults derive from it, and new series are refused near
    /// it (default auto)
    #[argh(option, default = "MemoryLimit::Auto", from_str_fn(parse_memory_limit))]
    pub memory_limit: MemoryLimit,

    /// which metric and label names writes may use: utf8 (any UTF-8, as Prometheus 3) or
    /// legacy (the classic character sets) (default utf8)
    #[argh(option, default = "NameRules::Utf8", from_str_fn(parse_name_rules))]
    pub write_name_validation: NameRules,

    /// most buckets of one native histogram; one with more is refused and counted (default 4096)
    #[argh(option, default = "4096")]
    pub write_native_histogram_max_buckets: usize,

    /// how OTLP metric names become Prometheus names, as Prometheus's
    /// otlp.translation_strategy: UnderscoreEscapingWithSuffixes,
    /// UnderscoreEscapingWithoutSuffixes, NoUTF8EscapingWithSuffixes or NoTranslation
    /// (default UnderscoreEscapingWithSuffixes)
    #[argh(option, default = "Strategy::default()", from_str_fn(parse_strategy))]
    pub otlp_translation_strategy: Strategy,

    /// OTLP resource attributes copied onto every series of the resource, comma-separated, as
    /// Prometheus's otlp.promote_resource_attributes (default none)
    #[argh(option, default = "NameList::default()", from_str_fn(parse_list))]
    pub otlp_promote_resource_attributes: NameList,

    /// least severe log level shown: debug, info, warn or error (default info)
    #[argh(option, default = "Level::Info")]
    pub log_level: Level,

    /// log line format: logfmt or json (default logfmt)
    #[argh(option, default = "Format::Logfmt")]
    pub log_format: Format,

    /// print the version and exit
    #[argh(switch)]
    pub version: bool,
}

/// Every flag as users spell it, and whether it takes a value (false: a switch).
pub const FLAG_NAMES: [(&str, bool); 24] = [
    ("web.listen-address", true),
    ("web.unix-socket-mode", true),
    ("web.telemetry-path", true),
    ("web.exporter-telemetry-path", true),
    ("web.threads", true),
    ("web.expose-timestamps", false),
    ("web.config.file", true),
    ("web.max-connections", true),
    ("web.max-bytes-in-flight", true),
    ("web.read-timeout", true),
    ("web.write-timeout", true),
    ("web.idle-timeout", true),
    ("series.ttl", true),
    ("series.max", true),
    ("write.max-bytes", true),
    ("write.max-decoded-bytes", true),
    ("memory.limit", true),
    ("write.name-validation", true),
    ("write.native-histogram-max-buckets", true),
    ("otlp.translation-strategy", true),
    ("otlp.promote-resource-attributes", true),
    ("log.level", true),
    ("log.format", true),
    ("version", false),
];

/// Paths served by fixed endpoints, which the telemetry paths must not take.
const RESERVED_PATHS: [&str; 5] = [
    "/",
    "/healthz",
    "/write",
    "/api/v1/write",
    "/api/v1/status/tsdb",
];

/// What parsing the command line ended in, short of a usable set of flags.
#[derive(Debug, PartialEq, Eq)]
pub enum Exit {
    /// `--help`: print this text to stdout and exit 0.
    Help(String),
    /// A bad flag or value: print this one line to stderr and exit 2.
    Usage(String),
}

impl Flags {
    /// Parses `args` (without the program name), filling absent flags from `env`.
    pub fn parse(
        program: &str,
        args: &[String],
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Flags, Exit> {
        let mut argv = rewrite_dotted(args);
        argv.extend(from_environment(&argv, env).map_err(Exit::Usage)?);
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let flags = Flags::from_args(&[program], &argv).map_err(|exit| match exit.status {
            Ok(()) => Exit::Help(dotted(&exit.output)),
            Err(()) => Exit::Usage(
                dotted(&exit.output)
                    .lines()
                    .next()
                    .unwrap_or("invalid arguments")
                    .to_owned(),
            ),
        })?;
        flags.check().map_err(Exit::Usage)?;
        Ok(flags)
    }

    /// Every address to listen on, `:9201` when none is given.
    pub fn listen_addresses(&self) -> Vec<String> {
        if self.web_listen_address.is_empty() {
            vec![":9201".to_owned()]
        } else {
            self.web_listen_address.clone()
        }
    }

    /// The sizes the flags give, the rest left to derive from the memory limit.
    pub fn given_sizes(&self) -> Given {
        Given {
            threads: self.web_threads,
            max_bytes_in_flight: self.web_max_bytes_in_flight,
            max_decoded_bytes: self.write_max_decoded_bytes,
            series_max: self.series_max,
        }
    }

    fn check(&self) -> Result<(), String> {
        for (flag, path) in [
            ("--web.telemetry-path", &self.web_telemetry_path),
            (
                "--web.exporter-telemetry-path",
                &self.web_exporter_telemetry_path,
            ),
        ] {
            if !path.starts_with('/') {
                return Err(format!("{flag}: {path:?} must start with /"));
            }
        }
        for (flag, path) in [
            ("--web.telemetry-path", &self.web_telemetry_path),
            (
                "--web.exporter-telemetry-path",
                &self.web_exporter_telemetry_path,
            ),
        ] {
            if RESERVED_PATHS.contains(&path.as_str()) || OTLP_PATHS.contains(&path.as_str()) {
                return Err(format!("{flag}: {path:?} is taken by another endpoint"));
            }
        }
        if self.web_telemetry_path == self.web_exporter_telemetry_path {
            return Err(
                "--web.telemetry-path and --web.exporter-telemetry-path must differ".into(),
            );
        }
        if self.web_threads == Some(0) {
            return Err("--web.threads: must be at least 1".into());
        }
        if self.web_max_connections == 0 {
            return Err("--web.max-connections: must be at least 1".into());
        }
        if self.web_max_bytes_in_flight == Some(0) {
            return Err("--web.max-bytes-in-flight: must be more than 0".into());
        }
        for (flag, timeout) in [
            ("--web.read-timeout", self.web_read_timeout),
            ("--web.write-timeout", self.web_write_timeout),
            ("--web.idle-timeout", self.web_idle_timeout),
        ] {
            if timeout.is_zero() {
                return Err(format!("{flag}: must be more than 0"));
            }
        }
        if self.series_max == Some(0) {
            return Err("--series.max: must be at least 1".into());
        }
        if self.write_native_histogram_max_buckets == 0 {
            return Err("--write.native-histogram-max-buckets: must be at least 1".into());
        }
        Ok(())
    }
}

/// `--web.listen-address=:80` becomes `--web-listen-address`, `:80`.
fn rewrite_dotted(args: &[String]) -> Vec<String> {
    let mut out = Vec::with_capacity(args.len() + 1);
    for arg in args {
        match arg.strip_prefix("--") {
            Some(flag) if !flag.is_empty() => {
                let (name, value) = match flag.split_once('=') {
                    Some((name, value)) => (name, Some(value)),
                    None => (flag, None),
                };
                out.push(format!("--{}", name.replace('.', "-")));
                out.extend(value.map(str::to_owned));
            }
            _ => out.push(arg.clone()),
        }
    }
    out
}

/// The arguments that environment variables add for flags the command line leaves out.
fn from_environment(
    argv: &[String],
    env: impl Fn(&str) -> Option<String>,
) -> Result<Vec<String>, String> {
    let mut added = Vec::new();
    for (name, takes_value) in FLAG_NAMES {
        let dashed = format!("--{}", name.replace('.', "-"));
        if name == "version" || argv.contains(&dashed) {
            continue;
        }
        let variable = env_variable(name);
        let Some(value) = env(&variable) else {
            continue;
        };
        if takes_value {
            added.push(dashed);
            added.push(value);
        } else {
            match value.as_str() {
                "1" | "true" => added.push(dashed),
                "" | "0" | "false" => {}
                _ => return Err(format!("{variable}: {value:?} is not true or false")),
            }
        }
    }
    Ok(added)
}

/// `web.listen-address` is read from `K8S_EXPORTER_WEB_LISTEN_ADDRESS`.
pub fn env_variable(flag: &str) -> String {
    format!(
        "K8S_EXPORTER_{}",
        flag.replace(['.', '-'], "_").to_uppercase()
    )
}

/// argh's help or error text with its dashed flag names turned back into the dotted ones users
/// type (`--web-listen-address` becomes `--web.listen-address`; the two are the same length, so
/// the help's columns stay aligned).
fn dotted(output: &str) -> String {
    let mut text = output.to_owned();
    for (name, _) in FLAG_NAMES {
        text = text.replace(
            &format!("--{}", name.replace('.', "-")),
            &format!("--{name}"),
        );
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Flags, Exit> {
        parse_with_env(args, &[])
    }

    fn parse_with_env(args: &[&str], env: &[(&str, &str)]) -> Result<Flags, Exit> {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Flags::parse("k8s_exporter", &args, |name| {
            env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn defaults_match_the_design() {
        let flags = parse(&[]).unwrap();
        assert_eq!(flags.listen_addresses(), [":9201"]);
        assert_eq!(flags.web_unix_socket_mode, 0o660);
        assert_eq!(flags.web_telemetry_path, "/metrics");
        assert_eq!(flags.web_exporter_telemetry_path, "/metrics/exporter");
        assert_eq!(flags.series_ttl, Duration::from_secs(300));
        assert_eq!(flags.series_max, None, "derived from the memory limit");
        assert_eq!(flags.write_max_bytes, 32 << 20);
        assert_eq!(flags.write_max_decoded_bytes, None);
        assert_eq!(flags.memory_limit, MemoryLimit::Auto);
        assert_eq!(flags.write_name_validation, NameRules::Utf8);
        assert_eq!(flags.write_native_histogram_max_buckets, 4096);
        assert!(!flags.web_expose_timestamps);
        assert_eq!(flags.web_threads, None);
        assert_eq!(flags.web_max_connections, 512);
        assert_eq!(flags.web_max_bytes_in_flight, None);
        assert_eq!(flags.web_read_timeout, Duration::from_secs(30));
        assert_eq!(flags.web_write_timeout, Duration::from_secs(60));
        assert_eq!(flags.web_idle_timeout, Duration::from_secs(300));
    }

    #[test]
    fn dotted_and_dashed_spellings_with_or_without_equals() {
        let flags = parse(&[
            "--web.listen-address=127.0.0.1:0",
            "--series.ttl",
            "1m",
            "--write-max-bytes=1KiB",
            "--web.expose-timestamps",
            "--log.format=json",
        ])
        .unwrap();
        assert_eq!(flags.listen_addresses(), ["127.0.0.1:0"]);
        assert_eq!(flags.series_ttl, Duration::from_secs(60));
        assert_eq!(flags.write_max_bytes, 1024);
        assert!(flags.web_expose_timestamps);
        assert_eq!(flags.log_format, Format::Json);
    }

    #[test]
    fn the_memory_limit_is_auto_a_size_or_0() {
        let limit =
            |value: &str| parse(&[&format!("--memory.limit={value}")]).map(|f| f.memory_limit);
        assert_eq!(limit("auto"), Ok(MemoryLimit::Auto));
        assert_eq!(limit("512MiB"), Ok(MemoryLimit::Bytes(512 << 20)));
        assert_eq!(limit("0"), Ok(MemoryLimit::Off));
        match limit("lots") {
            Err(Exit::Usage(line)) => assert!(line.contains("--memory.limit"), "{line}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn environment_fills_flags_the_command_line_leaves_out() {
        let flags = parse_with_env(
            &["--series.max=5"],
            &[
                ("K8S_EXPORTER_SERIES_MAX", "7"),
                ("K8S_EXPORTER_SERIES_TTL", "0"),
                ("K8S_EXPORTER_WEB_EXPOSE_TIMESTAMPS", "true"),
            ],
        )
        .unwrap();
        assert_eq!(flags.series_max, Some(5), "the command line wins");
        assert_eq!(flags.series_ttl, Duration::ZERO);
        assert!(flags.web_expose_timestamps);
    }

    #[test]
    fn bad_values_name_the_dotted_flag_on_one_line() {
        for (args, flag) in [
            (vec!["--series.ttl=soon"], "--series.ttl"),
            (vec!["--write.max-bytes", "lots"], "--write.max-bytes"),
            (vec!["--log.level=loud"], "--log.level"),
            (vec!["--web.telemetry-path=metrics"], "--web.telemetry-path"),
            (vec!["--series.max=0"], "--series.max"),
            (vec!["--web.read-timeout=0s"], "--web.read-timeout"),
            (vec!["--web.max-connections=0"], "--web.max-connections"),
            (
                vec!["--web.max-bytes-in-flight=0"],
                "--web.max-bytes-in-flight",
            ),
            (
                vec!["--web.exporter-telemetry-path=/write"],
                "--web.exporter-telemetry-path",
            ),
        ] {
            match parse(&args) {
                Err(Exit::Usage(message)) => {
                    assert!(message.contains(flag), "{message:?} should name {flag}");
                    assert!(!message.contains('\n'), "{message:?} should be one line");
                }
                other => panic!("{args:?} gave {other:?}"),
            }
        }
        assert!(matches!(parse(&["--no-such-flag"]), Err(Exit::Usage(_))));
        assert!(matches!(
            parse_with_env(&[], &[("K8S_EXPORTER_WEB_EXPOSE_TIMESTAMPS", "maybe")]),
            Err(Exit::Usage(_))
        ));
    }

    #[test]
    fn flag_table_matches_the_declared_flags() {
        let Err(Exit::Help(help)) = parse(&["--help"]) else {
            panic!("--help gave no help")
        };
        let declared: Vec<String> = help
            .lines()
            .filter_map(|line| line.trim_start().strip_prefix("--"))
            .filter_map(|rest| rest.split(|c: char| c.is_whitespace() || c == ',').next())
            .filter(|name| *name != "help")
            .map(str::to_owned)
            .collect();
        let table: Vec<String> = FLAG_NAMES
            .iter()
            .map(|(name, _)| name.to_string())
            .collect();
        assert_eq!(declared, table, "--help spells every flag the dotted way");
        for (name, takes_value) in FLAG_NAMES {
            assert_eq!(help.contains(&format!("--{name} <")), takes_value);
        }
    }

    #[test]
    fn environment_variable_names() {
        assert_eq!(
            env_variable("web.listen-address"),
            "K8S_EXPORTER_WEB_LISTEN_ADDRESS"
        );
        assert_eq!(
            env_variable("write.max-decoded-bytes"),
            "K8S_EXPORTER_WRITE_MAX_DECODED_BYTES"
        );
    }
}
