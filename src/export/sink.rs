//! The archive sink: the single owner of the zip writer, a dedicated thread fed through a
//! bounded channel, so a slow disk slows the downloads instead of filling memory.
//!
//! Memory per image: none here (the queue is bounded; metadata is staged on disk for the
//! browse page); the writer's index of entries is `archive::index`, about 10-20 bytes an entry.

use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use crate::archive::{BagInfo, BagReader, BagSummary, BagWriter, Entry, WrittenEntry};

/// One payload file for the archive.
pub enum Item {
    /// Stored as is (images, models); hashed (SHA-256 and CRC-32) while downloaded.
    Stored { path: String, bytes: Bytes, crc32: u32, sha256: [u8; 32] },
    /// Copied byte for byte from an entry of a previous archive, checked on the way against
    /// `sha256` (its manifest's). The reply is the entry as written, or why the copy was refused
    /// (nothing was added, and the caller downloads instead).
    RawCopy {
        path: String,
        source: Arc<BagReader>,
        entry: Entry,
        sha256: [u8; 32],
        reply: oneshot::Sender<Result<WrittenEntry, String>>,
    },
    /// Deflated (JSON).
    Deflated { path: String, bytes: Vec<u8> },
    /// Deflated from a reader (spooled JSONL).
    DeflatedReader { path: String, reader: Box<dyn Read + Send> },
    /// Leave an entry a previous run wrote out of the archive (it is rewritten, or its image was
    /// deleted since).
    Forget { path: String },
    /// Render the browsable page (`data/index.html` and its data) from the metadata written so
    /// far, and add it to the archive.
    RenderPage,
}

/// Why the archive could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write the archive {}", path.display())]
pub struct SinkError {
    /// The archive being written (its final path).
    pub path: PathBuf,
    /// What failed.
    #[source]
    pub source: crate::archive::Error,
}

/// The sending side of the writer thread.
pub struct Sink {
    tx: Option<mpsc::Sender<Item>>,
    thread: Option<std::thread::JoinHandle<Result<BagWriter, crate::archive::Error>>>,
    path: PathBuf,
    /// The file the writer writes (the partial archive), which the writer's errors name.
    file: PathBuf,
}

impl Sink {
    /// Starts the writer thread on `writer`; `capacity` items may wait in the queue. `path` is
    /// the name errors give for the archive (their cause names the file written). Metadata is
    /// also staged, as plain files in a temporary folder beside the archive, for the browsable
    /// page rendered at the end.
    pub fn start(mut writer: BagWriter, capacity: usize, path: PathBuf) -> Result<Sink, SinkError> {
        let file = writer.path().to_path_buf();
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let staging = tempfile::Builder::new()
            .prefix(".cvarchive-staging-")
            .tempdir_in(&parent)
            .map_err(|e| SinkError { path: path.clone(), source: io_error(&parent, e) })?;
        let (tx, mut rx) = mpsc::channel::<Item>(capacity.max(1));
        let thread = std::thread::Builder::new()
            .name("archive-writer".into())
            .spawn(move || {
                let staged = StagingDir(staging.path().to_path_buf());
                while let Some(item) = rx.blocking_recv() {
                    match item {
                        Item::Stored { path, bytes, crc32, sha256 } => {
                            writer.add_stored(&path, &bytes, crc32, sha256)?
                        }
                        Item::RawCopy { path, source, entry, sha256, reply } => {
                            let answer = match writer.add_raw_from(&source, &entry, &path, sha256) {
                                Ok(()) => Ok(writer.contains(&path)?.expect("just added")),
                                Err(refused @ crate::archive::Error::RawCopy { .. }) => Err(refused.to_string()),
                                Err(e) => return Err(e),
                            };
                            // The export may have stopped waiting (Ctrl-C); the entry stays.
                            let _ = reply.send(answer);
                        }
                        Item::Deflated { path, bytes } => {
                            writer.add_deflated(&path, &bytes)?;
                            staged.write(&path, &bytes)?;
                        }
                        Item::DeflatedReader { path, reader } => {
                            let mut tee = staged.tee(&path, reader)?;
                            writer.add_deflated_from(&path, &mut tee)?;
                            tee.finish()?;
                        }
                        Item::Forget { path } => {
                            writer.forget(&path)?;
                        }
                        Item::RenderPage => {
                            crate::browse::render(&staged, &mut |path: &str, bytes: Vec<u8>| {
                                writer.add_deflated(path, &bytes)
                            })?;
                        }
                    }
                }
                drop(staging);
                // The queue closed: finishing, or stopping. Either way, make every entry written
                // so far durable and journaled, so a stopped export resumes from here.
                writer.checkpoint()?;
                Ok(writer)
            })
            .map_err(|e| SinkError { path: path.clone(), source: io_error(&file, e) })?;
        Ok(Sink { tx: Some(tx), thread: Some(thread), path, file })
    }

    /// Queues one item; waits while the queue is full. Fails if the writer has stopped; its
    /// own error is then had from [`Sink::stopped_error`].
    pub async fn send(&self, item: Item) -> Result<(), SinkError> {
        let tx = self.tx.as_ref().expect("the sink is open until finish");
        tx.send(item).await.map_err(|_| SinkError {
            path: self.path.clone(),
            source: io_error(&self.file, std::io::Error::other("the archive writer stopped")),
        })
    }

    /// Why the writer stopped (a full disk, say), once [`Sink::send`] has failed.
    pub async fn stopped_error(mut self) -> SinkError {
        match self.join().await {
            Err(e) => e,
            Ok(_) => SinkError {
                path: self.path.clone(),
                source: io_error(&self.file, std::io::Error::other("the archive writer stopped")),
            },
        }
    }

    /// Drains the queue, then writes the tag files.
    pub async fn finish(mut self, info: BagInfo) -> Result<BagSummary, SinkError> {
        let writer = self.join().await?;
        let path = self.path.clone();
        let file = self.file.clone();
        tokio::task::spawn_blocking(move || writer.finish(&info))
            .await
            .map_err(|e| SinkError {
                path: path.clone(),
                source: io_error(&file, std::io::Error::other(e.to_string())),
            })?
            .map_err(|source| SinkError { path, source })
    }

    /// Stops after the queued items, keeping what was written resumable.
    pub async fn abandon(mut self) {
        let _ = self.join().await;
    }

    async fn join(&mut self) -> Result<BagWriter, SinkError> {
        self.tx = None;
        let thread = self.thread.take().expect("joined once");
        let path = self.path.clone();
        let joined = tokio::task::spawn_blocking(move || thread.join()).await;
        match joined {
            Ok(Ok(result)) => result.map_err(|source| SinkError { path, source }),
            _ => Err(SinkError {
                source: io_error(&self.file, std::io::Error::other("the archive writer panicked")),
                path,
            }),
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        // Closing the channel ends the thread; the caller removes the unfinished file.
        self.tx = None;
    }
}

fn io_error(path: &std::path::Path, source: std::io::Error) -> crate::archive::Error {
    crate::archive::Error::Io { path: path.to_path_buf(), source }
}

/// The staging folder: a deflated copy of every metadata file, which the page is rendered
/// from. Deflated (at the fastest level) since it grows with the account: metadata lines shrink
/// to about a fifth, which matters most for an archive uploaded to a store, whose spool folder
/// holds the staging and little else.
struct StagingDir(PathBuf);

/// A staging file being written.
type StagedFile = flate2::write::DeflateEncoder<std::io::BufWriter<std::fs::File>>;

impl StagingDir {
    fn file(&self, data_path: &str) -> Result<StagedFile, crate::archive::Error> {
        let path = self.0.join(data_path);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
        }
        let file = std::fs::File::create(&path).map_err(|e| io_error(&path, e))?;
        let buffered = std::io::BufWriter::with_capacity(256 << 10, file);
        Ok(flate2::write::DeflateEncoder::new(buffered, flate2::Compression::fast()))
    }

    fn write(&self, data_path: &str, bytes: &[u8]) -> Result<(), crate::archive::Error> {
        use std::io::Write;
        let mut file = self.file(data_path)?;
        let written = file.write_all(bytes).and_then(|()| file.finish()).and_then(|mut f| f.flush());
        written.map_err(|e| io_error(&self.0.join(data_path), e))
    }

    fn tee(&self, data_path: &str, inner: Box<dyn Read + Send>) -> Result<Tee, crate::archive::Error> {
        Ok(Tee { inner, copy: self.file(data_path)?, path: self.0.join(data_path) })
    }

    fn open(&self, path: &str) -> Option<flate2::read::DeflateDecoder<std::io::BufReader<std::fs::File>>> {
        let file = std::fs::File::open(self.0.join(path)).ok()?;
        Some(flate2::read::DeflateDecoder::new(std::io::BufReader::with_capacity(256 << 10, file)))
    }
}

impl crate::browse::DataSource for StagingDir {
    fn read(&self, path: &str) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        self.open(path)?.read_to_end(&mut out).ok()?;
        Some(out)
    }

    fn lines(&self, path: &str) -> Option<Box<dyn Iterator<Item = Vec<u8>> + '_>> {
        use std::io::BufRead;
        let lines = std::io::BufReader::with_capacity(256 << 10, self.open(path)?).split(b'\n').map_while(Result::ok);
        Some(Box::new(lines.filter(|l| !l.is_empty())))
    }
}

/// A reader that copies what it reads into a staging file.
struct Tee {
    inner: Box<dyn Read + Send>,
    copy: StagedFile,
    path: PathBuf,
}

impl Tee {
    fn finish(self) -> Result<(), crate::archive::Error> {
        use std::io::Write;
        self.copy.finish().and_then(|mut f| f.flush()).map_err(|e| io_error(&self.path, e))
    }
}

impl Read for Tee {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use std::io::Write;
        let n = self.inner.read(buf)?;
        self.copy.write_all(&buf[..n])?;
        Ok(n)
    }
}
