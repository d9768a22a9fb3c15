//! One scrape's page: the snapshot's families, named as the scraper asked, written in the
//! negotiated format as the page is made.

use std::io::{self, Write};

use crate::expose::groups::{group_families, BlockSyntax, LabelBlocks, Twins};
use crate::expose::naming::Naming;
use crate::expose::negotiate::{Format, Negotiated};
use crate::expose::page::PageWriter;
use crate::expose::{openmetrics, openmetrics2, protobuf, text};
use crate::store::Snapshot;

/// Renders the whole page into memory. Through the same `dyn Write` a scrape writes to, so
/// that each format's writer is compiled once: the static binary has a size budget.
pub fn render(snapshot: &Snapshot, negotiated: Negotiated, expose_timestamps: bool) -> Vec<u8> {
    let mut page = Vec::with_capacity(snapshot.series.len() * 160);
    let out: &mut dyn Write = &mut page;
    render_to(
        snapshot,
        negotiated,
        expose_timestamps,
        &mut Vec::new(),
        out,
    )
    .expect("writing to a Vec cannot fail");
    page
}

/// Writes the page of the snapshot to `out` as it is made, so that a scrape holds 64 KiB of it
/// at a time rather than the whole page; stops at the first write error. Gives back `out` and
/// how many series were left off the page because their shown names collide.
///
/// The label blocks are written in `block_bytes`, which is left empty for the next scrape:
/// two megabytes for 100k cAdvisor series, which musl maps afresh for every scrape and unmaps
/// after it, so that filling them cost the static build 600 page faults and 6% of its scrape
/// time; glibc keeps such a block after its first free anyway. If the page used less than
/// half of their room (the store has shrunk), they are let go.
pub fn render_to<W: Write>(
    snapshot: &Snapshot,
    negotiated: Negotiated,
    expose_timestamps: bool,
    block_bytes: &mut Vec<u8>,
    out: W,
) -> io::Result<(W, u64)> {
    let naming = Naming::new(snapshot, negotiated.escaping);
    let twins = match negotiated.format {
        Format::OpenMetrics200 => Twins::Kept,
        _ => Twins::LeftOut,
    };
    let grouped = group_families(snapshot, &naming, twins);
    let syntax = match negotiated.format {
        Format::Protobuf => BlockSyntax::Protobuf,
        _ => BlockSyntax::Text,
    };
    let mut blocks = LabelBlocks::new(block_bytes, &grouped.ranks, &naming, syntax);
    let mut out = PageWriter::new(out);
    let mut left_out = grouped.left_out;
    match negotiated.format {
        Format::Text004 | Format::Text100 => {
            text::write_page(&mut out, &grouped, &mut blocks, expose_timestamps)
        }
        Format::OpenMetrics001 | Format::OpenMetrics100 => {
            openmetrics::write_page(&mut out, &grouped, &mut blocks, expose_timestamps)
        }
        Format::OpenMetrics200 => {
            left_out += openmetrics2::write_page(&mut out, &grouped, &mut blocks, expose_timestamps)
        }
        Format::Protobuf => {
            protobuf::write_page(&mut out, &grouped, &mut blocks, expose_timestamps)
        }
    }
    blocks.release();
    out.finish().map(|out| (out, left_out))
}
