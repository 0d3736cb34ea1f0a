//! Mutated v2 sealed frames against an authenticated session and agent (see
//! `aegis_fuzz::sealed`): never a panic, never an accepted change of a protected field.
#![no_main]

use aegis_fuzz::sealed::{run, Input};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: Input| run(input));
