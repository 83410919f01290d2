//! The store's own tokio runtime: two worker threads, started on first use. Synchronous callers
//! (the archive reader, the writer's thread) hand it a future and wait for the answer over a
//! plain channel, which works from any thread, inside another runtime's task or not.

use std::future::Future;
use std::sync::OnceLock;

use tokio::runtime::{Builder, Handle, Runtime};

static RUNTIME: OnceLock<Runtime> = OnceLock::new();

/// The runtime's handle, starting it on first use.
pub(crate) fn handle() -> Handle {
    RUNTIME
        .get_or_init(|| {
            Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("cvarchive-store")
                .enable_all()
                .build()
                .expect("starting the store's runtime")
        })
        .handle()
        .clone()
}

/// Runs `future` on the store's runtime and blocks the calling thread until it is done.
pub(crate) fn wait<F>(future: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    handle().spawn(async move {
        let _ = tx.send(future.await);
    });
    rx.recv().expect("the store's runtime runs every task it is given to the end")
}
