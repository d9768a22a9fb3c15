//! HTTP basic auth against the bcrypt hashes of `basic_auth_users` in `--web.config.file`.
//!
//! bcrypt is slow on purpose (tens of milliseconds at cost 10), and Prometheus sends its
//! credentials with every remote-write request, so a password that verified once is
//! remembered, as SHA-256, next to its user: later requests cost one digest. A name that is not
//! a user is still checked against a bcrypt hash, so that timing does not tell which names
//! exist. Checks run on the connection's thread, never on a worker.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use base64::Engine as _;
use once_cell::sync::Lazy;
use ring::digest::{digest, SHA256};

use crate::base::locks::lock;

/// The challenge sent with every 401.
pub const CHALLENGE: &str = "Basic realm=\"k8s_exporter\", charset=\"UTF-8\"";

pub struct BasicAuth {
    hashes: BTreeMap<String, String>,
    /// SHA-256 of each user's last verified password.
    verified: Mutex<HashMap<String, Vec<u8>>>,
}

/// A bcrypt hash of a password nobody knows, verified for names that are not users.
static DECOY_HASH: Lazy<String> =
    Lazy::new(|| bcrypt::hash("decoy", bcrypt::DEFAULT_COST).unwrap_or_default());

impl BasicAuth {
    /// Checks that every hash is a bcrypt hash; the error names the user.
    pub fn new(hashes: BTreeMap<String, String>) -> Result<BasicAuth, String> {
        for (user, hash) in &hashes {
            if hash.parse::<bcrypt::HashParts>().is_err() {
                return Err(format!(
                    "basic_auth_users: the hash for {user:?} is not a bcrypt hash"
                ));
            }
        }
        Ok(BasicAuth {
            hashes,
            verified: Mutex::new(HashMap::new()),
        })
    }

    /// Whether an `Authorization` header value holds a user's valid credentials.
    pub fn admits(&self, authorization: Option<&str>) -> bool {
        let Some((user, password)) = authorization.and_then(credentials) else {
            return false;
        };
        let Some(hash) = self.hashes.get(&user) else {
            let _ = bcrypt::verify(&password, &DECOY_HASH);
            return false;
        };
        let fingerprint = digest(&SHA256, password.as_bytes()).as_ref().to_vec();
        if lock(&self.verified).get(&user) == Some(&fingerprint) {
            return true;
        }
        let valid = bcrypt::verify(&password, hash).unwrap_or(false);
        if valid {
            lock(&self.verified).insert(user, fingerprint);
        }
        valid
    }
}

/// The user and password of a `Basic` credential.
fn credentials(authorization: &str) -> Option<(String, String)> {
    let (scheme, encoded) = authorization.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(user: &str, password: &str) -> String {
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        format!("Basic {encoded}")
    }

    #[test]
    fn only_the_right_password_of_a_known_user_is_admitted() {
        let hash = bcrypt::hash("s3cret:with colon", 4).unwrap();
        let auth = BasicAuth::new(BTreeMap::from([("alice".to_owned(), hash)])).unwrap();
        for _ in 0..2 {
            // The second round is answered from the remembered digest.
            assert!(auth.admits(Some(&header("alice", "s3cret:with colon"))));
        }
        assert!(!auth.admits(Some(&header("alice", "s3cret"))));
        assert!(!auth.admits(Some(&header("bob", "s3cret:with colon"))));
        assert!(!auth.admits(Some("Bearer abc")));
        assert!(!auth.admits(Some("Basic !!!")));
        assert!(!auth.admits(None));
    }

    #[test]
    fn a_hash_that_is_not_bcrypt_is_refused_at_startup() {
        let error = BasicAuth::new(BTreeMap::from([("alice".to_owned(), "plain".to_owned())]))
            .err()
            .unwrap();
        assert!(error.contains("alice"));
    }
}
