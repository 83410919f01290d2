//! The bag writer: payload files go into the zip as they come (images stored, JSON deflated),
//! each hashed as it is written; `bag-info.txt`, the manifests and the tag manifest go last.
//! One owner (the export's writer thread) drives it; it is not shared.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::PathBuf;

use sha2::{Digest, Sha256};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

use super::bagit::{
    render_bag_info, render_manifest_line, BagInfo, PayloadOxum, BAGIT_TXT, BAGIT_TXT_NAME, BAG_INFO_NAME,
    MANIFEST_NAME, TAGMANIFEST_NAME,
};
use super::layout::unsafe_path_reason;
use super::Error;

/// Write buffer: large, so a slow disk sees few, big writes.
const WRITE_BUFFER: usize = 4 << 20;
/// Entries at least this large get ZIP64 fields (zip's 32-bit limit, with room for deflate growth).
const ZIP64_THRESHOLD: u64 = 0xF000_0000;
/// Chunk for copying from readers.
const COPY_CHUNK: usize = 1 << 20;

/// What the finished bag holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BagSummary {
    /// Total bytes of payload files (the first half of `Payload-Oxum`).
    pub payload_bytes: u64,
    /// Number of payload files.
    pub payload_files: u64,
}

/// Writes one bag into a zip file. See the module docs.
pub struct BagWriter {
    zip: ZipWriter<BufWriter<File>>,
    bag_name: String,
    display_path: PathBuf,
    manifest: Vec<(String, [u8; 32])>,
    seen: HashSet<String>,
    payload_bytes: u64,
    tag_hashes: Vec<(&'static str, [u8; 32])>,
}

impl std::fmt::Debug for BagWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BagWriter")
            .field("bag_name", &self.bag_name)
            .field("payload_files", &self.manifest.len())
            .field("payload_bytes", &self.payload_bytes)
            .finish_non_exhaustive()
    }
}

impl BagWriter {
    /// Starts a bag named `bag_name` (use [`super::layout::bag_name_for`]) in `file`, which
    /// should be empty; writes `bagit.txt` first so streaming readers meet it early.
    pub fn new(file: File, bag_name: &str) -> Result<BagWriter, Error> {
        if let Some(reason) = unsafe_path_reason(bag_name).or(bag_name.contains('/').then_some("contains '/'")) {
            return Err(Error::InvalidPath { path: bag_name.to_string(), reason });
        }
        let display_path = file_path(&file).unwrap_or_else(|| PathBuf::from(bag_name));
        let mut writer = BagWriter {
            zip: ZipWriter::new(BufWriter::with_capacity(WRITE_BUFFER, file)),
            bag_name: bag_name.to_string(),
            display_path,
            manifest: Vec::new(),
            seen: HashSet::new(),
            payload_bytes: 0,
            tag_hashes: Vec::new(),
        };
        writer.add_tag_file(BAGIT_TXT_NAME, BAGIT_TXT.as_bytes())?;
        Ok(writer)
    }

    /// Names the archive file in errors (by default the path the OS reports for the file, else
    /// the bag name).
    pub fn with_display_path(mut self, path: impl Into<PathBuf>) -> BagWriter {
        self.display_path = path.into();
        self
    }

    /// A payload file stored as is; `sha256` was computed while the bytes streamed in.
    pub fn add_stored(&mut self, data_path: &str, bytes: &[u8], sha256: [u8; 32]) -> Result<(), Error> {
        let name = self.claim(data_path)?;
        let options = SimpleFileOptions::default()
            .compression_method(CompressionMethod::Stored)
            .large_file(bytes.len() as u64 >= ZIP64_THRESHOLD);
        self.start(&name, options)?;
        self.write(&name, bytes)?;
        self.record(data_path, bytes.len() as u64, sha256);
        Ok(())
    }

    /// A payload file deflated; hashed here.
    pub fn add_deflated(&mut self, data_path: &str, bytes: &[u8]) -> Result<(), Error> {
        let name = self.claim(data_path)?;
        self.start(&name, deflated(bytes.len() as u64 >= ZIP64_THRESHOLD))?;
        self.write(&name, bytes)?;
        self.record(data_path, bytes.len() as u64, Sha256::digest(bytes).into());
        Ok(())
    }

    /// A payload file deflated from a reader (a spooled JSONL file), hashed while copied.
    /// Its size is unknown up front, so the entry always carries ZIP64 fields.
    pub fn add_deflated_from(&mut self, data_path: &str, reader: &mut dyn Read) -> Result<(), Error> {
        let name = self.claim(data_path)?;
        self.start(&name, deflated(true))?;
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let mut buf = vec![0u8; COPY_CHUNK];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(Error::Io { path: PathBuf::from(format!("(source of data/{data_path})")), source: e })
                }
            };
            hasher.update(&buf[..n]);
            size += n as u64;
            self.write(&name, &buf[..n])?;
        }
        self.record(data_path, size, hasher.finalize().into());
        Ok(())
    }

    /// Writes `bag-info.txt` (with the computed `Payload-Oxum`), the payload manifest and the tag
    /// manifest, finishes the zip, then flushes and fsyncs the file.
    pub fn finish(mut self, info: &BagInfo) -> Result<BagSummary, Error> {
        let summary = BagSummary { payload_bytes: self.payload_bytes, payload_files: self.manifest.len() as u64 };
        let oxum = PayloadOxum { bytes: summary.payload_bytes, files: summary.payload_files };
        self.add_tag_file(BAG_INFO_NAME, render_bag_info(info, oxum).as_bytes())?;

        let mut manifest = std::mem::take(&mut self.manifest);
        manifest.sort_by(|a, b| a.0.cmp(&b.0));
        let mut text = String::with_capacity(manifest.len() * 128);
        for (path, sha) in &manifest {
            text.push_str(&render_manifest_line(sha, &format!("data/{path}")));
        }
        self.add_tag_file(MANIFEST_NAME, text.as_bytes())?;

        let mut tags = String::new();
        for (name, sha) in &self.tag_hashes {
            tags.push_str(&render_manifest_line(sha, name));
        }
        let name = format!("{}/{TAGMANIFEST_NAME}", self.bag_name);
        self.start(&name, deflated(false))?;
        self.write(&name, tags.as_bytes())?;

        let path = self.display_path.clone();
        let buffered = self.zip.finish().map_err(|e| zip_error(&path, "(central directory)", e))?;
        let file = buffered.into_inner().map_err(|e| Error::Io { path: path.clone(), source: e.into_error() })?;
        file.sync_all().map_err(|e| Error::Io { path, source: e })?;
        Ok(summary)
    }

    fn add_tag_file(&mut self, tag_name: &'static str, bytes: &[u8]) -> Result<(), Error> {
        let name = format!("{}/{tag_name}", self.bag_name);
        self.start(&name, deflated(false))?;
        self.write(&name, bytes)?;
        self.tag_hashes.push((tag_name, Sha256::digest(bytes).into()));
        Ok(())
    }

    /// Checks a payload path and reserves it; returns the full entry name.
    fn claim(&mut self, data_path: &str) -> Result<String, Error> {
        if let Some(reason) = unsafe_path_reason(data_path) {
            return Err(Error::InvalidPath { path: data_path.to_string(), reason });
        }
        if !self.seen.insert(data_path.to_string()) {
            return Err(Error::DuplicatePath(data_path.to_string()));
        }
        Ok(format!("{}/data/{data_path}", self.bag_name))
    }

    fn record(&mut self, data_path: &str, size: u64, sha256: [u8; 32]) {
        self.payload_bytes += size;
        self.manifest.push((data_path.to_string(), sha256));
    }

    fn start(&mut self, name: &str, options: SimpleFileOptions) -> Result<(), Error> {
        self.zip.start_file(name, options).map_err(|e| zip_error(&self.display_path, name, e))
    }

    fn write(&mut self, name: &str, bytes: &[u8]) -> Result<(), Error> {
        self.zip.write_all(bytes).map_err(|e| Error::Io {
            path: self.display_path.clone(),
            source: std::io::Error::new(e.kind(), format!("writing entry {name}: {e}")),
        })
    }
}

/// The path an open file was opened at, where the OS tells (Linux), so errors can name it.
fn file_path(file: &File) -> Option<PathBuf> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())).ok()
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = file;
        None
    }
}

fn deflated(large: bool) -> SimpleFileOptions {
    SimpleFileOptions::default().compression_method(CompressionMethod::Deflated).large_file(large)
}

/// Zip errors that are really io errors (a full disk) become [`Error::Io`] naming the archive.
fn zip_error(path: &std::path::Path, entry: &str, e: zip::result::ZipError) -> Error {
    match e {
        zip::result::ZipError::Io(source) => Error::Io {
            path: path.to_path_buf(),
            source: std::io::Error::new(source.kind(), format!("entry {entry}: {source}")),
        },
        source => Error::Zip { path: path.to_path_buf(), entry: entry.to_string(), source },
    }
}
