//! Raw copy for incremental backups: an entry of a previous archive goes into this one byte for
//! byte as it is stored there (no re-download, no re-compression), streamed in bounded memory and
//! checked on the way against the SHA-256 the caller expects (its manifest's) and the entry's
//! CRC-32 and sizes. A copy that does not check out is rolled back: nothing is added.

use std::io::Read;

use flate2::read::DeflateDecoder;

use super::reader::{BagReader, RangeRead};
use super::resume::hash_stream;
use super::writer::BagWriter;
use super::zipconst::{Compression, STORED};
use super::zipdir::Entry;
use super::zipwrite::{self, ArchiveFile, Header};
use super::Error;

/// Buffer for hashing what is copied.
const HASH_CHUNK: usize = 256 << 10;

impl BagWriter {
    /// Copies `entry` of the archive `src` (stored or deflated) verbatim to `data_path`, hashing
    /// its content on the way. Refuses with [`Error::RawCopy`], adding nothing, when the SHA-256
    /// differs from `expected_sha256`, the CRC-32 or a size from the entry's, or the entry cannot
    /// be read.
    pub fn add_raw_from(
        &mut self,
        src: &BagReader,
        entry: &Entry,
        data_path: &str,
        expected_sha256: [u8; 32],
    ) -> Result<(), Error> {
        let name = self.claim(data_path)?;
        let refuse =
            |reason: String| Error::RawCopy { path: src.path().to_path_buf(), entry: entry.name.clone(), reason };
        let method = match entry.compression {
            Compression::Other(m) => return Err(refuse(format!("unsupported compression method {m}"))),
            known => known.method(),
        };
        let raw = src.raw_data(entry).map_err(|p| refuse(p.to_string()))?;
        let (size, csize) = (entry.size, entry.compressed_size);
        if method == STORED && size != csize {
            return Err(refuse(format!("stored entry declares {size} bytes but {csize} stored")));
        }
        let zip64 = size >= self.limits.size || csize >= self.limits.size;
        let h = Header { method, crc32: entry.crc32, compressed_size: csize, size, zip64, descriptor: false };

        let offset = self.out.pos();
        let mut header = Vec::with_capacity(256);
        zipwrite::local_header(&mut header, name.as_bytes(), &h);
        if let Err(e) = self.out.put(&header) {
            return Err(self.fail(offset, e));
        }
        let mut tee = Tee { inner: raw, out: &mut self.out, copied: 0, write_error: None };
        let mut buf = vec![0u8; HASH_CHUNK];
        let digest = match entry.compression {
            Compression::Stored => hash_stream(&mut tee, size, &mut buf),
            _ => {
                let digest = hash_stream(&mut DeflateDecoder::new(&mut tee), size, &mut buf);
                // Bytes after the end of the deflate stream are part of the entry: copy them too.
                digest.and_then(|d| std::io::copy(&mut tee, &mut std::io::sink()).map(|_| d))
            }
        };
        let (copied, write_error) = (tee.copied, tee.write_error.take());
        if let Some(e) = write_error {
            return Err(self.fail(offset, e));
        }
        let problem = match digest {
            Err(e) => Some(format!("reading it failed: {e}")),
            Ok(_) if copied != csize => Some(format!("{copied} bytes copied, {csize} declared")),
            Ok((_, _, actual)) if actual != size => Some(format!("content is {actual} bytes, {size} declared")),
            Ok((crc, _, _)) if crc != entry.crc32 => {
                Some(format!("CRC-32 {crc:08x} differs from the declared {:08x}", entry.crc32))
            }
            Ok((_, sha, _)) if sha != expected_sha256 => {
                Some(format!("SHA-256 {} differs from the expected {}", hex::encode(sha), hex::encode(expected_sha256)))
            }
            Ok(_) => None,
        };
        if let Some(reason) = problem {
            self.rollback(offset);
            self.usable()?;
            return Err(refuse(reason));
        }
        self.commit(data_path, offset, &h, expected_sha256)
    }
}

/// Reads the source entry's stored bytes and writes each one to the archive as it passes.
struct Tee<'a> {
    inner: RangeRead<'a>,
    out: &'a mut ArchiveFile,
    copied: u64,
    /// A failure writing our own archive (kept apart from failures reading the source).
    write_error: Option<std::io::Error>,
}

impl Read for Tee<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Err(e) = self.out.put(&buf[..n]) {
            let kind = e.kind();
            self.write_error = Some(e);
            return Err(std::io::Error::new(kind, "writing the copy failed"));
        }
        self.copied += n as u64;
        Ok(n)
    }
}
