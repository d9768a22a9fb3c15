//! Our protos against the published ones: every message, field, oneof, enum value and reserved
//! number of `proto/remote.proto` (the write side of remote write 1.0) and
//! `proto/write_v2.proto` (remote write 2.0) is the published one's, so that a change of the
//! spec fails here. The one difference allowed is ours: `string` fields declared `bytes`
//! (the same wire type; see the comment in `proto/remote.proto`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use prost_reflect::{DescriptorPool, Kind, MessageDescriptor};

use crate::support::upstream;

/// What a message is on the wire, field by field, in words that compare.
fn shape(message: &MessageDescriptor) -> BTreeMap<String, String> {
    let mut shape = BTreeMap::new();
    for field in message.fields() {
        let kind = match field.kind() {
            // Our deliberate difference: the same wire type.
            Kind::String | Kind::Bytes => "string or bytes".to_owned(),
            Kind::Message(m) => format!("message {}", m.full_name()),
            Kind::Enum(e) => {
                let values: Vec<String> = e
                    .values()
                    .map(|v| format!("{}={}", v.name(), v.number()))
                    .collect();
                format!("enum {} {{{}}}", e.full_name(), values.join(", "))
            }
            other => format!("{other:?}"),
        };
        let oneof = field
            .containing_oneof()
            .map(|o| format!(" in oneof {}", o.name()))
            .unwrap_or_default();
        let repeated = if field.is_list() { "repeated " } else { "" };
        shape.insert(
            format!("{} field {}", message.full_name(), field.number()),
            format!("{repeated}{kind} {}{oneof}", field.name()),
        );
    }
    let reserved: Vec<String> = message
        .reserved_ranges()
        .map(|r| format!("{}..{}", r.start, r.end))
        .collect();
    shape.insert(
        format!("{} reserved", message.full_name()),
        reserved.join(", "),
    );
    shape
}

/// The messages reachable from `root`, itself included, by full name.
fn reachable(root: MessageDescriptor) -> BTreeMap<String, MessageDescriptor> {
    let mut found = BTreeMap::new();
    let mut pending = vec![root];
    while let Some(message) = pending.pop() {
        if found.contains_key(message.full_name()) {
            continue;
        }
        for field in message.fields() {
            if let Kind::Message(m) = field.kind() {
                pending.push(m);
            }
        }
        found.insert(message.full_name().to_owned(), message);
    }
    found
}

fn ours() -> DescriptorPool {
    let proto = Path::new(env!("CARGO_MANIFEST_DIR")).join("proto");
    protox::Compiler::new([&proto])
        .and_then(|mut compiler| {
            compiler.open_files(["remote.proto", "write_v2.proto"])?;
            Ok(compiler.descriptor_pool())
        })
        .unwrap_or_else(|e| panic!("compile {}: {e}", proto.display()))
}

/// Every message the request `root` reaches, in our proto and in the published one, and the
/// shape of each: the same names, and the same fields.
fn assert_same_request(root: &str) {
    let ours = ours();
    let ours = reachable(ours.get_message_by_name(root).expect("ours"));
    let published = reachable(upstream::message(root));
    let names =
        |m: &BTreeMap<String, MessageDescriptor>| m.keys().cloned().collect::<BTreeSet<_>>();
    assert_eq!(
        names(&ours),
        names(&published),
        "the messages {root} reaches"
    );
    for (name, message) in &published {
        let (ours, published) = (shape(&ours[name]), shape(message));
        for key in ours.keys().chain(published.keys()).collect::<BTreeSet<_>>() {
            assert_eq!(
                ours.get(key),
                published.get(key),
                "{key}: ours (left) against the published proto (right)"
            );
        }
    }
}

#[test]
fn remote_write_1_0_is_the_published_one() {
    assert_same_request("prometheus.WriteRequest");
}

#[test]
fn remote_write_2_0_is_the_published_one() {
    assert_same_request("io.prometheus.write.v2.Request");
}

#[test]
fn a_difference_is_noticed() {
    // The check itself: the 2.0 histogram as drafts of the spec had it (no start timestamp)
    // is not the published one.
    let draft = upstream::message("prometheus.Histogram");
    let published = upstream::message("io.prometheus.write.v2.Histogram");
    let (draft, published) = (shape(&draft), shape(&published));
    let fields = |s: &BTreeMap<String, String>| {
        s.iter()
            .filter(|(k, _)| k.contains(" field "))
            .map(|(k, v)| (k.rsplit(' ').next().unwrap().to_owned(), v.clone()))
            .collect::<BTreeMap<_, _>>()
    };
    let (draft, published) = (fields(&draft), fields(&published));
    assert_eq!(draft.get("17"), None);
    assert!(published["17"].contains("start_timestamp"));
    assert_ne!(draft, published);
}
