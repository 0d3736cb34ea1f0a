//! The session state machine driven with an arbitrary sequence of frames and runtime events,
//! agent profile v1 (see `aegis_fuzz::session` for the invariants).
#![no_main]

use aegis_fuzz::session::{ops::Scenario, run};
use aegis_gateway::protocol::session::Profile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|s: Scenario| {
    run(Profile::V1, s);
});
