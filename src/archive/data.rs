//! The archive's data files, as every reader of an untrusted archive sees them: the one table of
//! [limits](LIMITS), the one capped [line reader](read_line), the one payload [manifest
//! reader](read_manifest), the listing line types ([`ListedFile`], [`ArchivedImage`]) with the
//! rule binding a listed id to its own file ([`bound_file_problem`]), a bounded typed view of
//! `account.json` ([`AccountView`]; its missing items in [`super::missing`]) and JSON read
//! streamed under a cap ([`read_json`]).
//!
//! Memory spent on an archive grows with its real entries (the zip directory), never with what a
//! deflated file expands to: files are streamed, lines longer than [`MAX_LINE_BYTES`] are
//! skipped to their end and reported, JSON documents are parsed from the stream under
//! [`MAX_JSON_BYTES`], and callers keep only what names a real entry.

use std::io::{BufRead, BufReader, Read};
use std::marker::PhantomData;

use serde::de::{DeserializeOwned, DeserializeSeed, IgnoredAny, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::bagit::parse_manifest_line;
use super::reader::entry_problem;
use super::{BagReader, Entry, EntryProblem};
use crate::api::model::Image;

/// The longest line of any text file read from an archive (manifests, `.jsonl`). A longer line
/// is reported and skipped, never held. An image record with 300 regions and full metadata is
/// well under 100 KiB.
pub const MAX_LINE_BYTES: usize = 1 << 20;
/// The longest path accepted from a manifest line or a listing's `file`.
pub const MAX_PATH_BYTES: usize = 1024;
/// The largest JSON document parsed (`account.json`, `project.json`, `tags.json`, ...).
pub const MAX_JSON_BYTES: u64 = 16 << 20;
/// The largest tag file (`bagit.txt`, `bag-info.txt`, the tag manifest) read into memory.
pub const MAX_TAG_FILE_BYTES: u64 = 1 << 20;
/// The largest image (or prediction image) read into memory (the service takes 6 MB; older
/// images may be larger).
pub const MAX_IMAGE_BYTES: u64 = 64 << 20;
/// Findings of one kind kept by `verify`; the rest are counted.
pub const MAX_FINDINGS_PER_KIND: usize = 1000;
/// The longest text (path, detail) a finding keeps; longer text is cut and marked.
pub const MAX_FINDING_TEXT: usize = 1024;
/// The most distinct images one project's `images.jsonl` may name for `convert` and `restore`
/// (ten times the service's 100,000 a project): the bound on the set of ids they keep while
/// streaming a listing (about 24 bytes an image).
pub const MAX_LISTING_IMAGES: u64 = 1_000_000;
/// The most elements kept of an array in `account.json` (projects, missing items); more are
/// counted only.
pub const MAX_ACCOUNT_ITEMS: usize = 10_000;

/// Every limit above, by name, for documentation and for tests that build archives just past one.
pub const LIMITS: [(&str, u64); 10] = [
    ("zip entries", super::zipdir::MAX_ENTRIES),
    ("line", MAX_LINE_BYTES as u64),
    ("path", MAX_PATH_BYTES as u64),
    ("json document", MAX_JSON_BYTES),
    ("tag file", MAX_TAG_FILE_BYTES),
    ("image", MAX_IMAGE_BYTES),
    ("findings per kind", MAX_FINDINGS_PER_KIND as u64),
    ("finding text", MAX_FINDING_TEXT as u64),
    ("images per project listing", MAX_LISTING_IMAGES),
    ("account.json array items", MAX_ACCOUNT_ITEMS as u64),
];

/// The outcome of reading one line with [`read_line`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineRead {
    /// A line (without its `\n`) was read into the buffer.
    Text,
    /// The line exceeded the cap; the rest of it was skipped and the buffer is empty.
    TooLong,
    /// End of input.
    End,
}

/// Reads one LF-terminated line into `buf` (cleared first), keeping at most `cap` bytes of it: a
/// longer line is consumed to its end without being held and reported as [`LineRead::TooLong`].
pub fn read_line(reader: &mut impl BufRead, buf: &mut Vec<u8>, cap: usize) -> std::io::Result<LineRead> {
    buf.clear();
    // `read_until` finds the newline with the standard library's optimised search.
    let n = reader.by_ref().take(cap as u64 + 1).read_until(b'\n', buf)?;
    if n == 0 {
        return Ok(LineRead::End);
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
        return Ok(LineRead::Text);
    }
    if buf.len() <= cap {
        return Ok(LineRead::Text); // the last line, without a newline
    }
    // Too long: skip to the end of the line in bounded steps, holding nothing.
    loop {
        buf.clear();
        let n = reader.by_ref().take(64 << 10).read_until(b'\n', buf)?;
        if n == 0 || buf.last() == Some(&b'\n') {
            buf.clear();
            return Ok(LineRead::TooLong);
        }
    }
}

/// Tees everything read into SHA-256.
pub struct HashingRead<R> {
    inner: R,
    sha: Sha256,
}

impl<R: Read> HashingRead<R> {
    /// Hashes what is read from `inner`.
    pub fn new(inner: R) -> HashingRead<R> {
        HashingRead { inner, sha: Sha256::new() }
    }

    /// The SHA-256 of everything read so far.
    pub fn finish(self) -> [u8; 32] {
        self.sha.finalize().into()
    }
}

impl<R: Read> Read for HashingRead<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sha.update(&buf[..n]);
        Ok(n)
    }
}

/// Calls `each(line_number, line)` for every non-blank line of an entry, streamed, with lines
/// over [`MAX_LINE_BYTES`] handed on as `Err(why)`. Returns the SHA-256 of the whole entry.
pub fn for_each_line(
    reader: &BagReader,
    entry: &Entry,
    each: impl FnMut(usize, Result<&[u8], String>),
) -> Result<[u8; 32], EntryProblem> {
    let mut input = BufReader::with_capacity(256 << 10, HashingRead::new(reader.open_entry(entry)?));
    lines(&mut input, each)?;
    Ok(input.into_inner().finish())
}

/// [`for_each_line`] for a reader that has no use for the entry's hash (hashing costs about as
/// much as inflating).
pub fn for_each_line_unhashed(
    reader: &BagReader,
    entry: &Entry,
    each: impl FnMut(usize, Result<&[u8], String>),
) -> Result<(), EntryProblem> {
    lines(&mut BufReader::with_capacity(256 << 10, reader.open_entry(entry)?), each)
}

fn lines(input: &mut impl BufRead, mut each: impl FnMut(usize, Result<&[u8], String>)) -> Result<(), EntryProblem> {
    let mut line = Vec::new();
    let mut number = 0usize;
    loop {
        number += 1;
        match read_line(input, &mut line, MAX_LINE_BYTES).map_err(entry_problem)? {
            LineRead::End => return Ok(()),
            LineRead::TooLong => each(number, Err(format!("line longer than {MAX_LINE_BYTES} bytes"))),
            LineRead::Text if line.iter().all(u8::is_ascii_whitespace) => {}
            LineRead::Text => each(number, Ok(&line)),
        }
    }
}

/// Streams the payload manifest `entry`, calling `each(line_number, parsed)` for every non-blank
/// line: the hash and decoded path, or why the line is refused (malformed, too long, a path
/// longer than [`MAX_PATH_BYTES`]). Returns the manifest's own SHA-256. Keeps nothing: callers
/// keep only lines that name a real entry, so memory follows the archive's entries.
pub fn read_manifest(
    reader: &BagReader,
    entry: &Entry,
    mut each: impl FnMut(usize, Result<([u8; 32], String), String>),
) -> Result<[u8; 32], EntryProblem> {
    for_each_line(reader, entry, |number, line| {
        let parsed = line.and_then(|bytes| {
            // A hash, a space and a path: anything longer is refused before it is decoded.
            if bytes.len() > 64 + 1 + MAX_PATH_BYTES * 3 {
                return Err(format!("path longer than {MAX_PATH_BYTES} bytes"));
            }
            let text = String::from_utf8_lossy(bytes);
            let (sha, path) = parse_manifest_line(&text).map_err(str::to_owned)?;
            if path.len() > MAX_PATH_BYTES {
                return Err(format!("path longer than {MAX_PATH_BYTES} bytes"));
            }
            Ok((sha, path))
        });
        each(number, parsed)
    })
}

/// Reads a JSON document from an entry, streamed (never held as text), refusing one that
/// declares more than [`MAX_JSON_BYTES`].
pub fn read_json<T: DeserializeOwned>(reader: &BagReader, entry: &Entry) -> Result<T, JsonError> {
    if entry.size > MAX_JSON_BYTES {
        return Err(JsonError::Entry(EntryProblem::TooLarge { declared: entry.size, limit: MAX_JSON_BYTES }));
    }
    parse_stream(reader, entry)
}

/// Whether an entry of any size is one JSON document: streamed and skipped, so memory stays
/// flat (nesting is bounded by the parser's recursion limit).
pub fn json_parses(reader: &BagReader, entry: &Entry) -> Result<(), JsonError> {
    parse_stream::<IgnoredAny>(reader, entry).map(|_| ())
}

fn parse_stream<T: DeserializeOwned>(reader: &BagReader, entry: &Entry) -> Result<T, JsonError> {
    parse_stream_seeded(reader, entry, PhantomData::<T>)
}

/// [`read_json`] with a seed: for readers that keep only part of a document as they go (see
/// [`super::missing`]).
pub fn read_json_seeded<'de, S: DeserializeSeed<'de>>(
    reader: &BagReader,
    entry: &Entry,
    seed: S,
) -> Result<S::Value, JsonError> {
    if entry.size > MAX_JSON_BYTES {
        return Err(JsonError::Entry(EntryProblem::TooLarge { declared: entry.size, limit: MAX_JSON_BYTES }));
    }
    parse_stream_seeded(reader, entry, seed)
}

fn parse_stream_seeded<'de, S: DeserializeSeed<'de>>(
    reader: &BagReader,
    entry: &Entry,
    seed: S,
) -> Result<S::Value, JsonError> {
    let input = BufReader::with_capacity(64 << 10, reader.open_entry(entry).map_err(JsonError::Entry)?);
    let mut de = serde_json::Deserializer::from_reader(input);
    let value = seed.deserialize(&mut de).and_then(|v| de.end().map(|_| v));
    value.map_err(
        |e| if e.is_io() { JsonError::Entry(entry_problem(std::io::Error::from(e))) } else { JsonError::Json(e) },
    )
}

/// Why a JSON document could not be read.
#[derive(Debug, thiserror::Error)]
pub enum JsonError {
    /// The entry's bytes cannot be read (or it is too large).
    #[error(transparent)]
    Entry(EntryProblem),
    /// It is not the JSON expected.
    #[error("does not parse")]
    Json(#[source] serde_json::Error),
}

/// Which listing: `images.jsonl` or `predictions.jsonl`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ListingKind {
    /// `projects/<p>/images.jsonl`, files in `projects/<p>/images/`.
    Images,
    /// `projects/<p>/predictions.jsonl`, files in `projects/<p>/predictions/`.
    Predictions,
}

impl ListingKind {
    /// The listing's file name in the project folder.
    pub fn listing_name(self) -> &'static str {
        match self {
            ListingKind::Images => "images.jsonl",
            ListingKind::Predictions => "predictions.jsonl",
        }
    }

    /// The folder (in the project folder) its files live in.
    pub fn folder(self) -> &'static str {
        match self {
            ListingKind::Images => "images",
            ListingKind::Predictions => "predictions",
        }
    }
}

/// The fields of an `images.jsonl` or `predictions.jsonl` line that bind it to its file, each
/// optional so a reader can say which is lacking.
#[derive(Debug, Clone, Deserialize)]
pub struct ListedFile {
    /// The image's (or stored prediction's) id.
    pub id: Option<Uuid>,
    /// Its file's path below `data/`.
    pub file: Option<String>,
    /// The file's size.
    pub size: Option<u64>,
    /// The file's SHA-256, hex.
    pub sha256: Option<String>,
}

/// Why `file` is not the file a listing line with this `id` may name, if it is not: the path
/// follows from the id, `projects/<project>/<images|predictions>/<id>.<ext>` (the extension
/// sniffed from the bytes, one plain part). `project` is the project folder's name.
pub fn bound_file_problem(kind: ListingKind, project: &str, id: Uuid, file: &str) -> Option<String> {
    let expected = format!("projects/{project}/{}/{id}.", kind.folder());
    let own = file
        .strip_prefix(&expected)
        .is_some_and(|ext| !ext.is_empty() && ext.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)));
    (!own).then(|| format!("{} {id} names file {file:?}, not its own ({expected}<ext>)", kind_word(kind)))
}

fn kind_word(kind: ListingKind) -> &'static str {
    match kind {
        ListingKind::Images => "image",
        ListingKind::Predictions => "prediction",
    }
}

/// One line of `images.jsonl`: the service's image record and where its bytes are.
#[derive(Debug, Clone, Deserialize)]
pub struct ArchivedImage {
    /// The path of the bytes below `data/`.
    pub file: String,
    /// Their SHA-256, lowercase hex.
    pub sha256: String,
    /// Their size in bytes.
    #[serde(default)]
    pub size: u64,
    /// Whether the workspace held the image when exported; `None` in archives written before
    /// this was recorded, which listed the workspace alone (see [`ArchivedImage::in_workspace`]).
    #[serde(default)]
    pub workspace: Option<bool>,
    /// The trained iterations holding a copy; `None` (unknown, not none) in archives written
    /// before this was recorded.
    #[serde(default)]
    pub iterations: Option<Vec<Uuid>>,
    /// The image record (tags, regions, metadata, size).
    #[serde(flatten)]
    pub image: Image,
}

impl ArchivedImage {
    /// Whether the workspace held the image: an older archive's images all came from the
    /// workspace listing.
    pub fn in_workspace(&self) -> bool {
        self.workspace.unwrap_or(true)
    }
}

/// `account.json` as readers of untrusted archives see it: every field optional, arrays kept to
/// [`MAX_ACCOUNT_ITEMS`] and counted beyond (see [`Capped`]); unknown fields skipped unread. The
/// export writes it with `export::account::AccountFile`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AccountView {
    /// `source`.
    pub source: Option<SourceView>,
    /// `tool`.
    pub tool: Option<ToolView>,
    /// `started`.
    pub started: Option<String>,
    /// `finished`.
    pub finished: Option<String>,
    /// `complete`.
    pub complete: Option<bool>,
    /// `projects`.
    pub projects: Option<Capped<ProjectView>>,
    /// `missing`, counted only.
    pub missing: Option<Capped<IgnoredAny>>,
}

/// `account.json`'s `source`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SourceView {
    /// The endpoint host.
    pub endpoint_host: Option<String>,
    /// The API version.
    pub api_version: Option<String>,
}

/// `account.json`'s `tool`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ToolView {
    /// Its version.
    pub version: Option<String>,
}

/// One project of `account.json`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ProjectView {
    /// The project id, as written.
    pub id: Option<String>,
    /// Its name.
    pub name: Option<String>,
    /// Classification or ObjectDetection.
    pub domain_type: Option<String>,
    /// What the archive holds of it.
    pub archived: Option<ArchivedView>,
    /// What could not be archived, counted only.
    pub missing: Option<Capped<IgnoredAny>>,
}

/// A project's `archived` counts.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ArchivedView {
    /// Tagged images.
    pub tagged: Option<u64>,
    /// Untagged images.
    pub untagged: Option<u64>,
    /// Images only trained iterations held.
    pub only_in_iterations: Option<u64>,
    /// Tags.
    pub tags: Option<u64>,
    /// Iterations.
    pub iterations: Option<u64>,
    /// Stored predictions.
    pub predictions: Option<u64>,
    /// Model exports (packages).
    pub model_exports: Option<u64>,
    /// Bytes of image files.
    pub image_bytes: Option<u64>,
    /// Bytes of stored prediction images.
    pub prediction_bytes: Option<u64>,
    /// Bytes of model files.
    pub model_bytes: Option<u64>,
}

/// A JSON array read with at most [`MAX_ACCOUNT_ITEMS`] elements kept; the rest are skipped
/// unread and counted, so a huge array costs no memory.
#[derive(Debug, Clone)]
pub struct Capped<T> {
    /// The first elements.
    pub kept: Vec<T>,
    /// How many elements the array had.
    pub total: u64,
}

impl<T> Default for Capped<T> {
    fn default() -> Capped<T> {
        Capped { kept: Vec::new(), total: 0 }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Capped<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Capped<T>, D::Error> {
        struct CappedVisitor<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for CappedVisitor<T> {
            type Value = Capped<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an array")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Capped<T>, A::Error> {
                let mut out = Capped::default();
                while out.kept.len() < MAX_ACCOUNT_ITEMS {
                    match seq.next_element::<T>()? {
                        Some(item) => out.kept.push(item),
                        None => {
                            out.total = out.kept.len() as u64;
                            return Ok(out);
                        }
                    }
                }
                out.total = out.kept.len() as u64;
                while seq.next_element::<IgnoredAny>()?.is_some() {
                    out.total += 1;
                }
                Ok(out)
            }
        }
        d.deserialize_seq(CappedVisitor(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_split_on_lf_and_capped() {
        let data = b"{\"a\":1}\n\nxxxxxxxxxxxx\nlast";
        let mut input = BufReader::with_capacity(3, &data[..]);
        let mut got = Vec::new();
        let mut buf = Vec::new();
        loop {
            match read_line(&mut input, &mut buf, 8).unwrap() {
                LineRead::End => break,
                LineRead::TooLong => got.push("<long>".to_owned()),
                LineRead::Text => got.push(String::from_utf8(buf.clone()).unwrap()),
            }
        }
        assert_eq!(got, ["{\"a\":1}", "", "<long>", "last"]);
    }

    #[test]
    fn a_listed_file_is_bound_to_its_id() {
        let id = Uuid::from_u128(7);
        let p = "11111111-1111-1111-1111-111111111111";
        assert_eq!(bound_file_problem(ListingKind::Images, p, id, &format!("projects/{p}/images/{id}.jpg")), None);
        let other = Uuid::from_u128(8);
        for bad in [
            format!("projects/{p}/images/{other}.jpg"),
            format!("projects/{p}/predictions/{id}.jpg"),
            format!("projects/x/images/{id}.jpg"),
            format!("projects/{p}/images/{id}."),
            format!("projects/{p}/images/{id}.jpg/x"),
        ] {
            assert!(bound_file_problem(ListingKind::Images, p, id, &bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn capped_arrays_count_past_the_cap() {
        let text = format!("[{}0]", "0,".repeat(MAX_ACCOUNT_ITEMS + 5));
        let c: Capped<IgnoredAny> = serde_json::from_str(&text).unwrap();
        assert_eq!((c.kept.len(), c.total), (MAX_ACCOUNT_ITEMS, MAX_ACCOUNT_ITEMS as u64 + 6));
    }
}
