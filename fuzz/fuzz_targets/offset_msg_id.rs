//! `offset_msg_id` decoding: never panics, and what it accepts encodes back to the same id
//! (upper-case), so an id names exactly one (host, offset).
#![no_main]

use libfuzzer_sys::fuzz_target;
use orbitmq_core::storage::msg_id;

fuzz_target!(|id: &str| {
    if let Ok((host, offset)) = msg_id::decode(id) {
        assert_eq!(msg_id::encode(host, offset), id.to_ascii_uppercase());
    }
});
