//! The static build's memory allocator: a cache of small blocks for each worker thread, in
//! front of the C library's `malloc`.
//!
//! musl's allocator (mallocng) takes one lock for the whole process on every `malloc` and
//! `free`. When both workers create series at once they queue on it, and that put the static
//! build 14-30% behind the glibc build in CPU per new series (BENCHMARKS.md), where glibc's
//! per-thread cache takes no lock. This gives the workers such a cache, in little code.
//!
//! Why not the `mimalloc` crate (built with musl-gcc): measured trial by trial against this
//! cache (BENCHMARKS.md), its default (v3) held 399 resident bytes per series against 123 and
//! cost 31% more CPU per new series; its v2 was 4-13% faster on ingest but held 133 bytes per
//! series (8% more) and 252 after scrapes, over the 200-byte goal.
//!
//! - A request of at most [`LARGEST`] bytes, aligned to at most 16, is rounded up to a
//!   multiple of 16, its *class*. A worker serves it from its own list of freed blocks of that
//!   class, or else cuts it from its *run*, [`RUN_BYTES`] taken from `malloc` at once and
//!   shared by all classes. Neither takes a lock, and a block has no header: `dealloc` is told
//!   the size, and so the class.
//! - One run for all classes, not one per class, keeps what is allocated together together:
//!   the label values of a new series sit next to each other, as with glibc, and a scrape that
//!   reads them one after the other finds them in a few cache lines. With a run per class they
//!   sat in a dozen places, and checking them for bytes to escape took twice glibc's time.
//! - A block a worker frees joins its list. A list that grows past [`LIST_BYTES`] hands a batch
//!   of its blocks to the class's shared depot, behind a lock, where a worker whose list and
//!   run are empty takes a batch before it asks `malloc` for a new run.
//! - Other threads (connections, housekeeping) cache nothing: a small block they free goes to
//!   the depot, and a small block they need comes from there, or else from `malloc`, at the
//!   full size of its class so that it can be cached later.
//! - Anything larger, or aligned to more, goes to `malloc` and `free` as before.
//!
//! Small blocks are never handed back to `malloc`: as glibc's arenas do, the cache keeps the
//! most small memory the process ever held, and reuses it. A caching thread's cache is not
//! handed back when the thread ends, which is why only the workers, who live as long as the
//! process, cache.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::UnsafeCell;
use std::ptr;
use std::sync::{Mutex, MutexGuard};

use crate::base::locks::lock;

/// Block sizes are multiples of this, which is also the alignment every block has.
const GRANULE: usize = 16;
/// The largest request served from the cache; larger ones go to `malloc`.
pub const LARGEST: usize = 512;
const CLASSES: usize = LARGEST / GRANULE;
/// What a worker takes from `malloc` at once, and cuts into blocks as it goes, so that only
/// the pages it reaches become resident. Above musl's 128 KiB threshold, so that
/// `malloc` maps each run by itself, without rounding it up: 32 KiB runs held 3% more memory
/// per series, and 7% more after scrapes.
pub const RUN_BYTES: usize = 256 * 1024;
/// How much freed memory of one class a worker keeps for itself.
pub const LIST_BYTES: usize = 64 * 1024;
/// How much of it moves to the depot at once when the list is full.
const BATCH_BYTES: usize = LIST_BYTES / 2;

/// The allocator; all its state is in thread-locals and the depots, so it is a unit value.
pub struct ThreadCache;

/// Makes the calling thread keep a cache of its own; call it on threads that live as long as
/// the process. Without [`ThreadCache`] as the global allocator it does nothing.
pub fn cache_this_thread() {
    with_local(|local| local.caching = true);
}

fn class_of(layout: Layout) -> Option<usize> {
    // A `GlobalAlloc` is never asked for zero bytes.
    (layout.size() <= LARGEST && layout.align() <= GRANULE).then(|| (layout.size() - 1) / GRANULE)
}

fn block_size(class: usize) -> usize {
    (class + 1) * GRANULE
}

fn batch_len(class: usize) -> usize {
    BATCH_BYTES / block_size(class)
}

// A free block's first word links it to the next block of its list or batch; the first block
// of a batch links the next batch in its second word. Every block has room for two words.

unsafe fn word(block: *mut u8, index: usize) -> *mut u8 {
    unsafe { *block.cast::<*mut u8>().add(index) }
}

unsafe fn set_word(block: *mut u8, index: usize, value: *mut u8) {
    unsafe { *block.cast::<*mut u8>().add(index) = value }
}

/// One class's shared blocks: batches, each a list of blocks, the first linking the next batch.
struct Depot {
    batches: *mut u8,
}

// SAFETY: the blocks a depot links are reachable from nowhere else, and only behind its lock.
unsafe impl Send for Depot {}

static DEPOTS: [Mutex<Depot>; CLASSES] = [const {
    Mutex::new(Depot {
        batches: ptr::null_mut(),
    })
}; CLASSES];

fn depot(class: usize) -> MutexGuard<'static, Depot> {
    lock(&DEPOTS[class])
}

impl Depot {
    /// Adds a list of blocks, ended by a null link, as one batch.
    unsafe fn push(&mut self, batch: *mut u8) {
        unsafe { set_word(batch, 1, self.batches) };
        self.batches = batch;
    }

    /// The first block of the first batch; the rest of that batch becomes the first batch.
    unsafe fn pop(&mut self) -> *mut u8 {
        let block = self.batches;
        if !block.is_null() {
            let rest = unsafe { word(block, 0) };
            self.batches = unsafe { word(block, 1) };
            if !rest.is_null() {
                unsafe { self.push(rest) };
            }
        }
        block
    }
}

/// Freed blocks of one class; `len` may count more than the list holds (a batch taken from a
/// depot is counted as full), never fewer, so a list never outgrows [`LIST_BYTES`] by much.
#[derive(Clone, Copy)]
struct List {
    head: *mut u8,
    len: usize,
}

/// The part of a run not yet cut into blocks.
#[derive(Clone, Copy)]
struct Run {
    next: *mut u8,
    end: *mut u8,
}

struct Local {
    caching: bool,
    lists: [List; CLASSES],
    run: Run,
}

thread_local! {
    static LOCAL: UnsafeCell<Local> = const {
        UnsafeCell::new(Local {
            caching: false,
            lists: [List { head: ptr::null_mut(), len: 0 }; CLASSES],
            run: Run { next: ptr::null_mut(), end: ptr::null_mut() },
        })
    };
}

fn with_local<R>(work: impl FnOnce(&mut Local) -> R) -> R {
    // SAFETY: the thread's own cell, borrowed only here and never while another borrow lives:
    // nothing called with it borrowed allocates through this allocator.
    LOCAL.with(|cell| work(unsafe { &mut *cell.get() }))
}

impl Local {
    unsafe fn take(&mut self, class: usize) -> *mut u8 {
        let size = block_size(class);
        if !self.caching {
            let block = unsafe { depot(class).pop() };
            if !block.is_null() {
                return block;
            }
            // The full class size, so that the block may join the cache when freed.
            return unsafe { System.alloc(Layout::from_size_align_unchecked(size, GRANULE)) };
        }
        let list = &mut self.lists[class];
        if !list.head.is_null() {
            let block = list.head;
            list.head = unsafe { word(block, 0) };
            list.len = list.len.saturating_sub(1);
            return block;
        }
        let run = &mut self.run;
        if run.end as usize - run.next as usize >= size {
            let block = run.next;
            run.next = unsafe { block.add(size) };
            return block;
        }
        unsafe { self.refill(class) }
    }

    /// The list of `class` is empty and the run too short: a batch from the depot, or else a
    /// new run. What is left of the old run, under [`LARGEST`] bytes, is not used.
    unsafe fn refill(&mut self, class: usize) -> *mut u8 {
        let mut depot = depot(class);
        let block = depot.batches;
        if !block.is_null() {
            depot.batches = unsafe { word(block, 1) };
            drop(depot);
            self.lists[class] = List {
                head: unsafe { word(block, 0) },
                len: batch_len(class) - 1,
            };
            return block;
        }
        drop(depot);
        let start = unsafe { System.alloc(Layout::from_size_align_unchecked(RUN_BYTES, GRANULE)) };
        if !start.is_null() {
            self.run = Run {
                next: unsafe { start.add(block_size(class)) },
                end: unsafe { start.add(RUN_BYTES) },
            };
        }
        start
    }

    unsafe fn give(&mut self, block: *mut u8, class: usize) {
        if !self.caching {
            unsafe { set_word(block, 0, ptr::null_mut()) };
            unsafe { depot(class).push(block) };
            return;
        }
        let list = &mut self.lists[class];
        unsafe { set_word(block, 0, list.head) };
        list.head = block;
        list.len += 1;
        if list.len * block_size(class) > LIST_BYTES {
            // Hand the newest batch of blocks to the depot.
            let mut last = list.head;
            let mut moved = 1;
            while moved < batch_len(class) && !unsafe { word(last, 0) }.is_null() {
                last = unsafe { word(last, 0) };
                moved += 1;
            }
            let batch = list.head;
            list.head = unsafe { word(last, 0) };
            list.len -= moved;
            unsafe { set_word(last, 0, ptr::null_mut()) };
            unsafe { depot(class).push(batch) };
        }
    }
}

// SAFETY: every block handed out is `block_size(class)` bytes at a multiple of 16 (runs and the
// blocks of threads that do not cache come from `malloc` with that alignment, and block sizes
// are multiples of it), at least the layout's size and alignment, and owned by its caller alone
// until freed: a block is on at most one list, batch or run at a time, and a thread's list and
// run are its own, a depot's behind its lock.
//
// Never inlined: with LTO, every allocation in the program would get its own copy.
unsafe impl GlobalAlloc for ThreadCache {
    #[inline(never)]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match class_of(layout) {
            None => unsafe { System.alloc(layout) },
            Some(class) => with_local(|local| unsafe { local.take(class) }),
        }
    }

    #[inline(never)]
    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        match class_of(layout) {
            None => unsafe { System.dealloc(block, layout) },
            Some(class) => with_local(|local| unsafe { local.give(block, class) }),
        }
    }

    #[inline(never)]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if class_of(layout).is_none() {
            // `calloc` knows when fresh pages are zero already.
            return unsafe { System.alloc_zeroed(layout) };
        }
        let block = unsafe { self.alloc(layout) };
        if !block.is_null() {
            unsafe { block.write_bytes(0, layout.size()) };
        }
        block
    }

    #[inline(never)]
    unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        match (class_of(layout), class_of(new_layout)) {
            (None, None) => unsafe { System.realloc(block, layout, new_size) },
            (Some(old), Some(new)) if old == new => block,
            _ => {
                let moved = unsafe { self.alloc(new_layout) };
                if !moved.is_null() {
                    unsafe { ptr::copy_nonoverlapping(block, moved, layout.size().min(new_size)) };
                    unsafe { self.dealloc(block, layout) };
                }
                moved
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::sync::mpsc;
    use std::thread;

    fn layout(size: usize) -> Layout {
        Layout::from_size_align(size, 8).unwrap()
    }

    /// A block the tests hold: a pointer that may travel to another thread with its provenance,
    /// so that Miri checks every access through it (`-Zmiri-strict-provenance`).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    struct Block(*mut u8);

    // SAFETY: a block belongs to whichever thread holds it; the tests hand it over whole.
    unsafe impl Send for Block {}

    /// A block filled with one byte, to be checked later.
    fn filled(size: usize, mark: u8) -> Block {
        let block = unsafe { ThreadCache.alloc(layout(size)) };
        assert!(!block.is_null());
        assert_eq!(block.addr() % GRANULE, 0, "every block is 16-aligned");
        unsafe { block.write_bytes(mark, size) };
        Block(block)
    }

    fn check_and_free(Block(block): Block, size: usize, mark: u8) {
        let bytes = unsafe { std::slice::from_raw_parts(block, size) };
        assert!(
            bytes.iter().all(|&b| b == mark),
            "a live block was overwritten"
        );
        unsafe { ThreadCache.dealloc(block, layout(size)) };
    }

    /// Runs `work` on a new thread, which caches if told to.
    fn on_thread<R: Send + 'static>(caching: bool, work: impl FnOnce() -> R + Send + 'static) -> R {
        thread::spawn(move || {
            if caching {
                cache_this_thread();
            }
            work()
        })
        .join()
        .unwrap()
    }

    #[test]
    fn a_freed_small_block_is_reused_by_its_thread() {
        on_thread(true, || {
            let first = filled(100, 1);
            check_and_free(first, 100, 1);
            assert_eq!(
                filled(97, 2),
                first,
                "97 and 100 bytes share the 112-byte class"
            );
            let other_class = filled(120, 3);
            assert_ne!(other_class, first);
            check_and_free(first, 97, 2);
            check_and_free(other_class, 120, 3);
        });
    }

    #[test]
    fn blocks_freed_where_nothing_is_cached_serve_every_thread() {
        // The 480-byte class is used by no other test, so its depot is this test's alone.
        let size = 470;
        let freed: HashSet<Block> = on_thread(false, move || {
            let blocks: Vec<Block> = (0..10).map(|_| filled(size, 4)).collect();
            blocks.iter().for_each(|&b| check_and_free(b, size, 4));
            blocks.into_iter().collect()
        });
        for caching in [false, true] {
            let freed = freed.clone();
            on_thread(caching, move || {
                let block = filled(size, 5);
                assert!(
                    freed.contains(&block),
                    "a block from the depot (caching: {caching})"
                );
                check_and_free(block, size, 5);
            });
        }
    }

    #[test]
    fn a_full_list_hands_a_batch_to_the_depot() {
        // The 464-byte class is used by no other test.
        let size = 460;
        let count = LIST_BYTES / block_size(class_of(layout(size)).unwrap()) + 1;
        let (sender, receiver) = mpsc::channel();
        let keeper = thread::spawn(move || {
            cache_this_thread();
            let blocks: Vec<Block> = (0..count).map(|_| filled(size, 6)).collect();
            blocks.iter().for_each(|&b| check_and_free(b, size, 6));
            sender.send(blocks).unwrap();
            // Stay alive, as a worker does.
            thread::park();
        });
        let freed: HashSet<Block> = receiver.recv().unwrap().into_iter().collect();
        let from_batch = on_thread(true, move || {
            let block = filled(size, 7);
            check_and_free(block, size, 7);
            freed.contains(&block)
        });
        assert!(from_batch, "a new worker's first block came from the batch");
        keeper.thread().unpark();
        keeper.join().unwrap();
    }

    #[test]
    fn realloc_keeps_the_contents_across_classes_and_into_malloc() {
        for caching in [false, true] {
            on_thread(caching, || {
                let mut size = 1;
                let Block(mut block) = filled(size, 8);
                for new_size in [16, 17, 200, 512, 513, 4096, 300, 5] {
                    block = unsafe { ThreadCache.realloc(block, layout(size), new_size) };
                    assert!(!block.is_null());
                    let kept = size.min(new_size);
                    let bytes = unsafe { std::slice::from_raw_parts(block, kept) };
                    assert!(
                        bytes.iter().all(|&b| b == 8),
                        "{size} -> {new_size} lost bytes"
                    );
                    unsafe { block.write_bytes(8, new_size) };
                    size = new_size;
                }
                check_and_free(Block(block), size, 8);
            });
        }
    }

    #[test]
    fn zeroed_blocks_are_zero_even_when_reused() {
        on_thread(true, || {
            let dirty = filled(64, 0xff);
            check_and_free(dirty, 64, 0xff);
            let zeroed = unsafe { ThreadCache.alloc_zeroed(layout(64)) };
            assert_eq!(Block(zeroed), dirty, "the dirty block is the one reused");
            check_and_free(Block(zeroed), 64, 0);
        });
    }

    /// Sizes up to 448 bytes (the classes above are the depot tests' own), and one in eight
    /// over [`LARGEST`], for `malloc`.
    fn sized(round: usize, thread: usize) -> usize {
        let spread = round * 7919 + thread * 104_729;
        if round % 8 == 7 {
            LARGEST + 1 + spread % 64
        } else {
            1 + spread % 448
        }
    }

    /// Rounds of the test below, and blocks each thread keeps: fewer under Miri (`make miri`),
    /// which runs some thousand times slower and checks every access instead.
    const ROUNDS: usize = if cfg!(miri) { 600 } else { 20_000 };
    const KEPT: usize = if cfg!(miri) { 40 } else { 500 };

    #[test]
    fn threads_freeing_each_others_blocks_never_share_one() {
        // Four threads, two of them caching, allocate blocks of every class, mark them with their
        // own byte, and pass every other one to the next thread, which checks and frees it:
        // lists, batches and depots all see blocks from other threads. An overlap shows as a
        // changed mark.
        let threads = 4;
        let (senders, receivers): (Vec<_>, Vec<_>) = (0..threads)
            .map(|_| mpsc::channel::<(Block, usize, u8)>())
            .unzip();
        let handles: Vec<_> = receivers
            .into_iter()
            .enumerate()
            .map(|(me, inbox)| {
                let next = senders[(me + 1) % threads].clone();
                thread::spawn(move || {
                    if me % 2 == 0 {
                        cache_this_thread();
                    }
                    let mark = me as u8 + 10;
                    let mut mine = Vec::new();
                    for round in 0..ROUNDS {
                        let size = sized(round, me);
                        let block = filled(size, mark);
                        if round % 2 == 0 {
                            next.send((block, size, mark)).unwrap();
                        } else {
                            mine.push((block, size));
                        }
                        if mine.len() > KEPT {
                            let (block, size) = mine.swap_remove(round % mine.len());
                            check_and_free(block, size, mark);
                        }
                        while let Ok((block, size, theirs)) = inbox.try_recv() {
                            check_and_free(block, size, theirs);
                        }
                    }
                    drop(next);
                    for (block, size) in mine {
                        check_and_free(block, size, mark);
                    }
                    inbox
                })
            })
            .collect();
        drop(senders);
        for handle in handles {
            for (block, size, theirs) in handle.join().unwrap() {
                check_and_free(block, size, theirs);
            }
        }
    }
}
