//! A real memory cgroup to run the server in, as a pod's `resources.limits.memory` makes one:
//! for `tests/memory_limit.rs` and the load benchmark's `--held-under` (which includes this
//! file). Making one needs root.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::Duration;

/// A memory cgroup of the caller's own, removed when dropped: v1 (a directory under
/// `/sys/fs/cgroup/memory`) or v2 (under `/sys/fs/cgroup`), as the machine mounts them.
pub struct MemoryCgroup {
    path: PathBuf,
    v2: bool,
}

impl MemoryCgroup {
    pub fn new(name: &str, limit: u64) -> MemoryCgroup {
        let v1 = Path::new("/sys/fs/cgroup/memory");
        let v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").is_file();
        let parent = if v1.join("memory.limit_in_bytes").is_file() {
            v1
        } else if v2 {
            Path::new("/sys/fs/cgroup")
        } else {
            panic!("no memory cgroup hierarchy is mounted at /sys/fs/cgroup: cannot test the memory limit")
        };
        let path = parent.join(format!("k8s_exporter-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir(&path);
        std::fs::create_dir(&path).unwrap_or_else(|e| {
            panic!(
                "cannot make the memory cgroup {} (the test needs root): {e}",
                path.display()
            )
        });
        let cgroup = MemoryCgroup {
            path,
            v2: parent != v1,
        };
        cgroup.set_limit(limit);
        if !cgroup.v2 {
            // No swap to spill into: past the limit is an OOM kill, as in a pod.
            let _ = std::fs::write(cgroup.path.join("memory.swappiness"), "0");
        }
        cgroup
    }

    pub fn set_limit(&self, limit: u64) {
        let file = if self.v2 {
            "memory.max"
        } else {
            "memory.limit_in_bytes"
        };
        std::fs::write(self.path.join(file), limit.to_string())
            .unwrap_or_else(|e| panic!("cannot set {}/{file}: {e}", self.path.display()));
    }

    /// OOM kills in the cgroup (`oom_kill` of v1's `memory.oom_control`, v2's `memory.events`).
    pub fn oom_kills(&self) -> u64 {
        let file = if self.v2 {
            "memory.events"
        } else {
            "memory.oom_control"
        };
        let text = std::fs::read_to_string(self.path.join(file)).unwrap();
        text.lines()
            .find_map(|line| line.strip_prefix("oom_kill "))
            .unwrap_or_else(|| panic!("no oom_kill in {file}: {text}"))
            .trim()
            .parse()
            .unwrap()
    }

    /// The most memory the cgroup was charged for (v1 `memory.max_usage_in_bytes`, v2
    /// `memory.peak`).
    pub fn peak_charge(&self) -> u64 {
        let file = if self.v2 {
            "memory.peak"
        } else {
            "memory.max_usage_in_bytes"
        };
        let text = std::fs::read_to_string(self.path.join(file)).unwrap();
        text.trim().parse().unwrap()
    }

    /// `binary`, started inside the cgroup: a shell joins it, then becomes the binary.
    pub fn command(&self, binary: &Path) -> Command {
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(r#"echo $$ > "$0/cgroup.procs" && exec "$@""#)
            .arg(&self.path)
            .arg(binary);
        command
    }
}

impl Drop for MemoryCgroup {
    fn drop(&mut self) {
        // The exporter has been stopped; its cgroup empties a moment after.
        for _ in 0..50 {
            if std::fs::remove_dir(&self.path).is_ok() {
                return;
            }
            thread::sleep(Duration::from_millis(100));
        }
    }
}
