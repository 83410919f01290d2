//! cvarchive: complete, verifiable backups of Azure Custom Vision accounts.
//!
//! # Layout
//!
//! Data flows one way: [`api`] -> [`export`] -> [`archive`] -> [`store`] (an archive in Azure
//! Blob Storage or S3); [`verify`], [`convert`] and [`restore`] read archives, local or remote. [`cli`] is the only edge: the binary's `main` calls [`cli::main`],
//! which parses arguments, draws progress, writes `--json` lines and chooses exit codes.
//!
//! - [`api`]: typed Training API v3.3 client: wire types shared with the emulator, auth, typed
//!   errors with secrets stripped, paging as a `Stream`, blob and artifact downloads.
//! - [`emulator`]: a local Custom Vision Training service on a real socket: account state,
//!   routes, signed expiring blob URLs, generated accounts, fault injection, a request log.
//! - [`export`]: the pipeline: list every category -> download images (bounded) -> hash -> hand
//!   to the single archive writer; `export::plan`, the account surveyed from metadata alone
//!   (`projects`, `--dry-run`, the disk-room check).
//! - [`archive`]: the BagIt-in-a-zip format: path layout, the writer (hash while writing,
//!   manifests last) and the reader; `archive::data`, what every reader of untrusted archives
//!   shares (one table of limits, capped lines, the manifest and listing readers), and
//!   `archive::source`, an archive's projects as `convert` and `restore` read them, and
//!   `archive::missing`, what an archive records as not archived.
//! - [`verify`]: an archive -> a [`verify::Report`] of every finding, and whether the archive is
//!   complete.
//! - [`delete`]: the deletion request: a plan checked against a verified backup, deletes in the
//!   service's order and batch sizes, confirmation, and a receipt.
//! - [`convert`]: an archive -> COCO datasets or tag folders that other tools load.
//! - [`restore`]: an archive -> its projects recreated in a Custom Vision resource, resumable.
//! - [`browse`]: the page inside every archive (`data/index.html` and its data files), rendered
//!   from the bag's data files.
//! - [`store`]: archives in Azure Blob Storage and S3: addresses, credentials from the
//!   environment, ranged reads, and uploads block by block that resume.
//! - [`progress`]: the progress trait the library reports through, drawn by the CLI.
//! - [`secret`]: the training key type that never prints, and redaction of credentials in text.
//! - [`text`]: escaping control characters of outside text before it is printed, and an error
//!   with its causes on one line.
//! - [`sidefile`]: files created beside a path the user chose, never through a planted link.
//! - [`cli`]: clap commands, one file each; `cli::json`, the one writer of `--json` lines (the
//!   schema in `schema/cvarchive-output.schema.json`); `cli::progress` and `cli::status`, the one
//!   drawer every command reports to; `cli::completions` and `cli::man`, generated from the same
//!   clap definitions.

pub mod api;
pub mod archive;
pub mod browse;
pub mod cli;
pub mod convert;
pub mod delete;
pub mod emulator;
pub mod export;
pub mod platform;
pub mod progress;
pub mod restore;
pub mod secret;
pub mod sidefile;
pub mod store;
pub mod text;
pub mod verify;
