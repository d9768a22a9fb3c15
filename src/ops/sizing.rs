//! The sizes that spend memory, derived from the memory limit where the flags leave them out,
//! so that what they allow together stays under [`TARGET`] of the limit (docs/operations.md,
//! "Memory limit", has the formula and its figures):
//!
//! ```text
//! worst case = BASE + in-flight bytes + kept bodies
//!            + threads × 3 × decoded bytes + series × SERIES_BYTES
//! ```
//!
//! Three times the decoded bytes per worker is a request as Prometheus sends it, decompressed,
//! with the 16-byte entries its labels are read into (remote write 1.0 labels take at least 8
//! bytes each on the wire); a request made of one-byte label references takes up to nine times
//! (docs/operations.md, "Memory under load"), which the memory guard, not this sum, answers.

use crate::base::units::format_size;

/// What the server holds before any series: the binary's pages, thread stacks, the tables'
/// room at start, the allocators' own (about 2 MiB resident idle, static build).
pub const BASE: u64 = 8 << 20;
/// A cAdvisor series, scraped, at a million series in the static build (BENCHMARKS.md).
pub const SERIES_BYTES: u64 = 176;
/// Share of the limit the worst case may reach: what the memory guard holds resident memory to.
pub const TARGET: (u64, u64) = (9, 10);
/// Fewest series a derived limit allows, however small the memory limit.
const MIN_SERIES: u64 = 1000;

/// Sizes that spend memory, as given or derived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizing {
    pub threads: usize,
    pub max_bytes_in_flight: usize,
    pub max_decoded_bytes: usize,
    pub spare_bodies_bytes: usize,
    pub series_max: usize,
}

/// Sizes a flag gave; `None` is left to derive.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Given {
    pub threads: Option<usize>,
    pub max_bytes_in_flight: Option<usize>,
    pub max_decoded_bytes: Option<usize>,
    pub series_max: Option<usize>,
}

/// Without a memory limit: the defaults the flags document.
pub const UNLIMITED: Sizing = Sizing {
    threads: 0,
    max_bytes_in_flight: 256 << 20,
    max_decoded_bytes: 32 << 20,
    spare_bodies_bytes: 16 << 20,
    series_max: 2_000_000,
};

fn clamp(value: u64, low: u64, high: u64) -> usize {
    value.clamp(low, high) as usize
}

impl Sizing {
    /// The sizes for `limit` bytes of memory (none: [`UNLIMITED`]) and `cpus` processors,
    /// each flag that was `given` winning.
    pub fn derive(limit: Option<u64>, cpus: usize, given: Given) -> Sizing {
        let mib = 1u64 << 20;
        let Some(limit) = limit else {
            return Sizing {
                threads: given.threads.unwrap_or(cpus.max(2)),
                max_bytes_in_flight: given
                    .max_bytes_in_flight
                    .unwrap_or(UNLIMITED.max_bytes_in_flight),
                max_decoded_bytes: given
                    .max_decoded_bytes
                    .unwrap_or(UNLIMITED.max_decoded_bytes),
                spare_bodies_bytes: UNLIMITED.spare_bodies_bytes,
                series_max: given.series_max.unwrap_or(UNLIMITED.series_max),
            };
        };
        let mut sizing = Sizing {
            // Each worker may hold a decoded request: a small pod gets two.
            threads: given
                .threads
                .unwrap_or_else(|| cpus.clamp(2, clamp(limit / (128 * mib), 2, 64))),
            max_bytes_in_flight: given
                .max_bytes_in_flight
                .unwrap_or_else(|| clamp(limit / 8, 4 * mib, 256 * mib)),
            // At least Prometheus's default batch of 2,000 cAdvisor samples (1.3 MB).
            max_decoded_bytes: given
                .max_decoded_bytes
                .unwrap_or_else(|| clamp(limit / 128, 2 * mib, 32 * mib)),
            spare_bodies_bytes: clamp(limit / 32, mib, 16 * mib),
            series_max: 0,
        };
        sizing.series_max = given.series_max.unwrap_or_else(|| {
            let room = sizing
                .target(limit)
                .saturating_sub(sizing.worst_case_without_series());
            (room / SERIES_BYTES).max(MIN_SERIES) as usize
        });
        sizing
    }

    /// [`TARGET`] of `limit`.
    pub fn target(&self, limit: u64) -> u64 {
        limit / TARGET.1 * TARGET.0
    }

    fn worst_case_without_series(&self) -> u64 {
        BASE + self.max_bytes_in_flight as u64
            + self.spare_bodies_bytes as u64
            + self.threads as u64 * 3 * self.max_decoded_bytes as u64
    }

    /// The most memory these sizes let clients make the server hold (the formula above).
    pub fn worst_case(&self) -> u64 {
        self.worst_case_without_series() + self.series_max as u64 * SERIES_BYTES
    }

    /// A warning to log at start when given flags allow more than [`TARGET`] of `limit`.
    pub fn overcommit(&self, limit: Option<u64>) -> Option<String> {
        let limit = limit?;
        (self.worst_case() > self.target(limit)).then(|| {
            format!(
                "the flags allow {} of memory, past 90% of the memory limit {}: the memory guard \
                 refuses new series before --series.max is reached, and a burst of requests can \
                 pass the limit",
                format_size(self.worst_case()),
                format_size(limit)
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn without_a_limit_the_documented_defaults_hold() {
        let sizing = Sizing::derive(None, 8, Given::default());
        assert_eq!(
            sizing,
            Sizing {
                threads: 8,
                ..UNLIMITED
            }
        );
        assert_eq!(sizing.overcommit(None), None);
    }

    #[test]
    fn derived_sizes_stay_under_90_percent_of_the_limit() {
        for limit_mib in [64, 128, 256, 512, 1024, 4096] {
            let limit = limit_mib * MIB;
            for cpus in [1, 2, 8, 64] {
                let sizing = Sizing::derive(Some(limit), cpus, Given::default());
                assert!(
                    sizing.worst_case() <= sizing.target(limit),
                    "{limit_mib} MiB, {cpus} CPUs: {sizing:?} allows {}",
                    sizing.worst_case()
                );
                assert_eq!(sizing.overcommit(Some(limit)), None);
                assert!(
                    sizing.max_decoded_bytes >= 2 << 20,
                    "a Prometheus batch fits"
                );
            }
        }
    }

    #[test]
    fn the_figures_docs_give_for_64_256_and_512_mib() {
        let at = |mib: u64| Sizing::derive(Some(mib * MIB), 2, Given::default());
        assert_eq!(at(64).series_max, 164_435);
        assert_eq!(at(64).max_bytes_in_flight, 8 << 20);
        assert_eq!(at(256).series_max, 1_015_212);
        assert_eq!(at(512).series_max, 2_078_086);
        assert_eq!(at(512).max_decoded_bytes, 4 << 20);
        let four_cpus = Sizing::derive(Some(512 * MIB), 4, Given::default());
        assert_eq!((four_cpus.threads, four_cpus.series_max), (4, 1_935_099));
    }

    #[test]
    fn a_flag_given_wins_and_an_overcommit_is_told() {
        let given = Given {
            series_max: Some(2_000_000),
            ..Given::default()
        };
        let sizing = Sizing::derive(Some(64 * MIB), 2, given);
        assert_eq!(sizing.series_max, 2_000_000);
        assert_eq!(
            sizing.max_bytes_in_flight,
            8 << 20,
            "the rest still derived"
        );
        let warning = sizing.overcommit(Some(64 * MIB)).unwrap();
        assert!(warning.contains("64MiB"), "{warning}");
    }
}
