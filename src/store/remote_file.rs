//! A remote archive read by position: ranged GETs of fixed blocks, a few kept, the next ones
//! fetched ahead while reads go forward. Every GET asks for the ETag the object had when it was
//! opened, so an archive replaced during a verify fails loudly instead of mixing two versions.
//!
//! Memory: at most [`CACHED`] blocks of [`BLOCK`] bytes (24 MiB), whatever the archive's size.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::future::{BoxFuture, FutureExt, Shared};
use object_store::{GetOptions, GetRange};

use super::{connect, runtime, Error, RemoteUrl, Store};

/// Bytes per ranged GET.
const BLOCK: u64 = 4 << 20;
/// Blocks kept (the one being read, the ones fetched ahead, and a few behind for the zip
/// directory's back-and-forth).
const CACHED: usize = 6;
/// Blocks fetched ahead of a forward read.
const AHEAD: u64 = 2;

type Fetch = Shared<BoxFuture<'static, Result<Bytes, Arc<Error>>>>;

/// An object in a store, opened for positional reads. Cheap to share between threads.
pub struct RemoteFile {
    store: Arc<dyn Store>,
    url: RemoteUrl,
    len: u64,
    etag: Option<String>,
    cache: Mutex<Cache>,
}

#[derive(Default)]
struct Cache {
    blocks: VecDeque<(u64, Fetch)>,
    last: Option<u64>,
}

impl std::fmt::Debug for RemoteFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteFile").field("url", &self.url.to_string()).field("len", &self.len).finish_non_exhaustive()
    }
}

impl RemoteFile {
    /// Connects with the environment's credentials and reads the object's size and ETag.
    pub fn open(url: &RemoteUrl) -> Result<RemoteFile, Error> {
        RemoteFile::open_with(connect(url)?, url)
    }

    /// Like [`RemoteFile::open`], with a client already made.
    pub fn open_with(store: Arc<dyn Store>, url: &RemoteUrl) -> Result<RemoteFile, Error> {
        let (s, path) = (Arc::clone(&store), url.object_path());
        let meta = runtime::wait(async move { s.head(&path).await }).map_err(|e| match e {
            object_store::Error::NotFound { .. } => match super::missing(&store, url) {
                Error::NotFound { detail, .. } if detail.is_empty() => Error::from_store(url, &e),
                other => other,
            },
            e => Error::from_store(url, &e),
        })?;
        Ok(RemoteFile {
            store,
            url: url.clone(),
            len: meta.size,
            etag: meta.e_tag,
            cache: Mutex::new(Cache::default()),
        })
    }

    /// The object's size in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the object is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The object's address.
    pub fn url(&self) -> &RemoteUrl {
        &self.url
    }

    /// The object's ETag when it was opened (every read asks for it), if the store gave one.
    pub fn etag(&self) -> Option<&str> {
        self.etag.as_deref()
    }

    /// Reads up to `buf.len()` bytes at `offset` (fewer only at a block's end or the object's);
    /// 0 at or past the end.
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
        if offset >= self.len || buf.is_empty() {
            return Ok(0);
        }
        let block = offset / BLOCK;
        let fetch = self.block(block);
        let bytes = runtime::wait(fetch).map_err(|e| std::io::Error::other(e.to_string()))?;
        let at = (offset - block * BLOCK) as usize;
        let n = buf.len().min(bytes.len().saturating_sub(at));
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("{} is shorter than it said ({} bytes)", self.url, self.len),
            ));
        }
        buf[..n].copy_from_slice(&bytes[at..at + n]);
        Ok(n)
    }

    /// Reads exactly `buf.len()` bytes at `offset`.
    pub fn read_exact_at(&self, mut buf: &mut [u8], mut offset: u64) -> std::io::Result<()> {
        while !buf.is_empty() {
            match self.read_at(buf, offset)? {
                0 => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "read past the end of the archive",
                    ))
                }
                n => {
                    buf = &mut buf[n..];
                    offset += n as u64;
                }
            }
        }
        Ok(())
    }

    /// The fetch of `block`, from the cache or started now; a forward read also starts the
    /// next [`AHEAD`] blocks.
    fn block(&self, block: u64) -> Fetch {
        let mut cache = self.cache.lock().expect("the cache lock is never poisoned: nothing in it panics");
        let forward = cache.last.is_some_and(|l| block == l || block == l + 1);
        cache.last = Some(block);
        let found = self.cached_or_start(&mut cache, block);
        if forward {
            let blocks = self.len.div_ceil(BLOCK);
            for next in block + 1..=(block + AHEAD).min(blocks.saturating_sub(1)) {
                let ahead = self.cached_or_start(&mut cache, next);
                // Polled by nobody yet: run it now so it is there when asked for.
                runtime::handle().spawn(ahead.map(drop));
            }
        }
        found
    }

    fn cached_or_start(&self, cache: &mut Cache, block: u64) -> Fetch {
        if let Some((_, f)) = cache.blocks.iter().find(|(b, _)| *b == block) {
            return f.clone();
        }
        let start = block * BLOCK;
        let end = (start + BLOCK).min(self.len);
        let (store, path, url) = (Arc::clone(&self.store), self.url.object_path(), self.url.clone());
        let options = GetOptions {
            range: Some(GetRange::Bounded(start..end)),
            if_match: self.etag.clone(),
            ..Default::default()
        };
        let fetch: BoxFuture<'static, Result<Bytes, Arc<Error>>> = async move {
            let got = store.get_opts(&path, options).await.map_err(|e| Arc::new(Error::from_store(&url, &e)))?;
            let bytes = got.bytes().await.map_err(|e| Arc::new(Error::from_store(&url, &e)))?;
            if bytes.len() as u64 != end - start {
                // A store (or something on the way) that answers another range than asked for is
                // not believed: every offset would be wrong.
                return Err(Arc::new(Error::Changed {
                    url: url.to_string(),
                    detail: format!("asked for bytes {start}..{end}, the store answered {} bytes", bytes.len()),
                }));
            }
            Ok(bytes)
        }
        .boxed();
        let fetch = fetch.shared();
        if cache.blocks.len() >= CACHED {
            cache.blocks.pop_front();
        }
        cache.blocks.push_back((block, fetch.clone()));
        fetch
    }
}
