//! Receipt and recall handles as clients send them back: parsing and looking them up never
//! panics, whatever the string (real handles, this broker's prefix + anything, anything).
#![no_main]

use arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;
use orbitmq_fuzz::fixture;

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let mut u = Unstructured::new(data);
    let Ok(handle) = f.handle(&mut u) else { return };
    let ms = u.int_in_range(0..=43_200_000).unwrap_or(0);
    let pop = f.broker.pop();
    match u.int_in_range(0..=2).unwrap_or(0) {
        0 => {
            let _ = pop.change_invisible("g", "t", &handle, ms);
        }
        1 => {
            let _ = pop.ack("g", "t", &handle);
        }
        _ => {
            let b = f.broker.clone();
            let _ = f.rt.block_on(async move { b.recall("t", &handle).await });
        }
    }
});
