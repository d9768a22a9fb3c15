//! The memory guard: keeps resident memory under the memory limit (`--memory.limit`, by
//! default the cgroup's) by refusing **new** series when it nears the limit, so that a
//! cardinality explosion is refused instead of getting the pod OOM-killed with every series it
//! holds. Samples of series already held are still stored, and scrapes still served (their
//! memory is bounded by `--web.max-bytes-in-flight`).
//!
//! Each check reads resident memory and tells the store how many series it may hold until the
//! next ([`Store::set_memory_cap`](crate::store::Store::set_memory_cap)): while resident memory
//! is under [`HIGH`] of the limit, the series count plus what the room left would hold at
//! [`ADMIT_BYTES_PER_SERIES`] each, so that a burst between two checks cannot pass the limit;
//! once it reaches [`HIGH`], none, until it is back under [`LOW`].
//!
//! A scrape takes memory too, for as long as it runs and, kept for the next, after: a view of
//! each series and the label text of each value tuple (a container's, for cAdvisor). Series
//! and tuples that no scrape has rendered yet are counted ahead, at
//! [`SCRAPE_BYTES_PER_SERIES`] and [`SCRAPE_BYTES_PER_TUPLE`], so that the scrape that comes
//! after an explosion does not take the memory past the limit ([`scrape_ahead`]).
//!
//! Freed memory is kept by the allocators for reuse (glibc's arenas, the static build's
//! per-size lists), so resident memory does not fall when series go. The guard therefore
//! counts the series held below the most it has held as room, at [`CREDIT_BYTES_PER_SERIES`]
//! each (less than any series costs): once old series go, by stale markers or the TTL, new
//! ones take their place.

use std::fs::File;
use std::io::Read;
use std::path::Path;

/// Share of the limit above which new series are refused.
pub const HIGH: (u64, u64) = (9, 10);
/// Share of the limit under which new series are taken again.
pub const LOW: (u64, u64) = (8, 10);
/// What a new series is taken to cost when admitting series ahead of the next check, in the
/// store and in the scrapes ahead: more than a cAdvisor series costs (about 130 bytes, 230
/// once scraped), since one of an explosion brings label values and a tuple of its own.
pub const ADMIT_BYTES_PER_SERIES: u64 = 1024;
/// What a scrape holds for each series: its view (32 bytes) and its place in the page's order.
pub const SCRAPE_BYTES_PER_SERIES: u64 = 64;
/// What a scrape holds for each value tuple: its label text (about 500 bytes for a cAdvisor
/// container), its rank and place.
pub const SCRAPE_BYTES_PER_TUPLE: u64 = 512;
/// What a series that went is taken to leave for reuse: less than any series costs.
pub const CREDIT_BYTES_PER_SERIES: u64 = 128;

/// The memory the next scrape will take beyond what resident memory holds already: the series
/// and tuples held now past those the last scrape rendered.
pub fn scrape_ahead(
    (series, tuples): (usize, usize),
    (scraped_series, scraped_tuples): (usize, usize),
) -> u64 {
    series.saturating_sub(scraped_series) as u64 * SCRAPE_BYTES_PER_SERIES
        + tuples.saturating_sub(scraped_tuples) as u64 * SCRAPE_BYTES_PER_TUPLE
}

fn share(limit: u64, (numerator, denominator): (u64, u64)) -> u64 {
    limit / denominator * numerator
}

/// The guard's state between checks.
#[derive(Debug, Default)]
pub struct Guard {
    refusing: bool,
    /// The most series held since memory was last under [`LOW`].
    peak: usize,
}

/// What one check decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// The most series the store may hold until the next check.
    pub cap: usize,
    /// `Some(true)` when this check started refusing new series, `Some(false)` when it
    /// stopped: the start and end of an episode, each logged once.
    pub changed: Option<bool>,
    /// Resident memory and what the next scrape will take, less the room series that went
    /// left for reuse.
    pub in_use: u64,
}

impl Guard {
    /// Decides from the `limit` in bytes, `resident` memory, what the next scrape will take
    /// beyond it (`scrape_ahead`) and the `series` held.
    pub fn check(
        &mut self,
        limit: u64,
        resident: u64,
        scrape_ahead: u64,
        series: usize,
    ) -> Decision {
        let (high, low) = (share(limit, HIGH), share(limit, LOW));
        if resident < low {
            self.peak = series;
        }
        self.peak = self.peak.max(series);
        let room_left_by_gone = (self.peak - series) as u64 * CREDIT_BYTES_PER_SERIES;
        let in_use = (resident + scrape_ahead).saturating_sub(room_left_by_gone);
        let was_refusing = self.refusing;
        if self.refusing {
            self.refusing = in_use >= low;
        } else {
            self.refusing = in_use >= high;
        }
        let cap = if self.refusing {
            series
        } else {
            let admissible = (high - in_use) / ADMIT_BYTES_PER_SERIES;
            series.saturating_add(usize::try_from(admissible).unwrap_or(usize::MAX))
        };
        Decision {
            cap,
            changed: (was_refusing != self.refusing).then_some(self.refusing),
            in_use,
        }
    }

    pub fn refusing(&self) -> bool {
        self.refusing
    }
}

/// This process's resident memory, read from `/proc/self/statm`, kept open so that a check
/// costs one read.
pub struct Resident {
    statm: File,
    page_size: u64,
    text: Vec<u8>,
}

impl Resident {
    /// `None` without `/proc` (a chroot, or an image run without it mounted).
    pub fn open(proc: &Path) -> Option<Resident> {
        let statm = File::open(proc.join("self/statm")).ok()?;
        let page_size = page_size(&std::fs::read(proc.join("self/auxv")).ok()?)?;
        let mut resident = Resident {
            statm,
            page_size,
            text: Vec::with_capacity(128),
        };
        resident.bytes()?;
        Some(resident)
    }

    /// Resident bytes now (statm's second field, in pages).
    pub fn bytes(&mut self) -> Option<u64> {
        use std::io::{Seek, SeekFrom};
        self.text.clear();
        self.statm.seek(SeekFrom::Start(0)).ok()?;
        (&self.statm).read_to_end(&mut self.text).ok()?;
        let text = std::str::from_utf8(&self.text).ok()?;
        let pages: u64 = text.split_whitespace().nth(1)?.parse().ok()?;
        Some(pages * self.page_size)
    }
}

/// `AT_PAGESZ` from the auxiliary vector the kernel gave the process (pairs of native words):
/// 4 KiB on x86_64, and 4, 16 or 64 KiB on arm64, as the kernel was built.
fn page_size(auxv: &[u8]) -> Option<u64> {
    const AT_PAGESZ: u64 = 6;
    const WORD: usize = std::mem::size_of::<usize>();
    let word = |bytes: &[u8]| -> u64 {
        let mut raw = [0u8; WORD];
        raw.copy_from_slice(bytes);
        usize::from_ne_bytes(raw) as u64
    };
    auxv.chunks_exact(2 * WORD)
        .map(|pair| (word(&pair[..WORD]), word(&pair[WORD..])))
        .find(|&(key, _)| key == AT_PAGESZ)
        .map(|(_, value)| value)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn under_the_high_mark_series_are_admitted_for_the_room_left() {
        let mut guard = Guard::default();
        let decision = guard.check(64 * MIB, 20 * MIB, 0, 1000);
        let room = share(64 * MIB, HIGH) - 20 * MIB;
        assert_eq!(
            decision.cap,
            1000 + (room / ADMIT_BYTES_PER_SERIES) as usize
        );
        assert_eq!(decision.changed, None);
        assert!(!guard.refusing());
    }

    #[test]
    fn refuses_from_90_percent_until_under_80_percent() {
        let mut guard = Guard::default();
        let limit = 100 * MIB;
        let refusing = guard.check(limit, 91 * MIB, 0, 5000);
        assert_eq!((refusing.cap, refusing.changed), (5000, Some(true)));
        // Between the marks it keeps refusing, and says so only once.
        let still = guard.check(limit, 85 * MIB, 0, 5000);
        assert_eq!((still.cap, still.changed), (5000, None));
        let again = guard.check(limit, 79 * MIB, 0, 5000);
        assert_eq!(again.changed, Some(false));
        assert!(again.cap > 5000);
    }

    #[test]
    fn series_that_go_make_room_though_resident_memory_stays() {
        let mut guard = Guard::default();
        let limit = 64 * MIB;
        let full = 230_000;
        assert_eq!(guard.check(limit, 58 * MIB, 0, full).changed, Some(true));
        // The allocator keeps what the series freed: resident memory does not move.
        let some_gone = guard.check(limit, 58 * MIB, 0, full - 10_000);
        assert_eq!(some_gone.changed, None, "not yet under 80%");
        let many_gone = full - 100_000;
        let taken_again = guard.check(limit, 58 * MIB, 0, many_gone);
        assert_eq!(taken_again.changed, Some(false));
        assert!(taken_again.cap > many_gone);
        // New series fill the room again, and are refused once it is used up.
        let refilled = guard.check(limit, 58 * MIB, 0, full);
        assert_eq!((refilled.cap, refilled.changed), (full, Some(true)));
    }

    #[test]
    fn what_no_scrape_has_rendered_yet_counts_for_the_scrape_ahead() {
        let ahead = scrape_ahead((100_000, 100_000), (0, 0));
        assert_eq!(
            ahead,
            100_000 * (SCRAPE_BYTES_PER_SERIES + SCRAPE_BYTES_PER_TUPLE)
        );
        assert_eq!(scrape_ahead((100_000, 4_000), (100_000, 4_000)), 0);
        assert_eq!(scrape_ahead((90_000, 3_000), (100_000, 4_000)), 0);
        // 30 MiB resident, and the scrape of 100k series of their own tuples to come.
        let mut guard = Guard::default();
        let decision = guard.check(64 * MIB, 30 * MIB, ahead, 100_000);
        assert_eq!((decision.cap, decision.changed), (100_000, Some(true)));
    }

    #[test]
    fn the_cap_never_lets_a_burst_pass_the_high_mark() {
        let mut guard = Guard::default();
        let limit = 64 * MIB;
        let resident = 50 * MIB;
        let decision = guard.check(limit, resident, 0, 10);
        let admitted = (decision.cap - 10) as u64;
        assert!(resident + admitted * ADMIT_BYTES_PER_SERIES <= share(limit, HIGH));
    }

    #[test]
    fn resident_memory_and_the_page_size_are_read_from_proc() {
        let mut resident = Resident::open(Path::new("/proc")).unwrap();
        let before = resident.bytes().unwrap();
        assert!(before > 0);
        assert!([4096, 16384, 65536].contains(&resident.page_size));
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let vm_rss_kib: u64 = status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap()
            .parse()
            .unwrap();
        let now = resident.bytes().unwrap();
        // The two are read a moment apart: within a few MiB of each other.
        assert!(
            now.abs_diff(vm_rss_kib * 1024) < 4 * MIB,
            "{now} {vm_rss_kib}"
        );
        assert!(Resident::open(Path::new("/nonexistent-proc")).is_none());
    }

    #[test]
    fn the_page_size_is_found_among_the_auxiliary_vector_pairs() {
        let words: [usize; 6] = [3, 0x40, 6, 16384, 0, 0];
        let auxv: Vec<u8> = words.iter().flat_map(|w| w.to_ne_bytes()).collect();
        assert_eq!(page_size(&auxv), Some(16384));
        assert_eq!(page_size(&auxv[..16]), None);
    }
}
