//! Hashing what a reader yields, in one loop: SHA-256, CRC-32 and size together, with a hook
//! that sees (and may refuse) every chunk; and a whole open file's SHA-256 by the same loop.

use std::io::{self, Read};

use sha2::{Digest, Sha256};

use super::input::ReadAt;
use super::reader::EntryDigest;

/// Hashes all that `read` yields through `buf`, retrying interrupted reads. `each` is handed
/// the size counted so far and every chunk before it is hashed; its error ends the reading.
pub fn hash_reader(
    read: &mut dyn Read,
    buf: &mut [u8],
    mut each: impl FnMut(u64, &[u8]) -> io::Result<()>,
) -> io::Result<EntryDigest> {
    let mut sha = Sha256::new();
    let mut crc = crc32fast::Hasher::new();
    let mut size = 0u64;
    loop {
        let n = match read.read(buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        size += n as u64;
        each(size, &buf[..n])?;
        sha.update(&buf[..n]);
        crc.update(&buf[..n]);
    }
    Ok(EntryDigest { sha256: sha.finalize().into(), crc32: crc.finalize(), size })
}

/// The SHA-256 (hex) and size of a whole open file (or remote archive), read positionally from
/// its start (a file's cursor is left alone).
pub fn hash_file(file: &dyn ReadAt) -> io::Result<(String, u64)> {
    let mut from_start = FromStart { file, at: 0 };
    let digest = hash_reader(&mut from_start, &mut vec![0u8; 1 << 20], |_, _| Ok(()))?;
    Ok((hex::encode(digest.sha256), digest.size))
}

/// A reader over a file by positioned reads from `at`.
struct FromStart<'a> {
    file: &'a dyn ReadAt,
    at: u64,
}

impl Read for FromStart<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read_at(buf, self.at)?;
        self.at += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_hashes_from_its_start_whatever_its_cursor() {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(b"abc").unwrap();
        f.seek(SeekFrom::Start(2)).unwrap();
        let (hex, size) = hash_file(&f).unwrap();
        assert_eq!(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(size, 3);
    }

    #[test]
    fn the_hook_can_stop_the_reading() {
        let mut read: &[u8] = b"0123456789";
        let stop =
            hash_reader(
                &mut read,
                &mut [0u8; 4],
                |size, _| {
                    if size > 6 {
                        Err(io::Error::other("too long"))
                    } else {
                        Ok(())
                    }
                },
            );
        assert_eq!(stop.unwrap_err().to_string(), "too long");
    }
}
