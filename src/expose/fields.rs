//! Protobuf fields written straight onto a page (https://protobuf.dev/programming-guides/encoding/):
//! the few encodings the exposition's `metrics.proto` messages need, shared by the protobuf
//! format and the label pairs of the page's label blocks.

use crate::expose::page::Sink;

/// Wire types.
pub const VARINT: u32 = 0;
const FIXED64: u32 = 1;
pub const LENGTH: u32 = 2;

pub fn put_varint(out: &mut impl Sink, mut value: u64) {
    while value >= 0x80 {
        out.put_byte(value as u8 | 0x80);
        value >>= 7;
    }
    out.put_byte(value as u8);
}

pub fn varint_len(value: u64) -> usize {
    (64 - (value | 1).leading_zeros() as usize).div_ceil(7)
}

pub fn put_tag(out: &mut impl Sink, field: u32, wire_type: u32) {
    put_varint(out, u64::from(field << 3 | wire_type));
}

pub fn put_bytes_field(out: &mut impl Sink, field: u32, bytes: &[u8]) {
    put_tag(out, field, LENGTH);
    put_varint(out, bytes.len() as u64);
    out.put(bytes);
}

pub fn put_double(out: &mut impl Sink, field: u32, value: f64) {
    put_tag(out, field, FIXED64);
    out.put(&value.to_le_bytes());
}

pub fn put_uint(out: &mut impl Sink, field: u32, value: u64) {
    put_tag(out, field, VARINT);
    put_varint(out, value);
}

pub fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

/// Writes a nested message built by `body` into `scratch` first, as field `field`.
pub fn put_message(out: &mut Vec<u8>, field: u32, body: impl FnOnce(&mut Vec<u8>)) {
    let mut inner = Vec::new();
    body(&mut inner);
    put_bytes_field(out, field, &inner);
}

/// Writes labels as `Metric.label` fields (`LabelPair`: name 1, value 2).
pub fn write_label_pairs<'a, N: AsRef<str>>(
    out: &mut impl Sink,
    labels: impl Iterator<Item = (N, &'a str)>,
) {
    for (name, value) in labels {
        let name = name.as_ref();
        let pair_len = 2
            + varint_len(name.len() as u64)
            + name.len()
            + varint_len(value.len() as u64)
            + value.len();
        put_tag(out, 1, LENGTH);
        put_varint(out, pair_len as u64);
        put_bytes_field(out, 1, name.as_bytes());
        put_bytes_field(out, 2, value.as_bytes());
    }
}

/// A `google.protobuf.Timestamp` from milliseconds.
pub fn put_timestamp(out: &mut Vec<u8>, field: u32, ms: i64) {
    put_message(out, field, |t| {
        put_uint(t, 1, ms.div_euclid(1000) as u64);
        let nanos = ms.rem_euclid(1000) * 1_000_000;
        if nanos != 0 {
            put_uint(t, 2, nanos as u64);
        }
    });
}
