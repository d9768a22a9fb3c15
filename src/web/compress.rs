//! Compressed answers: gzip (RFC 1952) with libdeflate, and zstd (RFC 8878) with libzstd.
//!
//! A scrape page is compressed in chunks as it is rendered, each chunk an independent gzip
//! member or zstd frame, sent one after another. Both formats define such a stream as the
//! concatenation of its parts' data (RFC 1952 section 2.2; RFC 8878 section 3.1): Go's
//! `gzip.Reader` and klauspost/compress's `zstd` decoder, which Prometheus reads scrapes with,
//! read them so, as do Python's `gzip` and `zstandard` (`read_across_frames`) and the `zstd`
//! command. Chunks are compressed by other threads (the worker pool) while the page goes on
//! being rendered, a bounded number at a time, and sent in order as soon as each is done: a
//! scrape holds a bounded number of chunks whatever the page's size, and its first bytes leave
//! before the page is rendered.
//!
//! gzip: 256 KiB chunks at libdeflate's level 5, its first with lazy matching: on the
//! benchmark's page as small as Prometheus's own gzip at a fifth of its CPU time, where levels
//! 1 to 4 leave the page 6-8% larger for little less time. zstd: a frame starts without a
//! window, which costs zstd more than gzip (whose window is 32 KiB anyway), so its chunks are
//! larger, up to 2 MiB, at level 2: 0.80 of Prometheus's gzip page at a third of libdeflate's
//! CPU, where level 1 stays at 0.93 whatever the chunk, 1 MiB chunks make 0.84 and level 3
//! costs half as much CPU again for little less (`cargo bench --bench load -- --stages`;
//! BENCHMARKS.md). A zstd scrape holds about seven chunks' worth, so under a small
//! `--web.max-bytes-in-flight` its chunks shrink, down to 256 KiB ([`Codec::zstd_within`]).
//!
//! The other ways to keep zstd's window, measured on the same page at level 2: one stream
//! whose window carries across chunks (flushed at each) makes 10.28 MB holding about 2 MB, but
//! on one thread, 0.085 s (`--stages`); libzstd's own workers make one frame of 10.42 MB in
//! 0.073 s on two threads but hold 35 MB of contexts per scrape, on threads outside the worker
//! pool (Python `zstandard` 0.25 with `threads=2`). Frames of 2 MiB on both workers make
//! 10.68 MB in 0.063 s of scrape, holding 14 MiB counted in the byte budget.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver};

use libdeflater::{CompressionLvl, Compressor};

/// A content coding an answer is compressed with, and for zstd the size of its chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    Gzip,
    Zstd { chunk_bytes: usize },
}

/// zstd's largest and smallest chunks.
const ZSTD_CHUNK_BYTES: usize = 2 << 20;
const ZSTD_SMALLEST_CHUNK_BYTES: usize = 256 << 10;

const GZIP_LEVEL: i32 = 5;
const ZSTD_LEVEL: i32 = 2;

impl Codec {
    /// Its name in `Content-Encoding`.
    pub fn name(self) -> &'static str {
        match self {
            Codec::Gzip => "gzip",
            Codec::Zstd { .. } => "zstd",
        }
    }

    /// zstd in its largest chunks.
    pub fn zstd() -> Codec {
        Codec::Zstd {
            chunk_bytes: ZSTD_CHUNK_BYTES,
        }
    }

    /// The codec with chunks small enough that a scrape holds at most a quarter of `budget`
    /// (`--web.max-bytes-in-flight`): zstd's halve from 2 MiB down to 256 KiB, gzip's are
    /// small enough already.
    pub fn zstd_within(self, budget: usize) -> Codec {
        let Codec::Zstd { mut chunk_bytes } = self else {
            return self;
        };
        while chunk_bytes > ZSTD_SMALLEST_CHUNK_BYTES
            && (Codec::Zstd { chunk_bytes }).held_bytes() > budget / 4
        {
            chunk_bytes /= 2;
        }
        Codec::Zstd { chunk_bytes }
    }

    /// Uncompressed bytes per member or frame of a page: large enough that what each starts
    /// without (a window, its header) costs little, small enough that a few in flight are
    /// little memory.
    pub fn chunk_bytes(self) -> usize {
        match self {
            Codec::Gzip => 256 << 10,
            Codec::Zstd { chunk_bytes } => chunk_bytes,
        }
    }

    /// Chunks being compressed or waiting to be sent, per scrape: enough to keep two workers
    /// busy while the connection renders the next.
    pub fn chunks_in_flight(self) -> usize {
        match self {
            Codec::Gzip => 4,
            Codec::Zstd { .. } => 3,
        }
    }

    /// What one scrape compressed this way holds at most besides its page: the chunks in
    /// flight, each with the room its compressed form may take, and the chunk being filled.
    pub fn held_bytes(self) -> usize {
        let chunk = self.chunk_bytes();
        self.chunks_in_flight() * (chunk + self.bound(chunk)) + chunk
    }

    /// The most `len` bytes can take compressed.
    fn bound(self, len: usize) -> usize {
        match self {
            Codec::Gzip => GZIP.with(|gzip| gzip.borrow_mut().gzip_compress_bound(len)),
            Codec::Zstd { .. } => zstd::zstd_safe::compress_bound(len),
        }
    }

    /// `data` as one gzip member or one zstd frame.
    pub fn compress(self, data: &[u8]) -> Vec<u8> {
        let mut out = vec![0; self.bound(data.len())];
        let len = match self {
            Codec::Gzip => GZIP
                .with(|gzip| gzip.borrow_mut().gzip_compress(data, &mut out))
                .ok(),
            Codec::Zstd { .. } => ZSTD
                .with(|zstd| zstd.borrow_mut().compress_to_buffer(data, &mut out[..]))
                .ok(),
        };
        out.truncate(len.expect("the output has the room the coder asks for"));
        out
    }
}

thread_local! {
    /// Each thread's compressors: their tables are allocated once per thread, not per chunk.
    static GZIP: RefCell<Compressor> =
        RefCell::new(Compressor::new(CompressionLvl::new(GZIP_LEVEL).expect("a valid level")));
    static ZSTD: RefCell<zstd::bulk::Compressor<'static>> =
        RefCell::new(zstd::bulk::Compressor::new(ZSTD_LEVEL).expect("a zstd context"));
}

/// Work handed to another thread.
pub type Task = Box<dyn FnOnce() + Send>;

/// Compresses what is written to it into `out` as a stream of gzip members or zstd frames, one
/// per chunk, each compressed on whatever thread `offload` runs tasks on (the calling one is
/// fine). [`ChunkedCompressor::finish`] writes the rest; dropped unfinished (the scraper hung
/// up), it waits for the chunks in flight so that their memory is free when it returns.
pub struct ChunkedCompressor<'a> {
    codec: Codec,
    out: &'a mut dyn Write,
    offload: &'a dyn Fn(Task),
    chunk: Vec<u8>,
    in_flight: VecDeque<Receiver<Vec<u8>>>,
    /// Whether a chunk has been sent: an empty page is still one (empty) member or frame.
    sent_any: bool,
}

impl<'a> ChunkedCompressor<'a> {
    pub fn new(
        codec: Codec,
        out: &'a mut dyn Write,
        offload: &'a dyn Fn(Task),
    ) -> ChunkedCompressor<'a> {
        ChunkedCompressor {
            codec,
            out,
            offload,
            chunk: Vec::with_capacity(codec.chunk_bytes()),
            in_flight: VecDeque::with_capacity(codec.chunks_in_flight()),
            sent_any: false,
        }
    }

    /// Compresses what is buffered and sends every chunk, in order.
    pub fn finish(mut self) -> io::Result<()> {
        if !self.chunk.is_empty() || !self.sent_any {
            self.submit()?;
        }
        while !self.in_flight.is_empty() {
            self.send_oldest()?;
        }
        self.out.flush()
    }

    /// Hands the buffered chunk to be compressed; sends the oldest chunks while too many are
    /// in flight.
    fn submit(&mut self) -> io::Result<()> {
        let codec = self.codec;
        let data = std::mem::replace(&mut self.chunk, Vec::with_capacity(codec.chunk_bytes()));
        let (done, compressed) = mpsc::channel();
        (self.offload)(Box::new(move || {
            // The scrape may have ended meanwhile: then nobody waits for the chunk.
            let _ = done.send(codec.compress(&data));
        }));
        self.in_flight.push_back(compressed);
        self.sent_any = true;
        while self.in_flight.len() >= codec.chunks_in_flight() {
            self.send_oldest()?;
        }
        Ok(())
    }

    fn send_oldest(&mut self) -> io::Result<()> {
        let compressed = self.in_flight.pop_front().expect("a chunk in flight");
        let compressed = compressed
            .recv()
            .map_err(|_| io::Error::other("a chunk's compression was lost"))?;
        self.out.write_all(&compressed)
    }
}

impl Write for ChunkedCompressor<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let room = self.codec.chunk_bytes() - self.chunk.len();
        let taken = bytes.len().min(room);
        self.chunk.extend_from_slice(&bytes[..taken]);
        if self.chunk.len() == self.codec.chunk_bytes() {
            self.submit()?;
        }
        Ok(taken)
    }

    /// Chunks are sent as they are done; a chunk is not cut short to flush it.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for ChunkedCompressor<'_> {
    fn drop(&mut self) {
        for compressed in self.in_flight.drain(..) {
            let _ = compressed.recv();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    const CODECS: [Codec; 3] = [
        Codec::Gzip,
        Codec::Zstd {
            chunk_bytes: ZSTD_CHUNK_BYTES,
        },
        Codec::Zstd {
            chunk_bytes: ZSTD_SMALLEST_CHUNK_BYTES,
        },
    ];

    /// The whole stream read back by a reader that is not ours: flate2's multi-member gzip
    /// reader, libzstd's streaming decoder (which reads frame after frame).
    fn decompress(codec: Codec, stream: &[u8]) -> Vec<u8> {
        let mut text = Vec::new();
        match codec {
            Codec::Gzip => flate2::read::MultiGzDecoder::new(stream)
                .read_to_end(&mut text)
                .unwrap(),
            Codec::Zstd { .. } => zstd::stream::read::Decoder::new(stream)
                .unwrap()
                .read_to_end(&mut text)
                .unwrap(),
        };
        text
    }

    /// Where each member or frame starts, by its magic number.
    fn parts(codec: Codec, stream: &[u8]) -> usize {
        let magic: &[u8] = match codec {
            Codec::Gzip => &[0x1f, 0x8b, 8],
            Codec::Zstd { .. } => &[0x28, 0xb5, 0x2f, 0xfd],
        };
        stream.windows(magic.len()).filter(|w| *w == magic).count()
    }

    fn page(len: usize) -> Vec<u8> {
        let line = b"container_memory_usage_bytes{pod=\"x\"} 1\n";
        (0..len).map(|i| line[i % line.len()]).collect()
    }

    #[test]
    fn a_page_is_members_or_frames_that_read_back_as_the_page() {
        for codec in CODECS {
            let chunk = codec.chunk_bytes();
            for len in [0, 1, chunk, 3 * chunk + 17, 9 * chunk] {
                let text = page(len);
                let mut out = Vec::new();
                let inline = |task: Task| task();
                let mut compressor = ChunkedCompressor::new(codec, &mut out, &inline);
                // In pieces of every size, as the page writer hands them over.
                for piece in text.chunks(7919) {
                    compressor.write_all(piece).unwrap();
                }
                compressor.finish().unwrap();
                assert_eq!(decompress(codec, &out), text, "{codec:?}, {len} bytes");
                assert!(
                    parts(codec, &out) >= len.div_ceil(chunk).max(1),
                    "{codec:?}, {len} bytes"
                );
            }
        }
    }

    #[test]
    fn chunks_compressed_elsewhere_are_sent_in_order_and_a_bounded_number_at_once() {
        for codec in CODECS {
            // One other thread compresses, slowly, as a busy pool would.
            let (tasks, queue) = mpsc::channel::<Task>();
            let worker = std::thread::spawn(move || {
                for task in queue {
                    std::thread::sleep(std::time::Duration::from_millis(2));
                    task();
                }
            });
            let offload = |task: Task| tasks.send(task).unwrap();
            let chunk = codec.chunk_bytes();
            let text = page(10 * chunk + 5);
            let mut out = Vec::new();
            let mut compressor = ChunkedCompressor::new(codec, &mut out, &offload);
            let mut most = 0;
            for piece in text.chunks(chunk / 3) {
                compressor.write_all(piece).unwrap();
                most = most.max(compressor.in_flight.len());
            }
            assert!(
                most < codec.chunks_in_flight(),
                "{most} chunks left in flight"
            );
            assert!(most > 1, "chunks were compressed while others were made");
            compressor.finish().unwrap();
            drop(tasks);
            worker.join().unwrap();
            assert_eq!(decompress(codec, &out), text, "{codec:?}");
        }
    }

    #[test]
    fn zstd_chunks_shrink_to_hold_a_quarter_of_the_budget_at_most() {
        let chunk = |budget: usize| Codec::zstd().zstd_within(budget).chunk_bytes();
        assert_eq!(chunk(256 << 20), 2 << 20);
        assert_eq!(chunk(64 << 20), 2 << 20);
        assert_eq!(chunk(32 << 20), 1 << 20);
        assert_eq!(chunk(8 << 20), 256 << 10);
        assert_eq!(chunk(1 << 20), 256 << 10, "no smaller than 256 KiB");
        for budget in [256 << 20, 64 << 20, 32 << 20, 8 << 20] {
            let held = Codec::zstd().zstd_within(budget).held_bytes();
            assert!(held <= budget / 4, "{held} of {budget}");
        }
        assert_eq!(Codec::Gzip.zstd_within(1 << 20), Codec::Gzip);
    }
}
