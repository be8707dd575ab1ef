//! Hexadecimal: the one encoder and decoder of the crate (signatures, replay keys, request ids,
//! percent-escapes).

/// The lowercase digits, by value.
pub const DIGITS: &[u8; 16] = b"0123456789abcdef";

/// `bytes` as lowercase hex.
// `vec![0; n]` asks `calloc`, which cost more per MAC than the digits (BENCHMARKS.md §17).
#[allow(clippy::slow_vector_initialization)]
pub fn encode(bytes: &[u8]) -> String {
    // Bytes, not a `char` pushed per digit (each push encodes UTF-8): less than half the
    // instructions for a MAC, which every verified request encodes.
    let mut out = Vec::with_capacity(bytes.len() * 2);
    out.resize(bytes.len() * 2, 0);
    for (pair, b) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = DIGITS[usize::from(b >> 4)];
        pair[1] = DIGITS[usize::from(b & 0x0f)];
    }
    // Only ASCII digits were written: never the fallback.
    String::from_utf8(out).unwrap_or_default()
}

/// The value of one hex digit, either case.
pub fn digit_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Decodes hex (either case) into `out`; the text must be exactly `2 * out.len()` digits.
pub fn decode_into(s: &[u8], out: &mut [u8]) -> bool {
    if s.len() != out.len() * 2 {
        return false;
    }
    for (i, pair) in s.chunks_exact(2).enumerate() {
        match (digit_value(pair[0]), digit_value(pair[1])) {
            (Some(h), Some(l)) => out[i] = (h << 4) | l,
            _ => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejects() {
        let bytes: Vec<u8> = (0..=255).collect();
        let text = encode(&bytes);
        assert_eq!(&text[..8], "00010203");
        assert_eq!(&text[text.len() - 4..], "feff");
        let mut out = vec![0; 256];
        assert!(decode_into(text.as_bytes(), &mut out));
        assert_eq!(out, bytes);
        assert!(decode_into(b"ABcd", &mut [0; 2]));
        assert!(!decode_into(b"abc", &mut [0; 2]));
        assert!(!decode_into(b"zz", &mut [0; 1]));
        assert_eq!(digit_value(b'g'), None);
    }
}
