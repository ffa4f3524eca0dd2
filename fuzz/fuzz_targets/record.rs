//! The CommitLog record codec. Raw bytes: `check`, `verify`, `decode`, `dispatch_view` and
//! `store_timestamp` never panic, whatever a segment holds. Arbitrary messages: what
//! `encode_into` + `seal` write is a record `check` accepts and `decode` gives back.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use orbitmq_core::storage::PutMessage;
use orbitmq_core::storage::commitlog::record::{self, Check};

#[derive(Debug, Arbitrary)]
struct Msg {
    topic: String,
    queue_id: u32,
    flags: u32,
    body: Vec<u8>,
    properties: std::collections::BTreeMap<String, String>,
    born_timestamp: i64,
    born_host: std::net::SocketAddr,
    store_host: std::net::SocketAddr,
    reconsume_times: u32,
    prepared_offset: u64,
    queue_offset: u64,
    commitlog_offset: u64,
    store_timestamp: i64,
}

fn raw(data: &[u8]) {
    if let Ok(Check::Message(len)) = record::check(data) {
        // A record `check` accepts decodes; its length was checked against the buffer.
        let rec = Bytes::copy_from_slice(&data[..len]);
        record::verify(&rec).expect("check accepted it");
        let _ = record::decode(&rec);
    }
    let _ = record::verify(data);
    let _ = record::decode(&Bytes::copy_from_slice(data));
    let _ = record::dispatch_view(data);
    let _ = record::store_timestamp(data);
}

fn round_trip(m: Msg) {
    let mut put = PutMessage::new(m.topic.clone(), m.queue_id, m.body.clone());
    put.flags = m.flags;
    put.properties = m.properties.clone();
    put.born_timestamp = m.born_timestamp;
    put.born_host = m.born_host;
    put.reconsume_times = m.reconsume_times;
    put.prepared_offset = m.prepared_offset;
    let mut buf = Vec::new();
    if record::encode_into(&put, m.store_host, &mut buf).is_err() {
        return; // too long a topic or property: refused, not written
    }
    record::seal(&mut buf, m.queue_offset, m.commitlog_offset, m.store_timestamp);
    let len = buf.len();
    // Followed by room for a blank, as in a segment.
    let mut segment = buf.clone();
    segment.extend_from_slice(&[0; record::BLANK_LEN]);
    assert_eq!(record::check(&segment), Ok(Check::Message(len)));
    let got = record::decode(&Bytes::from(buf.clone())).expect("a sealed record decodes");
    assert_eq!(got.topic, m.topic);
    assert_eq!(got.queue_id, m.queue_id);
    assert_eq!(got.flags, m.flags);
    assert_eq!(got.body.as_ref(), m.body.as_slice());
    assert_eq!(got.properties, m.properties);
    assert_eq!(got.born_timestamp, m.born_timestamp);
    assert_eq!(got.reconsume_times, m.reconsume_times);
    assert_eq!(got.prepared_offset, m.prepared_offset);
    assert_eq!(got.queue_offset, m.queue_offset);
    assert_eq!(got.commitlog_offset, m.commitlog_offset);
    assert_eq!(got.store_timestamp, m.store_timestamp);
    assert_eq!(got.size as usize, len);
    let view = record::dispatch_view(&buf).expect("a sealed record has a dispatch view");
    assert_eq!(view.topic, m.topic);
    // Any single flipped byte is caught by the CRCs or the length checks.
    let i = (m.queue_offset as usize) % len;
    buf[i] ^= 0x5A;
    assert!(record::verify(&buf).is_err(), "byte {i} flipped went unnoticed");
}

fuzz_target!(|data: &[u8]| {
    match data.split_first() {
        Some((0, rest)) => {
            if let Ok(m) = Msg::arbitrary_take_rest(Unstructured::new(rest)) {
                round_trip(m);
            }
        }
        _ => raw(data),
    }
});
