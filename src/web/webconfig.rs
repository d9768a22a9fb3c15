//! `--web.config.file`: TLS, basic auth, response headers and a rate limit, in the format every
//! Prometheus exporter reads (prometheus/exporter-toolkit's web configuration), so that an
//! operator's existing file works.
//!
//! ```yaml
//! tls_server_config:
//!   cert_file: server.crt          # relative paths are relative to this file
//!   key_file: server.key
//!   client_auth_type: RequireAndVerifyClientCert   # or NoClientCert, VerifyClientCertIfGiven,
//!                                                   # RequestClientCert, RequireAnyClientCert
//!   client_ca_file: ca.crt
//!   min_version: TLS12              # TLS12 (the default) or TLS13; max_version likewise
//! http_server_config:
//!   headers:                        # added to every answer
//!     X-Frame-Options: deny
//! rate_limit:                       # one token bucket for all requests but /healthz
//!   burst: 100
//!   interval: 10ms
//! basic_auth_users:
//!   prometheus: $2y$10$...          # bcrypt hashes, as htpasswd -nBC 10 writes them
//! ```
//!
//! TLS 1.2 and 1.3 are served, from `min_version` to `max_version` (TLS 1.2 to 1.3 by default, as
//! in exporter-toolkit); rustls has no TLS 1.0 or 1.1, so `TLS10` and `TLS11` are refused.
//! Unknown keys are errors, as in exporter-toolkit, and so are headers other than the five it
//! allows, with its value rules. `cipher_suites` and `curve_preferences` choose among what
//! rustls has, by Go's names; a name it lacks is an error. `prefer_server_cipher_suites` and
//! `http2` are accepted and change nothing: Go has ignored the first since 1.18, and this
//! server speaks HTTP/1.1. Client certificates follow `client_auth_type` and
//! `client_allowed_sans` as in exporter-toolkit (see [`crate::web::client_certs`]).
//!
//! The file is read again when it, or a file it names, changes (see [`crate::web::reload`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use crate::base::units::parse_duration;
use crate::web::auth::BasicAuth;
use crate::web::ratelimit::RateLimiter;
use crate::web::tls::{self, ClientAuth, TlsVersion};

/// What the file asks for; `None` parts are off.
pub struct WebConfig {
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// When the TLS certificates expire (empty without TLS).
    pub certificate_expiries: tls::Expiries,
    pub basic_auth: Option<BasicAuth>,
    /// `http_server_config.headers`, added to every answer.
    pub headers: Vec<(&'static str, String)>,
    pub rate_limit: Option<RateLimiter>,
    /// The files the configuration was read from: the file itself, and the certificate, key
    /// and CA files it names.
    pub files: Vec<PathBuf>,
}

impl WebConfig {
    /// Plain HTTP without authentication: no `--web.config.file`.
    pub fn none() -> WebConfig {
        WebConfig {
            tls: None,
            certificate_expiries: Vec::new(),
            basic_auth: None,
            headers: Vec::new(),
            rate_limit: None,
            files: Vec::new(),
        }
    }
}

/// The headers exporter-toolkit lets `http_server_config.headers` set, with the values each
/// may have (any, when none are listed).
const ALLOWED_HEADERS: [(&str, &[&str]); 5] = [
    ("Strict-Transport-Security", &[]),
    ("X-Content-Type-Options", &["nosniff"]),
    ("X-Frame-Options", &["deny", "sameorigin"]),
    ("X-XSS-Protection", &[]),
    ("Content-Security-Policy", &[]),
];

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct File {
    tls_server_config: Option<TlsSection>,
    http_server_config: Option<HttpSection>,
    rate_limit: Option<RateLimitSection>,
    #[serde(default)]
    basic_auth_users: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RateLimitSection {
    #[serde(default)]
    burst: u32,
    interval: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsSection {
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
    client_auth_type: Option<String>,
    client_ca_file: Option<PathBuf>,
    client_allowed_sans: Option<Vec<String>>,
    min_version: Option<String>,
    max_version: Option<String>,
    cipher_suites: Option<Vec<String>>,
    curve_preferences: Option<Vec<String>>,
    #[serde(rename = "prefer_server_cipher_suites")]
    _prefer_server_cipher_suites: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpSection {
    #[serde(rename = "http2")]
    _http2: Option<bool>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

/// Reads and checks the file; the error is one line, for `--web.config.file: <error>`.
pub fn load(path: &Path) -> Result<WebConfig, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let file: File = if text.trim().is_empty() {
        File::default()
    } else {
        serde_yaml_ng::from_str(&text)
            .map_err(|e| format!("{}: {}", path.display(), one_line(&e.to_string())))?
    };
    let directory = path.parent().unwrap_or(Path::new("."));
    let mut files = vec![path.to_path_buf()];
    let (tls, certificate_expiries) = match file.tls_server_config {
        Some(section) => {
            let (config, expiries) = tls_config(section, directory, &mut files)?;
            (Some(Arc::new(config)), expiries)
        }
        None => (None, Vec::new()),
    };
    let basic_auth = if file.basic_auth_users.is_empty() {
        None
    } else {
        Some(BasicAuth::new(file.basic_auth_users)?)
    };
    let headers = file
        .http_server_config
        .map(|h| h.headers)
        .unwrap_or_default();
    Ok(WebConfig {
        tls,
        certificate_expiries,
        basic_auth,
        headers: checked_headers(headers)?,
        rate_limit: file.rate_limit.map(rate_limiter).transpose()?.flatten(),
        files,
    })
}

/// `http_server_config.headers` under exporter-toolkit's rules.
fn checked_headers(
    headers: BTreeMap<String, String>,
) -> Result<Vec<(&'static str, String)>, String> {
    let mut checked = Vec::new();
    for (name, value) in headers {
        let Some(&(name, values)) = ALLOWED_HEADERS.iter().find(|(allowed, _)| *allowed == name)
        else {
            let allowed: Vec<&str> = ALLOWED_HEADERS.iter().map(|(n, _)| *n).collect();
            return Err(format!(
                "http_server_config: header {name:?} can not be configured; allowed: {}",
                allowed.join(", ")
            ));
        };
        if !values.is_empty() && !values.contains(&value.as_str()) {
            return Err(format!(
                "http_server_config: invalid value {value:?} for {name}; expected one of {values:?}"
            ));
        }
        if value.contains(['\r', '\n']) {
            return Err(format!("http_server_config: {name} holds a line break"));
        }
        checked.push((name, value));
    }
    Ok(checked)
}

/// The limiter `rate_limit` asks for; none when `burst` is 0, as exporter-toolkit has it.
fn rate_limiter(section: RateLimitSection) -> Result<Option<RateLimiter>, String> {
    if section.burst == 0 {
        return Ok(None);
    }
    let interval = match section.interval.as_deref() {
        None => std::time::Duration::ZERO,
        Some(text) => parse_duration(text).map_err(|e| format!("rate_limit: interval: {e}"))?,
    };
    Ok(Some(RateLimiter::new(interval, section.burst)))
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn tls_config(
    section: TlsSection,
    directory: &Path,
    files: &mut Vec<PathBuf>,
) -> Result<(rustls::ServerConfig, tls::Expiries), String> {
    let (Some(cert_file), Some(key_file)) = (section.cert_file, section.key_file) else {
        return Err("tls_server_config: cert_file and key_file are both required".into());
    };
    let client_auth = match section.client_auth_type.as_deref() {
        None | Some("NoClientCert") => ClientAuth::None,
        Some("VerifyClientCertIfGiven") => ClientAuth::VerifyIfGiven,
        Some("RequireAndVerifyClientCert") => ClientAuth::Require,
        Some("RequestClientCert") => ClientAuth::Request,
        Some("RequireAnyClientCert") => ClientAuth::RequireAny,
        Some(other) => {
            return Err(format!(
                "tls_server_config: invalid client_auth_type {other:?}"
            ))
        }
    };
    let client_ca = match (&client_auth, section.client_ca_file) {
        (ClientAuth::None | ClientAuth::Request | ClientAuth::RequireAny, _) => None,
        (_, Some(file)) => Some(directory.join(file)),
        (_, None) => {
            return Err(
                "tls_server_config: client_ca_file is required to verify client certificates"
                    .into(),
            )
        }
    };
    let version = |key: &str, value: Option<String>, default| -> Result<TlsVersion, String> {
        match value.as_deref() {
            None => Ok(default),
            Some("TLS12") => Ok(TlsVersion::Tls12),
            Some("TLS13") => Ok(TlsVersion::Tls13),
            Some(other @ ("TLS10" | "TLS11")) => Err(format!(
                "tls_server_config: {key} {other} is not supported; TLS12 is the oldest"
            )),
            Some(other) => Err(format!("tls_server_config: invalid {key} {other:?}")),
        }
    };
    let min = version("min_version", section.min_version, TlsVersion::Tls12)?;
    let max = version("max_version", section.max_version, TlsVersion::Tls13)?;
    let settings = tls::Settings {
        cert_file: directory.join(cert_file),
        key_file: directory.join(key_file),
        client_auth,
        client_ca_file: client_ca,
        client_allowed_sans: section.client_allowed_sans,
        min_version: min,
        max_version: max,
        cipher_suites: section.cipher_suites,
        curve_preferences: section.curve_preferences,
    };
    files.extend([settings.cert_file.clone(), settings.key_file.clone()]);
    files.extend(settings.client_ca_file.clone());
    tls::server_config(&settings).map_err(|e| format!("tls_server_config: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_text(text: &str) -> Result<WebConfig, String> {
        let dir = std::env::temp_dir().join(format!("webconfig-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!(
            "{:x}.yml",
            text.len() * 31 + text.as_bytes()[0] as usize
        ));
        std::fs::write(&path, text).unwrap();
        let result = load(&path);
        let _ = std::fs::remove_file(&path);
        result
    }

    #[test]
    fn empty_file_means_plain_http_without_auth() {
        let config = load_text("\n").unwrap();
        assert!(config.tls.is_none() && config.basic_auth.is_none());
        let config = load_text("http_server_config:\n  http2: true\n").unwrap();
        assert!(config.tls.is_none() && config.basic_auth.is_none());
    }

    #[test]
    fn headers_and_rate_limit_as_exporter_toolkit_reads_them() {
        let config = load_text(
            "http_server_config:\n  headers:\n    X-Frame-Options: deny\n    \
             Strict-Transport-Security: max-age=31536000\n\
             rate_limit:\n  burst: 2\n  interval: 1s\n",
        )
        .unwrap();
        assert_eq!(
            config.headers,
            [
                ("Strict-Transport-Security", "max-age=31536000".to_owned()),
                ("X-Frame-Options", "deny".to_owned())
            ]
        );
        let limiter = config.rate_limit.expect("a limiter");
        assert!(limiter.take().is_ok() && limiter.take().is_ok());
        assert!(limiter.take().is_err());
        // No burst, no limit, as in exporter-toolkit.
        let config = load_text("rate_limit:\n  interval: 1s\n").unwrap();
        assert!(config.rate_limit.is_none());
    }

    #[test]
    fn mistakes_are_one_line_errors() {
        for (text, needle) in [
            ("basic_auth_user:\n  a: b\n", "unknown field"),
            ("tls_server_config:\n  cert_file: a\n", "cert_file and key_file"),
            (
                "tls_server_config:\n  cert_file: a\n  key_file: b\n  cipher_suites: [TLS_RSA_WITH_AES_128_CBC_SHA]\n",
                "TLS_RSA_WITH_AES_128_CBC_SHA is not one rustls has",
            ),
            (
                "tls_server_config:\n  cert_file: a\n  key_file: b\n  curve_preferences: [CurveP521]\n",
                "CurveP521 is not one rustls has",
            ),
            (
                "tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: RequireAndVerifyClientCert\n",
                "client_ca_file is required",
            ),
            (
                "tls_server_config:\n  cert_file: a\n  key_file: b\n  min_version: TLS10\n",
                "TLS12 is the oldest",
            ),
            ("tls_server_config:\n  cert_file: a\n  key_file: b\n", "a:"),
            ("basic_auth_users:\n  alice: plaintext\n", "alice"),
            (
                "http_server_config:\n  headers:\n    X-Powered-By: me\n",
                "\"X-Powered-By\" can not be configured",
            ),
            (
                "http_server_config:\n  headers:\n    X-Frame-Options: allow\n",
                "invalid value \"allow\" for X-Frame-Options",
            ),
            ("rate_limit:\n  burst: 5\n  interval: soon\n", "rate_limit: interval"),
            ("rate_limit:\n  burst: -1\n", "burst"),
        ] {
            let error = load_text(text).err().unwrap_or_else(|| panic!("{text} loaded"));
            assert!(error.contains(needle), "{error:?} lacks {needle:?}");
            assert!(!error.contains('\n'), "{error:?}");
        }
    }
}
