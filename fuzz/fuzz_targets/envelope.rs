//! `envelope::parse` on arbitrary bytes; an accepted envelope must survive `to_json` → `parse`
//! unchanged, and its JSON must be stable.
#![no_main]

use aegis_gateway::protocol::envelope;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(e) = envelope::parse(&mut data.to_vec()) else {
        return;
    };
    let json = e.to_json();
    let again = envelope::parse(&mut json.clone().into_bytes())
        .unwrap_or_else(|err| panic!("to_json output does not parse ({err}): {json}"));
    assert_eq!(e, again, "round trip changed the envelope: {json}");
    assert_eq!(again.to_json(), json, "to_json is not stable");
});
