//! The zip format's numbers, named once for the reader ([`super::zipdir`]), the writer
//! ([`super::zipwrite`]) and the journal: the record signatures, the fixed length of a local
//! header, the data descriptor's flag, signature and length, and the compression method numbers
//! with their mapping to [`Compression`].
//! Source: PKWARE APPNOTE.TXT 6.3.10, sections 4.3.7 to 4.3.16 (4.3.9: data descriptor) and 4.4.5.

/// Bit 3: CRC-32 and sizes follow the data, in a data descriptor.
pub const FLAG_DESCRIPTOR: u16 = 1 << 3;
/// The data descriptor's signature (optional in the format, always written here).
pub const DESCRIPTOR_SIG: u32 = 0x0807_4b50;
/// A ZIP64 data descriptor's length: signature, CRC-32, two 8-byte sizes.
pub const DESCRIPTOR_LEN: u64 = 24;
/// Local file header signature (`PK\x03\x04`).
pub const LOCAL_SIG: u32 = 0x0403_4b50;
/// Central directory header signature (`PK\x01\x02`).
pub const CENTRAL_SIG: u32 = 0x0201_4b50;
/// End of central directory record signature (`PK\x05\x06`).
pub const EOCD_SIG: u32 = 0x0605_4b50;
/// ZIP64 end of central directory record signature (`PK\x06\x06`).
pub const ZIP64_EOCD_SIG: u32 = 0x0606_4b50;
/// ZIP64 end of central directory locator signature (`PK\x06\x07`).
pub const ZIP64_LOCATOR_SIG: u32 = 0x0706_4b50;
/// Size of the fixed part of a local header.
pub const LOCAL_HEADER_LEN: u64 = 30;

/// Compression method number: stored.
pub const STORED: u16 = 0;
/// Compression method number: deflated.
pub const DEFLATED: u16 = 8;

/// How an entry's bytes are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Method 0.
    Stored,
    /// Method 8.
    Deflated,
    /// Any other method (we cannot read it).
    Other(u16),
}

impl Compression {
    /// The compression a header's method number names.
    pub fn from_method(m: u16) -> Compression {
        match m {
            STORED => Compression::Stored,
            DEFLATED => Compression::Deflated,
            m => Compression::Other(m),
        }
    }

    /// The method number the zip headers carry.
    pub fn method(self) -> u16 {
        match self {
            Compression::Stored => STORED,
            Compression::Deflated => DEFLATED,
            Compression::Other(m) => m,
        }
    }
}
