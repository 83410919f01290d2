//! One project's `images.jsonl`, streamed line by line: each line parsed, bound to its own file
//! and that file to the manifest, each image id yielded once, the whole listing's digest
//! compared with the manifest at its end.
//!
//! Memory: the current line (at most [`MAX_LINE_BYTES`]) and the set of image ids seen so far
//! (16 bytes an image, about 24 with the set's overhead, capped by [`MAX_LISTING_IMAGES`]).
//! A repeated line is recognised by its id alone: the file follows from the id.

use std::collections::HashSet;
use std::io::BufReader;

use uuid::Uuid;

use super::{Error, Source, MAX_REPEATED_LINES};
use crate::archive::data::ArchivedImage;
use crate::archive::data::{
    bound_file_problem, read_line, HashingRead, LineRead, ListingKind, MAX_LINE_BYTES, MAX_LISTING_IMAGES,
};
use crate::archive::reader::{entry_problem, EntryRead};
use crate::archive::{layout, Entry};

/// The images of one project's listing, in archive order, each id once (see the module docs).
/// The first error ends the stream: a damaged listing is not used past it.
pub struct Images<'s> {
    source: &'s Source,
    /// `data/projects/<id>/images.jsonl`, for messages.
    entry: String,
    /// The project folder's name, which every listed file must be in.
    project: String,
    input: Option<BufReader<HashingRead<EntryRead<'s>>>>,
    expected: [u8; 32],
    line: Vec<u8>,
    number: usize,
    seen: HashSet<Uuid>,
    repeats: u64,
    /// Whether each line's file is looked up in the manifest (the checking pass).
    look_up: bool,
}

impl std::fmt::Debug for Images<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Images").field("entry", &self.entry).field("line", &self.number).finish()
    }
}

impl<'s> Images<'s> {
    /// Starts reading `entry` (`project`'s listing at `rel`), whose manifest hash is `expected`.
    pub(super) fn open(
        source: &'s Source,
        (project, rel): (Uuid, &str),
        entry: &Entry,
        expected: [u8; 32],
        look_up: bool,
    ) -> Result<Images<'s>, Error> {
        let name = format!("data/{rel}");
        let read = source
            .reader
            .open_entry(entry)
            .map_err(|problem| Error::Entry { entry: name.clone(), problem: problem.to_string() })?;
        Ok(Images {
            source,
            entry: name,
            project: project.to_string(),
            input: Some(BufReader::with_capacity(256 << 10, HashingRead::new(read))),
            expected,
            line: Vec::new(),
            number: 0,
            seen: HashSet::new(),
            repeats: 0,
            look_up,
        })
    }

    fn fail(&mut self, detail: String) -> Option<Result<ArchivedImage, Error>> {
        self.input = None;
        Some(Err(Error::Json { entry: self.entry.clone(), detail: format!("line {}: {detail}", self.number) }))
    }

    /// The line just read as an image, `None` for a repeat, or why it is refused.
    fn parse(&mut self) -> Result<Option<ArchivedImage>, String> {
        let image: ArchivedImage = serde_json::from_slice(&self.line).map_err(|e| e.to_string())?;
        if let Some(reason) = layout::unsafe_path_reason(&image.file) {
            return Err(format!("file {:?}: {reason}", image.file));
        }
        if let Some(why) = bound_file_problem(ListingKind::Images, &self.project, image.image.id, &image.file) {
            return Err(why);
        }
        match self.look_up.then(|| self.source.is_listed(&image.file)) {
            None | Some(Ok(true)) => {}
            Some(Ok(false)) => return Err(format!("file {:?} is not in the archive's manifest", image.file)),
            Some(Err(e)) => return Err(e.to_string()),
        }
        // The same id is the same image listed again: it is used once (verify reports the
        // repetition as a finding). A listing made mostly of repeats is not a listing: past a
        // cap it is refused.
        if self.seen.contains(&image.image.id) {
            self.repeats += 1;
            if self.repeats > MAX_REPEATED_LINES {
                return Err(format!(
                    "file {:?} is listed again: more than {MAX_REPEATED_LINES} lines repeat others",
                    image.file
                ));
            }
            return Ok(None);
        }
        if self.seen.len() as u64 >= MAX_LISTING_IMAGES {
            return Err(format!("the listing names more than {MAX_LISTING_IMAGES} images"));
        }
        self.seen.insert(image.image.id);
        Ok(Some(image))
    }

    /// At the end: whether the whole listing matched its manifest hash.
    fn finish(&mut self) -> Option<Result<ArchivedImage, Error>> {
        let actual = self.input.take()?.into_inner().finish();
        (actual != self.expected).then(|| {
            Err(Error::Digest {
                entry: self.entry.clone(),
                expected: hex::encode(self.expected),
                actual: hex::encode(actual),
            })
        })
    }
}

impl Iterator for Images<'_> {
    type Item = Result<ArchivedImage, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let input = self.input.as_mut()?;
            self.number += 1;
            match read_line(input, &mut self.line, MAX_LINE_BYTES) {
                Err(e) => {
                    self.input = None;
                    let problem = entry_problem(e).to_string();
                    return Some(Err(Error::Entry { entry: self.entry.clone(), problem }));
                }
                Ok(LineRead::End) => return self.finish(),
                Ok(LineRead::TooLong) => return self.fail(format!("line longer than {MAX_LINE_BYTES} bytes")),
                Ok(LineRead::Text) if self.line.iter().all(u8::is_ascii_whitespace) => {}
                Ok(LineRead::Text) => match self.parse() {
                    Ok(Some(image)) => return Some(Ok(image)),
                    Ok(None) => {}
                    Err(why) => return self.fail(why),
                },
            }
        }
    }
}
