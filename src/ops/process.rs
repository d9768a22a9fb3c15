//! The standard `process_*` metrics, read from `/proc/self`.
//!
//! Without `/proc` (a chroot, or a scratch image that does not mount it) the metrics are left
//! out rather than reported as zero.

use std::fs;

/// `USER_HZ`: the kernel reports CPU times to user space in hundredths of a second on every
/// architecture Linux ships (the ABI fixes it, whatever the kernel's own tick rate).
const TICKS_PER_SECOND: f64 = 100.0;

#[derive(Debug, Clone, PartialEq)]
pub struct ProcessStats {
    pub cpu_seconds: f64,
    pub resident_bytes: f64,
    pub virtual_bytes: f64,
    pub start_time_seconds: f64,
    pub open_fds: f64,
    pub max_fds: f64,
}

/// Reads this process's figures, or `None` when `/proc` cannot be read.
pub fn read() -> Option<ProcessStats> {
    let stat = fs::read_to_string("/proc/self/stat").ok()?;
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let limits = fs::read_to_string("/proc/self/limits").ok()?;
    let boot_time = boot_time_seconds(&fs::read_to_string("/proc/stat").ok()?)?;
    let open_fds = fs::read_dir("/proc/self/fd").ok()?.count() as f64;
    let (cpu_ticks, start_ticks) = cpu_and_start_ticks(&stat)?;
    Some(ProcessStats {
        cpu_seconds: cpu_ticks / TICKS_PER_SECOND,
        resident_bytes: status_kib(&status, "VmRSS:")? * 1024.0,
        virtual_bytes: status_kib(&status, "VmSize:")? * 1024.0,
        start_time_seconds: boot_time + start_ticks / TICKS_PER_SECOND,
        open_fds,
        max_fds: max_open_files(&limits)?,
    })
}

/// User plus system CPU ticks, and the start time in ticks since boot, from `/proc/self/stat`.
/// Fields are counted after the command name, which may itself hold spaces and parentheses.
fn cpu_and_start_ticks(stat: &str) -> Option<(f64, f64)> {
    let after_command = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_command.split_whitespace().collect();
    // fields[0] is field 3 (state) of proc(5): utime is 14, stime 15, starttime 22.
    let field = |number: usize| fields.get(number - 3)?.parse::<f64>().ok();
    Some((field(14)? + field(15)?, field(22)?))
}

fn status_kib(status: &str, key: &str) -> Option<f64> {
    let line = status.lines().find(|line| line.starts_with(key))?;
    line[key.len()..].split_whitespace().next()?.parse().ok()
}

fn boot_time_seconds(proc_stat: &str) -> Option<f64> {
    let line = proc_stat.lines().find(|line| line.starts_with("btime "))?;
    line["btime ".len()..].trim().parse().ok()
}

fn max_open_files(limits: &str) -> Option<f64> {
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))?;
    let soft = line["Max open files".len()..].split_whitespace().next()?;
    Some(if soft == "unlimited" {
        f64::INFINITY
    } else {
        soft.parse().ok()?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_a_command_with_spaces() {
        let stat = "4242 (k8s (exp) x) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 6 0 123456 1000000 2000 18446744073709551615";
        assert_eq!(cpu_and_start_ticks(stat), Some((300.0, 123456.0)));
    }

    #[test]
    fn status_limits_and_boot_time_are_parsed() {
        let status = "Name:\tk8s_exporter\nVmSize:\t   12345 kB\nVmRSS:\t    2048 kB\n";
        assert_eq!(status_kib(status, "VmRSS:"), Some(2048.0));
        assert_eq!(status_kib(status, "VmSize:"), Some(12345.0));
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            1024                 524288               files\n";
        assert_eq!(max_open_files(limits), Some(1024.0));
        assert_eq!(
            boot_time_seconds("cpu  1 2 3\nbtime 1700000000\n"),
            Some(1_700_000_000.0)
        );
    }

    #[test]
    fn own_process_is_readable_here() {
        let stats = read().expect("/proc is mounted where tests run");
        assert!(stats.resident_bytes > 0.0 && stats.virtual_bytes >= stats.resident_bytes);
        assert!(stats.open_fds >= 3.0 && stats.max_fds >= stats.open_fds);
        assert!(stats.start_time_seconds > 1_600_000_000.0);
    }
}
