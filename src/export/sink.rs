//! The archive sink: the single owner of the zip writer, a dedicated thread fed through a
//! bounded channel, so a slow disk slows the downloads instead of filling memory.

use std::io::Read;
use std::path::PathBuf;

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::archive::{BagInfo, BagSummary, BagWriter};

/// One payload file for the archive.
pub enum Item {
    /// Stored as is (images, models); hashed while downloaded.
    Stored { path: String, bytes: Bytes, sha256: [u8; 32] },
    /// Deflated (JSON).
    Deflated { path: String, bytes: Vec<u8> },
    /// Deflated from a reader (spooled JSONL).
    DeflatedReader { path: String, reader: Box<dyn Read + Send> },
    /// Leave an entry a previous run wrote out of the archive (it is rewritten, or its image was
    /// deleted since).
    Forget { path: String },
}

/// Why the archive could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write the archive {}: {source}", path.display())]
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
}

impl Sink {
    /// Starts the writer thread on `writer`; `capacity` items may wait in the queue. `path` is
    /// the name errors give for the archive.
    pub fn start(writer: BagWriter, capacity: usize, path: PathBuf) -> Result<Sink, SinkError> {
        let mut writer = writer.with_display_path(&path);
        let (tx, mut rx) = mpsc::channel::<Item>(capacity.max(1));
        let thread = std::thread::Builder::new()
            .name("archive-writer".into())
            .spawn(move || {
                while let Some(item) = rx.blocking_recv() {
                    match item {
                        Item::Stored { path, bytes, sha256 } => writer.add_stored(&path, &bytes, sha256)?,
                        Item::Deflated { path, bytes } => writer.add_deflated(&path, &bytes)?,
                        Item::DeflatedReader { path, mut reader } => writer.add_deflated_from(&path, &mut reader)?,
                        Item::Forget { path } => {
                            writer.forget(&path);
                        }
                    }
                }
                // The queue closed: finishing, or stopping. Either way, make every entry written
                // so far durable and journaled, so a stopped export resumes from here.
                writer.checkpoint()?;
                Ok(writer)
            })
            .map_err(|e| SinkError { path: path.clone(), source: io_error(&path, e) })?;
        Ok(Sink { tx: Some(tx), thread: Some(thread), path })
    }

    /// Queues one item; waits while the queue is full. Fails with the writer's own error if it
    /// has stopped.
    pub async fn send(&mut self, item: Item) -> Result<(), SinkError> {
        let tx = self.tx.as_ref().expect("the sink is open until finish");
        if tx.send(item).await.is_err() {
            return Err(self.join().await.err().unwrap_or_else(|| SinkError {
                path: self.path.clone(),
                source: io_error(&self.path, std::io::Error::other("the archive writer stopped")),
            }));
        }
        Ok(())
    }

    /// Drains the queue, then writes the tag files.
    pub async fn finish(mut self, info: BagInfo) -> Result<BagSummary, SinkError> {
        let writer = self.join().await?;
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || writer.finish(&info))
            .await
            .map_err(|e| SinkError {
                path: path.clone(),
                source: io_error(&path, std::io::Error::other(e.to_string())),
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
            _ => Err(SinkError { source: io_error(&path, std::io::Error::other("the archive writer panicked")), path }),
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
