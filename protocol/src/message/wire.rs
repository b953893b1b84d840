//! Primitive encodings of the "seata" codec (PROTOCOL.md §4.1): big-endian integers and
//! length-prefixed UTF-8 strings. Null and empty strings are the same bytes (length 0), so strings
//! are plain `String`s here and an empty one stands for Java's `null`.

use bytes::{BufMut, BytesMut};

use crate::error::ProtocolError;

/// Largest string a `str16` slot holds in a way every Java decoder reads back (it reads a signed
/// short).
pub const MAX_STR16: usize = i16::MAX as usize;

/// A bounds-checked cursor over a body. Every read checks the remaining length first, so a lying
/// length field gives [`ProtocolError::Truncated`] or [`ProtocolError::BadLength`], never a panic
/// and never an allocation larger than the input.
#[derive(Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Starts reading at the beginning of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Bytes consumed so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Bytes not yet consumed.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Fails unless every byte was consumed.
    pub fn finish(&self) -> Result<(), ProtocolError> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(ProtocolError::TrailingBytes(n)),
        }
    }

    /// Takes the next `n` bytes.
    pub fn bytes(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], ProtocolError> {
        if self.remaining() < n {
            return Err(ProtocolError::Truncated(what));
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], ProtocolError> {
        let b = self.bytes(N, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(b);
        Ok(out)
    }

    /// One unsigned byte.
    pub fn u8(&mut self, what: &'static str) -> Result<u8, ProtocolError> {
        Ok(self.array::<1>(what)?[0])
    }

    /// Big-endian i16.
    pub fn i16(&mut self, what: &'static str) -> Result<i16, ProtocolError> {
        Ok(i16::from_be_bytes(self.array(what)?))
    }

    /// Big-endian u16.
    pub fn u16(&mut self, what: &'static str) -> Result<u16, ProtocolError> {
        Ok(u16::from_be_bytes(self.array(what)?))
    }

    /// Big-endian i32.
    pub fn i32(&mut self, what: &'static str) -> Result<i32, ProtocolError> {
        Ok(i32::from_be_bytes(self.array(what)?))
    }

    /// Big-endian u32.
    pub fn u32(&mut self, what: &'static str) -> Result<u32, ProtocolError> {
        Ok(u32::from_be_bytes(self.array(what)?))
    }

    /// Big-endian i64.
    pub fn i64(&mut self, what: &'static str) -> Result<i64, ProtocolError> {
        Ok(i64::from_be_bytes(self.array(what)?))
    }

    fn string(&mut self, len: usize, what: &'static str) -> Result<String, ProtocolError> {
        let b = self.bytes(len, what)?;
        std::str::from_utf8(b).map(str::to_owned).map_err(|_| ProtocolError::InvalidUtf8(what))
    }

    /// A `str16`. The length is read as unsigned: Java writes `(short) len`, so reading it unsigned
    /// recovers strings of 32 768 to 65 535 bytes that a Java peer could have sent (seata-go reads it
    /// unsigned too).
    pub fn str16(&mut self, what: &'static str) -> Result<String, ProtocolError> {
        let len = self.u16(what)?;
        self.string(usize::from(len), what)
    }

    /// A string with a one-byte length: seata-go's failure message in four responses (§8.1).
    pub fn str8(&mut self, what: &'static str) -> Result<String, ProtocolError> {
        let len = self.u8(what)?;
        self.string(usize::from(len), what)
    }

    /// A `str32` (lockKey, applicationData, resourceIds).
    pub fn str32(&mut self, what: &'static str) -> Result<String, ProtocolError> {
        let len = self.i32(what)?;
        let n = usize::try_from(len).map_err(|_| ProtocolError::BadLength { field: what, len: i64::from(len) })?;
        if n > self.remaining() {
            return Err(ProtocolError::BadLength { field: what, len: i64::from(len) });
        }
        self.string(n, what)
    }
}

/// Writes a `str16`; strings longer than [`MAX_STR16`] bytes are refused (a Java peer would read a
/// negative length and lose the rest of the body).
pub fn put_str16(buf: &mut BytesMut, s: &str, what: &'static str) -> Result<(), ProtocolError> {
    let len = u16::try_from(s.len())
        .ok()
        .filter(|l| usize::from(*l) <= MAX_STR16)
        .ok_or(ProtocolError::TooLong { field: what, len: s.len() })?;
    buf.put_u16(len);
    buf.put_slice(s.as_bytes());
    Ok(())
}

/// Writes a string with a one-byte length (seata-go's layout); the caller truncates first.
pub fn put_str8(buf: &mut BytesMut, s: &str, what: &'static str) -> Result<(), ProtocolError> {
    let len = u8::try_from(s.len()).map_err(|_| ProtocolError::TooLong { field: what, len: s.len() })?;
    buf.put_u8(len);
    buf.put_slice(s.as_bytes());
    Ok(())
}

/// Writes a `str32`.
pub fn put_str32(buf: &mut BytesMut, s: &str, what: &'static str) -> Result<(), ProtocolError> {
    let len = i32::try_from(s.len()).map_err(|_| ProtocolError::TooLong { field: what, len: s.len() })?;
    buf.put_i32(len);
    buf.put_slice(s.as_bytes());
    Ok(())
}

/// Cuts `s` to at most `max` bytes at a character boundary (PROTOCOL.md §4.1 recommendation for
/// failure messages).
pub fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lying_lengths_are_errors() {
        assert!(matches!(Reader::new(&[0, 5, b'a']).str16("x"), Err(ProtocolError::Truncated("x"))));
        assert!(matches!(Reader::new(&[0xff, 0xff, 0xff, 0xff]).str32("x"), Err(ProtocolError::BadLength { .. })));
        assert!(matches!(Reader::new(&[0x7f, 0xff, 0xff, 0xff]).str32("x"), Err(ProtocolError::BadLength { .. })));
        assert!(matches!(Reader::new(&[0, 2, 0xc3, 0x28]).str16("x"), Err(ProtocolError::InvalidUtf8("x"))));
    }

    #[test]
    fn truncates_at_char_boundary() {
        assert_eq!(truncate_utf8("订单", 4), "订");
        assert_eq!(truncate_utf8("abc", 10), "abc");
    }
}
