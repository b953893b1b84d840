//! Arbitrary bytes as a compressed body, for every compressor id.
//!
//! Nothing may panic, no output may exceed the limit, and the limit must be exact: what
//! decompresses to `n` bytes also decompresses with a limit of `n` and fails with `n - 1`. Run it
//! with `-malloc_limit_mb` to catch any single allocation out of proportion to the limit.

#![no_main]

use libfuzzer_sys::fuzz_target;
use seata_protocol::compress::{decompress, id, is_supported};

/// The decompression limit.
const LIMIT: usize = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    for c in [
        id::NONE,
        id::GZIP,
        id::ZIP,
        id::SEVENZ,
        id::BZIP2,
        id::LZ4,
        id::DEFLATER,
        id::ZSTD,
        8,
    ] {
        if let Ok(out) = decompress(c, data, LIMIT) {
            assert!(
                is_supported(c),
                "compressor {c} is not supported yet decompressed"
            );
            assert!(
                out.len() <= LIMIT,
                "compressor {c}: {} bytes past the limit",
                out.len()
            );
            let n = out.len();
            let exact = decompress(c, data, n)
                .unwrap_or_else(|e| panic!("compressor {c}: {n} bytes fail at limit {n}: {e}"));
            assert_eq!(exact, out, "compressor {c}: output depends on the limit");
            if let Some(below) = n.checked_sub(1) {
                assert!(
                    decompress(c, data, below).is_err(),
                    "compressor {c}: {n} bytes pass a limit of {below}"
                );
            }
        }
    }
});
