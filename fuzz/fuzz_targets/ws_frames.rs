//! `protocol::ws::Decoder` on streams of client frames, well formed and not, fed whole, split
//! and byte by byte; the server encoders read back (see `aegis_fuzz::ws` for the invariants).
#![no_main]

use aegis_fuzz::ws::{run, Input};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: Input| run(&input));
