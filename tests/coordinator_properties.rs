//! The coordinator's invariants under random request sequences (the same harness the
//! `coordinator` fuzz target runs; see `src/fuzzing.rs`).

use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn invariants_hold_for_any_request_sequence(data in prop::collection::vec(any::<u8>(), 0..300)) {
        seata_server::fuzzing::run(&data);
    }
}
