//! Body compressors (PROTOCOL.md §2.2), byte-compatible with Seata's Java implementations.
//!
//! Every decompressor is bounded: output beyond `limit` bytes is an error, so a small frame cannot
//! expand into an unbounded allocation (a "zip bomb").

use std::io::{Read, Write};

use crate::error::ProtocolError;

/// Compressor ids (`core/compressor/CompressorType.java`).
pub mod id {
    #![allow(missing_docs)]
    pub const NONE: u8 = 0;
    pub const GZIP: u8 = 1;
    pub const ZIP: u8 = 2;
    pub const SEVENZ: u8 = 3;
    pub const BZIP2: u8 = 4;
    pub const LZ4: u8 = 5;
    pub const DEFLATER: u8 = 6;
    pub const ZSTD: u8 = 7;
}

/// Whether this crate reads and writes compressor `c`.
pub fn is_supported(c: u8) -> bool {
    matches!(c, id::NONE | id::GZIP | id::ZIP | id::BZIP2 | id::LZ4 | id::DEFLATER | id::ZSTD)
}

fn err(e: impl std::fmt::Display) -> ProtocolError {
    ProtocolError::Compression(e.to_string())
}

/// Compresses `data` with compressor `c`.
pub fn compress(c: u8, data: &[u8]) -> Result<Vec<u8>, ProtocolError> {
    match c {
        id::NONE => Ok(data.to_vec()),
        id::GZIP => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(data).map_err(err)?;
            e.finish().map_err(err)
        }
        id::DEFLATER => {
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(data).map_err(err)?;
            e.finish().map_err(err)
        }
        id::ZIP => zip::compress(data),
        id::BZIP2 => {
            let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::best());
            e.write_all(data).map_err(err)?;
            let out = e.finish().map_err(err)?;
            // Apache Ant's CBZip2OutputStream writes the stream without its "BZ" magic.
            Ok(out.get(2..).unwrap_or_default().to_vec())
        }
        id::LZ4 => Ok(lz4_block::compress(data)),
        id::ZSTD => zstd::bulk::compress(data, 3).map_err(err),
        other => Err(ProtocolError::UnsupportedCompressor(other)),
    }
}

/// Reads at most `limit` bytes from `r`, failing if there are more.
fn read_bounded(r: impl Read, limit: usize) -> Result<Vec<u8>, ProtocolError> {
    let mut out = Vec::new();
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    r.take(cap).read_to_end(&mut out).map_err(err)?;
    if out.len() > limit {
        return Err(ProtocolError::Compression(format!("decompressed body exceeds {limit} bytes")));
    }
    Ok(out)
}

/// The largest zstd window (as a power of two) that a body of at most `limit` bytes needs. The
/// decoder allocates the window a frame header declares before it reads any data, so without this
/// bound a ten-byte body makes it allocate 128 MiB. A compressor that knows the input size (Seata's
/// `Zstd.compress`, ours) never declares a window larger than the input, nor smaller than 1 KiB.
fn zstd_window_log(limit: usize) -> u32 {
    // ceil(log2(limit)), within zstd's minimum (10) and its default maximum (27).
    let log = usize::BITS - limit.saturating_sub(1).leading_zeros();
    log.clamp(10, 27)
}

/// Decompresses `data` written with compressor `c`, producing at most `limit` bytes.
pub fn decompress(c: u8, data: &[u8], limit: usize) -> Result<Vec<u8>, ProtocolError> {
    match c {
        id::NONE => {
            if data.len() > limit {
                return Err(ProtocolError::Compression(format!("body exceeds {limit} bytes")));
            }
            Ok(data.to_vec())
        }
        id::GZIP => read_bounded(flate2::read::MultiGzDecoder::new(data), limit),
        id::DEFLATER => read_bounded(flate2::read::ZlibDecoder::new(data), limit),
        id::ZIP => zip::decompress(data, limit),
        id::BZIP2 => read_bounded(bzip2::read::BzDecoder::new((&b"BZ"[..]).chain(data)), limit),
        id::LZ4 => lz4_block::decompress(data, limit),
        id::ZSTD => {
            let mut d = zstd::stream::read::Decoder::with_buffer(data).map_err(err)?;
            d.window_log_max(zstd_window_log(limit)).map_err(err)?;
            read_bounded(d, limit)
        }
        other => Err(ProtocolError::UnsupportedCompressor(other)),
    }
}

/// lz4-java's `LZ4BlockOutputStream` framing, which Seata's LZ4 compressor uses: blocks of at most
/// 1 024 input bytes, each `"LZ4Block"`, a token (method | level), compressed length, original
/// length and an xxHash32 checksum (all little-endian), then the data; an empty block ends it.
mod lz4_block {
    use super::err;
    use crate::error::ProtocolError;

    const MAGIC: &[u8; 8] = b"LZ4Block";
    const HEADER_LEN: usize = MAGIC.len() + 13;
    const BLOCK_SIZE: usize = 1024;
    const METHOD_RAW: u8 = 0x10;
    const METHOD_LZ4: u8 = 0x20;
    /// `compressionLevel(1024)` in lz4-java: ceil(log2(1024)) - 10.
    const LEVEL: u8 = 0;
    const SEED: u32 = 0x9747_b28c;

    fn checksum(data: &[u8]) -> u32 {
        // lz4-java's `StreamingXXHash32.asChecksum()` masks the hash to 28 bits.
        xxhash_rust::xxh32::xxh32(data, SEED) & 0x0FFF_FFFF
    }

    fn put_block(out: &mut Vec<u8>, method: u8, compressed: &[u8], original_len: usize, check: u32) {
        out.extend_from_slice(MAGIC);
        out.push(method | LEVEL);
        // Block lengths are at most BLOCK_SIZE plus LZ4's worst-case expansion, so they fit an i32.
        let clen = u32::try_from(compressed.len()).unwrap_or(u32::MAX);
        let olen = u32::try_from(original_len).unwrap_or(u32::MAX);
        out.extend_from_slice(&clen.to_le_bytes());
        out.extend_from_slice(&olen.to_le_bytes());
        out.extend_from_slice(&check.to_le_bytes());
        out.extend_from_slice(compressed);
    }

    pub fn compress(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(data.len() / 2 + HEADER_LEN * 2);
        for chunk in data.chunks(BLOCK_SIZE) {
            let packed = lz4_flex::block::compress(chunk);
            let check = checksum(chunk);
            if packed.len() >= chunk.len() {
                put_block(&mut out, METHOD_RAW, chunk, chunk.len(), check);
            } else {
                put_block(&mut out, METHOD_LZ4, &packed, chunk.len(), check);
            }
        }
        put_block(&mut out, METHOD_RAW, &[], 0, 0);
        out
    }

    fn le_u32(b: &[u8]) -> u32 {
        let mut a = [0u8; 4];
        a.copy_from_slice(&b[..4]);
        u32::from_le_bytes(a)
    }

    pub fn decompress(mut data: &[u8], limit: usize) -> Result<Vec<u8>, ProtocolError> {
        let mut out = Vec::new();
        while !data.is_empty() {
            if data.len() < HEADER_LEN || &data[..8] != MAGIC {
                return Err(ProtocolError::Compression("bad LZ4Block header".into()));
            }
            let method = data[8] & 0xF0;
            let clen = usize::try_from(le_u32(&data[9..])).map_err(err)?;
            let olen = usize::try_from(le_u32(&data[13..])).map_err(err)?;
            let check = le_u32(&data[17..]);
            data = &data[HEADER_LEN..];
            if clen == 0 && olen == 0 {
                continue; // end-of-stream marker (several streams may follow each other)
            }
            if clen > data.len() || olen > limit.saturating_sub(out.len()) {
                return Err(ProtocolError::Compression("LZ4Block lengths out of range".into()));
            }
            let start = out.len();
            match method {
                METHOD_RAW if clen == olen => out.extend_from_slice(&data[..clen]),
                METHOD_LZ4 => {
                    out.resize(start + olen, 0);
                    let n = lz4_flex::block::decompress_into(&data[..clen], &mut out[start..]).map_err(err)?;
                    if n != olen {
                        return Err(ProtocolError::Compression("LZ4Block length mismatch".into()));
                    }
                }
                _ => return Err(ProtocolError::Compression("bad LZ4Block method".into())),
            }
            let got = &out[start..];
            if check != checksum(got) && check != xxhash_rust::xxh32::xxh32(got, SEED) {
                return Err(ProtocolError::Compression("LZ4Block checksum mismatch".into()));
            }
            data = &data[clen..];
        }
        Ok(out)
    }
}

/// The JDK's `ZipOutputStream` with one entry named `zip` (Seata's ZIP compressor); reading
/// concatenates every entry, as Seata does.
mod zip {
    use std::io::Write;

    use super::err;
    use crate::error::ProtocolError;

    const LOCAL: u32 = 0x0403_4b50;
    const DESCRIPTOR: u32 = 0x0807_4b50;
    const CENTRAL: u32 = 0x0201_4b50;
    const END: u32 = 0x0605_4b50;
    const NAME: &[u8] = b"zip";
    /// 1980-01-01 00:00 in DOS format.
    const DOS_DATE: u16 = 0x21;

    fn u16le(v: &mut Vec<u8>, x: u16) {
        v.extend_from_slice(&x.to_le_bytes());
    }
    fn u32le(v: &mut Vec<u8>, x: u32) {
        v.extend_from_slice(&x.to_le_bytes());
    }

    pub fn compress(data: &[u8]) -> Result<Vec<u8>, ProtocolError> {
        let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).map_err(err)?;
        let packed = e.finish().map_err(err)?;
        let crc = crc32fast::hash(data);
        let too_big = |_| ProtocolError::TooLong { field: "zip entry", len: data.len() };
        let csize = u32::try_from(packed.len()).map_err(too_big)?;
        let usize_ = u32::try_from(data.len()).map_err(too_big)?;
        let mut out = Vec::with_capacity(packed.len() + 128);
        // Local header with "sizes in data descriptor" (flag bit 3), as a streaming JDK writer does.
        u32le(&mut out, LOCAL);
        for x in [20u16, 0x0008, 8, 0, DOS_DATE] {
            u16le(&mut out, x);
        }
        for _ in 0..3 {
            u32le(&mut out, 0);
        }
        u16le(&mut out, 3);
        u16le(&mut out, 0);
        out.extend_from_slice(NAME);
        out.extend_from_slice(&packed);
        for x in [DESCRIPTOR, crc, csize, usize_] {
            u32le(&mut out, x);
        }
        let central_at = u32::try_from(out.len()).map_err(too_big)?;
        u32le(&mut out, CENTRAL);
        for x in [20u16, 20, 0x0008, 8, 0, DOS_DATE] {
            u16le(&mut out, x);
        }
        for x in [crc, csize, usize_] {
            u32le(&mut out, x);
        }
        for x in [3u16, 0, 0, 0, 0] {
            u16le(&mut out, x);
        }
        u32le(&mut out, 0);
        u32le(&mut out, 0);
        out.extend_from_slice(NAME);
        let central_len = u32::try_from(out.len()).map_err(too_big)? - central_at;
        u32le(&mut out, END);
        for x in [0u16, 0, 1, 1] {
            u16le(&mut out, x);
        }
        u32le(&mut out, central_len);
        u32le(&mut out, central_at);
        u16le(&mut out, 0);
        Ok(out)
    }

    fn rd16(d: &[u8], at: usize) -> Result<u16, ProtocolError> {
        d.get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
            .ok_or_else(|| ProtocolError::Compression("zip truncated".into()))
    }
    fn rd32(d: &[u8], at: usize) -> Result<u32, ProtocolError> {
        d.get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or_else(|| ProtocolError::Compression("zip truncated".into()))
    }

    pub fn decompress(data: &[u8], limit: usize) -> Result<Vec<u8>, ProtocolError> {
        let mut out = Vec::new();
        let mut at = 0usize;
        while at + 4 <= data.len() && rd32(data, at)? == LOCAL {
            let flags = rd16(data, at + 6)?;
            let method = rd16(data, at + 8)?;
            let csize = usize::try_from(rd32(data, at + 18)?).map_err(err)?;
            let name_len = usize::from(rd16(data, at + 26)?);
            let extra_len = usize::from(rd16(data, at + 28)?);
            at += 30 + name_len + extra_len;
            let body = data.get(at..).ok_or_else(|| ProtocolError::Compression("zip truncated".into()))?;
            let consumed = match method {
                0 => {
                    let b = body.get(..csize).ok_or_else(|| ProtocolError::Compression("zip truncated".into()))?;
                    if b.len() > limit.saturating_sub(out.len()) {
                        return Err(ProtocolError::Compression(format!("decompressed body exceeds {limit} bytes")));
                    }
                    out.extend_from_slice(b);
                    csize
                }
                8 => inflate_raw(body, &mut out, limit)?,
                m => return Err(ProtocolError::Compression(format!("zip method {m} not supported"))),
            };
            at += consumed;
            if flags & 0x0008 != 0 {
                at += if rd32(data, at).ok() == Some(DESCRIPTOR) { 16 } else { 12 };
            }
        }
        if at == 0 {
            return Err(ProtocolError::Compression("not a zip archive".into()));
        }
        Ok(out)
    }

    /// Inflates one raw deflate stream from the start of `input` into `out`; returns the input
    /// bytes it used.
    fn inflate_raw(input: &[u8], out: &mut Vec<u8>, limit: usize) -> Result<usize, ProtocolError> {
        let mut d = flate2::Decompress::new(false);
        let mut chunk = vec![0u8; 16 * 1024];
        loop {
            let before_in = d.total_in();
            let before_out = d.total_out();
            let pos = usize::try_from(before_in).map_err(err)?;
            let status = d
                .decompress(input.get(pos..).unwrap_or_default(), &mut chunk, flate2::FlushDecompress::None)
                .map_err(err)?;
            let produced = usize::try_from(d.total_out() - before_out).map_err(err)?;
            if produced > limit.saturating_sub(out.len()) {
                return Err(ProtocolError::Compression(format!("decompressed body exceeds {limit} bytes")));
            }
            out.extend_from_slice(&chunk[..produced]);
            match status {
                flate2::Status::StreamEnd => return usize::try_from(d.total_in()).map_err(err),
                _ if d.total_in() == before_in && produced == 0 => {
                    return Err(ProtocolError::Compression("zip entry truncated".into()))
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_supported_compressor_round_trips() {
        let data: Vec<u8> = (0..5000u32).flat_map(|i| (i % 251).to_be_bytes()).collect();
        for c in [id::NONE, id::GZIP, id::ZIP, id::BZIP2, id::LZ4, id::DEFLATER, id::ZSTD] {
            let packed = compress(c, &data).unwrap();
            assert_eq!(decompress(c, &packed, data.len()).unwrap(), data, "compressor {c}");
            assert!(decompress(c, &packed, data.len() - 1).is_err(), "limit not enforced for {c}");
            for cut in [0, 1, packed.len() / 2] {
                let _ = decompress(c, &packed[..cut], data.len());
            }
        }
    }

    #[test]
    fn zstd_window_follows_the_limit() {
        assert_eq!(zstd_window_log(0), 10);
        assert_eq!(zstd_window_log(1024), 10);
        assert_eq!(zstd_window_log(1025), 11);
        assert_eq!(zstd_window_log(64 * 1024), 16);
        assert_eq!(zstd_window_log(8 << 20), 23);
        assert_eq!(zstd_window_log(usize::MAX), 27);
        // A body of exactly the limit still decompresses at the window boundary.
        for len in [1024, 64 * 1024, 64 * 1024 + 1] {
            let data: Vec<u8> = (0..len).map(|i| u8::try_from(i * 7 % 251).unwrap()).collect();
            let packed = compress(id::ZSTD, &data).unwrap();
            assert_eq!(decompress(id::ZSTD, &packed, len).unwrap(), data);
        }
    }

    #[test]
    fn bzip2_has_no_magic_and_lz4_uses_block_framing() {
        assert_eq!(&compress(id::BZIP2, b"hello").unwrap()[..2], b"h9");
        assert_eq!(&compress(id::LZ4, b"hello").unwrap()[..8], b"LZ4Block");
        assert_eq!(&compress(id::ZIP, b"hello").unwrap()[..4], b"PK\x03\x04");
    }

    #[test]
    fn unsupported_compressors_are_errors() {
        assert!(matches!(compress(id::SEVENZ, b"x"), Err(ProtocolError::UnsupportedCompressor(3))));
        assert!(matches!(decompress(9, b"x", 10), Err(ProtocolError::UnsupportedCompressor(9))));
    }
}
