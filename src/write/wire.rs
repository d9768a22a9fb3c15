//! A zero-allocation reader of remote-write protobuf: `prometheus.WriteRequest` (1.0) and
//! `io.prometheus.write.v2.Request` (2.0).
//!
//! prost allocates a `Vec` of labels per series and a `String` or `Bytes` per label; at 2000
//! series of 12 labels per request that dominated ingest. This reader walks the wire format once
//! and records where each label, sample and metadata entry sits, as offsets into the
//! decompressed buffer, in vectors that are reused from request to request; native histograms
//! and exemplars, rare beside samples, are recorded as the spans of their messages and read when
//! their series is ingested (`histogram`, `exemplar`). The whole request is read before
//! anything is stored, so a malformed one changes nothing.
//!
//! Field numbers are those of `proto/remote.proto` and `proto/write_v2.proto`; wire format per
//! https://protobuf.dev/programming-guides/encoding/. As in protobuf, unknown fields are skipped
//! and a repeated scalar field keeps its last value.

use std::fmt;
use std::ops::Range;

/// Why a request is not valid protobuf; small and `Copy`, since every read returns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireError {
    Truncated,
    VarintTooLong,
    InvalidFieldNumber,
    WrongWireType { message: &'static str, field: u32 },
    UnsupportedWireType(u8),
    TooLarge,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Truncated => f.write_str("a field runs past the end of its message"),
            WireError::VarintTooLong => f.write_str("varint longer than 10 bytes"),
            WireError::InvalidFieldNumber => f.write_str("invalid field number"),
            WireError::WrongWireType { message, field } => {
                write!(f, "{message} field {field} has the wrong wire type")
            }
            WireError::UnsupportedWireType(wire_type) => {
                write!(f, "unsupported wire type {wire_type}")
            }
            WireError::TooLarge => f.write_str("request over 4 GiB"),
        }
    }
}

/// Where some bytes sit in the decompressed buffer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Span {
    start: u32,
    end: u32,
}

impl Span {
    fn range(self) -> Range<usize> {
        self.start as usize..self.end as usize
    }

    /// The bytes the span points at in `message`, the bytes it was read from.
    pub(super) fn of(self, message: &[u8]) -> &[u8] {
        &message[self.range()]
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LabelSpan {
    pub name: Span,
    pub value: Span,
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct WireSample {
    pub value: f64,
    pub timestamp: i64,
    /// Remote write 2.0 `Sample.start_timestamp` (field 3), in ms; 0 when not sent.
    pub start_timestamp: i64,
}

/// One `TimeSeries`: index ranges into the batch's labels and samples.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeriesEntry {
    pub labels: Range<u32>,
    pub samples: Range<u32>,
    /// Index range into the batch's native histogram messages.
    pub histograms: Range<u32>,
    /// Index range into the batch's exemplar messages.
    pub exemplars: Range<u32>,
    /// `TimeSeries.created_timestamp` (field 6) of the drafts of remote write 2.0 before the
    /// start timestamp moved into each sample and histogram (the published `types.proto`
    /// reserves field 6), in ms; 0 when not sent.
    pub draft_created_ms: i64,
    /// A 2.0 series whose references cannot be resolved: its samples cannot be stored.
    pub problem: Option<ReferenceProblem>,
}

/// Which protocol a request body is: remote write 1.0 (`prometheus.WriteRequest`) or 2.0
/// (`io.prometheus.write.v2.Request`), as its `Content-Type` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    #[default]
    V1,
    V2,
}

/// Why a remote-write 2.0 series' references do not resolve (spec: "Remote-Write 2.0",
/// symbols and references).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReferenceProblem {
    /// `labels_refs` has an odd number of entries.
    OddLabelsRefs(usize),
    /// A reference past the end of `symbols`.
    OutOfRange { reference: u64, symbols: usize },
}

impl fmt::Display for ReferenceProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReferenceProblem::OddLabelsRefs(count) => {
                write!(f, "labels_refs has {count} entries, not name-value pairs")
            }
            ReferenceProblem::OutOfRange { reference, symbols } => {
                write!(
                    f,
                    "symbol reference {reference} is out of range ({symbols} symbols)"
                )
            }
        }
    }
}

/// One `MetricMetadata`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MetadataEntry {
    pub kind: i32,
    pub family: Span,
    pub help: Span,
    pub unit: Span,
}

/// A decoded request: the decompressed bytes and where everything sits in them. Reused across
/// requests by one thread, so that steady-state decoding allocates nothing.
#[derive(Debug, Default)]
pub struct WriteBatch {
    /// Grows to the largest request seen; only `buffer[..len]` holds the current one, so a
    /// reused buffer is never zeroed again (that cost as much as the protobuf walk).
    buffer: Vec<u8>,
    len: usize,
    pub series: Vec<SeriesEntry>,
    pub labels: Vec<LabelSpan>,
    pub samples: Vec<WireSample>,
    pub metadata: Vec<MetadataEntry>,
    /// Native histogram messages, read when the series is ingested.
    pub histograms: Vec<Span>,
    /// Exemplar messages, read when the series is ingested.
    pub exemplars: Vec<Span>,
    /// Which protocol the request is: how its exemplars name their labels.
    pub protocol: Protocol,
    /// A 2.0 request's symbol table, in order.
    symbols: Vec<Span>,
    /// One 2.0 series' label references, reused from series to series.
    references: Vec<u64>,
    /// A 2.0 request whose first symbol is not the empty string, as the spec requires: its
    /// series are still read, and the sender is told.
    pub first_symbol_not_empty: bool,
}

/// Buffers grown past this by one large request are given back after it.
pub(crate) const KEEP_CAPACITY_BYTES: usize = 4 << 20;

impl WriteBatch {
    /// The buffer to decompress into, `len` bytes long; what was there before is discarded.
    pub fn buffer_for(&mut self, len: usize) -> &mut [u8] {
        if self.buffer.len() < len {
            self.buffer.resize(len, 0);
        }
        self.len = len;
        &mut self.buffer[..len]
    }

    /// Reads the request now in the buffer, of either protocol, into the same entries: a 2.0
    /// request's references become spans of its symbols, so that both are ingested alike.
    pub fn parse(&mut self, protocol: Protocol) -> Result<(), WireError> {
        self.series.clear();
        self.labels.clear();
        self.samples.clear();
        self.metadata.clear();
        self.histograms.clear();
        self.exemplars.clear();
        self.symbols.clear();
        self.protocol = protocol;
        self.first_symbol_not_empty = false;
        let buffer = std::mem::take(&mut self.buffer);
        let result = if self.len > u32::MAX as usize {
            Err(WireError::TooLarge)
        } else {
            match protocol {
                Protocol::V1 => self.parse_request(&buffer[..self.len]),
                Protocol::V2 => self.parse_request_v2(&buffer[..self.len]),
            }
        };
        self.buffer = buffer;
        result
    }

    /// The bytes a span points at.
    pub fn bytes(&self, span: Span) -> &[u8] {
        &self.buffer[span.range()]
    }

    pub fn labels_of(&self, series: &SeriesEntry) -> &[LabelSpan] {
        &self.labels[series.labels.start as usize..series.labels.end as usize]
    }

    pub fn samples_of(&self, series: &SeriesEntry) -> &[WireSample] {
        &self.samples[series.samples.start as usize..series.samples.end as usize]
    }

    /// The series' native histogram messages, each as its bytes.
    pub fn histograms_of(&self, series: &SeriesEntry) -> impl Iterator<Item = &[u8]> {
        self.histograms[series.histograms.start as usize..series.histograms.end as usize]
            .iter()
            .map(|span| self.bytes(*span))
    }

    /// The series' exemplar messages, each as its bytes.
    pub fn exemplars_of(&self, series: &SeriesEntry) -> impl Iterator<Item = &[u8]> {
        self.exemplars[series.exemplars.start as usize..series.exemplars.end as usize]
            .iter()
            .map(|span| self.bytes(*span))
    }

    /// Gives back memory one unusually large request made this batch hold.
    pub fn shrink(&mut self) {
        if self.buffer.capacity() > KEEP_CAPACITY_BYTES {
            self.buffer = Vec::new();
            self.len = 0;
            self.series = Vec::new();
            self.labels = Vec::new();
            self.samples = Vec::new();
            self.metadata = Vec::new();
            self.histograms = Vec::new();
            self.exemplars = Vec::new();
            self.symbols = Vec::new();
        }
    }

    /// An entry for the next series, its label and sample ranges empty where it starts.
    fn new_entry(&self) -> SeriesEntry {
        let at = |list_len: usize| list_len as u32..list_len as u32;
        SeriesEntry {
            labels: at(self.labels.len()),
            samples: at(self.samples.len()),
            histograms: at(self.histograms.len()),
            exemplars: at(self.exemplars.len()),
            ..Default::default()
        }
    }

    /// Closes an entry's sample, histogram and exemplar ranges where the lists now end.
    fn end_entry(&self, entry: &mut SeriesEntry) {
        entry.samples.end = self.samples.len() as u32;
        entry.histograms.end = self.histograms.len() as u32;
        entry.exemplars.end = self.exemplars.len() as u32;
    }

    fn parse_request(&mut self, buffer: &[u8]) -> Result<(), WireError> {
        let mut reader = Reader {
            buffer,
            position: 0,
            end: buffer.len(),
        };
        while let Some((field, wire_type)) = reader.key()? {
            match (field, wire_type) {
                (1, LEN) => {
                    let message = reader.sub_message()?;
                    self.parse_series(message)?;
                }
                (3, LEN) => {
                    let message = reader.sub_message()?;
                    self.parse_metadata(message)?;
                }
                (1 | 3, _) => return Err(wrong_type("WriteRequest", field)),
                _ => reader.skip(wire_type)?,
            }
        }
        Ok(())
    }

    fn parse_series(&mut self, mut reader: Reader) -> Result<(), WireError> {
        let mut entry = self.new_entry();
        loop {
            if let Some(label) = reader.usual_label() {
                self.labels.push(label);
                continue;
            }
            let Some((field, wire_type)) = reader.key()? else {
                break;
            };
            match (field, wire_type) {
                (1, LEN) => self.labels.push(parse_label(reader.sub_message()?)?),
                (2, LEN) => self
                    .samples
                    .push(parse_sample(reader.sub_message()?, Protocol::V1)?),
                (3, LEN) => self.exemplars.push(reader.span()?),
                (4, LEN) => self.histograms.push(reader.span()?),
                (1..=4, _) => return Err(wrong_type("TimeSeries", field)),
                _ => reader.skip(wire_type)?,
            }
        }
        entry.labels.end = self.labels.len() as u32;
        self.end_entry(&mut entry);
        self.series.push(entry);
        Ok(())
    }

    fn parse_metadata(&mut self, mut reader: Reader) -> Result<(), WireError> {
        let mut entry = MetadataEntry::default();
        while let Some((field, wire_type)) = reader.key()? {
            match (field, wire_type) {
                (1, VARINT) => entry.kind = reader.varint()? as i32,
                (2, LEN) => entry.family = reader.span()?,
                (4, LEN) => entry.help = reader.span()?,
                (5, LEN) => entry.unit = reader.span()?,
                (1 | 2 | 4 | 5, _) => return Err(wrong_type("MetricMetadata", field)),
                _ => reader.skip(wire_type)?,
            }
        }
        self.metadata.push(entry);
        Ok(())
    }
}

impl WriteBatch {
    /// `io.prometheus.write.v2.Request`: the symbols (field 4) first, wherever they stand,
    /// then the series (field 5).
    fn parse_request_v2(&mut self, buffer: &[u8]) -> Result<(), WireError> {
        let whole = || Reader {
            buffer,
            position: 0,
            end: buffer.len(),
        };
        let mut reader = whole();
        while let Some((field, wire_type)) = reader.key()? {
            match (field, wire_type) {
                (4, LEN) => self.symbols.push(reader.span()?),
                (4 | 5, _) if wire_type != LEN => return Err(wrong_type("Request", field)),
                _ => reader.skip(wire_type)?,
            }
        }
        self.first_symbol_not_empty = self.symbols.first().is_some_and(|s| s.start != s.end);
        let mut reader = whole();
        while let Some((field, wire_type)) = reader.key()? {
            match field {
                5 => {
                    let message = reader.sub_message()?;
                    self.parse_series_v2(message)?;
                }
                _ => reader.skip(wire_type)?,
            }
        }
        Ok(())
    }

    /// The symbol a 2.0 reference points at.
    pub fn symbol(&self, reference: u64) -> Result<Span, ReferenceProblem> {
        usize::try_from(reference)
            .ok()
            .and_then(|at| self.symbols.get(at).copied())
            .ok_or(ReferenceProblem::OutOfRange {
                reference,
                symbols: self.symbols.len(),
            })
    }

    /// One 2.0 `TimeSeries`. Its labels become spans of the symbols they reference; its
    /// metadata, when it says anything, becomes an entry for its family.
    fn parse_series_v2(&mut self, mut reader: Reader) -> Result<(), WireError> {
        let mut entry = self.new_entry();
        let mut references = std::mem::take(&mut self.references);
        references.clear();
        let mut metadata = None;
        while let Some((field, wire_type)) = reader.key()? {
            match (field, wire_type) {
                (1, LEN) => {
                    let mut packed = reader.sub_message()?;
                    while packed.position < packed.end {
                        references.push(packed.varint()?);
                    }
                }
                (1, VARINT) => references.push(reader.varint()?),
                (2, LEN) => self
                    .samples
                    .push(parse_sample(reader.sub_message()?, Protocol::V2)?),
                (3, LEN) => self.histograms.push(reader.span()?),
                (4, LEN) => self.exemplars.push(reader.span()?),
                (5, LEN) => metadata = Some(parse_metadata_v2(reader.sub_message()?)?),
                (6, VARINT) => entry.draft_created_ms = reader.varint()? as i64,
                (1..=6, _) => return Err(wrong_type("TimeSeries", field)),
                _ => reader.skip(wire_type)?,
            }
        }
        self.end_entry(&mut entry);
        match self.resolve_series(reader.buffer, &references, metadata) {
            Ok(()) => entry.labels.end = self.labels.len() as u32,
            Err(problem) => {
                self.labels.truncate(entry.labels.start as usize);
                entry.problem = Some(problem);
            }
        }
        self.references = references;
        self.series.push(entry);
        Ok(())
    }

    /// Turns a series' label references into labels, and its metadata references into an
    /// entry named for the family its metric name belongs to. `buffer` is the request (taken
    /// out of the batch while it is read).
    fn resolve_series(
        &mut self,
        buffer: &[u8],
        references: &[u64],
        metadata: Option<(i32, u64, u64)>,
    ) -> Result<(), ReferenceProblem> {
        if !references.len().is_multiple_of(2) {
            return Err(ReferenceProblem::OddLabelsRefs(references.len()));
        }
        let mut metric_name = None;
        for pair in references.chunks_exact(2) {
            let label = LabelSpan {
                name: self.symbol(pair[0])?,
                value: self.symbol(pair[1])?,
            };
            if &buffer[label.name.range()] == b"__name__" {
                metric_name = Some(label.value);
            }
            self.labels.push(label);
        }
        let Some((kind, help_ref, unit_ref)) = metadata else {
            return Ok(());
        };
        let (help, unit) = (self.symbol(help_ref)?, self.symbol(unit_ref)?);
        let says_something = kind != 0 || help.start != help.end || unit.start != unit.end;
        if let (true, Some(name)) = (says_something, metric_name) {
            let family = family_span(&buffer[name.range()], name, kind);
            self.metadata.push(MetadataEntry {
                kind,
                family,
                help,
                unit,
            });
        }
        Ok(())
    }
}

/// The family a 2.0 series' metadata describes: remote write 2.0 sends metadata per series,
/// 1.0 per family, so a histogram's `x_bucket`, `x_sum` and `x_count` (a gauge histogram's
/// `x_gcount` and `x_gsum`, as Prometheus stores them from OpenMetrics; a summary's `x_sum`
/// and `x_count`) describe the family `x`.
fn family_span(name: &[u8], span: Span, kind: i32) -> Span {
    let suffixes: &[&[u8]] = match kind {
        3 => &[b"_bucket", b"_sum", b"_count"],
        4 => &[b"_bucket", b"_gcount", b"_gsum", b"_sum", b"_count"],
        5 => &[b"_sum", b"_count"],
        _ => &[],
    };
    let trimmed = suffixes
        .iter()
        .find(|suffix| name.len() > suffix.len() && name.ends_with(suffix))
        .map_or(0, |suffix| suffix.len() as u32);
    Span {
        start: span.start,
        end: span.end - trimmed,
    }
}

/// A 2.0 `Metadata`: the type, and the references of its help and unit.
fn parse_metadata_v2(mut reader: Reader) -> Result<(i32, u64, u64), WireError> {
    let (mut kind, mut help, mut unit) = (0, 0, 0);
    while let Some((field, wire_type)) = reader.key()? {
        match (field, wire_type) {
            (1, VARINT) => kind = reader.varint()? as i32,
            (3, VARINT) => help = reader.varint()?,
            (4, VARINT) => unit = reader.varint()?,
            (1 | 3 | 4, _) => return Err(wrong_type("Metadata", field)),
            _ => reader.skip(wire_type)?,
        }
    }
    Ok((kind, help, unit))
}

pub(super) fn parse_label(mut reader: Reader) -> Result<LabelSpan, WireError> {
    let mut label = LabelSpan::default();
    while let Some((field, wire_type)) = reader.key()? {
        match (field, wire_type) {
            (1, LEN) => label.name = reader.span()?,
            (2, LEN) => label.value = reader.span()?,
            (1 | 2, _) => return Err(wrong_type("Label", field)),
            _ => reader.skip(wire_type)?,
        }
    }
    Ok(label)
}

/// A `Sample`: value and timestamp, and in 2.0 its start timestamp (field 3, which 1.0 does
/// not have, so there it is skipped as any unknown field).
fn parse_sample(mut reader: Reader, protocol: Protocol) -> Result<WireSample, WireError> {
    let mut sample = WireSample::default();
    while let Some((field, wire_type)) = reader.key()? {
        match (field, wire_type) {
            (1, I64) => sample.value = f64::from_bits(reader.fixed64()?),
            (2, VARINT) => sample.timestamp = reader.varint()? as i64,
            (3, VARINT) if protocol == Protocol::V2 => {
                sample.start_timestamp = reader.varint()? as i64
            }
            (1 | 2, _) => return Err(wrong_type("Sample", field)),
            (3, _) if protocol == Protocol::V2 => return Err(wrong_type("Sample", field)),
            _ => reader.skip(wire_type)?,
        }
    }
    Ok(sample)
}

pub(crate) fn wrong_type(message: &'static str, field: u32) -> WireError {
    WireError::WrongWireType { message, field }
}

/// The field at `at` in `message` when its key is the single byte `key` and its length fits in
/// two bytes: where its contents lie, and where the next field starts.
fn short_field(message: &[u8], at: usize, key: u8) -> Option<(Range<usize>, usize)> {
    if *message.get(at)? != key {
        return None;
    }
    let (len, start) = short_length(message, at + 1)?;
    let end = start + len;
    (end <= message.len()).then_some((start..end, end))
}

/// The length at `at` in `bytes` when it fits in two bytes (and two bytes are there): the
/// length, and where what it measures starts.
fn short_length(bytes: &[u8], at: usize) -> Option<(usize, usize)> {
    let (&first, &second) = (bytes.get(at)?, bytes.get(at + 1)?);
    if first < 0x80 {
        Some((usize::from(first), at + 1))
    } else if second < 0x80 {
        Some((usize::from(first & 0x7f) | usize::from(second) << 7, at + 2))
    } else {
        None
    }
}

pub(crate) const VARINT: u8 = 0;
pub(crate) const I64: u8 = 1;
pub(crate) const LEN: u8 = 2;
const I32: u8 = 5;

/// A cursor over one message: `buffer[position..end]`.
pub(crate) struct Reader<'a> {
    buffer: &'a [u8],
    position: usize,
    end: usize,
}

impl<'a> Reader<'a> {
    /// A reader of a whole message.
    pub(crate) fn new(buffer: &'a [u8]) -> Reader<'a> {
        Reader {
            buffer,
            position: 0,
            end: buffer.len(),
        }
    }

    /// How many bytes of the message are left to read.
    pub(crate) fn remaining(&self) -> usize {
        self.end - self.position
    }

    /// Whether the message is read to its end.
    pub(crate) fn at_end(&self) -> bool {
        self.position == self.end
    }

    /// The next field number and wire type, or `None` at the end of the message.
    pub(crate) fn key(&mut self) -> Result<Option<(u32, u8)>, WireError> {
        if self.position == self.end {
            return Ok(None);
        }
        let key = self.varint()?;
        let field = key >> 3;
        if field == 0 || field > u64::from(u32::MAX >> 3) {
            return Err(WireError::InvalidFieldNumber);
        }
        Ok(Some((field as u32, (key & 7) as u8)))
    }

    pub(crate) fn varint(&mut self) -> Result<u64, WireError> {
        let bytes = &self.buffer[self.position..self.end];
        // Keys and most lengths fit in one byte.
        match bytes.first() {
            Some(&byte) if byte < 0x80 => {
                self.position += 1;
                return Ok(u64::from(byte));
            }
            None => return Err(WireError::Truncated),
            Some(_) => {}
        }
        // Bits of a tenth byte beyond 64 are dropped, as Prometheus's own (gogo) decoder and
        // C++ protobuf drop them; prost and Go's protowire refuse such a varint instead.
        let mut value: u64 = 0;
        for (i, &byte) in bytes.iter().take(10).enumerate() {
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte < 0x80 {
                self.position += i + 1;
                return Ok(value);
            }
        }
        Err(if bytes.len() < 10 {
            WireError::Truncated
        } else {
            WireError::VarintTooLong
        })
    }

    pub(crate) fn fixed64(&mut self) -> Result<u64, WireError> {
        let bytes = self.take(8)?;
        Ok(u64::from_le_bytes(
            bytes.try_into().expect("took eight bytes"),
        ))
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], WireError> {
        if self.end - self.position < len {
            return Err(WireError::Truncated);
        }
        let bytes = &self.buffer[self.position..self.position + len];
        self.position += len;
        Ok(bytes)
    }

    /// A length-delimited field, as a span of the buffer.
    fn span(&mut self) -> Result<Span, WireError> {
        let len = self.varint()?;
        let len = usize::try_from(len).map_err(|_| WireError::Truncated)?;
        let start = self.position;
        self.take(len)?;
        Ok(Span {
            start: start as u32,
            end: self.position as u32,
        })
    }

    /// A `TimeSeries` label field (field 1) as every encoder writes one: the name (field 1),
    /// then the value (field 2), and nothing else, each shorter than 16 KiB. Read without the
    /// general loop, since labels are most of a request; `None` leaves anything else to it.
    fn usual_label(&mut self) -> Option<LabelSpan> {
        let rest = &self.buffer[self.position..self.end];
        let (message, after) = short_field(rest, 0, 0x0a)?;
        let (name, after_name) = short_field(rest, message.start, 0x0a)?;
        let (value, end) = short_field(rest, after_name, 0x12)?;
        if end != message.end {
            return None;
        }
        let at = |range: Range<usize>| Span {
            start: (self.position + range.start) as u32,
            end: (self.position + range.end) as u32,
        };
        let label = LabelSpan {
            name: at(name),
            value: at(value),
        };
        self.position += after;
        Some(label)
    }

    /// A length-delimited field's bytes.
    pub(crate) fn bytes(&mut self) -> Result<&'a [u8], WireError> {
        let span = self.span()?;
        Ok(&self.buffer[span.range()])
    }

    /// A length-delimited field holding an OTLP `KeyValue` with a string value as every
    /// encoder writes one: the key (field 1), then the value (field 2) holding only
    /// `string_value` (field 1), each shorter than 16 KiB. Read in place, without the general
    /// loop, since such attributes are most of an OTLP request: the key's and the string's
    /// bytes. `None` leaves the field unread, for the general loop.
    pub(crate) fn usual_key_value_field(&mut self) -> Option<(&'a [u8], &'a [u8])> {
        let rest = &self.buffer[self.position..self.end];
        let (len, start) = short_length(rest, 0)?;
        let message = rest.get(start..start + len)?;
        let (key, after_key) = short_field(message, 0, 0x0a)?;
        let (any_value, end) = short_field(message, after_key, 0x12)?;
        let (string, after_string) = short_field(message, any_value.start, 0x0a)?;
        if after_string != any_value.end || end != message.len() {
            return None;
        }
        self.position += start + len;
        Some((&message[key], &message[string]))
    }

    /// A length-delimited field, as a reader of the message inside it.
    pub(crate) fn sub_message(&mut self) -> Result<Reader<'a>, WireError> {
        let span = self.span()?;
        Ok(Reader {
            buffer: self.buffer,
            position: span.start as usize,
            end: span.end as usize,
        })
    }

    pub(crate) fn skip(&mut self, wire_type: u8) -> Result<(), WireError> {
        match wire_type {
            VARINT => self.varint().map(drop),
            I64 => self.take(8).map(drop),
            LEN => self.span().map(drop),
            I32 => self.take(4).map(drop),
            other => Err(WireError::UnsupportedWireType(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::write::proto::{
        v2, Exemplar, Histogram, Label, MetricMetadata, Sample, TimeSeries, WriteRequest,
    };
    use prost::Message;

    fn parse(bytes: &[u8]) -> Result<WriteBatch, WireError> {
        let mut batch = WriteBatch::default();
        batch.buffer_for(bytes.len()).copy_from_slice(bytes);
        batch.parse(Protocol::V1).map(|()| batch)
    }

    fn label(name: &str, value: &str) -> Label {
        Label {
            name: name.as_bytes().to_vec().into(),
            value: value.as_bytes().to_vec().into(),
        }
    }

    fn request() -> WriteRequest {
        WriteRequest {
            timeseries: vec![
                TimeSeries {
                    labels: vec![label("__name__", "up"), label("job", "a")],
                    samples: vec![
                        Sample {
                            value: 1.5,
                            timestamp: 1000,
                        },
                        Sample {
                            value: -2.0,
                            timestamp: -5,
                        },
                    ],
                    exemplars: vec![Exemplar {
                        value: 1.0,
                        ..Default::default()
                    }],
                    histograms: vec![
                        Histogram {
                            sum: 2.0,
                            ..Default::default()
                        },
                        Histogram {
                            sum: 3.0,
                            ..Default::default()
                        },
                    ],
                },
                TimeSeries {
                    labels: vec![label("__name__", "")],
                    samples: vec![],
                    ..Default::default()
                },
            ],
            metadata: vec![MetricMetadata {
                r#type: 3,
                metric_family_name: b"h".to_vec().into(),
                help: b"help".to_vec().into(),
                unit: b"seconds".to_vec().into(),
            }],
        }
    }

    #[test]
    fn reads_what_prost_writes() {
        let batch = parse(&request().encode_to_vec()).unwrap();
        assert_eq!(batch.series.len(), 2);
        let first = &batch.series[0];
        let labels: Vec<(&[u8], &[u8])> = batch
            .labels_of(first)
            .iter()
            .map(|l| (batch.bytes(l.name), batch.bytes(l.value)))
            .collect();
        assert_eq!(
            labels,
            [(&b"__name__"[..], &b"up"[..]), (&b"job"[..], &b"a"[..])]
        );
        assert_eq!(
            batch.samples_of(first),
            [
                WireSample {
                    value: 1.5,
                    timestamp: 1000,
                    start_timestamp: 0
                },
                WireSample {
                    value: -2.0,
                    timestamp: -5,
                    start_timestamp: 0
                }
            ]
        );
        assert_eq!((first.exemplars.len(), first.histograms.len()), (1, 2));
        let histograms: Vec<Histogram> = batch
            .histograms_of(first)
            .map(|bytes| Histogram::decode(bytes).unwrap())
            .collect();
        assert_eq!(histograms, request().timeseries[0].histograms);
        assert!(batch.samples_of(&batch.series[1]).is_empty());
        let metadata = batch.metadata[0];
        assert_eq!(metadata.kind, 3);
        assert_eq!(
            (
                batch.bytes(metadata.family),
                batch.bytes(metadata.help),
                batch.bytes(metadata.unit)
            ),
            (&b"h"[..], &b"help"[..], &b"seconds"[..])
        );
    }

    /// Labels as prost reads them, name and value of each.
    fn prost_labels(bytes: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        let request = WriteRequest::decode(bytes).expect("prost reads it");
        let labels = &request.timeseries[0].labels;
        labels
            .iter()
            .map(|l| (l.name.to_vec(), l.value.to_vec()))
            .collect()
    }

    #[test]
    fn labels_written_unusually_are_read_as_prost_reads_them() {
        // A series holding one label message, `label`.
        let series = |label: &[u8]| {
            let mut series = vec![0x0a, label.len() as u8];
            series.extend_from_slice(label);
            let mut request = vec![0x0a, series.len() as u8];
            request.extend(series);
            request
        };
        let long = vec![b'v'; 20_000];
        let mut long_label = vec![0x0a, 0x01, b'n', 0x12, 0xa0, 0x9c, 0x01];
        long_label.extend_from_slice(&long);
        let long_series = {
            let mut series = vec![0x0a, 0xa7, 0x9c, 0x01];
            series.extend_from_slice(&long_label);
            let mut request = vec![0x0a, 0xab, 0x9c, 0x01];
            request.extend(series);
            request
        };
        for bytes in [
            series(&[0x12, 0x01, b'v', 0x0a, 0x01, b'n']), // value first
            series(&[0x0a, 0x01, b'x', 0x0a, 0x01, b'n', 0x12, 0x01, b'v']), // name twice
            series(&[0x0a, 0x01, b'n', 0x12, 0x01, b'v', 0x18, 0x07]), // an unknown field after
            series(&[0x0a, 0x01, b'n', 0x12, 0x00]),       // empty value, at the end
            series(&[0x0a, 0x01, b'n']),                   // no value
            series(&[0x0a, 0x81, 0x00, b'n', 0x12, 0x01, b'v']), // a length in two bytes
            series(&[]),                                   // an empty label
            long_series,                                   // a length in three bytes
        ] {
            let batch = parse(&bytes).unwrap();
            let labels: Vec<(Vec<u8>, Vec<u8>)> = batch
                .labels
                .iter()
                .map(|l| (batch.bytes(l.name).to_vec(), batch.bytes(l.value).to_vec()))
                .collect();
            assert_eq!(
                labels,
                prost_labels(&bytes),
                "{:02x?}",
                &bytes[..bytes.len().min(16)]
            );
        }
    }

    #[test]
    fn stale_nan_bits_survive() {
        let stale = f64::from_bits(0x7ff0_0000_0000_0002);
        let request = WriteRequest {
            timeseries: vec![TimeSeries {
                samples: vec![Sample {
                    value: stale,
                    timestamp: 1,
                }],
                ..Default::default()
            }],
            metadata: vec![],
        };
        let batch = parse(&request.encode_to_vec()).unwrap();
        assert_eq!(batch.samples[0].value.to_bits(), 0x7ff0_0000_0000_0002);
    }

    #[test]
    fn unknown_fields_are_skipped() {
        // WriteRequest field 9 of every wire type, then the real request.
        let mut bytes = vec![
            0x48, 0x96, 0x01, 0x49, 1, 2, 3, 4, 5, 6, 7, 8, 0x4a, 0x02, 0xaa, 0xbb, 0x4d, 1, 2, 3,
            4,
        ];
        bytes.extend(request().encode_to_vec());
        assert_eq!(parse(&bytes).unwrap().series.len(), 2);
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let bytes = request().encode_to_vec();
        for len in 0..bytes.len() {
            // A cut can fall between top-level fields, which is a valid shorter request.
            let cut = &bytes[..len];
            let prost_accepts = WriteRequest::decode(cut).is_ok();
            assert_eq!(parse(cut).is_ok(), prost_accepts, "cut at {len}");
        }
    }

    #[test]
    fn malformed_input_is_refused() {
        for bad in [
            &[0x0a, 0x05, 0x0a][..],             // length past the end
            &[0x0b][..],                         // group wire type
            &[0x08, 0x01][..],                   // timeseries as a varint
            &[0x0a, 0x02, 0x12, 0x00, 0x00][..], // trailing key 0
            &[
                0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
            ][..],
        ] {
            assert!(parse(bad).is_err(), "{bad:02x?}");
            assert!(
                WriteRequest::decode(bad).is_err(),
                "prost agrees on {bad:02x?}"
            );
        }
    }

    #[test]
    fn a_reused_batch_forgets_the_previous_request() {
        let mut batch = parse(&request().encode_to_vec()).unwrap();
        let small = WriteRequest {
            timeseries: vec![TimeSeries::default()],
            metadata: vec![],
        }
        .encode_to_vec();
        batch.buffer_for(small.len()).copy_from_slice(&small);
        batch.parse(Protocol::V1).unwrap();
        assert_eq!(
            (
                batch.series.len(),
                batch.labels.len(),
                batch.samples.len(),
                batch.metadata.len()
            ),
            (1, 0, 0, 0)
        );
    }

    /// A 2.0 request as a sender builds it: symbols, and series that reference them.
    fn request_v2(symbols: &[&str], series: Vec<v2::TimeSeries>) -> Vec<u8> {
        v2::Request {
            symbols: symbols
                .iter()
                .map(|s| s.as_bytes().to_vec().into())
                .collect(),
            timeseries: series,
        }
        .encode_to_vec()
    }

    fn parse_v2(bytes: &[u8]) -> Result<WriteBatch, WireError> {
        let mut batch = WriteBatch::default();
        batch.buffer_for(bytes.len()).copy_from_slice(bytes);
        batch.parse(Protocol::V2).map(|()| batch)
    }

    fn text_labels(batch: &WriteBatch, series: &SeriesEntry) -> Vec<(String, String)> {
        batch
            .labels_of(series)
            .iter()
            .map(|label| {
                let text = |span| String::from_utf8(batch.bytes(span).to_vec()).unwrap();
                (text(label.name), text(label.value))
            })
            .collect()
    }

    #[test]
    fn a_v2_request_reads_as_prost_encoded_it() {
        let symbols = [
            "",
            "__name__",
            "http_request_duration_seconds_bucket",
            "le",
            "0.5",
            "job",
            "api",
            "Request latency.",
            "seconds",
            "up",
        ];
        let series = vec![
            v2::TimeSeries {
                labels_refs: vec![1, 2, 3, 4, 5, 6],
                samples: vec![v2::Sample {
                    value: 3.0,
                    timestamp: 1000,
                    start_timestamp: 500,
                }],
                exemplars: vec![
                    v2::Exemplar {
                        value: 1.0,
                        ..Default::default()
                    },
                    v2::Exemplar {
                        value: 2.0,
                        ..Default::default()
                    },
                ],
                metadata: Some(v2::Metadata {
                    r#type: 3,
                    help_ref: 7,
                    unit_ref: 8,
                }),
                ..Default::default()
            },
            v2::TimeSeries {
                labels_refs: vec![1, 9, 5, 6],
                samples: vec![v2::Sample {
                    value: 1.0,
                    timestamp: 2000,
                    start_timestamp: 0,
                }],
                histograms: vec![v2::Histogram {
                    count: Some(v2::histogram::Count::CountInt(1)),
                    start_timestamp: 700,
                    ..Default::default()
                }],
                metadata: Some(v2::Metadata::default()),
                ..Default::default()
            },
        ];
        let bytes = request_v2(&symbols, series.clone());
        let batch = parse_v2(&bytes).unwrap();
        assert!(!batch.first_symbol_not_empty);
        assert_eq!(batch.series.len(), 2);
        for (entry, sent) in batch.series.iter().zip(&series) {
            let expected: Vec<(String, String)> = sent
                .labels_refs
                .chunks(2)
                .map(|pair| {
                    (
                        symbols[pair[0] as usize].into(),
                        symbols[pair[1] as usize].into(),
                    )
                })
                .collect();
            assert_eq!(text_labels(&batch, entry), expected);
            let samples: Vec<(f64, i64, i64)> = batch
                .samples_of(entry)
                .iter()
                .map(|s| (s.value, s.timestamp, s.start_timestamp))
                .collect();
            let sent_samples: Vec<(f64, i64, i64)> = sent
                .samples
                .iter()
                .map(|s| (s.value, s.timestamp, s.start_timestamp))
                .collect();
            assert_eq!(samples, sent_samples);
            let exemplars: Vec<v2::Exemplar> = batch
                .exemplars_of(entry)
                .map(|bytes| v2::Exemplar::decode(bytes).unwrap())
                .collect();
            assert_eq!(exemplars, sent.exemplars);
            let histograms: Vec<v2::Histogram> = batch
                .histograms_of(entry)
                .map(|bytes| v2::Histogram::decode(bytes).unwrap())
                .collect();
            assert_eq!(histograms, sent.histograms);
            assert_eq!(entry.draft_created_ms, 0);
            assert_eq!(entry.problem, None);
        }
        // The histogram's bucket series describes its family; metadata saying nothing is no
        // entry at all.
        assert_eq!(batch.metadata.len(), 1);
        let metadata = batch.metadata[0];
        assert_eq!(
            batch.bytes(metadata.family),
            b"http_request_duration_seconds"
        );
        assert_eq!(
            (
                metadata.kind,
                batch.bytes(metadata.help),
                batch.bytes(metadata.unit)
            ),
            (3, &b"Request latency."[..], &b"seconds"[..])
        );
    }

    #[test]
    fn unpacked_label_references_read_as_packed_ones() {
        // Field 1 of TimeSeries as separate varints (wire type 0), as protobuf allows.
        let series = [
            0x08, 1, 0x08, 2, 0x12, 0x09, 0x09, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f,
        ];
        let mut bytes = request_v2(&["", "__name__", "up"], vec![]);
        bytes.push(0x2a);
        bytes.push(series.len() as u8);
        bytes.extend_from_slice(&series);
        let batch = parse_v2(&bytes).unwrap();
        let entry = &batch.series[0];
        assert_eq!(
            text_labels(&batch, entry),
            [("__name__".into(), "up".into())]
        );
        assert_eq!(batch.samples_of(entry)[0].value, 1.0);
    }

    #[test]
    fn a_draft_created_timestamp_is_read_and_a_1_0_sample_has_no_start() {
        let series = v2::TimeSeries {
            labels_refs: vec![1, 2],
            samples: vec![v2::Sample {
                value: 1.0,
                timestamp: 2000,
                ..Default::default()
            }],
            ..Default::default()
        };
        let mut bytes = request_v2(&["", "__name__", "up"], Vec::new());
        bytes.extend(crate::write::proto::draft_v2_series(&series, 1500));
        let batch = parse_v2(&bytes).unwrap();
        assert_eq!(batch.series[0].draft_created_ms, 1500);
        assert_eq!(text_labels(&batch, &batch.series[0])[0].1, "up");

        // Field 3 of a 1.0 `Sample` is no field of 1.0: skipped, as any unknown field.
        let v1_sample = [0x09, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f, 0x10, 0x02, 0x18, 0x07];
        let mut v1_series = Vec::new();
        prost::encoding::bytes::encode(2, &v1_sample.to_vec(), &mut v1_series);
        let mut v1 = Vec::new();
        prost::encoding::bytes::encode(1, &v1_series, &mut v1);
        let batch = parse(&v1).unwrap();
        assert_eq!(
            batch.samples,
            [WireSample {
                value: 1.0,
                timestamp: 2,
                start_timestamp: 0
            }]
        );
    }

    #[test]
    fn unresolvable_v2_references_cost_only_their_series() {
        let series = |labels_refs: Vec<u32>, help_ref: u32| v2::TimeSeries {
            labels_refs,
            samples: vec![v2::Sample {
                value: 1.0,
                timestamp: 1,
                ..Default::default()
            }],
            metadata: Some(v2::Metadata {
                r#type: 2,
                help_ref,
                unit_ref: 0,
            }),
            ..Default::default()
        };
        let bytes = request_v2(
            &["x", "__name__", "up"],
            vec![
                series(vec![1, 2, 1], 0),
                series(vec![1, 7], 0),
                series(vec![1, 2], 99),
                series(vec![1, 2], 0),
            ],
        );
        let batch = parse_v2(&bytes).unwrap();
        assert!(batch.first_symbol_not_empty);
        let problems: Vec<Option<ReferenceProblem>> =
            batch.series.iter().map(|s| s.problem).collect();
        assert_eq!(
            problems,
            [
                Some(ReferenceProblem::OddLabelsRefs(3)),
                Some(ReferenceProblem::OutOfRange {
                    reference: 7,
                    symbols: 3
                }),
                Some(ReferenceProblem::OutOfRange {
                    reference: 99,
                    symbols: 3
                }),
                None,
            ]
        );
        assert!(batch.series[..3]
            .iter()
            .all(|s| batch.labels_of(s).is_empty()));
        assert_eq!(
            text_labels(&batch, &batch.series[3]),
            [("__name__".into(), "up".into())]
        );
        assert_eq!(
            batch.metadata.len(),
            1,
            "only the resolvable series' metadata"
        );
    }

    #[test]
    fn a_v1_body_read_as_v2_yields_no_series() {
        // Fields 1 to 3 are reserved in 2.0 so that a 1.0 body sent as 2.0 reads as empty.
        let batch = parse_v2(&request().encode_to_vec()).unwrap();
        assert!(batch.series.is_empty() && batch.metadata.is_empty());
    }
}
