//! `upgrade::parse` on arbitrary bytes, fed whole and as it would arrive in three reads (two
//! split points): every prefix is `Incomplete` or already the final result, since a reader stops
//! at the first result that is not `Incomplete`.
#![no_main]

use aegis_fuzz::keys::PATH;
use aegis_gateway::protocol::upgrade::{self, Parsed, MAX_UPGRADE_BYTES};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (u16, u16, &[u8])| {
    let (a, b, data) = input;
    let full = upgrade::parse(data, PATH);
    match &full {
        Ok(Parsed::Complete { request, consumed }) => {
            assert!(*consumed <= data.len() && *consumed <= MAX_UPGRADE_BYTES);
            let head = data.get(..*consumed).unwrap_or_default();
            assert_eq!(
                upgrade::parse(head, PATH),
                full,
                "the head alone parses the same"
            );
            assert_eq!(request.path, PATH);
            let _ = upgrade::accept_response(&request.ws_key);
        }
        Ok(Parsed::Incomplete) => assert!(data.len() < MAX_UPGRADE_BYTES),
        Err(e) => {
            let _ = e.response();
        }
    }
    let len = data.len();
    let mut cuts = [usize::from(a) % (len + 1), usize::from(b) % (len + 1)];
    cuts.sort_unstable();
    for cut in cuts {
        let part = upgrade::parse(data.get(..cut).unwrap_or_default(), PATH);
        if part != Ok(Parsed::Incomplete) {
            assert_eq!(part, full, "prefix of {cut} bytes decided differently");
            return;
        }
    }
});
