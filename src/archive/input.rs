//! The bytes an archive reader reads: a local file or an object in a store, both read by
//! position only ([`ReadAt`]), so one reader serves both and can be shared between threads.

use std::fs::File;
use std::io;

use crate::store::RemoteFile;

/// Positional reads: no cursor, so concurrent readers never disturb each other.
pub trait ReadAt: Send + Sync {
    /// Reads some bytes at `offset`, returning how many (0 at the end).
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;

    /// Reads exactly `buf.len()` bytes at `offset`.
    fn read_exact_at(&self, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
        while !buf.is_empty() {
            match self.read_at(buf, offset) {
                Ok(0) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "read past the end of the archive")),
                Ok(n) => {
                    buf = &mut buf[n..];
                    offset += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

impl ReadAt for File {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        crate::platform::read_at(self, buf, offset)
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        crate::platform::read_exact_at(self, buf, offset)
    }
}

impl ReadAt for RemoteFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        RemoteFile::read_at(self, buf, offset)
    }
}

/// An open archive: a local file or a remote object.
#[derive(Debug)]
pub enum Input {
    /// A local file.
    Local(File),
    /// An object in Azure Blob Storage or S3.
    Remote(RemoteFile),
}

impl Input {
    /// The archive's length in bytes.
    pub fn size(&self) -> io::Result<u64> {
        match self {
            Input::Local(f) => Ok(f.metadata()?.len()),
            Input::Remote(r) => Ok(r.len()),
        }
    }

    /// The local file, if the archive is one.
    pub fn local(&self) -> Option<&File> {
        match self {
            Input::Local(f) => Some(f),
            Input::Remote(_) => None,
        }
    }
}

impl ReadAt for Input {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        match self {
            Input::Local(f) => ReadAt::read_at(f, buf, offset),
            Input::Remote(r) => r.read_at(buf, offset),
        }
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        match self {
            Input::Local(f) => ReadAt::read_exact_at(f, buf, offset),
            Input::Remote(r) => r.read_exact_at(buf, offset),
        }
    }
}
