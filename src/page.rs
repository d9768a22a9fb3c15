//! Where exposition text is written: a `Vec<u8>`, or a [`PageWriter`] for whole pages.
//!
//! A scrape page is made of millions of pieces of 1 to 150 bytes. `Vec::extend_from_slice`
//! copies each through the C library's `memcpy`; glibc's is quick for short pieces, musl's
//! (a `rep movsq` with byte-wise head and tail) is not, and the static build uses musl.
//! `PageWriter` gathers pieces in a stack buffer with fixed-size moves the compiler inlines,
//! and hands the buffer to the page in 16 KiB copies.

/// Something exposition text can be appended to.
pub trait Sink {
    fn put(&mut self, bytes: &[u8]);
    fn put_byte(&mut self, byte: u8);
}

impl Sink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }

    fn put_byte(&mut self, byte: u8) {
        self.push(byte);
    }
}

const BUFFER_BYTES: usize = 16 << 10;

/// Appends to a page through a stack buffer; the buffer is flushed when dropped.
pub struct PageWriter<'a> {
    page: &'a mut Vec<u8>,
    buffer: [u8; BUFFER_BYTES],
    len: usize,
}

impl<'a> PageWriter<'a> {
    pub fn new(page: &'a mut Vec<u8>) -> PageWriter<'a> {
        PageWriter {
            page,
            buffer: [0; BUFFER_BYTES],
            len: 0,
        }
    }

    fn flush(&mut self) {
        self.page.extend_from_slice(&self.buffer[..self.len]);
        self.len = 0;
    }
}

impl Drop for PageWriter<'_> {
    fn drop(&mut self) {
        self.flush();
    }
}

impl Sink for PageWriter<'_> {
    fn put(&mut self, bytes: &[u8]) {
        if bytes.len() > BUFFER_BYTES - self.len {
            self.flush();
            if bytes.len() > BUFFER_BYTES {
                self.page.extend_from_slice(bytes);
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
        let mut page = Vec::new();
        {
            let mut writer = PageWriter::new(&mut page);
            for i in 0..1000 {
                writer.put(&piece[..i % 97]);
                writer.put_byte(b'\n');
                expected.extend_from_slice(&piece[..i % 97]);
                expected.push(b'\n');
            }
            let big = vec![7u8; BUFFER_BYTES + 5];
            writer.put(&big);
            expected.extend_from_slice(&big);
        }
        assert_eq!(page, expected);
    }
}
