//! Where exposition text is written: a `Vec<u8>`, or a [`PageWriter`] for whole pages.
//!
//! A scrape page is made of millions of pieces of 1 to 150 bytes. `Vec::extend_from_slice`
//! copies each through the C library's `memcpy`; glibc's is quick for short pieces, musl's
//! (a `rep movsq` with byte-wise head and tail) is not, and the static build uses musl.
//! `PageWriter` gathers pieces in a stack buffer with fixed-size moves the compiler inlines,
//! and hands the buffer on in 64 KiB writes: to a `Vec`, or to a socket as the page is made.
//! The HTTP layer sends a write of that size to the socket as it is, as one chunk, so the page
//! is not copied again on its way out.

/// Something exposition text can be appended to.
pub trait Sink {
    fn put(&mut self, bytes: &[u8]);
    fn put_byte(&mut self, byte: u8);

    /// Whether a write failed, so that the rest of the page need not be made.
    fn failed(&self) -> bool {
        false
    }
}

impl Sink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }

    fn put_byte(&mut self, byte: u8) {
        self.push(byte);
    }
}

use std::io::{self, Write};

/// The size of the writes a page reaches its output in; the HTTP layer sends a write of this
/// size as one chunk.
pub const PAGE_WRITE_BYTES: usize = 64 << 10;

const BUFFER_BYTES: usize = PAGE_WRITE_BYTES;

/// Writes a page to `out` through a stack buffer. The first write error is kept, and nothing
/// is written after it; [`PageWriter::finish`] flushes the buffer and returns that error.
pub struct PageWriter<W: Write> {
    out: W,
    buffer: [u8; BUFFER_BYTES],
    len: usize,
    error: Option<io::Error>,
}

impl<W: Write> PageWriter<W> {
    pub fn new(out: W) -> PageWriter<W> {
        PageWriter {
            out,
            buffer: [0; BUFFER_BYTES],
            len: 0,
            error: None,
        }
    }

    /// Writes what is buffered; gives back `out`, or the first error.
    pub fn finish(mut self) -> io::Result<W> {
        self.flush();
        match self.error {
            Some(error) => Err(error),
            None => Ok(self.out),
        }
    }

    /// What has been written to `out`, once the buffer is written too.
    pub fn written(&mut self) -> &W {
        self.flush();
        &self.out
    }

    fn flush(&mut self) {
        if self.len == 0 {
            return;
        }
        let len = std::mem::take(&mut self.len);
        self.write_out(|out, buffer| out.write_all(&buffer[..len]));
    }

    fn write_out(&mut self, write: impl FnOnce(&mut W, &[u8; BUFFER_BYTES]) -> io::Result<()>) {
        if self.error.is_none() {
            self.error = write(&mut self.out, &self.buffer).err();
        }
    }
}

impl<W: Write> Sink for PageWriter<W> {
    fn failed(&self) -> bool {
        self.error.is_some()
    }

    fn put(&mut self, bytes: &[u8]) {
        if bytes.len() > BUFFER_BYTES - self.len {
            self.flush();
            if bytes.len() > BUFFER_BYTES {
                self.write_out(|out, _| out.write_all(bytes));
                return;
            }
        }
        copy_short(&mut self.buffer[self.len..self.len + bytes.len()], bytes);
        self.len += bytes.len();
    }

    fn put_byte(&mut self, byte: u8) {
        if self.len == BUFFER_BYTES {
            self.flush();
        }
        self.buffer[self.len] = byte;
        self.len += 1;
    }
}

/// Copies `source` into `target` (of the same length) in 16-, 8-, 4-, 2- and 1-byte moves,
/// each of a size known at compile time, so no call to `memcpy` is made.
fn copy_short(target: &mut [u8], source: &[u8]) {
    let mut target = target.chunks_exact_mut(16);
    let mut source = source.chunks_exact(16);
    for (to, from) in (&mut target).zip(&mut source) {
        let from: &[u8; 16] = from.try_into().expect("chunks of 16");
        to.copy_from_slice(from);
    }
    let (mut to, mut from) = (target.into_remainder(), source.remainder());
    for size in [8, 4, 2, 1] {
        if from.len() >= size {
            let (head, rest) = from.split_at(size);
            let (to_head, to_rest) = to.split_at_mut(size);
            to_head.copy_from_slice(head);
            (to, from) = (to_rest, rest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_length_is_copied_exactly() {
        let source: Vec<u8> = (0..=255u8).collect();
        for len in 0..=64 {
            let mut target = vec![0u8; len];
            copy_short(&mut target, &source[..len]);
            assert_eq!(target, &source[..len], "length {len}");
        }
    }

    #[test]
    fn page_gets_every_byte_in_order_across_flushes() {
        let piece: Vec<u8> = (0..97u8).collect();
        let mut expected = Vec::new();
        let mut writer = PageWriter::new(Vec::new());
        for i in 0..1000 {
            writer.put(&piece[..i % 97]);
            writer.put_byte(b'\n');
            expected.extend_from_slice(&piece[..i % 97]);
            expected.push(b'\n');
        }
        let big = vec![7u8; BUFFER_BYTES + 5];
        writer.put(&big);
        expected.extend_from_slice(&big);
        assert_eq!(writer.finish().unwrap(), expected);
    }

    #[test]
    fn the_first_write_error_stops_the_page_and_is_returned() {
        struct Failing(usize);
        impl Write for Failing {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                self.0 += 1;
                Err(io::Error::new(io::ErrorKind::BrokenPipe, "gone"))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut writer = PageWriter::new(Failing(0));
        for _ in 0..3 {
            writer.put(&[1u8; BUFFER_BYTES]);
        }
        assert!(writer.failed());
        assert_eq!(writer.out.0, 1, "nothing is written after the error");
        let error = writer.finish().err().expect("the error is returned");
        assert_eq!(error.kind(), io::ErrorKind::BrokenPipe);
    }
}
