//! Arbitrary bytes as a message body (type code and payload).
//!
//! Input: one configuration byte (bits 0-1: exception-code table, bit 2: seata-go's one-byte
//! failure-message layout), then the body. A body that decodes must re-encode with the same
//! context and decode to an equal message.

#![no_main]

use libfuzzer_sys::fuzz_target;
use seata_protocol::Message;
use seata_protocol_fuzz::{check_body_round_trip, context};

fuzz_target!(|data: &[u8]| {
    let Some((&config, body)) = data.split_first() else {
        return;
    };
    let ctx = context(config);
    if let Ok(msg) = Message::decode(body, &ctx) {
        check_body_round_trip(&msg, &ctx, body.len());
    }
});
