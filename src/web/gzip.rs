//! gzip for answers (`Content-Encoding: gzip`, RFC 1952), with libdeflate.
//!
//! A scrape page is compressed in chunks of [`GZIP_CHUNK_BYTES`] as it is rendered, each chunk
//! an independent gzip member, and the members are sent one after another: a multi-member
//! stream, which every gzip reader takes as the concatenation of the members' data (RFC 1952
//! section 2.2; Go's `gzip.Reader`, and so Prometheus, reads them by default). Chunks are
//! compressed by other threads (the worker pool) while the page goes on being rendered, at
//! most [`GZIP_CHUNKS_IN_FLIGHT`] at a time, and sent in order as soon as each is done: a
//! scrape holds a bounded number of chunks whatever the page's size, and its first bytes leave
//! before the page is rendered.
//!
//! Level 5, libdeflate's first with lazy matching: on the benchmark's page it is as small as
//! Prometheus's own gzip at a fifth of its CPU time, where levels 1 to 4 leave the page 6-8%
//! larger for little less time (BENCHMARKS.md).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver};

use libdeflater::{CompressionLvl, Compressor};

/// Uncompressed bytes per gzip member: large enough that a member's own 18 bytes and the
/// window it starts without cost nothing measurable, small enough that a few in flight are
/// little memory.
pub const GZIP_CHUNK_BYTES: usize = 256 << 10;

/// Chunks being compressed or waiting to be sent, per scrape.
pub const GZIP_CHUNKS_IN_FLIGHT: usize = 4;

/// What one gzip scrape holds at most besides its page: the chunks in flight, each with the
/// room its compressed form may take, and the chunk being filled.
pub const GZIP_HELD_BYTES: usize =
    GZIP_CHUNKS_IN_FLIGHT * (2 * GZIP_CHUNK_BYTES + 1024) + GZIP_CHUNK_BYTES;

const LEVEL: i32 = 5;

thread_local! {
    /// Each thread's compressor: its tables are allocated once per thread, not per chunk.
    static COMPRESSOR: RefCell<Compressor> =
        RefCell::new(Compressor::new(CompressionLvl::new(LEVEL).expect("a valid level")));
}

/// `data` as one gzip member.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    COMPRESSOR.with(|compressor| {
        let mut compressor = compressor.borrow_mut();
        let mut out = vec![0; compressor.gzip_compress_bound(data.len())];
        let len = compressor
            .gzip_compress(data, &mut out)
            .expect("the output has the room libdeflate asks for");
        out.truncate(len);
        out
    })
}

/// Work handed to another thread.
pub type Task = Box<dyn FnOnce() + Send>;

/// Compresses what is written to it into `out` as a multi-member gzip stream, each chunk on
/// whatever thread `offload` runs tasks on (the calling one is fine). [`ChunkedGzip::finish`]
/// writes the rest; dropped unfinished (the scraper hung up), it waits for the chunks in flight
/// so that their memory is free when it returns.
pub struct ChunkedGzip<'a> {
    out: &'a mut dyn Write,
    offload: &'a dyn Fn(Task),
    chunk: Vec<u8>,
    in_flight: VecDeque<Receiver<Vec<u8>>>,
    /// Whether a member has been sent: an empty page is still one (empty) member.
    sent_any: bool,
}

impl<'a> ChunkedGzip<'a> {
    pub fn new(out: &'a mut dyn Write, offload: &'a dyn Fn(Task)) -> ChunkedGzip<'a> {
        ChunkedGzip {
            out,
            offload,
            chunk: Vec::with_capacity(GZIP_CHUNK_BYTES),
            in_flight: VecDeque::with_capacity(GZIP_CHUNKS_IN_FLIGHT),
            sent_any: false,
        }
    }

    /// Compresses what is buffered and sends every member, in order.
    pub fn finish(mut self) -> io::Result<()> {
        if !self.chunk.is_empty() || !self.sent_any {
            self.submit()?;
        }
        while !self.in_flight.is_empty() {
            self.send_oldest()?;
        }
        self.out.flush()
    }

    /// Hands the buffered chunk to be compressed; sends the oldest members while too many are
    /// in flight.
    fn submit(&mut self) -> io::Result<()> {
        let data = std::mem::replace(&mut self.chunk, Vec::with_capacity(GZIP_CHUNK_BYTES));
        let (done, member) = mpsc::channel();
        (self.offload)(Box::new(move || {
            // The scrape may have ended meanwhile: then nobody waits for the member.
            let _ = done.send(gzip(&data));
        }));
        self.in_flight.push_back(member);
        self.sent_any = true;
        while self.in_flight.len() >= GZIP_CHUNKS_IN_FLIGHT {
            self.send_oldest()?;
        }
        Ok(())
    }

    fn send_oldest(&mut self) -> io::Result<()> {
        let member = self.in_flight.pop_front().expect("a chunk in flight");
        let member = member
            .recv()
            .map_err(|_| io::Error::other("a chunk's compression was lost"))?;
        self.out.write_all(&member)
    }
}

impl Write for ChunkedGzip<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let room = GZIP_CHUNK_BYTES - self.chunk.len();
        let taken = bytes.len().min(room);
        self.chunk.extend_from_slice(&bytes[..taken]);
        if self.chunk.len() == GZIP_CHUNK_BYTES {
            self.submit()?;
        }
        Ok(taken)
    }

    /// Members are sent as they are done; a chunk is not cut short to flush it.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for ChunkedGzip<'_> {
    fn drop(&mut self) {
        for member in self.in_flight.drain(..) {
            let _ = member.recv();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn gunzip(stream: &[u8]) -> Vec<u8> {
        let mut text = Vec::new();
        flate2::read::MultiGzDecoder::new(stream)
            .read_to_end(&mut text)
            .unwrap();
        text
    }

    fn page(len: usize) -> Vec<u8> {
        let line = b"container_memory_usage_bytes{pod=\"x\"} 1\n";
        (0..len).map(|i| line[i % line.len()]).collect()
    }

    #[test]
    fn a_page_is_members_that_read_back_as_the_page() {
        for len in [
            0,
            1,
            GZIP_CHUNK_BYTES,
            3 * GZIP_CHUNK_BYTES + 17,
            20 * GZIP_CHUNK_BYTES,
        ] {
            let text = page(len);
            let mut out = Vec::new();
            let inline = |task: Task| task();
            let mut gzip = ChunkedGzip::new(&mut out, &inline);
            // In pieces of every size, as the page writer hands them over.
            for piece in text.chunks(7919) {
                gzip.write_all(piece).unwrap();
            }
            gzip.finish().unwrap();
            assert_eq!(gunzip(&out), text, "{len} bytes");
            let members = out.windows(3).filter(|w| w == &[0x1f, 0x8b, 8]).count();
            assert!(members >= len.div_ceil(GZIP_CHUNK_BYTES).max(1), "{len}");
        }
    }

    #[test]
    fn chunks_compressed_elsewhere_are_sent_in_order_and_a_bounded_number_at_once() {
        // One other thread compresses, slowly, as a busy pool would.
        let (tasks, queue) = mpsc::channel::<Task>();
        let worker = std::thread::spawn(move || {
            for task in queue {
                std::thread::sleep(std::time::Duration::from_millis(2));
                task();
            }
        });
        let offload = |task: Task| tasks.send(task).unwrap();
        let text = page(10 * GZIP_CHUNK_BYTES + 5);
        let mut out = Vec::new();
        let mut gzip = ChunkedGzip::new(&mut out, &offload);
        let mut most = 0;
        for piece in text.chunks(GZIP_CHUNK_BYTES / 3) {
            gzip.write_all(piece).unwrap();
            most = most.max(gzip.in_flight.len());
        }
        assert!(most < GZIP_CHUNKS_IN_FLIGHT, "{most} chunks left in flight");
        assert!(most > 1, "chunks were compressed while others were made");
        gzip.finish().unwrap();
        drop(tasks);
        worker.join().unwrap();
        assert_eq!(gunzip(&out), text);
    }
}
