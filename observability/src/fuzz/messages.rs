//! Random protobuf messages for any method, built from its descriptor.
//!
//! Every field is present or absent at random; when present it takes an
//! ordinary value or an extreme one: zero, −1, the type's minimum and
//! maximum, NaN and the infinities, empty and very long strings and
//! bytes, control characters, enum numbers the schema does not know,
//! repeated fields with a thousand entries, messages nested as deep as the
//! schema allows (up to [`MAX_DEPTH`]). Each is a *valid* encoding: what a
//! server must turn into a precise status is the values, not the wire.
//!
//! Bounded: only a top-level repeated field draws a thousand entries;
//! nested ones draw at most [`NESTED_LIST_MAX`]. Thousand-entry lists at
//! every depth multiply: an etcd `Txn` of a thousand ops, each a `Txn` of
//! a thousand compares with 70 KiB keys, takes gigabytes to *build*, long
//! before the server's size limit could refuse it.

use std::collections::HashMap;

use bytes::Bytes;
use proptest::prelude::*;
use prost_reflect::{DynamicMessage, FieldDescriptor, Kind, MapKey, MessageDescriptor, Value};

/// How deep generated messages nest.
pub const MAX_DEPTH: u32 = 3;

/// The most entries a repeated field below the top level draws.
pub const NESTED_LIST_MAX: usize = 5;

/// Longer than most key and value limits (64 KiB); services with larger
/// ones (the Raft KV takes 1.5 MiB requests) see their oversized cases
/// from the message-size probe instead.
const LONG: usize = 70 * 1024;

/// Messages of `descriptor`'s type.
pub fn message(descriptor: MessageDescriptor) -> BoxedStrategy<DynamicMessage> {
    message_at(descriptor, 0)
}

fn message_at(descriptor: MessageDescriptor, depth: u32) -> BoxedStrategy<DynamicMessage> {
    let fields: Vec<FieldDescriptor> = descriptor.fields().collect();
    let values: Vec<BoxedStrategy<Option<Value>>> = fields
        .iter()
        .map(|field| proptest::option::weighted(0.6, field_value(field, depth)).boxed())
        .collect();
    values
        .prop_map(move |values| {
            let mut message = DynamicMessage::new(descriptor.clone());
            for (field, value) in fields.iter().zip(values) {
                // Setting one member of a oneof clears the others: the
                // last one drawn wins, as on the wire.
                if let Some(value) = value {
                    message.set_field(field, value);
                }
            }
            message
        })
        .boxed()
}

fn field_value(field: &FieldDescriptor, depth: u32) -> BoxedStrategy<Value> {
    let kind = field.kind();
    if field.is_map() {
        let Some(entry) = kind.as_message() else {
            return Just(Value::Map(HashMap::new())).boxed();
        };
        let key = scalar(&entry.map_entry_key_field().kind(), depth);
        let value = scalar(&entry.map_entry_value_field().kind(), depth);
        return proptest::collection::vec((key, value), 0..4)
            .prop_map(|pairs| {
                Value::Map(
                    pairs
                        .into_iter()
                        .filter_map(|(k, v)| map_key(k).map(|k| (k, v)))
                        .collect(),
                )
            })
            .boxed();
    }
    if field.is_list() {
        let element = scalar(&kind, depth);
        if depth > 0 {
            return proptest::collection::vec(element, 0..=NESTED_LIST_MAX)
                .prop_map(Value::List)
                .boxed();
        }
        return prop_oneof![
            8 => proptest::collection::vec(element.clone(), 0..6),
            1 => proptest::collection::vec(element, 1000..=1000),
        ]
        .prop_map(Value::List)
        .boxed();
    }
    scalar(&kind, depth)
}

fn map_key(value: Value) -> Option<MapKey> {
    Some(match value {
        Value::Bool(b) => MapKey::Bool(b),
        Value::I32(n) => MapKey::I32(n),
        Value::I64(n) => MapKey::I64(n),
        Value::U32(n) => MapKey::U32(n),
        Value::U64(n) => MapKey::U64(n),
        Value::String(s) => MapKey::String(s),
        _ => return None,
    })
}

fn scalar(kind: &Kind, depth: u32) -> BoxedStrategy<Value> {
    match kind {
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => prop_oneof![
            Just(0),
            Just(-1),
            Just(i32::MIN),
            Just(i32::MAX),
            any::<i32>()
        ]
        .prop_map(Value::I32)
        .boxed(),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => prop_oneof![
            Just(0),
            Just(-1),
            Just(i64::MIN),
            Just(i64::MAX),
            any::<i64>()
        ]
        .prop_map(Value::I64)
        .boxed(),
        Kind::Uint32 | Kind::Fixed32 => prop_oneof![Just(0), Just(1), Just(u32::MAX), any::<u32>()]
            .prop_map(Value::U32)
            .boxed(),
        Kind::Uint64 | Kind::Fixed64 => prop_oneof![Just(0), Just(1), Just(u64::MAX), any::<u64>()]
            .prop_map(Value::U64)
            .boxed(),
        Kind::Float => prop_oneof![
            Just(f32::NAN),
            Just(f32::INFINITY),
            Just(f32::NEG_INFINITY),
            Just(f32::MAX),
            Just(-0.0),
            any::<f32>()
        ]
        .prop_map(Value::F32)
        .boxed(),
        Kind::Double => prop_oneof![
            Just(f64::NAN),
            Just(f64::INFINITY),
            Just(f64::NEG_INFINITY),
            Just(f64::MAX),
            Just(f64::MIN_POSITIVE),
            Just(-1.0),
            Just(-0.0),
            any::<f64>()
        ]
        .prop_map(Value::F64)
        .boxed(),
        Kind::Bool => any::<bool>().prop_map(Value::Bool).boxed(),
        Kind::String => prop_oneof![
            Just(String::new()),
            "\\PC{0,16}",
            "[\\x00-\\x1f\\x7f]{1,8}",
            Just("ü".repeat(LONG / 2)),
        ]
        .prop_map(Value::String)
        .boxed(),
        Kind::Bytes => prop_oneof![
            Just(Vec::new()),
            proptest::collection::vec(any::<u8>(), 0..32),
            Just(vec![0xff; LONG]),
        ]
        .prop_map(|bytes| Value::Bytes(Bytes::from(bytes)))
        .boxed(),
        Kind::Enum(descriptor) => {
            let known: Vec<i32> = descriptor.values().map(|v| v.number()).collect();
            let known = if known.is_empty() { vec![0] } else { known };
            prop_oneof![proptest::sample::select(known), any::<i32>()]
                .prop_map(Value::EnumNumber)
                .boxed()
        }
        Kind::Message(descriptor) if depth < MAX_DEPTH => message_at(descriptor.clone(), depth + 1)
            .prop_map(Value::Message)
            .boxed(),
        Kind::Message(descriptor) => {
            Just(Value::Message(DynamicMessage::new(descriptor.clone()))).boxed()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::strategy::ValueTree;
    use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
    use prost::Message;
    use prost_reflect::DescriptorPool;
    use prost_types::field_descriptor_proto::{Label, Type};
    use prost_types::{
        DescriptorProto, FieldDescriptorProto, FileDescriptorProto, FileDescriptorSet,
    };

    /// `message Node { repeated Node children = 1; bytes data = 2; }`: the
    /// shape of an etcd `Txn`, whose ops may be `Txn`s.
    fn node_descriptor() -> MessageDescriptor {
        let field = |name: &str, number, label: Label, kind: Type, type_name: Option<&str>| {
            FieldDescriptorProto {
                name: Some(name.into()),
                number: Some(number),
                label: Some(label as i32),
                r#type: Some(kind as i32),
                type_name: type_name.map(Into::into),
                ..Default::default()
            }
        };
        let file = FileDescriptorProto {
            name: Some("node.proto".into()),
            package: Some("fuzz.test".into()),
            syntax: Some("proto3".into()),
            message_type: vec![DescriptorProto {
                name: Some("Node".into()),
                field: vec![
                    field(
                        "children",
                        1,
                        Label::Repeated,
                        Type::Message,
                        Some(".fuzz.test.Node"),
                    ),
                    field("data", 2, Label::Optional, Type::Bytes, None),
                ],
                ..Default::default()
            }],
            ..Default::default()
        };
        let set = FileDescriptorSet { file: vec![file] }.encode_to_vec();
        let pool = DescriptorPool::decode(set.as_slice()).expect("a valid descriptor");
        pool.get_message_by_name("fuzz.test.Node").expect("Node")
    }

    fn children(message: &DynamicMessage) -> Vec<DynamicMessage> {
        match message.get_field_by_name("children").as_deref() {
            Some(Value::List(list)) => list
                .iter()
                .filter_map(|v| v.as_message().cloned())
                .collect(),
            _ => Vec::new(),
        }
    }

    #[test]
    fn only_the_top_level_draws_a_thousand_entries() {
        let strategy = message(node_descriptor());
        let mut runner = TestRunner::new_with_rng(
            Config::default(),
            TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]),
        );
        let mut thousands = 0;
        for _ in 0..200 {
            let top = strategy.new_tree(&mut runner).expect("a message").current();
            let kids = children(&top);
            thousands += usize::from(kids.len() == 1000);
            let mut below = kids;
            while let Some(node) = below.pop() {
                let grandchildren = children(&node);
                assert!(grandchildren.len() <= NESTED_LIST_MAX);
                below.extend(grandchildren);
            }
            // A thousand nested nodes of at most five children, each with
            // at most one long byte string: bounded, whatever is drawn.
            assert!(top.encoded_len() < 1000 * 31 * (LONG + 64));
        }
        assert!(
            thousands > 0,
            "the top level still draws thousand-entry lists"
        );
    }
}
