//! Arbitrary sequences of TM/RM requests against one coordinator, with Seata's invariants checked
//! after every step (see `src/fuzzing.rs`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    seata_server::fuzzing::run(data);
});
