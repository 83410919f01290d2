//! The browsable page inside every archive: `data/index.html` and the files it loads from
//! `data/browse/`, rendered from the bag's own data files so that a person who unzips an archive
//! can open one file and see their data with no tool and no network.
//!
//! - [`render`] reads the payload through a [`DataSource`] and hands each produced file to a
//!   callback as soon as it is complete, so memory stays bounded however many images a project
//!   holds (images are streamed from `images.jsonl` into chunks of [`IMAGES_PER_CHUNK`]).
//! - [`rows`] turns the service's objects into the compact rows the page reads, and checks
//!   every path the page will link to.
//! - `source` (only with the `testing` feature, which the tests turn on): `ArchiveSource`, a
//!   [`DataSource`] over an existing archive, and `materialize`, which lays an archive out in a
//!   folder as if it had been unzipped, rendering the page when the archive lacks one.
//!
//! The page's data are JavaScript files calling `window.__cv_push(key, json)`, loaded by
//! `<script>` tags, because browsers refuse `fetch()` of local files. The page holds no key and no
//! URL to any host; its Content-Security-Policy forbids every request but local scripts, styles
//! and images.

mod render;
pub mod rows;
#[cfg(any(test, feature = "testing"))]
pub mod source;

pub use render::{page_code, render, Emit, RenderSummary, DATA_CALL_PREFIX};
#[cfg(any(test, feature = "testing"))]
pub use source::{materialize, ArchiveSource};

/// Images per `browse/<project>/images-NNNN.js` chunk.
pub const IMAGES_PER_CHUNK: usize = 250;
/// Stored predictions per `browse/<project>/predictions-NNNN.js` chunk.
pub const PREDICTIONS_PER_CHUNK: usize = 250;
/// The page, relative to `data/`.
pub const INDEX_HTML: &str = "index.html";
/// The folder (relative to `data/`) of everything the page loads.
pub const BROWSE_DIR: &str = "browse";

/// Read access to the bag's data files (paths relative to `data/`), while they are being written
/// or from an existing archive.
pub trait DataSource {
    /// A small file's bytes (JSON), or `None` when it is absent or unreadable.
    fn read(&self, path: &str) -> Option<Vec<u8>>;
    /// A JSONL file's lines without their LF, streamed, or `None` when it is absent.
    fn lines(&self, path: &str) -> Option<Box<dyn Iterator<Item = Vec<u8>> + '_>>;
}

/// What can go wrong laying out an archive in a folder.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The archive cannot be read.
    #[error(transparent)]
    Archive(#[from] crate::archive::Error),
    /// The archive holds no bag folder.
    #[error("{}: no bag folder in the archive", .0.display())]
    NoBag(std::path::PathBuf),
    /// An entry's bytes cannot be read.
    #[error("{archive}: entry {entry}: {problem}", archive = .archive.display())]
    Entry {
        /// The archive file.
        archive: std::path::PathBuf,
        /// The entry's name.
        entry: String,
        /// What is wrong.
        problem: crate::archive::EntryProblem,
    },
    /// Writing into the target folder failed.
    #[error("{}", path.display())]
    Write {
        /// The file or folder being written.
        path: std::path::PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}
