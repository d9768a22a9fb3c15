//! Reading and checking one exemplar of a write request.
//!
//! Remote write 1.0's `prometheus.Exemplar` carries its labels as `Label` messages, 2.0's as
//! `labels_refs` into the request's symbols; both have the value in field 2 and the
//! timestamp in field 3, where 0 means none was given (2.0's `types.proto`). As Prometheus's
//! own receiver does, an exemplar's labels may hold at most 128 characters in all, names and
//! values together (OpenMetrics 1.0, "Exemplars").

use crate::store::native::Exemplar;
use crate::write::names::NameRules;
use crate::write::wire::{
    parse_label, wrong_type, Protocol, Reader, WireError, WriteBatch, I64, LEN, VARINT,
};

/// Characters an exemplar's label names and values may hold together.
pub const MAX_EXEMPLAR_LABEL_CHARS: usize = 128;

/// Reads and checks one exemplar message of `batch`; the reason in words if it is refused.
pub fn read_exemplar(
    batch: &WriteBatch,
    message: &[u8],
    names: NameRules,
) -> Result<Exemplar, String> {
    let malformed = |error: WireError| format!("malformed exemplar: {error}");
    let mut labels: Vec<(&[u8], &[u8])> = Vec::new();
    let mut references = Vec::new();
    let (mut value, mut timestamp) = (0.0, 0);
    let mut reader = Reader::new(message);
    while let Some((field, wire_type)) = reader.key().map_err(malformed)? {
        match (batch.protocol, field, wire_type) {
            (Protocol::V1, 1, LEN) => {
                let label =
                    parse_label(reader.sub_message().map_err(malformed)?).map_err(malformed)?;
                labels.push((label.name.of(message), label.value.of(message)));
            }
            (Protocol::V2, 1, LEN) => {
                let mut packed = reader.sub_message().map_err(malformed)?;
                while !packed.at_end() {
                    references.push(packed.varint().map_err(malformed)?);
                }
            }
            (Protocol::V2, 1, VARINT) => references.push(reader.varint().map_err(malformed)?),
            (_, 2, I64) => value = f64::from_bits(reader.fixed64().map_err(malformed)?),
            (_, 3, VARINT) => timestamp = reader.varint().map_err(malformed)? as i64,
            (_, 1..=3, _) => return Err(malformed(wrong_type("Exemplar", field))),
            _ => reader.skip(wire_type).map_err(malformed)?,
        }
    }
    if references.len() % 2 != 0 {
        return Err(format!(
            "exemplar labels_refs has {} entries, not name-value pairs",
            references.len()
        ));
    }
    for pair in references.chunks_exact(2) {
        let name = batch.symbol(pair[0]).map_err(|p| format!("exemplar {p}"))?;
        let value = batch.symbol(pair[1]).map_err(|p| format!("exemplar {p}"))?;
        labels.push((batch.bytes(name), batch.bytes(value)));
    }
    let mut checked: Vec<(Box<str>, Box<str>)> = Vec::with_capacity(labels.len());
    let mut chars = 0;
    for (name, value) in labels {
        let (Ok(name_text), Ok(value_text)) =
            (std::str::from_utf8(name), std::str::from_utf8(value))
        else {
            return Err("an exemplar label is not valid UTF-8".into());
        };
        if !names.allows_label_name(name) {
            return Err(format!("invalid exemplar label name {name_text:?}"));
        }
        if checked.iter().any(|(held, _)| **held == *name_text) {
            return Err(format!("duplicate exemplar label name {name_text:?}"));
        }
        chars += name_text.chars().count() + value_text.chars().count();
        checked.push((name_text.into(), value_text.into()));
    }
    if chars > MAX_EXEMPLAR_LABEL_CHARS {
        return Err(format!(
            "exemplar labels hold {chars} characters, over the {MAX_EXEMPLAR_LABEL_CHARS} OpenMetrics allows"
        ));
    }
    checked.sort();
    Ok(Exemplar {
        labels: checked.into(),
        value,
        timestamp_ms: (timestamp != 0).then_some(timestamp),
    })
}
