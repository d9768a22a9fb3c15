//! The web configuration in force, read again when `--web.config.file` or a file it names (a
//! certificate, key or CA that cert-manager rotates) changes, as exporter-toolkit reads it
//! again for every handshake and request; here a watcher looks at the files' modification
//! times, sizes and inodes twice a second ([`RELOAD_CHECK_INTERVAL`]), so that no request pays a
//! file read or a YAML parse. New connections and requests take the new configuration;
//! connections already open keep the one they started with.
//!
//! A file that no longer loads (a half-written edit, a key without its certificate) leaves the
//! last good configuration in force, where exporter-toolkit would answer 500 until it is
//! fixed: the watcher reports the error once per change of the files.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use crate::base::locks::lock;
use crate::web::webconfig::{self, WebConfig};

/// How often the watcher looks at the files.
pub const RELOAD_CHECK_INTERVAL: Duration = Duration::from_millis(500);

/// What a file looked like: modification time, size and inode (a file replaced by a rename,
/// as Kubernetes updates a mounted Secret, has a new inode); `None` when it cannot be read.
type Look = Option<(SystemTime, u64, u64)>;

pub struct LiveWebConfig {
    /// `--web.config.file`; `None` when there is none, and nothing to reload.
    path: Option<PathBuf>,
    current: RwLock<Arc<WebConfig>>,
    /// The files as they were when last read, whether that load took or not.
    seen: Mutex<Vec<(PathBuf, Look)>>,
}

/// What a reload after a change did.
pub enum Reloaded {
    Took,
    /// The error, in one line; the configuration before it is still in force.
    Failed(String),
}

fn look(path: &Path) -> Look {
    let metadata = std::fs::metadata(path).ok()?;
    Some((metadata.modified().ok()?, metadata.len(), metadata.ino()))
}

fn looks(files: &[PathBuf]) -> Vec<(PathBuf, Look)> {
    files
        .iter()
        .map(|file| (file.clone(), look(file)))
        .collect()
}

impl LiveWebConfig {
    /// A configuration that never changes: none, or one built in code.
    pub fn fixed(config: WebConfig) -> LiveWebConfig {
        LiveWebConfig {
            path: None,
            current: RwLock::new(Arc::new(config)),
            seen: Mutex::new(Vec::new()),
        }
    }

    /// Reads `path`; an error stops the server at start (exit 2, one line).
    pub fn load(path: &Path) -> Result<LiveWebConfig, String> {
        let config = webconfig::load(path)?;
        let seen = looks(&config.files);
        Ok(LiveWebConfig {
            path: Some(path.to_path_buf()),
            current: RwLock::new(Arc::new(config)),
            seen: Mutex::new(seen),
        })
    }

    /// Whether there is a file to watch: none when the configuration was built in code.
    pub fn has_file(&self) -> bool {
        self.path.is_some()
    }

    /// The configuration in force.
    pub fn current(&self) -> Arc<WebConfig> {
        Arc::clone(&self.current.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Reads the file again if it or a file it names changed since it was last read; `None`
    /// when nothing changed.
    pub fn reload_if_changed(&self) -> Option<Reloaded> {
        let path = self.path.as_ref()?;
        let mut seen = lock(&self.seen);
        let files: Vec<PathBuf> = seen.iter().map(|(file, _)| file.clone()).collect();
        if looks(&files) == *seen {
            return None;
        }
        match webconfig::load(path) {
            Ok(config) => {
                *seen = looks(&config.files);
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(config);
                Some(Reloaded::Took)
            }
            Err(error) => {
                // Not again until something changes; the last good files stay watched too.
                *seen = looks(&files);
                Some(Reloaded::Failed(error))
            }
        }
    }
}
