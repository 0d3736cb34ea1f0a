//! The admin API's request path on arbitrary connection bytes: head parsing at every prefix,
//! auth and routing, body and query validation, dispatch to a backend that never waits, response
//! bytes (see `aegis_fuzz::admin` for the invariants).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (u16, u16, &[u8])| {
    let (a, b, data) = input;
    aegis_fuzz::admin::run(a, b, data);
});
