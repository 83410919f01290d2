//! SHA-256 whose state can be written down between parts and picked up by another process, so
//! a resumed upload still reports the whole archive's hash without reading it back from the
//! store. The compression function is the `sha2` crate's; this file only keeps the state (the
//! eight words and the length, at a 64-byte boundary) and pads the end, as FIPS 180-4 5.1.1
//! says.

use sha2::digest::generic_array::GenericArray;

/// The initial hash value (FIPS 180-4 5.3.3).
const IV: [u32; 8] = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];

/// A SHA-256 in progress.
#[derive(Debug, Clone)]
pub struct ResumableSha256 {
    h: [u32; 8],
    len: u64,
    partial: Vec<u8>,
}

impl Default for ResumableSha256 {
    fn default() -> Self {
        ResumableSha256::new()
    }
}

impl ResumableSha256 {
    /// Nothing hashed yet.
    pub fn new() -> ResumableSha256 {
        ResumableSha256 { h: IV, len: 0, partial: Vec::with_capacity(64) }
    }

    /// Hashes `data`.
    pub fn update(&mut self, mut data: &[u8]) {
        self.len += data.len() as u64;
        if !self.partial.is_empty() {
            let take = (64 - self.partial.len()).min(data.len());
            self.partial.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.partial.len() < 64 {
                return;
            }
            let block = std::mem::take(&mut self.partial);
            self.compress(&block);
            self.partial = block;
            self.partial.clear();
        }
        let whole = data.len() / 64 * 64;
        self.compress(&data[..whole]);
        self.partial.extend_from_slice(&data[whole..]);
    }

    fn compress(&mut self, blocks: &[u8]) {
        for block in blocks.chunks_exact(64) {
            sha2::compress256(&mut self.h, std::slice::from_ref(GenericArray::from_slice(block)));
        }
    }

    /// The state as text (80 hex digits), at a 64-byte boundary only: `None` elsewhere.
    pub fn to_hex(&self) -> Option<String> {
        if !self.partial.is_empty() {
            return None;
        }
        let mut out = String::with_capacity(80);
        for w in self.h {
            out.push_str(&format!("{w:08x}"));
        }
        out.push_str(&format!("{:016x}", self.len));
        Some(out)
    }

    /// A state [`ResumableSha256::to_hex`] wrote.
    pub fn from_hex(text: &str) -> Option<ResumableSha256> {
        if text.len() != 80 || !text.is_ascii() {
            return None;
        }
        let mut h = [0u32; 8];
        for (i, w) in h.iter_mut().enumerate() {
            *w = u32::from_str_radix(&text[i * 8..i * 8 + 8], 16).ok()?;
        }
        let len = u64::from_str_radix(&text[64..], 16).ok()?;
        (len % 64 == 0).then(|| ResumableSha256 { h, len, partial: Vec::with_capacity(64) })
    }

    /// The digest.
    pub fn finish(mut self) -> [u8; 32] {
        let bits = self.len.wrapping_mul(8);
        let mut tail = std::mem::take(&mut self.partial);
        tail.push(0x80);
        while tail.len() % 64 != 56 {
            tail.push(0);
        }
        tail.extend_from_slice(&bits.to_be_bytes());
        self.compress(&tail);
        let mut out = [0u8; 32];
        for (i, w) in self.h.iter().enumerate() {
            out[i * 4..i * 4 + 4].copy_from_slice(&w.to_be_bytes());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    #[test]
    fn agrees_with_sha2_across_a_saved_and_restored_state() {
        let data: Vec<u8> = (0..200_003u32).map(|i| (i * 7 + i / 13) as u8).collect();
        for cut in [0usize, 64, 4096, 131_072, 200_000 / 64 * 64] {
            let mut first = ResumableSha256::new();
            first.update(&data[..cut]);
            let saved = first.to_hex().expect("a 64-byte boundary");
            let mut second = ResumableSha256::from_hex(&saved).unwrap();
            for piece in data[cut..].chunks(1000) {
                second.update(piece);
            }
            assert_eq!(second.finish(), <[u8; 32]>::from(Sha256::digest(&data)), "cut at {cut}");
        }
        assert_eq!(ResumableSha256::new().finish(), <[u8; 32]>::from(Sha256::digest(b"")));
        let mut odd = ResumableSha256::new();
        odd.update(b"abc");
        assert!(odd.to_hex().is_none());
    }
}
