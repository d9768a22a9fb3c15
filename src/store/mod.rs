//! The newest sample of every series, and the metadata of every family.
//!
//! Series live in shards, each a hash table behind its own read/write lock, so writers to
//! different series rarely wait for each other and a scrape only holds one shard's read lock
//! at a time, while it copies references out (never while writing to a socket). A series is
//! found by a hash of its name and labels, compared against the request's labels in place,
//! so updating an existing series allocates nothing.
//!
//! Memory per series is kept small: the metric name and label names live in a [`Schema`]
//! shared by every series of the same shape, and the label values in a tuple of interned
//! [`Atom`]s shared by every series with the same values (all metrics of one container), so a
//! series is one table entry of 40 bytes and no allocation of its own. A growing table does not
//! hash every series' labels again: it folds each series' hash from the hashes its schema and
//! tuple keep.

pub mod intern;
pub mod metadata;
pub mod native;

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use hashbrown::hash_table::{Entry, OccupiedEntry, VacantEntry};
use hashbrown::{DefaultHashBuilder, HashTable};

use crate::base::bytes;
use crate::base::label_text::{series_prefixes, underscore_escaped};
use crate::base::locks::{lock, read, write};
use crate::store::intern::{Atom, Interner, Tuple};
use crate::store::metadata::Metadata;
use crate::store::native::{Exemplar, Extras, NativeHistogram};

const SHARDS: usize = 64;
/// Series the shards have room for from the start (or `--series.max`, if fewer). A growing
/// table copies every entry into a fresh one, and under musl the fresh one is mapped anew and
/// the old one unmapped: page faults and TLB shootdowns while a sender's first writes arrive.
/// The room is address space: only the tables' control bytes are resident until series come.
const ROOM_AT_START: usize = 1 << 16;
/// The interner's and the tuple tables' room at start, from cAdvisor's shape with some to
/// spare: 25 series share a value tuple (one per container), and 100k series hold about 15k
/// distinct strings; the room counts a tuple per 16 series and a string per 4.
const SERIES_PER_TUPLE: usize = 16;
const SERIES_PER_STRING: usize = 4;
const TUPLE_SHARDS: usize = 16;

/// The NaN Prometheus writes to mark a series stale (`value.StaleNaN`).
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

pub fn is_stale_marker(value: f64) -> bool {
    value.to_bits() == STALE_NAN_BITS
}

/// The metric name and label names (sorted) that series of one shape share.
#[derive(Debug, PartialEq, Eq)]
pub struct Schema {
    pub name: Atom,
    /// Interned like value tuples, so that schemas with the same label names share the list.
    pub label_names: Tuple,
    /// What the exposition writes before each label value (see [`series_prefixes`]), with
    /// label names escaped by the default scheme, `underscores` (see [`underscore_escaped`]);
    /// other schemes are worked out per scrape (`crate::expose::naming`).
    pub prefixes: Box<[Box<str>]>,
    /// The metric name escaped by `underscores`, when it differs from `name`.
    pub escaped_name: Option<Box<str>>,
    /// Whether any name was escaped: a series of this schema may then collide with another.
    pub escaped: bool,
    /// Two label names that `underscores` escapes to the same: a page in that scheme cannot
    /// show the series.
    pub escaped_labels_collide: bool,
    /// The store's hash of the name and label names, kept for growing tables (see [`Tuple`]).
    shape_hash: u64,
}

impl Schema {
    /// A schema outside any store, for tests; its hashes are never looked at.
    pub fn new(name: &str, label_names: &[&str]) -> Schema {
        Schema::from_atoms(
            Atom::new(name),
            Tuple::new(0, label_names.iter().map(|n| Atom::new(n))),
            0,
        )
    }

    fn from_atoms(name: Atom, label_names: Tuple, shape_hash: u64) -> Schema {
        let escaped_labels: Vec<_> = label_names
            .iter()
            .map(|n| underscore_escaped(n, false))
            .collect();
        let labels_escaped = escaped_labels
            .iter()
            .any(|n| matches!(n, std::borrow::Cow::Owned(_)));
        let mut sorted: Vec<&str> = escaped_labels.iter().map(|n| &**n).collect();
        sorted.sort_unstable();
        let escaped_labels_collide = sorted.windows(2).any(|pair| pair[0] == pair[1]);
        let prefixes = series_prefixes(escaped_labels.iter().map(|n| &**n));
        let escaped_name = match underscore_escaped(&name, true) {
            std::borrow::Cow::Owned(escaped) => Some(escaped.into_boxed_str()),
            std::borrow::Cow::Borrowed(_) => None,
        };
        Schema {
            escaped: labels_escaped || escaped_name.is_some(),
            escaped_name,
            escaped_labels_collide,
            name,
            label_names,
            prefixes,
            shape_hash,
        }
    }

    /// The metric name as the default scheme, `underscores`, shows it.
    pub fn exposed_name(&self) -> &str {
        self.escaped_name.as_deref().unwrap_or(&self.name)
    }

    fn matches(&self, key: &SeriesKey) -> bool {
        bytes::same(self.name.as_bytes(), key.name) && holds_exactly(&self.label_names, key.names())
    }
}

/// A series identity as a request spells it: the metric name and the other labels, sorted by
/// name, without `__name__` and without empty values. Bytes, not text: a series the store holds
/// is matched byte for byte, and only strings the store meets for the first time are checked
/// for UTF-8 (see [`Interner::intern`]).
#[derive(Debug, Clone, Copy)]
pub struct SeriesKey<'a> {
    pub name: &'a [u8],
    pub labels: &'a [(&'a [u8], &'a [u8])],
}

impl<'a> SeriesKey<'a> {
    /// The label names, in order.
    fn names(&self) -> impl ExactSizeIterator<Item = &'a [u8]> + Clone {
        self.labels.iter().map(|(name, _)| *name)
    }

    /// The label values, in the order of the names.
    fn values(&self) -> impl ExactSizeIterator<Item = &'a [u8]> + Clone {
        self.labels.iter().map(|(_, value)| *value)
    }
}

/// The hashes of a key: of the whole series, and of the two parts that are shared, its shape
/// (metric name and label names) and its label values. The series hash is made from the other
/// two, so a new series finds its schema and value tuple without hashing its labels again.
#[derive(Debug, Clone, Copy)]
pub struct KeyHash {
    series: u64,
    shape: u64,
    values: u64,
}

impl KeyHash {
    /// The store shard that holds the series.
    fn shard(&self) -> usize {
        // The table itself uses the low and top bits of the hash; the shard takes middle ones.
        (self.series >> 32) as usize % SHARDS
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub value: f64,
    pub timestamp_ms: i64,
}

/// What a series holds now (see [`Store::latest`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Latest {
    pub sample: Sample,
    pub start_timestamp_ms: Option<i64>,
    pub histogram: Option<NativeHistogram>,
}

/// What one write brings a series: its newest sample, if any (a float, or with `histogram` a
/// native histogram, whose timestamp is then the sample's), and the start timestamp and
/// exemplars sent with it. Exemplars without a sample attach to a series already held.
#[derive(Debug, Clone, Copy, Default)]
pub struct Update<'a> {
    pub sample: Option<Sample>,
    pub histogram: Option<&'a NativeHistogram>,
    pub start_timestamp_ms: Option<i64>,
    pub exemplars: &'a [Exemplar],
}

impl Update<'_> {
    /// A float sample and nothing else.
    pub fn float(sample: Sample) -> Update<'static> {
        Update {
            sample: Some(sample),
            ..Update::default()
        }
    }

    /// A stale marker: a float `StaleNaN`, or a histogram whose sum is `StaleNaN`.
    fn is_stale(&self) -> bool {
        match (self.histogram, self.sample) {
            (Some(histogram), _) => is_stale_marker(histogram.sum),
            (None, Some(sample)) => is_stale_marker(sample.value),
            (None, None) => false,
        }
    }

    /// Whether the series' [`Extras`] must be looked at.
    fn has_extras(&self) -> bool {
        self.histogram.is_some() || self.start_timestamp_ms.is_some() || !self.exemplars.is_empty()
    }

    /// Puts what this update brings in `extras`; `sample_applied` when its sample became the
    /// series' newest (otherwise only its exemplars are taken).
    fn apply_extras(&self, extras: &mut Extras, sample_applied: bool) {
        if sample_applied {
            extras.histogram = self.histogram.cloned();
            if self.start_timestamp_ms.is_some() {
                extras.start_timestamp_ms = self.start_timestamp_ms;
            }
        }
        extras.add_exemplars(self.exemplars);
    }
}

/// What applying one sample did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Created,
    Updated,
    /// Older than the stored sample (a retry or a replay): ignored.
    OutOfOrder,
    /// A stale marker removed the series.
    Removed,
    /// A stale marker for a series not held: nothing to do.
    StaleUnknown,
    /// A new series beyond `--series.max`: dropped.
    LimitReached,
    /// A new series while the memory guard refuses them (see [`Store::set_memory_cap`]):
    /// dropped.
    MemoryLimited,
    /// A new series with a label name or value that is not UTF-8: dropped.
    NotText,
    /// Exemplars without a sample, attached to the series held.
    Annotated,
    /// Exemplars without a sample for a series not held: nothing to attach them to.
    NotHeld,
}

impl Applied {
    /// Whether the series is held once this was applied, so that the update's exemplars are.
    pub fn holds_series(self) -> bool {
        matches!(
            self,
            Applied::Created | Applied::Updated | Applied::OutOfOrder | Applied::Annotated
        )
    }
}

/// One series: 40 bytes. Its hash is not kept: a growing table folds it from the hashes its
/// schema and tuple keep (see [`series_hash`]).
struct Series {
    schema: Arc<Schema>,
    /// Label values, in the order of `schema.label_names`.
    values: Tuple,
    value: f64,
    timestamp_ms: i64,
    /// Seconds on the store's clock when the series was last written, for `--series.ttl`.
    written_at: u32,
    /// Where the series' [`Extras`] are in its shard's [`ExtrasSlots`]; 0 when it has none.
    /// An index rather than a pointer, so that it fits the four bytes `written_at` leaves.
    extras: u32,
}

/// One shard of the store: its series, and the extras of those few that have any.
#[derive(Default)]
struct Shard {
    table: HashTable<Series>,
    extras: ExtrasSlots,
}

/// The [`Extras`] of a shard's series, in numbered slots (see [`Series::extras`]).
#[derive(Default)]
struct ExtrasSlots {
    slots: Vec<Option<Arc<Extras>>>,
    free: Vec<u32>,
}

impl ExtrasSlots {
    fn get(&self, slot: u32) -> Option<&Arc<Extras>> {
        let index = slot.checked_sub(1)?;
        self.slots[index as usize].as_ref()
    }

    /// Changes the extras of `slot` (0: none yet), taking a slot for them when they appear
    /// and giving it back when they end up empty.
    fn edit(&mut self, slot: &mut u32, change: impl FnOnce(&mut Extras)) {
        match slot.checked_sub(1) {
            None => {
                let mut extras = Extras::default();
                change(&mut extras);
                if extras.is_empty() {
                    return;
                }
                let index = match self.free.pop() {
                    Some(index) => index,
                    None => {
                        self.slots.push(None);
                        (self.slots.len() - 1) as u32
                    }
                };
                self.slots[index as usize] = Some(Arc::new(extras));
                *slot = index + 1;
            }
            Some(index) => {
                let held = self.slots[index as usize]
                    .as_mut()
                    .expect("a series' slot holds its extras");
                change(Arc::make_mut(held));
                if held.is_empty() {
                    self.release(slot);
                }
            }
        }
    }

    /// Gives back the slot of a series that goes.
    fn release(&mut self, slot: &mut u32) {
        if let Some(index) = slot.checked_sub(1) {
            self.slots[index as usize] = None;
            self.free.push(index);
            *slot = 0;
        }
    }
}

impl Series {
    fn matches(&self, key: &SeriesKey) -> bool {
        self.schema.matches(key) && holds_exactly(&self.values, key.values())
    }
}

struct FamilyEntry {
    metadata: Metadata,
    written_at: u32,
}

/// One series as a scrape sees it.
#[derive(Debug, Clone)]
pub struct SeriesView {
    pub schema: Arc<Schema>,
    pub values: Tuple,
    pub value: f64,
    pub timestamp_ms: i64,
}

impl SeriesView {
    pub fn name(&self) -> &str {
        &self.schema.name
    }

    /// Label names and values, sorted by name, without `__name__`.
    pub fn labels(&self) -> impl Iterator<Item = (&str, &str)> + Clone {
        self.schema
            .label_names
            .iter()
            .map(|n| &**n)
            .zip(self.values.iter().map(|v| &**v))
    }
}

/// A consistent-enough copy of the store for one scrape: every series as of the moment its
/// shard was read, and the family metadata.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub series: Vec<SeriesView>,
    /// The extras of the series that have any, by their place in `series`, in order. Kept
    /// beside the views rather than in them, so that a view stays 32 bytes (every scrape holds
    /// one per series) while most series have none.
    pub extras: Vec<(u32, Arc<Extras>)>,
    pub families: HashMap<Arc<str>, Metadata>,
}

impl Snapshot {
    /// Keeps only the series `keep` selects, with their extras.
    pub fn select(&mut self, keep: impl Fn(&SeriesView) -> bool) {
        let mut extras = std::mem::take(&mut self.extras).into_iter().peekable();
        let mut kept_extras = Vec::new();
        let (mut index, mut kept) = (0u32, 0u32);
        self.series.retain(|series| {
            let held = extras.next_if(|(at, _)| *at == index);
            index += 1;
            if !keep(series) {
                return false;
            }
            if let Some((_, held)) = held {
                kept_extras.push((kept, held));
            }
            kept += 1;
            true
        });
        self.extras = kept_extras;
    }

    /// The extras of `view`, which must be one of this snapshot's series.
    pub fn extras_of(&self, view: &SeriesView) -> Option<&Extras> {
        if self.extras.is_empty() {
            return None;
        }
        let offset = (view as *const SeriesView as usize)
            .wrapping_sub(self.series.as_ptr() as usize)
            / std::mem::size_of::<SeriesView>();
        assert!(offset < self.series.len(), "a view of another snapshot");
        let at = self
            .extras
            .binary_search_by_key(&(offset as u32), |(index, _)| *index)
            .ok()?;
        Some(&self.extras[at].1)
    }

    /// The native histogram that is `view`'s newest sample, if it is one.
    pub fn histogram_of(&self, view: &SeriesView) -> Option<&NativeHistogram> {
        self.extras_of(view)?.histogram.as_ref()
    }

    /// Whether any series' newest sample is a native histogram.
    pub fn has_histograms(&self) -> bool {
        self.extras
            .iter()
            .any(|(_, extras)| extras.histogram.is_some())
    }
}

pub struct Store {
    hasher: DefaultHashBuilder,
    shards: Box<[RwLock<Shard>]>,
    interner: Interner,
    schemas: Mutex<HashTable<Arc<Schema>>>,
    /// Label value tuples, shared by every series with the same values in the same order:
    /// all metrics of one cAdvisor container carry the same values, so a series costs a
    /// reference, not an allocation.
    tuples: Box<[Mutex<HashTable<Tuple>>]>,
    families: RwLock<HashMap<Arc<str>, FamilyEntry>>,
    /// The emptied list of the last snapshot given back ([`Store::recycle`]), for the next.
    spare_views: Mutex<Vec<SeriesView>>,
    series_count: AtomicUsize,
    /// `--series.max`, given or derived from the memory limit (which may change while running).
    max_series: AtomicUsize,
    /// How many series memory lets the store hold until the guard looks again
    /// (`usize::MAX` without a memory limit).
    memory_cap: AtomicUsize,
    created: Instant,
}

impl Store {
    pub fn new(max_series: usize) -> Store {
        let series = max_series.min(ROOM_AT_START);
        let tuples = (series / SERIES_PER_TUPLE).div_ceil(TUPLE_SHARDS);
        Store {
            hasher: DefaultHashBuilder::default(),
            shards: (0..SHARDS)
                .map(|_| {
                    RwLock::new(Shard {
                        table: HashTable::with_capacity(series.div_ceil(SHARDS)),
                        extras: ExtrasSlots::default(),
                    })
                })
                .collect(),
            interner: Interner::with_room(series / SERIES_PER_STRING),
            schemas: Mutex::default(),
            tuples: (0..TUPLE_SHARDS)
                .map(|_| Mutex::new(HashTable::with_capacity(tuples)))
                .collect(),
            families: RwLock::default(),
            spare_views: Mutex::default(),
            series_count: AtomicUsize::new(0),
            max_series: AtomicUsize::new(max_series),
            memory_cap: AtomicUsize::new(usize::MAX),
            created: Instant::now(),
        }
    }

    /// The store's clock for `--series.ttl`: whole seconds since the store was made. Receive
    /// time, not sample time, so a sender's clock cannot keep a series alive or kill it.
    pub fn tick(&self) -> u32 {
        self.created.elapsed().as_secs().min(u64::from(u32::MAX)) as u32
    }

    pub fn max_series(&self) -> usize {
        self.max_series.load(Ordering::Relaxed)
    }

    /// A new series limit, for one derived from a memory limit that changed. Series held
    /// beyond it stay; only new ones are refused.
    pub fn set_max_series(&self, max_series: usize) {
        self.max_series.store(max_series, Ordering::Relaxed);
    }

    /// How many series memory lets the store hold, set by the memory guard
    /// ([`crate::ops::memory`]) each time it reads resident memory: new series past it are
    /// refused as [`Applied::MemoryLimited`]. `usize::MAX` lifts it.
    pub fn set_memory_cap(&self, series: usize) {
        self.memory_cap.store(series, Ordering::Relaxed);
    }

    pub fn series_count(&self) -> usize {
        self.series_count.load(Ordering::Relaxed)
    }

    /// The hashes by which `key` is found.
    pub fn hash(&self, key: &SeriesKey) -> KeyHash {
        let shape = self.hash_shape(key.name, key.names());
        let values = self.hash_values(key.values());
        KeyHash {
            series: series_hash(shape, values),
            shape,
            values,
        }
    }

    /// A writer for one request's samples (see [`Writer`]).
    pub fn writer(&self) -> Writer<'_> {
        Writer {
            store: self,
            schemas: HashTable::new(),
            tuples: HashTable::new(),
            gathered: Vec::new(),
        }
    }

    /// Why a new series for `sample` is not made, if it is not: a stale marker has nothing to
    /// remove, or the limit is reached. Asked before anything is interned, so that series
    /// refused at the limit leave no strings behind; [`Store::create`] keeps the limit exact.
    fn refusal(&self, update: &Update) -> Option<Applied> {
        if update.sample.is_none() {
            return Some(Applied::NotHeld);
        }
        if update.is_stale() {
            return Some(Applied::StaleUnknown);
        }
        self.full(self.series_count())
    }

    /// Why no new series can join `count` held: the series limit, or memory.
    fn full(&self, count: usize) -> Option<Applied> {
        if count >= self.max_series() {
            Some(Applied::LimitReached)
        } else if count >= self.memory_cap.load(Ordering::Relaxed) {
            Some(Applied::MemoryLimited)
        } else {
            None
        }
    }

    /// Makes a new series in `entry`, unless the limit was reached since [`Store::refusal`].
    fn create(
        &self,
        (entry, extras): (VacantEntry<'_, Series>, &mut ExtrasSlots),
        update: &Update,
        now: u32,
        schema: Arc<Schema>,
        values: Tuple,
    ) -> Applied {
        let Some(sample) = update.sample else {
            return Applied::NotHeld;
        };
        let mut refused = None;
        let reserved =
            self.series_count
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |count| {
                    refused = self.full(count);
                    refused.is_none().then_some(count + 1)
                });
        if reserved.is_err() {
            return refused.unwrap_or(Applied::LimitReached);
        }
        let mut slot = 0;
        if update.has_extras() {
            extras.edit(&mut slot, |held| update.apply_extras(held, true));
        }
        entry.insert(Series {
            schema,
            values,
            value: sample.value,
            timestamp_ms: sample.timestamp_ms,
            written_at: now,
            extras: slot,
        });
        Applied::Created
    }

    /// The newest timestamp wins; a stale marker removes the series. Exemplars are kept
    /// whenever the series is held, even with a sample older than the one it has.
    fn update(
        &self,
        (mut entry, extras): (OccupiedEntry<'_, Series>, &mut ExtrasSlots),
        update: &Update,
        now: u32,
    ) -> Applied {
        let series = entry.get_mut();
        let applied = match update.sample {
            None => Applied::Annotated,
            Some(sample) if sample.timestamp_ms < series.timestamp_ms => Applied::OutOfOrder,
            Some(_) if update.is_stale() => {
                extras.release(&mut series.extras);
                entry.remove();
                self.series_count.fetch_sub(1, Ordering::Relaxed);
                return Applied::Removed;
            }
            Some(sample) => {
                series.value = sample.value;
                series.timestamp_ms = sample.timestamp_ms;
                series.written_at = now;
                Applied::Updated
            }
        };
        if series.extras != 0 || update.has_extras() {
            let sample_applied = applied == Applied::Updated;
            extras.edit(&mut series.extras, |held| {
                update.apply_extras(held, sample_applied)
            });
        }
        applied
    }

    /// Records what remote-write metadata says of a family, replacing what was known.
    pub fn set_metadata(&self, family: &str, metadata: Metadata, now: u32) {
        let mut families = write(&self.families);
        match families.get_mut(family) {
            Some(entry) => {
                *entry = FamilyEntry {
                    metadata,
                    written_at: now,
                }
            }
            None => {
                families.insert(
                    Arc::from(family),
                    FamilyEntry {
                        metadata,
                        written_at: now,
                    },
                );
            }
        }
    }

    /// Removes series and family metadata not written for more than `ttl_secs` before `now`,
    /// then releases label strings no series uses any more. Returns the series removed.
    pub fn expire(&self, now: u32, ttl_secs: u32) -> usize {
        let fresh = |written_at: u32| now.saturating_sub(written_at) <= ttl_secs;
        let mut removed = 0;
        for shard in self.shards.iter() {
            let mut shard = write(shard);
            let Shard { table, extras } = &mut *shard;
            let before = table.len();
            table.retain(|series| {
                let keep = fresh(series.written_at);
                if !keep {
                    extras.release(&mut series.extras);
                }
                keep
            });
            removed += before - table.len();
        }
        self.series_count.fetch_sub(removed, Ordering::Relaxed);
        write(&self.families).retain(|_, entry| fresh(entry.written_at));
        removed
    }

    /// How many value tuples (and label-name lists) are interned: about how many label blocks
    /// a scrape renders.
    pub fn tuple_count(&self) -> usize {
        self.tuples.iter().map(|shard| lock(shard).len()).sum()
    }

    /// Releases value tuples, schemas and interned strings that no series holds any more
    /// (after stale markers removed series, say); returns how many strings.
    pub fn purge_unused_strings(&self) -> usize {
        // Outermost first: a schema holds a label-name tuple, a tuple holds strings.
        lock(&self.schemas).retain(|schema| Arc::strong_count(schema) > 1);
        for shard in self.tuples.iter() {
            lock(shard).retain(|tuple| tuple.is_shared());
        }
        self.interner.purge_unused()
    }

    /// The shared tuple of these strings, made on first use; `None` when one of them is new
    /// and not UTF-8. Value tuples and label-name lists both live here; when a tuple exists,
    /// none of its strings needs interning or checking.
    ///
    /// A new tuple's atoms are gathered in `gathered`, a list the caller keeps from one tuple to
    /// the next, and drained into the tuple's one allocation of their exact count (`Drain`
    /// knows its length): a list of its own would cost each new tuple a second allocation.
    fn tuple_of<'a>(
        &self,
        items: impl ExactSizeIterator<Item = &'a [u8]> + Clone,
        hash: u64,
        gathered: &mut Vec<Atom>,
    ) -> Option<Tuple> {
        let same = |tuple: &Tuple| holds_exactly(tuple, items.clone());
        let mut tuples = lock(&self.tuples[(hash >> 32) as usize % TUPLE_SHARDS]);
        match tuples.entry(hash, same, Tuple::hash) {
            Entry::Occupied(entry) => Some(entry.get().clone()),
            Entry::Vacant(entry) => {
                gathered.clear();
                for item in items {
                    let Some(atom) = self.interner.intern(item) else {
                        gathered.clear();
                        return None;
                    };
                    gathered.push(atom);
                }
                let tuple = Tuple::new(hash, gathered.drain(..));
                entry.insert(tuple.clone());
                Some(tuple)
            }
        }
    }

    fn schema_for(&self, key: &SeriesKey, hash: u64) -> Option<Arc<Schema>> {
        let mut schemas = lock(&self.schemas);
        match schemas.entry(hash, |schema| schema.matches(key), |s| s.shape_hash) {
            Entry::Occupied(entry) => Some(Arc::clone(entry.get())),
            Entry::Vacant(entry) => {
                let names = key.names();
                let label_names =
                    self.tuple_of(names.clone(), self.hash_values(names), &mut Vec::new())?;
                let schema = Arc::new(Schema::from_atoms(
                    self.interner.intern(key.name)?,
                    label_names,
                    hash,
                ));
                entry.insert(Arc::clone(&schema));
                Some(schema)
            }
        }
    }

    /// What the series `key` holds now: its newest sample, start timestamp and native
    /// histogram, for a writer that adds to it (OTLP delta sums and histograms).
    pub fn latest(&self, key: &SeriesKey, hash: KeyHash) -> Option<Latest> {
        let shard = read(&self.shards[hash.shard()]);
        let series = shard
            .table
            .find(hash.series, |series| series.matches(key))?;
        let extras = shard.extras.get(series.extras);
        Some(Latest {
            sample: Sample {
                value: series.value,
                timestamp_ms: series.timestamp_ms,
            },
            start_timestamp_ms: extras.and_then(|e| e.start_timestamp_ms),
            histogram: extras.and_then(|e| e.histogram.clone()),
        })
    }

    /// Copies out references to every series and the family metadata, one shard lock at a time.
    pub fn snapshot(&self) -> Snapshot {
        let count = self.series_count();
        let mut series = std::mem::take(&mut *lock(&self.spare_views));
        if series.capacity() > 2 * count {
            // The store has shrunk (expiry, stale markers): let the memory go.
            series = Vec::new();
        }
        series.reserve(count);
        let mut extras = Vec::new();
        for shard in self.shards.iter() {
            let shard = read(shard);
            let start = series.len();
            series.extend(shard.table.iter().enumerate().map(|(i, s)| {
                if let Some(held) = shard.extras.get(s.extras) {
                    extras.push(((start + i) as u32, Arc::clone(held)));
                }
                SeriesView {
                    schema: Arc::clone(&s.schema),
                    values: s.values.clone(),
                    value: s.value,
                    timestamp_ms: s.timestamp_ms,
                }
            }));
        }
        let families = read(&self.families)
            .iter()
            .map(|(name, entry)| (Arc::clone(name), entry.metadata.clone()))
            .collect();
        Snapshot {
            series,
            extras,
            families,
        }
    }

    /// Takes back a snapshot once its page is written, so that the next scrape fills the same
    /// list of views (unless the store has since shrunk to less than half of it). One scrape's
    /// list is 32 bytes per series, some megabytes, which musl maps afresh for every
    /// allocation and unmaps on free: filling new pages cost the static build a thousand page
    /// faults per 100k-series scrape. glibc keeps such a block after its first free anyway, so
    /// this holds no more than the glibc build already did.
    pub fn recycle(&self, snapshot: Snapshot) {
        let mut views = snapshot.series;
        views.clear();
        *lock(&self.spare_views) = views;
    }

    fn hash_values<'a>(&self, values: impl Iterator<Item = &'a [u8]>) -> u64 {
        let mut hasher = self.hasher.build_hasher();
        for value in values {
            // The 0xff separators cannot occur in UTF-8, so ("ab","c") and ("a","bc") differ.
            hasher.write(value);
            hasher.write_u8(0xff);
        }
        hasher.finish()
    }

    fn hash_shape<'a>(&self, name: &[u8], label_names: impl Iterator<Item = &'a [u8]>) -> u64 {
        let mut hasher = self.hasher.build_hasher();
        hasher.write(name);
        for label_name in label_names {
            hasher.write_u8(0xff);
            hasher.write(label_name);
        }
        hasher.finish()
    }
}

impl Store {
    /// `apply` for a key given as text, labels sorted by name: the exporter's own metrics, and
    /// tests.
    pub(crate) fn apply_text(
        &self,
        (name, labels): (&str, &[(&str, &str)]),
        sample: Sample,
        now: u32,
    ) -> Applied {
        let labels: Vec<(&[u8], &[u8])> = labels
            .iter()
            .map(|(name, value)| (name.as_bytes(), value.as_bytes()))
            .collect();
        let key = SeriesKey {
            name: name.as_bytes(),
            labels: &labels,
        };
        self.writer()
            .apply(&key, self.hash(&key), &Update::float(sample), now)
    }
}

#[cfg(test)]
impl Store {
    /// Every series as `name{label=value,...} value @timestamp`, sorted, for tests.
    pub(crate) fn describe(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .snapshot()
            .series
            .iter()
            .map(|s| {
                let labels: Vec<String> = s.labels().map(|(n, v)| format!("{n}={v}")).collect();
                format!(
                    "{}{{{}}} {} @{}",
                    s.name(),
                    labels.join(","),
                    s.value,
                    s.timestamp_ms
                )
            })
            .collect();
        out.sort();
        out
    }
}

/// A series' hash, folded from the hashes of its shape and of its label values: foldhash's
/// folded multiply, by which every bit of both moves every bit of the result.
fn series_hash(shape: u64, values: u64) -> u64 {
    let product = u128::from(shape) * u128::from(values ^ 0x243f_6a88_85a3_08d3);
    product as u64 ^ (product >> 64) as u64
}

/// Whether `tuple` holds exactly these strings, in this order.
fn holds_exactly<'a>(tuple: &Tuple, items: impl ExactSizeIterator<Item = &'a [u8]>) -> bool {
    tuple.len() == items.len()
        && tuple
            .iter()
            .zip(items)
            .all(|(stored, item)| bytes::same(stored.as_bytes(), item))
}

/// Applies the samples of one request to the store, remembering the schemas and value tuples
/// it meets for the rest of the request. The new series of one request share a few dozen
/// schemas and, per container, one tuple; looking them up in the store again for every series
/// would take the store's shared locks once per series, and with writers on every core a lock
/// that another core used last costs a cache-line transfer to take and another to release.
pub struct Writer<'s> {
    store: &'s Store,
    /// Schemas met in this request.
    schemas: HashTable<Arc<Schema>>,
    /// Value tuples met in this request.
    tuples: HashTable<Tuple>,
    /// The atoms of a new tuple, gathered (see [`Store::tuple_of`]).
    gathered: Vec<Atom>,
}

impl<'s> Writer<'s> {
    pub fn store(&self) -> &'s Store {
        self.store
    }

    /// Applies one sample to the series `key` names: the newest timestamp wins, a stale marker
    /// removes the series, and a new series is admitted only while fewer than `max_series`
    /// are held (checked and counted atomically, so the limit is exact under concurrent
    /// writers). The metric name and label names must have been checked against the naming
    /// rules; label values are checked here, for UTF-8, when the store meets them first.
    pub fn apply(&mut self, key: &SeriesKey, hash: KeyHash, update: &Update, now: u32) -> Applied {
        // With checked names a missing schema is made, so there is always an answer.
        self.apply_to(key, hash, update, now, true)
            .unwrap_or(Applied::NotText)
    }

    /// `apply` for names nobody checked: done when the store holds the series, or a series of
    /// the same metric name and label names, since those names were checked when it was made.
    /// `None` when the shape is new: check the names, then call `apply`.
    pub fn apply_unchecked(
        &mut self,
        key: &SeriesKey,
        hash: KeyHash,
        update: &Update,
        now: u32,
    ) -> Option<Applied> {
        self.apply_to(key, hash, update, now, false)
    }

    /// The series, or a sample for a new series whose schema and tuple this request met
    /// already, is done under the shard's lock. Any other new series finds or makes them with
    /// the shard unlocked, then locks it again: making them allocates, and an allocator that
    /// blocks (musl's has one lock) must not hold up every writer of the shard behind it.
    fn apply_to(
        &mut self,
        key: &SeriesKey,
        hash: KeyHash,
        update: &Update,
        now: u32,
        names_checked: bool,
    ) -> Option<Applied> {
        let Writer {
            store,
            schemas,
            tuples,
            gathered,
        } = self;
        let shard = &store.shards[hash.shard()];
        let mut locked = write(shard);
        let Shard { table, extras } = &mut *locked;
        match entry(table, key, hash) {
            Entry::Occupied(entry) => return Some(store.update((entry, extras), update, now)),
            Entry::Vacant(entry) => {
                let met = (
                    find_schema(schemas, key, hash.shape),
                    find_tuple(tuples, key, hash.values),
                );
                if let (Some(schema), Some(values)) = met {
                    let refused = store.refusal(update);
                    return Some(refused.unwrap_or_else(|| {
                        let (schema, values) = (schema.clone(), values.clone());
                        store.create((entry, extras), update, now, schema, values)
                    }));
                }
            }
        }
        drop(locked);
        let found = match names_checked {
            true => None,
            false => Some(remembered_schema(store, schemas, key, hash.shape, false)?),
        };
        if let Some(refused) = store.refusal(update) {
            return Some(refused);
        }
        let made = found.or_else(|| remembered_schema(store, schemas, key, hash.shape, true));
        let values = remembered_tuple(store, tuples, gathered, key, hash.values);
        let (Some(schema), Some(values)) = (made, values) else {
            return Some(Applied::NotText);
        };
        let mut locked = write(shard);
        let Shard { table, extras } = &mut *locked;
        Some(match entry(table, key, hash) {
            // Made meanwhile by a request on another connection.
            Entry::Occupied(entry) => store.update((entry, extras), update, now),
            Entry::Vacant(entry) => store.create((entry, extras), update, now, schema, values),
        })
    }
}

/// Where the series `key` is, or goes, in its shard's table.
fn entry<'t>(
    table: &'t mut HashTable<Series>,
    key: &SeriesKey,
    hash: KeyHash,
) -> Entry<'t, Series> {
    table.entry(
        hash.series,
        |series| series.matches(key),
        |series| series_hash(series.schema.shape_hash, series.values.hash()),
    )
}

/// The schema of `key`'s shape, if this request met it.
fn find_schema<'m>(
    met: &'m HashTable<Arc<Schema>>,
    key: &SeriesKey,
    hash: u64,
) -> Option<&'m Arc<Schema>> {
    met.find(hash, |schema| schema.matches(key))
}

/// The tuple of `key`'s label values, if this request met it.
fn find_tuple<'m>(met: &'m HashTable<Tuple>, key: &SeriesKey, hash: u64) -> Option<&'m Tuple> {
    met.find(hash, |tuple| holds_exactly(tuple, key.values()))
}

/// The schema of `key`'s shape from those met in this request, else from the store, which
/// makes it if `make` and it has none; remembered for the rest of the request.
fn remembered_schema(
    store: &Store,
    met: &mut HashTable<Arc<Schema>>,
    key: &SeriesKey,
    hash: u64,
    make: bool,
) -> Option<Arc<Schema>> {
    if let Some(schema) = find_schema(met, key, hash) {
        return Some(Arc::clone(schema));
    }
    let schema = match make {
        true => store.schema_for(key, hash)?,
        false => lock(&store.schemas)
            .find(hash, |schema| schema.matches(key))
            .map(Arc::clone)?,
    };
    met.insert_unique(hash, Arc::clone(&schema), |s| s.shape_hash);
    Some(schema)
}

/// The tuple of `key`'s label values from those met in this request, else from the store.
fn remembered_tuple(
    store: &Store,
    met: &mut HashTable<Tuple>,
    gathered: &mut Vec<Atom>,
    key: &SeriesKey,
    hash: u64,
) -> Option<Tuple> {
    if let Some(tuple) = find_tuple(met, key, hash) {
        return Some(tuple.clone());
    }
    let tuple = store.tuple_of(key.values(), hash, gathered)?;
    met.insert_unique(hash, tuple.clone(), Tuple::hash);
    Some(tuple)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::metadata::MetricKind;

    fn key<'a>(
        name: &'a str,
        labels: &'a [(&'a str, &'a str)],
    ) -> (&'a str, &'a [(&'a str, &'a str)]) {
        (name, labels)
    }

    /// Runs `work(store, w)` for writers `w` 0 to 3, each on a thread of its own, at once;
    /// returns what each returned.
    fn on_four_threads<T: Send + 'static>(
        store: &Arc<Store>,
        work: fn(&Store, u32) -> T,
    ) -> Vec<T> {
        let writers: Vec<_> = (0..4)
            .map(|w| {
                let store = Arc::clone(store);
                std::thread::spawn(move || work(&store, w))
            })
            .collect();
        writers.into_iter().map(|w| w.join().unwrap()).collect()
    }

    fn sample(value: f64, timestamp_ms: i64) -> Sample {
        Sample {
            value,
            timestamp_ms,
        }
    }

    fn stale(timestamp_ms: i64) -> Sample {
        sample(f64::from_bits(STALE_NAN_BITS), timestamp_ms)
    }

    fn values(store: &Store) -> Vec<String> {
        store.describe()
    }

    #[test]
    fn newest_sample_wins_and_older_ones_are_ignored() {
        let store = Store::new(10);
        let k = key("up", &[("job", "a")]);
        assert_eq!(store.apply_text(k, sample(1.0, 1000), 0), Applied::Created);
        assert_eq!(store.apply_text(k, sample(2.0, 2000), 0), Applied::Updated);
        assert_eq!(
            store.apply_text(k, sample(9.0, 1500), 0),
            Applied::OutOfOrder
        );
        assert_eq!(store.apply_text(k, sample(3.0, 2000), 0), Applied::Updated);
        assert_eq!(values(&store), ["up{job=a} 3 @2000"]);
    }

    #[test]
    fn stale_marker_deletes_series_only_when_not_older() {
        let store = Store::new(10);
        let k = key("up", &[("job", "a")]);
        store.apply_text(k, sample(1.0, 1000), 0);
        assert_eq!(store.apply_text(k, stale(500), 0), Applied::OutOfOrder);
        assert_eq!(store.series_count(), 1);
        assert_eq!(store.apply_text(k, stale(1001), 0), Applied::Removed);
        assert_eq!(store.series_count(), 0);
        assert!(values(&store).is_empty());
        assert_eq!(store.apply_text(k, stale(1002), 0), Applied::StaleUnknown);
    }

    #[test]
    fn a_recycled_snapshot_list_is_refilled_with_the_current_series_only() {
        let store = Store::new(100);
        let jobs: Vec<String> = (0..20).map(|i| format!("job{i:02}")).collect();
        for (i, job) in jobs.iter().enumerate() {
            store.apply_text(key("up", &[("job", job)]), sample(i as f64, 1), 0);
        }
        let first = store.snapshot();
        let (list, capacity) = (first.series.as_ptr(), first.series.capacity());
        store.recycle(first);
        // Were the list freed, this same-sized allocation could take its place.
        let other: Vec<SeriesView> = Vec::with_capacity(capacity);
        store.apply_text(key("up", &[("job", &jobs[0])]), stale(2), 0);
        let second = store.snapshot();
        assert_eq!(second.series.as_ptr(), list, "the list is reused");
        let mut values: Vec<f64> = second.series.iter().map(|s| s.value).collect();
        values.sort_by(f64::total_cmp);
        assert_eq!(values, (1..20).map(f64::from).collect::<Vec<_>>());
        drop(other);
        // Once the store holds less than half of what the list has room for, it is let go.
        store.recycle(second);
        for job in &jobs[1..15] {
            store.apply_text(key("up", &[("job", job)]), stale(2), 0);
        }
        assert!(store.snapshot().series.capacity() < capacity);
    }

    #[test]
    fn series_are_told_apart_by_every_label() {
        let store = Store::new(10);
        store.apply_text(key("m", &[("a", "bc")]), sample(1.0, 1), 0);
        store.apply_text(key("m", &[("ab", "c")]), sample(2.0, 1), 0);
        store.apply_text(key("m", &[]), sample(3.0, 1), 0);
        store.apply_text(key("m2", &[]), sample(4.0, 1), 0);
        assert_eq!(store.series_count(), 4);
    }

    #[test]
    fn series_limit_is_exact_and_updates_still_pass() {
        let store = Store::new(2);
        assert_eq!(
            store.apply_text(key("a", &[]), sample(1.0, 1), 0),
            Applied::Created
        );
        assert_eq!(
            store.apply_text(key("b", &[]), sample(1.0, 1), 0),
            Applied::Created
        );
        assert_eq!(
            store.apply_text(key("c", &[]), sample(1.0, 1), 0),
            Applied::LimitReached
        );
        assert_eq!(
            store.apply_text(key("a", &[]), sample(2.0, 2), 0),
            Applied::Updated
        );
        store.apply_text(key("b", &[]), stale(5), 0);
        assert_eq!(
            store.apply_text(key("c", &[]), sample(1.0, 1), 0),
            Applied::Created
        );
        assert_eq!(store.series_count(), 2);
        let strings = store.interner.len();
        assert_eq!(
            store.apply_text(key("d", &[("pod", "new")]), sample(1.0, 1), 0),
            Applied::LimitReached
        );
        assert_eq!(
            store.interner.len(),
            strings,
            "nothing interned for a refused series"
        );
    }

    #[test]
    fn series_limit_holds_under_concurrent_writers() {
        let store = Arc::new(Store::new(1000));
        on_four_threads(&store, |store, w| {
            for i in 0..1000 {
                let name = format!("m_{w}_{i}");
                store.apply_text(key(&name, &[]), sample(1.0, 1), 0);
            }
        });
        assert_eq!(store.series_count(), 1000);
        assert_eq!(store.snapshot().series.len(), 1000);
    }

    /// The shards start with room for 64k series, or for `--series.max` if fewer: the first
    /// 60,000 series grow no table, and a small limit takes no more room than it needs.
    #[test]
    fn shards_start_with_room_for_the_first_series() {
        let capacities = |store: &Store| -> Vec<usize> {
            store
                .shards
                .iter()
                .map(|s| read(s).table.capacity())
                .collect()
        };
        let roomy = Store::new(2_000_000);
        let at_start = capacities(&roomy);
        for i in 0..60_000 {
            roomy.apply_text(key(&format!("m_{i}"), &[]), sample(1.0, 1), 0);
        }
        assert_eq!(roomy.series_count(), 60_000);
        assert_eq!(capacities(&roomy), at_start, "no table grew");
        let small = capacities(&Store::new(100));
        assert!(small.iter().all(|&c| (2..16).contains(&c)), "{small:?}");
    }

    /// The interner and the tuple tables start with room for the strings and tuples of 64k
    /// cAdvisor series, or of `--series.max` if fewer: 2,000 new strings and tuples grow no
    /// table, and a small limit takes little room.
    #[test]
    fn strings_and_tuples_start_with_room_for_the_first_series() {
        let capacities = |store: &Store| -> (Vec<usize>, Vec<usize>) {
            let tuples = store.tuples.iter().map(|t| lock(t).capacity()).collect();
            (store.interner.capacities(), tuples)
        };
        let roomy = Store::new(2_000_000);
        let at_start = capacities(&roomy);
        for i in 0..2_000 {
            let pod = format!("pod-{i}");
            roomy.apply_text(key("m", &[("pod", &pod)]), sample(1.0, 1), 0);
        }
        assert_eq!(roomy.series_count(), 2_000);
        assert_eq!(capacities(&roomy), at_start, "no table grew");
        let (strings, tuples) = capacities(&Store::new(100));
        assert!(
            strings.iter().chain(&tuples).all(|&c| c < 8),
            "{strings:?} {tuples:?}"
        );
    }

    /// Writers racing to make the same new series (each with its own labels, so each makes
    /// its schema and tuple with the shard unlocked) make each of them once.
    #[test]
    fn a_series_made_by_racing_writers_is_made_once() {
        let store = Arc::new(Store::new(10_000));
        let created: usize = on_four_threads(&store, |store, w| {
            (0..500)
                .filter(|i| {
                    let pod = format!("pod-{i}");
                    let labels = [("pod", pod.as_str())];
                    let written = sample(f64::from(w), i64::from(w));
                    store.apply_text(key("m", &labels), written, 0) == Applied::Created
                })
                .count()
        })
        .into_iter()
        .sum();
        assert_eq!(created, 500);
        assert_eq!(store.series_count(), 500);
        let snapshot = store.snapshot();
        assert_eq!(snapshot.series.len(), 500);
        assert!(
            snapshot.series.iter().all(|s| s.value == 3.0),
            "the newest sample of every series is kept"
        );
    }

    #[test]
    fn expiry_removes_series_written_longer_ago_than_the_ttl() {
        let store = Store::new(10);
        store.apply_text(key("old", &[("pod", "gone")]), sample(1.0, 1), 10);
        store.apply_text(key("new", &[]), sample(1.0, 1), 15);
        store.set_metadata("old", meta(MetricKind::Gauge), 10);
        assert_eq!(store.expire(20, 5), 1);
        assert_eq!(values(&store), ["new{} 1 @1"]);
        assert_eq!(store.series_count(), 1);
        assert!(
            store.snapshot().families.is_empty(),
            "its metadata expired too"
        );
        assert!(
            store.purge_unused_strings() >= 3,
            "old, pod and gone are unused now"
        );
    }

    #[test]
    fn labels_are_interned_across_series() {
        let store = Store::new(10);
        store.apply_text(key("a", &[("namespace", "prod")]), sample(1.0, 1), 0);
        store.apply_text(key("b", &[("namespace", "prod")]), sample(1.0, 1), 0);
        let snapshot = store.snapshot();
        let [first, second] = &snapshot.series[..] else {
            panic!("two series expected")
        };
        assert_eq!(first.values[0], second.values[0]);
        assert_eq!(
            store.interner.len(),
            4,
            "a, b, namespace and prod, each once"
        );
    }

    fn meta(kind: MetricKind) -> Metadata {
        Metadata {
            kind,
            help: "help".into(),
            unit: "".into(),
        }
    }

    #[test]
    fn series_are_found_again_after_their_tables_grow() {
        // Enough series to grow every shard's table, and the tuple and schema tables, several
        // times over: each growth places entries by the hash folded from what their schema
        // and tuple keep, and a wrong one would make the second round create series again.
        let store = Store::new(100_000);
        let pods: Vec<String> = (0..20_000).map(|i| format!("pod-{i}")).collect();
        for round in 1..=2 {
            for (i, pod) in pods.iter().enumerate() {
                let name = ["cpu", "memory"][i % 2];
                let applied = store.apply_text(key(name, &[("pod", pod)]), sample(1.0, round), 0);
                let expected = [Applied::Created, Applied::Updated][round as usize - 1];
                assert_eq!(applied, expected, "{name} {pod}, round {round}");
            }
        }
        assert_eq!(store.series_count(), 20_000);
    }

    #[test]
    fn a_series_and_its_view_stay_small() {
        // Both are held once per series, the view in every scrape's list: a fat pointer or a
        // field more here is 8 bytes more per series. A series finds its extras by a slot
        // number in the space its clock leaves; a snapshot keeps them beside its views.
        assert_eq!(std::mem::size_of::<Series>(), 40);
        assert_eq!(std::mem::size_of::<SeriesView>(), 32);
    }

    #[test]
    fn a_tuple_refused_as_not_utf8_keeps_none_of_its_strings() {
        let store = Store::new(10);
        let mut writer = store.writer();
        let labels: [(&[u8], &[u8]); 2] = [(b"a", b"interned-first"), (b"b", b"caf\xe9")];
        let key = SeriesKey {
            name: b"m",
            labels: &labels,
        };
        let hash = store.hash(&key);
        assert_eq!(
            writer.apply(&key, hash, &Update::float(sample(1.0, 1)), 0),
            Applied::NotText
        );
        // While the writer lives, only its schema is held: the value interned before the bad
        // one is not kept by the writer's gathered atoms.
        assert_eq!(store.purge_unused_strings(), 1);
        assert_eq!(store.series_count(), 0);
    }

    #[test]
    fn series_with_the_same_values_share_one_tuple() {
        let store = Store::new(10);
        let labels = [("container", "app"), ("pod", "p1")];
        store.apply_text(key("cpu", &labels), sample(1.0, 1), 0);
        store.apply_text(key("memory", &labels), sample(2.0, 1), 0);
        store.apply_text(
            key("memory", &[("container", "app"), ("pod", "p2")]),
            sample(3.0, 1),
            0,
        );
        let snapshot = store.snapshot();
        let tuple_of = |name: &str, pod: &str| {
            let series = snapshot
                .series
                .iter()
                .find(|s| s.name() == name && s.labels().any(|l| l == ("pod", pod)));
            series.expect("series stored").values.address()
        };
        assert_eq!(tuple_of("cpu", "p1"), tuple_of("memory", "p1"));
        assert_ne!(tuple_of("memory", "p1"), tuple_of("memory", "p2"));
        drop(snapshot);
        store.apply_text(
            key("memory", &[("container", "app"), ("pod", "p2")]),
            stale(5),
            0,
        );
        store.purge_unused_strings();
        let tuples: usize = store.tuples.iter().map(|t| lock(t).len()).sum();
        assert_eq!(
            tuples, 2,
            "the values of p1, and the label names (container, pod)"
        );
    }

    #[test]
    fn metadata_is_replaced_per_family() {
        let store = Store::new(10);
        store.set_metadata("x", meta(MetricKind::Gauge), 0);
        store.set_metadata("x", meta(MetricKind::Counter), 0);
        let snapshot = store.snapshot();
        assert_eq!(snapshot.families.len(), 1);
        assert_eq!(snapshot.families["x"].kind, MetricKind::Counter);
    }
}
