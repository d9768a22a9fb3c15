//! A snapshot's series gathered into metric families, in page order, for every format: which
//! family each series is shown in, which series a page must leave out because their shown
//! names collide, and the label blocks that many series share.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::sync::Arc;

use crate::expose::family::{compare_in_family, compare_plain, family_of};
use crate::expose::fields::write_label_pairs;
use crate::expose::lines::escape_label_value;
use crate::expose::naming::Naming;
use crate::expose::page::{PageWriter, Sink};
use crate::store::metadata::{Metadata, MetricKind};
use crate::store::{SeriesView, Snapshot};

/// How a label block is spelled.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum BlockSyntax {
    /// `{a="x",b="y"}`, or nothing for a series without labels: text formats and OpenMetrics.
    Text,
    /// One `Metric.label` field per label: the protobuf format.
    Protobuf,
}

/// Writes the label block of a series, from its schema's prefixes and its interned values.
fn write_text_block(out: &mut impl Sink, prefixes: &[Box<str>], series: &SeriesView) {
    for (prefix, value) in prefixes.iter().zip(series.values.iter()) {
        out.put(prefix.as_bytes());
        out.put(escape_label_value(value).as_bytes());
        out.put_byte(b'"');
    }
    if !prefixes.is_empty() {
        out.put_byte(b'}');
    }
}

/// Label blocks rendered once per scrape and copied for every series that has them: all metrics
/// of a container share their label names and value tuple, so a block is written once and
/// copied some 25 times.
pub struct LabelBlocks<'b> {
    /// The blocks, one after the other. A block's two dozen pieces are gathered in the writer's
    /// buffer and reach the `Vec` as one copy (see [`crate::expose::page`]).
    bytes: PageWriter<&'b mut Vec<u8>>,
    /// Where each block sits in `bytes`, by its rank ([`block_ranks`]); empty until written.
    /// A list rather than a table of its own: the ranks are hashed once per series already,
    /// and on musl a table grown per scrape is mapped afresh at each growth.
    places: Vec<Range<usize>>,
    naming: &'b Naming,
    syntax: BlockSyntax,
}

impl<'b> LabelBlocks<'b> {
    pub fn new(
        bytes: &'b mut Vec<u8>,
        ranks: &Ranks,
        naming: &'b Naming,
        syntax: BlockSyntax,
    ) -> LabelBlocks<'b> {
        bytes.clear();
        LabelBlocks {
            bytes: PageWriter::new(bytes),
            places: vec![0..0; ranks.len()],
            naming,
            syntax,
        }
    }

    /// Where the block of `series`, of this rank, sits: written now if it is the first of its
    /// kind (an empty block, of a series without labels, is written again, as nothing).
    pub fn place_of(&mut self, rank: usize, series: &SeriesView) -> Range<usize> {
        let place = &mut self.places[rank];
        if place.start == place.end {
            let start = self.bytes.written().len();
            match self.syntax {
                BlockSyntax::Text => {
                    let prefixes = self.naming.prefixes(&series.schema);
                    write_text_block(&mut self.bytes, prefixes, series);
                }
                BlockSyntax::Protobuf => {
                    let names = series.schema.label_names.iter();
                    let labels = names.map(|name| self.naming.escape(name, false));
                    write_label_pairs(
                        &mut self.bytes,
                        labels.zip(series.values.iter().map(|v| &**v)),
                    );
                }
            }
            *place = start..self.bytes.written().len();
        }
        place.clone()
    }

    /// Lets go of the block bytes: emptied, and their room too when the page used less than
    /// half of it (the store has shrunk), so that a peak is not held.
    pub fn release(self) {
        let bytes = self.bytes.finish().expect("writing to a Vec cannot fail");
        if bytes.len() * 2 < bytes.capacity() {
            *bytes = Vec::new();
        }
        bytes.clear();
    }

    pub fn at(&mut self, place: Range<usize>) -> &[u8] {
        &self.bytes.written()[place]
    }
}

/// Series rendered together: the views of a family sit in the snapshot in store order, not in
/// page order, so reading each is a cache miss, and so is finding its label block. Gathering a
/// batch's views and blocks in one short loop lets the processor wait for those misses at once
/// rather than one after the other, between the copies that make the page.
pub const GATHERED: usize = 32;

/// The help of a family whose sender sent no metadata for it.
pub const DEFAULT_HELP: &str = "Received by remote write; the sender sent no metadata for it.";

/// The series of one family, in exposition order.
pub struct FamilyGroup<'s> {
    /// The snapshot the members are of, which holds their extras.
    pub snapshot: &'s Snapshot,
    /// The family name as shown.
    pub name: String,
    pub metadata: Option<Metadata>,
    /// Whether, without metadata, a family of native histograms is typed `histogram` (see
    /// [`HistogramConflicts::names`]).
    natives_typed: bool,
    pub members: Vec<&'s SeriesView>,
    naming: &'s Naming,
}

impl<'s> FamilyGroup<'s> {
    /// A family of series that other groups hold: OpenMetrics 2.0 shows a classic gauge
    /// histogram `x` as one family, where the line formats show its `x_bucket`, `x_gcount` and
    /// `x_gsum` series as families of their own. Members in family order.
    pub fn gathered(
        name: &str,
        metadata: Metadata,
        parts: &[&FamilyGroup<'s>],
    ) -> Option<FamilyGroup<'s>> {
        let first = parts.first()?;
        let mut members: Vec<&'s SeriesView> = parts
            .iter()
            .flat_map(|part| part.members.iter().copied())
            .collect();
        sort_series(&mut members, &Order::InFamily);
        Some(FamilyGroup {
            snapshot: first.snapshot,
            name: name.to_owned(),
            metadata: Some(metadata),
            natives_typed: false,
            members,
            naming: first.naming,
        })
    }

    /// The family's kind as metadata says; without metadata, a family of native histograms is
    /// a histogram, since that is what the series are (unless other families would then be
    /// read as part of it).
    pub fn kind(&self) -> MetricKind {
        match &self.metadata {
            Some(metadata) => metadata.kind,
            None if self.natives_typed && self.members.iter().all(|s| self.is_native(s)) => {
                MetricKind::Histogram
            }
            None => MetricKind::Unknown,
        }
    }

    /// The family's type; `untyped` also when a member does not fit the declared type (a bare
    /// `x` beside histogram `x`, or `le="abc"`), so that the page still parses.
    pub fn type_word(&self) -> &'static str {
        let kind = self.kind();
        if self.fits(kind) {
            kind.text_type()
        } else {
            "untyped"
        }
    }

    /// Whether every member fits a family of this kind.
    pub fn fits(&self, kind: MetricKind) -> bool {
        self.members
            .iter()
            .all(|s| kind.admits_series(&self.name, self.shown_name(s), s, self.is_native(s)))
    }

    pub fn is_native(&self, series: &SeriesView) -> bool {
        self.snapshot.histogram_of(series).is_some()
    }

    /// The members split into one list per shown series name, natives apart from floats, in
    /// name order: what formats stricter than text 0.0.4 (OpenMetrics, protobuf) write as
    /// families of their own when the members do not fit the family's type.
    pub fn by_series_name(&self) -> Vec<Vec<&'s SeriesView>> {
        let mut members = self.members.clone();
        members.sort_by_key(|s| (self.shown_name(s), self.is_native(s)));
        members
            .chunk_by(|a, b| {
                self.shown_name(a) == self.shown_name(b) && self.is_native(a) == self.is_native(b)
            })
            .map(<[_]>::to_vec)
            .collect()
    }

    /// The help its sender sent, or [`DEFAULT_HELP`].
    pub fn help(&self) -> &str {
        self.metadata.as_ref().map_or(DEFAULT_HELP, |m| &m.help)
    }

    /// How the page shows names.
    pub fn naming(&self) -> &'s Naming {
        self.naming
    }

    /// A member's metric name as shown.
    pub fn shown_name<'a>(&'a self, series: &'a SeriesView) -> &'a str {
        self.naming.name(&series.schema)
    }
}

/// A snapshot's families, as one page shows them.
pub struct Grouped<'s> {
    /// The families in page order, each with its series in order.
    pub groups: Vec<FamilyGroup<'s>>,
    /// The ranks of the label blocks.
    pub ranks: Ranks,
    /// How many series were left out because their shown names are another's.
    pub left_out: u64,
    /// With [`Twins::Kept`], the native histograms kept although their lines are classic
    /// series' (by address): the formats that write a histogram as one value may show such a
    /// native histogram with its classic twin, in one metric.
    pub twins: HashSet<usize>,
}

/// What to do with a native histogram whose lines (`x_bucket`, `x_sum`, `x_count`) are also
/// float series', as when a Prometheus that scrapes both sends a histogram's classic and
/// native forms.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Twins {
    /// Left out, so that no line is written twice: the line formats.
    LeftOut,
    /// Kept for the writer to decide (OpenMetrics 2.0), marked in [`Grouped::twins`].
    Kept,
}

/// The snapshot's families as `naming` shows them.
pub fn group_families<'s>(snapshot: &'s Snapshot, naming: &'s Naming, twins: Twins) -> Grouped<'s> {
    let mut groups: Vec<FamilyGroup> = Vec::new();
    let mut group_of_family: HashMap<String, usize> = HashMap::new();
    // Keyed by schema address: a few hundred schemas, so the lookup hardly ever hashes a name.
    let mut group_of_schema: hashbrown::HashMap<usize, usize> = hashbrown::HashMap::new();
    let mut left_out = 0;
    let mut kept_twins = HashSet::new();
    let conflicts = histogram_conflicts(snapshot, naming);
    let families = exposed_families(&snapshot.families, naming);
    for series in &snapshot.series {
        let native = snapshot.histogram_of(series).is_some();
        let twin = native
            && conflicts
                .as_ref()
                .is_some_and(|c| c.lines.contains(&shown_identity(series, "", naming)));
        let has_le = native && series.labels().any(|(label, _)| label == "le");
        if naming.labels_collide(&series.schema) || has_le || (twin && twins == Twins::LeftOut) {
            left_out += 1;
            continue;
        }
        if twin {
            kept_twins.insert(series as *const SeriesView as usize);
        }
        let schema = Arc::as_ptr(&series.schema) as usize;
        let index = *group_of_schema.entry(schema).or_insert_with(|| {
            let (family, metadata) = family_of(naming.name(&series.schema), &families);
            let index = *group_of_family.entry(family.clone()).or_insert_with(|| {
                let natives_typed = conflicts
                    .as_ref()
                    .is_none_or(|c| !c.names.contains(&family));
                groups.push(FamilyGroup {
                    snapshot,
                    name: family,
                    metadata: metadata.cloned(),
                    natives_typed,
                    members: Vec::new(),
                    naming,
                });
                groups.len() - 1
            });
            // Room for the schema's series at once: each is held once by the store and once
            // by this snapshot, so the count is about twice theirs. A list grown by doubling
            // instead is copied at each step, into memory musl maps afresh every scrape.
            groups[index]
                .members
                .reserve(Arc::strong_count(&series.schema) / 2);
            index
        });
        groups[index].members.push(series);
    }
    groups.sort_unstable_by(|a, b| a.name.cmp(&b.name));
    for group in &mut groups {
        left_out += drop_escaped_duplicates(&mut group.members, naming);
    }
    let ranks = block_ranks(snapshot);
    let mut slots = Vec::new();
    for group in &mut groups {
        let kind = group.kind();
        let members = &mut group.members;
        let order = if matches!(kind, MetricKind::Histogram | MetricKind::Summary) {
            Order::InFamily
        } else if members
            .iter()
            .all(|s| Arc::ptr_eq(&s.schema, &members[0].schema))
        {
            // One schema, as nearly every family has: `compare_plain` orders by value tuple,
            // and each tuple is there once, so the series can be put straight in their places.
            if members.len() * 4 >= ranks.len() && place_by_rank(members, &ranks, &mut slots) {
                continue;
            }
            Order::TupleRank(&ranks)
        } else {
            Order::Plain
        };
        sort_series(members, &order);
    }
    Grouped {
        groups,
        ranks,
        left_out,
        twins: kept_twins,
    }
}

/// The family metadata by family name as the page writes it, escaped: a family's metadata
/// applies to the series whose escaped names are its. Of two families that escape to one name,
/// the one whose name needed no escaping wins, else the first in name order. Borrowed when no
/// name needs escaping, as on most pages.
fn exposed_families<'f>(
    families: &'f HashMap<Arc<str>, Metadata>,
    naming: &Naming,
) -> Cow<'f, HashMap<Arc<str>, Metadata>> {
    let escaped = |name: &str| matches!(naming.escape(name, true), Cow::Owned(_));
    if !families.keys().any(|name| escaped(name)) {
        return Cow::Borrowed(families);
    }
    let mut names: Vec<&Arc<str>> = families.keys().collect();
    names.sort_by_key(|name| (escaped(name), Arc::clone(name)));
    let mut exposed = HashMap::with_capacity(families.len());
    for name in names {
        let key: Arc<str> = naming.escape(name, true).into();
        exposed.entry(key).or_insert_with(|| families[name].clone());
    }
    Cow::Owned(exposed)
}

/// A series' labels as the page shows them: names escaped, sorted by name (escaping can change
/// how names sort), so that two series that show alike compare equal.
fn shown_labels<'s>(series: &'s SeriesView, naming: &Naming) -> Vec<(Cow<'s, str>, &'s str)> {
    let mut labels: Vec<_> = series
        .labels()
        .map(|(label, value)| (naming.escape(label, false), value))
        .collect();
    labels.sort_unstable();
    labels
}

/// A series as the page shows it, named `base` less `suffix`: its escaped name without the
/// suffix, and its shown labels without `le`.
type ShownIdentity = (String, Vec<(String, String)>);

fn shown_identity(series: &SeriesView, suffix: &str, naming: &Naming) -> ShownIdentity {
    let name = naming.name(&series.schema);
    let labels = shown_labels(series, naming)
        .into_iter()
        .filter(|(label, _)| label != "le")
        .map(|(label, value)| (label.into_owned(), value.to_owned()))
        .collect();
    (name[..name.len() - suffix.len()].to_owned(), labels)
}

/// What float series take from native histograms `x` by being named `x_bucket`, `x_sum` or
/// `x_count`: a native histogram `x{a="1"}` writes `x_bucket{a="1",le=...}`, `x_sum{a="1"}`
/// and `x_count{a="1"}`.
#[derive(Default)]
struct HistogramConflicts {
    /// Histograms whose lines a float series of the same name and labels would repeat: they
    /// are left off the page (the float series are shown), as is a histogram with an `le`
    /// label of its own, which its buckets would repeat.
    lines: HashSet<ShownIdentity>,
    /// Histogram names `x` for which some float series is named `x_bucket`, `x_sum` or
    /// `x_count`: without metadata such a family stays `untyped`, since expfmt would read
    /// those series' lines as the histogram's.
    names: HashSet<String>,
}

/// The conflicts of the snapshot's native histograms; `None` when it holds none, as most do.
fn histogram_conflicts(snapshot: &Snapshot, naming: &Naming) -> Option<HistogramConflicts> {
    if !snapshot.has_histograms() {
        return None;
    }
    let mut conflicts = HistogramConflicts::default();
    for series in snapshot.series.iter() {
        if snapshot.histogram_of(series).is_some() {
            continue;
        }
        let name = naming.name(&series.schema);
        if let Some(suffix) = ["_bucket", "_sum", "_count"]
            .into_iter()
            .find(|suffix| name.ends_with(suffix))
        {
            let identity = shown_identity(series, suffix, naming);
            conflicts.names.insert(identity.0.clone());
            conflicts.lines.insert(identity);
        }
    }
    Some(conflicts)
}

/// Leaves out of a family the series whose escaped name and labels are those of another, so
/// that no line is written twice: a series whose names needed no escaping is kept over one
/// whose did, and of two escaped ones the first in store order. Returns how many were left out.
fn drop_escaped_duplicates(members: &mut Vec<&SeriesView>, naming: &Naming) -> u64 {
    if !members.iter().any(|s| naming.escaped(&s.schema)) {
        return 0;
    }
    members.sort_by_key(|s| naming.escaped(&s.schema));
    let before = members.len();
    let mut seen = HashSet::new();
    members.retain(|s| seen.insert((naming.name(&s.schema), shown_labels(s, naming))));
    (before - members.len()) as u64
}

/// Puts series of one schema in the order of their blocks' ranks by placing each in its slot,
/// without comparing; returns false, leaving `members` as they were, if two share a tuple.
/// `slots` is scratch space, one per scrape rather than one per family.
pub fn place_by_rank<'s>(
    members: &mut Vec<&'s SeriesView>,
    ranks: &Ranks,
    slots: &mut Vec<Option<&'s SeriesView>>,
) -> bool {
    slots.clear();
    slots.resize(ranks.len(), None);
    for series in members.iter() {
        let slot = &mut slots[ranks[&block_key(series)]];
        if slot.replace(series).is_some() {
            return false;
        }
    }
    members.clear();
    members.extend(slots.drain(..).flatten());
    true
}

/// How series are put in order. One comparator for every case, so that the sort is compiled
/// once: the static binary has a size budget.
enum Order<'r> {
    /// Histograms and summaries: `compare_in_family`.
    InFamily,
    /// `compare_plain`.
    Plain,
    /// Series of one schema, by their label block's rank, which within one schema is their
    /// tuple's: the same order as `compare_plain`.
    TupleRank(&'r Ranks),
    /// By value tuple.
    Values,
}

fn sort_series(series: &mut [&SeriesView], order: &Order) {
    series.sort_unstable_by(|a, b| match order {
        Order::InFamily => compare_in_family(a, b),
        Order::Plain => compare_plain(a, b),
        Order::TupleRank(ranks) => ranks[&block_key(a)].cmp(&ranks[&block_key(b)]),
        Order::Values => a.values.iter().cmp(b.values.iter()),
    });
}

/// What a series' label block is made of: its label-name list and value tuple, by address.
pub fn block_key(series: &SeriesView) -> (usize, usize) {
    (series.schema.label_names.address(), series.values.address())
}

/// Each label block's place among all of the snapshot's, by [`block_key`].
pub type Ranks = hashbrown::HashMap<(usize, usize), usize>;

/// Ranks the snapshot's label blocks in the order of their value tuples. Tuples are interned
/// and shared by all the metrics of a container, so a few thousand tuples are compared once,
/// and then families of one schema are sorted by these integers instead of by comparing
/// tuples afresh in every family, an indirection and a cache miss each time; the render keeps
/// each block's place by the same integers. Within one schema, where the label names are the
/// same, block order is tuple order.
pub fn block_ranks(snapshot: &Snapshot) -> Ranks {
    let mut ranks = Ranks::default();
    let mut blocks = Vec::new();
    for series in &snapshot.series {
        ranks.entry(block_key(series)).or_insert_with(|| {
            blocks.push(series);
            0
        });
    }
    sort_series(&mut blocks, &Order::Values);
    for (rank, series) in blocks.iter().enumerate() {
        ranks.insert(block_key(series), rank);
    }
    ranks
}

/// How many families `/metrics` shows for this snapshot.
pub fn family_count(snapshot: &Snapshot) -> usize {
    let naming = Naming::new(snapshot, crate::base::label_text::Escaping::Underscores);
    group_families(snapshot, &naming, Twins::LeftOut)
        .groups
        .len()
}
