//! The memory limit of the cgroup this process runs in: what a pod's
//! `resources.limits.memory` becomes on its node.
//!
//! Found as container runtimes lay cgroups out: `/proc/self/cgroup` names the process's cgroup
//! in each hierarchy (v2: the line `0::/path`; v1: the line whose controllers include
//! `memory`), and `/proc/self/mountinfo` says where that hierarchy is mounted and which of its
//! directories the mount shows (its root: `/` with a cgroup namespace or on the host, the
//! container's own directory when a runtime mounts only that). The limit is the smallest of
//! the cgroup's and its ancestors' up to the mount: v2 `memory.max` and `memory.high` (the
//! kernel throttles and reclaims above `memory.high`), v1 `memory.limit_in_bytes`. `max`, or
//! a number no machine has (v1 writes 2^63 rounded down to a page), means no limit.
//! See the kernel's `Documentation/admin-guide/cgroup-v2.rst` and `cgroup-v1/memory.rst`.

use std::path::{Path, PathBuf};

/// A limit at or above this is "no limit": v1 reports 9223372036854771712 for an unlimited
/// cgroup, and no node has an exbibyte.
const UNLIMITED_FROM: u64 = 1 << 60;

/// Where the memory controller of this process's cgroup is, and which version it speaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryCgroup {
    /// The cgroup's directory, as this process sees it.
    pub directory: PathBuf,
    /// The mount point of its hierarchy: ancestors are read up to it and no further.
    pub mount_point: PathBuf,
    pub version: Version,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

impl MemoryCgroup {
    /// Finds the memory cgroup of this process under `root` (`/`, or a fake root in tests):
    /// `None` where there is no `/proc` or no memory controller mounted.
    pub fn find(root: &Path) -> Option<MemoryCgroup> {
        let cgroups = std::fs::read_to_string(root.join("proc/self/cgroup")).ok()?;
        let mounts = std::fs::read_to_string(root.join("proc/self/mountinfo")).ok()?;
        // The v1 memory controller is preferred where both are mounted (a hybrid layout): v2
        // then holds no controllers.
        let (version, path) = own_cgroup(&cgroups, Version::V1)
            .map(|path| (Version::V1, path))
            .or_else(|| own_cgroup(&cgroups, Version::V2).map(|path| (Version::V2, path)))?;
        let (mount_root, mount_point) = mount(&mounts, version)?;
        let relative = Path::new(path)
            .strip_prefix(mount_root)
            .unwrap_or(Path::new(""));
        let mount_point = root.join(mount_point.trim_start_matches('/'));
        Some(MemoryCgroup {
            directory: mount_point.join(relative),
            mount_point,
            version,
        })
    }

    /// The memory limit in bytes, the smallest of the cgroup's and its ancestors' up to the
    /// mount point; `None` when none is set.
    pub fn limit(&self) -> Option<u64> {
        let files: &[&str] = match self.version {
            Version::V1 => &["memory.limit_in_bytes"],
            Version::V2 => &["memory.max", "memory.high"],
        };
        let mut limit: Option<u64> = None;
        let mut directory = Some(self.directory.as_path());
        while let Some(dir) = directory {
            for file in files {
                if let Some(bytes) = read_limit(&dir.join(file)) {
                    limit = Some(limit.map_or(bytes, |l| l.min(bytes)));
                }
            }
            directory = (dir != self.mount_point).then(|| dir.parent()).flatten();
        }
        limit
    }
}

/// The process's cgroup path in the hierarchy of `version`, from `/proc/self/cgroup`.
fn own_cgroup(cgroups: &str, version: Version) -> Option<&str> {
    cgroups.lines().find_map(|line| {
        let mut fields = line.splitn(3, ':');
        let (id, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
        let matches = match version {
            Version::V2 => id == "0" && controllers.is_empty(),
            Version::V1 => controllers.split(',').any(|c| c == "memory"),
        };
        matches.then_some(path)
    })
}

/// The root and mount point of the hierarchy of `version`, from `/proc/self/mountinfo`
/// (proc(5): `id parent major:minor root mount-point options [optional...] - type source
/// super-options`).
fn mount(mounts: &str, version: Version) -> Option<(&str, &str)> {
    mounts.lines().find_map(|line| {
        let (before, after) = line.split_once(" - ")?;
        let fields: Vec<&str> = before.split(' ').collect();
        let mut after = after.split(' ');
        let (fs_type, _source, options) = (after.next()?, after.next()?, after.next()?);
        let matches = match version {
            Version::V2 => fs_type == "cgroup2",
            Version::V1 => fs_type == "cgroup" && options.split(',').any(|o| o == "memory"),
        };
        if !matches {
            return None;
        }
        Some((*fields.get(3)?, *fields.get(4)?))
    })
}

/// A limit file's value: `None` for `max`, an unlimited-sized number, or an unreadable file.
fn read_limit(path: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    let bytes: u64 = text.trim().parse().ok()?;
    (bytes < UNLIMITED_FROM).then_some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake root: `/proc/self/cgroup`, `/proc/self/mountinfo` and limit files.
    struct FakeRoot(PathBuf);

    impl FakeRoot {
        fn new(name: &str, cgroup: &str, mountinfo: &str) -> FakeRoot {
            let root = std::env::temp_dir()
                .join(format!("k8s_exporter-cgroup-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&root);
            std::fs::create_dir_all(root.join("proc/self")).unwrap();
            std::fs::write(root.join("proc/self/cgroup"), cgroup).unwrap();
            std::fs::write(root.join("proc/self/mountinfo"), mountinfo).unwrap();
            FakeRoot(root)
        }

        fn write(&self, file: &str, text: &str) {
            let path = self.0.join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }

        fn limit(&self) -> Option<u64> {
            MemoryCgroup::find(&self.0).unwrap().limit()
        }
    }

    impl Drop for FakeRoot {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    const V2_MOUNT: &str = "30 24 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n";

    #[test]
    fn v2_with_a_cgroup_namespace_reads_the_mount_point_itself() {
        // A pod's container on containerd with cgroup v2: the namespace shows its cgroup as /.
        let mounts = format!("22 1 0:21 / / rw - overlay overlay rw\n{V2_MOUNT}");
        let fake = FakeRoot::new("v2ns", "0::/\n", &mounts);
        fake.write("sys/fs/cgroup/memory.max", "67108864\n");
        fake.write("sys/fs/cgroup/memory.high", "max\n");
        let found = MemoryCgroup::find(&fake.0).unwrap();
        assert_eq!(found.version, Version::V2);
        assert_eq!(found.directory, fake.0.join("sys/fs/cgroup"));
        assert_eq!(fake.limit(), Some(64 << 20));
        // memory.high, when set lower, is the limit in force.
        fake.write("sys/fs/cgroup/memory.high", "50331648\n");
        assert_eq!(fake.limit(), Some(48 << 20));
    }

    #[test]
    fn v2_without_a_namespace_takes_the_smallest_limit_of_the_nested_cgroups() {
        // A process on the host in a nested cgroup: the pod's limit is on the parent.
        let path = "/kubepods.slice/kubepods-pod1.slice/cri-containerd-abc.scope";
        let fake = FakeRoot::new("v2nested", &format!("0::{path}\n"), V2_MOUNT);
        fake.write("sys/fs/cgroup/memory.max", "1000000000000\n");
        fake.write("sys/fs/cgroup/kubepods.slice/memory.max", "max\n");
        fake.write(
            "sys/fs/cgroup/kubepods.slice/kubepods-pod1.slice/memory.max",
            "134217728\n",
        );
        fake.write(&format!("sys/fs/cgroup{path}/memory.max"), "max\n");
        let found = MemoryCgroup::find(&fake.0).unwrap();
        assert_eq!(found.directory, fake.0.join(format!("sys/fs/cgroup{path}")));
        assert_eq!(fake.limit(), Some(128 << 20));
        // The mount point's own limit counts too, as an ancestor.
        fake.write("sys/fs/cgroup/memory.max", "100663296\n");
        assert_eq!(fake.limit(), Some(96 << 20));
    }

    #[test]
    fn v1_as_docker_mounts_the_containers_own_directory() {
        // cgroup v1 without a namespace: the runtime mounts the container's directory of the
        // memory hierarchy at /sys/fs/cgroup/memory, so the mount's root is that path.
        let id = "/kubepods/burstable/pod1/abc";
        let cgroup = format!("12:cpu,cpuacct:{id}\n11:memory:{id}\n1:name=systemd:{id}\n");
        let mounts = format!(
            "40 30 0:35 {id} /sys/fs/cgroup/memory ro,nosuid - cgroup cgroup rw,memory\n\
             41 30 0:36 {id} /sys/fs/cgroup/cpu,cpuacct ro,nosuid - cgroup cgroup rw,cpu,cpuacct\n"
        );
        let fake = FakeRoot::new("v1docker", &cgroup, &mounts);
        fake.write("sys/fs/cgroup/memory/memory.limit_in_bytes", "268435456\n");
        let found = MemoryCgroup::find(&fake.0).unwrap();
        assert_eq!(found.version, Version::V1);
        assert_eq!(found.directory, fake.0.join("sys/fs/cgroup/memory"));
        assert_eq!(fake.limit(), Some(256 << 20));
    }

    #[test]
    fn v1_on_the_host_reads_the_nested_directory_and_its_parents() {
        let cgroup = "4:memory:/k8s_exporter-test\n0::/user.slice\n";
        let mounts = "35 25 0:30 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n\
                      30 24 0:26 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n";
        let fake = FakeRoot::new("v1host", cgroup, mounts);
        fake.write(
            "sys/fs/cgroup/memory/memory.limit_in_bytes",
            "9223372036854771712\n",
        );
        fake.write(
            "sys/fs/cgroup/memory/k8s_exporter-test/memory.limit_in_bytes",
            "67108864\n",
        );
        let found = MemoryCgroup::find(&fake.0).unwrap();
        assert_eq!(found.version, Version::V1, "v1 holds the memory controller");
        assert_eq!(fake.limit(), Some(64 << 20));
    }

    #[test]
    fn unlimited_cgroups_and_missing_files_mean_no_limit() {
        let fake = FakeRoot::new("unlimited", "0::/\n", V2_MOUNT);
        assert_eq!(fake.limit(), None, "no limit files at all");
        fake.write("sys/fs/cgroup/memory.max", "max\n");
        assert_eq!(fake.limit(), None);
        let v1 = FakeRoot::new(
            "v1unlimited",
            "3:memory:/\n",
            "35 25 0:30 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n",
        );
        v1.write(
            "sys/fs/cgroup/memory/memory.limit_in_bytes",
            "9223372036854771712\n",
        );
        assert_eq!(v1.limit(), None);
    }

    #[test]
    fn no_proc_or_no_memory_controller_finds_nothing() {
        assert_eq!(
            MemoryCgroup::find(Path::new("/nonexistent-root-for-test")),
            None
        );
        let fake = FakeRoot::new(
            "nomemory",
            "3:cpu:/\n",
            "35 25 0:30 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n",
        );
        assert_eq!(MemoryCgroup::find(&fake.0), None);
    }
}
