//! Errors of the protocol crate. None of them panics; each says what was wrong with the bytes.

/// Everything that can go wrong reading or writing Seata frames and bodies.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// The first two bytes are not `DA DA`: the stream cannot be resynchronised.
    #[error("bad magic {0:02x?}, expected [da, da]")]
    BadMagic([u8; 2]),
    /// A protocol version byte other than 0 or 1.
    #[error("unsupported protocol version {0}")]
    BadVersion(u8),
    /// The full length is shorter than the header or longer than the configured maximum.
    #[error("frame length {len} outside 16..={max}")]
    BadFrameLength { len: u64, max: usize },
    /// The head length is shorter than 16 or longer than the frame.
    #[error("head length {head} invalid for frame length {full}")]
    BadHeadLength { head: u16, full: u32 },
    /// A head-map entry runs past the head length.
    #[error("head map entry runs past the head length")]
    BadHeadMap,
    /// The body is shorter than its fields say.
    #[error("body truncated: {0}")]
    Truncated(&'static str),
    /// Bytes left over after a complete body.
    #[error("{0} unexpected trailing bytes after the body")]
    TrailingBytes(usize),
    /// A declared length is negative or larger than what remains.
    #[error("invalid length {len} for {field}")]
    BadLength { field: &'static str, len: i64 },
    /// A string is not valid UTF-8.
    #[error("invalid UTF-8 in {0}")]
    InvalidUtf8(&'static str),
    /// A body type code this crate does not know.
    #[error("unknown message type code {0}")]
    UnknownTypeCode(i16),
    /// A type code that is not allowed in this position (e.g. a container inside a container).
    #[error("message type code {0} not allowed here")]
    UnexpectedTypeCode(i16),
    /// An enum number outside the known range.
    #[error("unknown {kind} value {value}")]
    UnknownEnum { kind: &'static str, value: i32 },
    /// A serializer other than "seata" (1).
    #[error("unsupported codec {0:#04x}")]
    UnsupportedCodec(u8),
    /// A compressor id we cannot read or write (7z, or unknown).
    #[error("unsupported compressor {0}")]
    UnsupportedCompressor(u8),
    /// A compressed body that does not decompress, or decompresses past the frame limit.
    #[error("compressed body invalid: {0}")]
    Compression(String),
    /// A value too large for its length prefix.
    #[error("{field} too long for the wire: {len} bytes")]
    TooLong { field: &'static str, len: usize },
    /// A container holds more messages than its count field allows, or none.
    #[error("bad message count {0}")]
    BadCount(usize),
    /// The byte stream could not be read or written.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

impl ProtocolError {
    /// Whether the stream is still in sync after this error (only the body was bad), so the
    /// connection can stay open. Framing errors are fatal (PROTOCOL.md §1.3, §2.4).
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            ProtocolError::BadMagic(_)
                | ProtocolError::BadVersion(_)
                | ProtocolError::BadFrameLength { .. }
                | ProtocolError::BadHeadLength { .. }
                | ProtocolError::BadHeadMap
                | ProtocolError::Io(_)
        )
    }
}
