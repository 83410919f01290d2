//! One project as folders: one per tag, `untagged/`, and `labels.csv` (see [`super`]). Images
//! only trained iterations hold go where their tags put them; `labels.csv` marks them.
//!
//! Images are streamed from the listing and `labels.csv` is written a row at a time, so memory
//! holds the tags' folder names and one image, nothing per image.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use uuid::Uuid;

use super::{extension, io, write_new, ArchivedImage, ArchivedProject, Error, ProjectReport, Skipped, Source};
use crate::api::model::Image;
use crate::progress::{Event, Progress};

/// The folder of images without tags.
const UNTAGGED: &str = "untagged";
/// The longest tag folder name written, in bytes of UTF-8, before a clash suffix (`-` and up to
/// 32 hex digits and a counter): file systems limit a name to 255 bytes.
const MAX_NAME_BYTES: usize = 200;
/// Names Windows reserves for devices, with any extension (`CON`, `con.txt`), compared without
/// case: a folder by such a name cannot be created or opened there.
const RESERVED: [&str; 30] = [
    "CON", "PRN", "AUX", "NUL", "COM0", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8", "COM9", "LPT0",
    "LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9", "COM¹", "COM²", "COM³", "LPT¹", "LPT²",
    "LPT³",
];
/// What a spreadsheet reads as the start of a formula (OWASP, "CSV Injection").
const FORMULA_START: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// Writes the tag folders, `untagged/` and `labels.csv` into `dir`.
pub(super) fn write(
    source: &Source,
    archived: &ArchivedProject,
    dir: &Path,
    progress: &dyn Progress,
) -> Result<ProjectReport, Error> {
    let folders = folder_names(archived);
    let mut created: HashSet<String> = HashSet::new();
    let labels = dir.join("labels.csv");
    let mut csv = Labels::create(&labels, archived.records_iterations).map_err(|e| io(&labels, e))?;
    let (mut images, mut files, mut skipped) = (0usize, 0usize, Vec::new());
    let mut only_in_iterations = 0usize;
    for a in source.images(archived)? {
        let a = a?;
        let image = &a.image;
        let tag_ids = tag_ids(&a.image);
        let targets: Vec<&str> = if tag_ids.is_empty() {
            vec![UNTAGGED]
        } else {
            tag_ids.iter().filter_map(|t| folders.get(t).map(String::as_str)).collect()
        };
        if targets.is_empty() {
            skipped.push(Skipped { image_id: image.id, reason: "its tags are not in tags.json".into() });
            continue;
        }
        let Some(bytes) = source.read_image_or_skip(&a, &mut skipped) else { continue };
        let file_name = format!("{}.{}", image.id, extension(&a));
        let mut first: Option<PathBuf> = None;
        for folder in &targets {
            let folder_path = dir.join(folder);
            if created.insert((*folder).to_owned()) {
                std::fs::create_dir(&folder_path).map_err(|e| io(&folder_path, e))?;
            }
            let path = folder_path.join(&file_name);
            match &first {
                Some(original) if std::fs::hard_link(original, &path).is_ok() => {}
                _ => write_new(&path, &bytes)?,
            }
            first.get_or_insert(path);
            files += 1;
        }
        progress.event(Event::Transferred { project_id: archived.project.id.to_string(), bytes: bytes.len() as u64 });
        images += 1;
        let names: Vec<String> =
            tag_ids.iter().filter_map(|t| archived.tags.iter().find(|x| x.id == *t).map(|x| inert(&x.name))).collect();
        csv.row(&a, &format!("{}/{file_name}", targets[0]), &names).map_err(|e| io(&labels, e))?;
        only_in_iterations += usize::from(!a.in_workspace());
    }
    csv.finish().map_err(|e| io(&labels, e))?;
    Ok(ProjectReport {
        id: archived.project.id,
        name: archived.project.name.clone(),
        path: dir.to_path_buf(),
        images,
        categories: archived.tags.len(),
        annotations: files,
        only_in_iterations,
        skipped,
        replaced: false,
    })
}

/// `labels.csv`, written a row at a time as each image is written.
struct Labels {
    out: BufWriter<File>,
    /// Whether the `workspace,iterations` columns are written.
    membership: bool,
}

impl Labels {
    /// Creates the file and writes its header. Archives written before iteration-only images
    /// were archived do not say which iterations hold an image (`membership` false): their
    /// labels.csv keeps its old columns rather than claim "none".
    fn create(path: &Path, membership: bool) -> std::io::Result<Labels> {
        let mut out = BufWriter::with_capacity(256 << 10, crate::sidefile::create_new(path)?);
        out.write_all(b"image_id,file,tags,width,height,sha256")?;
        out.write_all(if membership { b",workspace,iterations\n" } else { b"\n" })?;
        Ok(Labels { out, membership })
    }

    /// One image's row: its first file and its tag names (already made [`inert`]).
    fn row(&mut self, a: &ArchivedImage, file: &str, names: &[String]) -> std::io::Result<()> {
        let image = &a.image;
        let cell = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_default();
        write!(
            self.out,
            "{},{},{},{},{},{}",
            image.id,
            csv_field(file),
            csv_field(&names.join(";")),
            cell(image.width),
            cell(image.height),
            a.sha256
        )?;
        if self.membership {
            let holders: Vec<String> = a.iterations.iter().flatten().map(Uuid::to_string).collect();
            write!(self.out, ",{},{}", a.in_workspace(), holders.join(";"))?;
        }
        self.out.write_all(b"\n")
    }

    fn finish(mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// The image's tags and its regions' tags, each once, in that order.
fn tag_ids(image: &Image) -> Vec<Uuid> {
    let mut ids: Vec<Uuid> = Vec::new();
    for id in image.tags.iter().flatten().map(|t| t.tag_id).chain(image.regions.iter().flatten().map(|r| r.tag_id)) {
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    ids
}

/// A folder name for every tag (in `tags.json` order, so the same archive always gives the same
/// names): its name made safe, and unique without regard to case and never `untagged`. A name
/// already taken gets the tag id's first 8 hex digits, then all 32, then a counter, until free,
/// so two tags never share a folder.
fn folder_names(archived: &ArchivedProject) -> HashMap<Uuid, String> {
    let mut taken: HashSet<String> = HashSet::from([UNTAGGED.to_owned()]);
    let mut out = HashMap::new();
    for tag in &archived.tags {
        if out.contains_key(&tag.id) {
            continue;
        }
        let base = safe_name(&tag.name);
        let id = tag.id.simple().to_string();
        let mut name = base.clone();
        let mut attempt = 0u64;
        while taken.contains(&name.to_lowercase()) {
            attempt += 1;
            name = match attempt {
                1 => format!("{base}-{}", &id[..8]),
                2 => format!("{base}-{id}"),
                n => format!("{base}-{id}-{n}"),
            };
        }
        taken.insert(name.to_lowercase());
        out.insert(tag.id, name);
    }
    out
}

/// A tag name as a single, portable path component of at most [`MAX_NAME_BYTES`] bytes: path
/// separators, characters Windows forbids and control characters become `_`; leading spaces and
/// trailing dots and spaces go; a name that is empty, hidden (`.x`) or a reserved Windows device
/// name (`CON`, `com1.txt`) gets a leading `_`.
pub fn safe_name(name: &str) -> String {
    let cleaned: String =
        name.chars()
            .map(|c| {
                if c.is_control() || matches!(c, '/' | '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|') {
                    '_'
                } else {
                    c
                }
            })
            .collect();
    let capped = cap_bytes(&cleaned, MAX_NAME_BYTES);
    let trimmed = capped.trim_end_matches(['.', ' ']).trim_start();
    if trimmed.is_empty() || trimmed.starts_with('.') {
        format!("_{}", trimmed.trim_start_matches('.'))
    } else if is_reserved(trimmed) {
        format!("_{trimmed}")
    } else {
        trimmed.to_owned()
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn cap_bytes(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Whether Windows reserves `name` for a device: its part before the first dot, trailing spaces
/// ignored, is one of [`RESERVED`], in any case.
fn is_reserved(name: &str) -> bool {
    let stem = name.split('.').next().unwrap_or_default().trim_end();
    RESERVED.iter().any(|r| r.to_lowercase() == stem.to_lowercase())
}

/// A text that a spreadsheet would run as a formula (it starts with one of [`FORMULA_START`])
/// gets a leading `'`, which spreadsheets read as "text" (OWASP, "CSV Injection").
fn inert(s: &str) -> String {
    if s.starts_with(FORMULA_START) {
        format!("'{s}")
    } else {
        s.to_owned()
    }
}

/// A CSV field: made [`inert`], then quoted when it holds a comma, quote or line break
/// (RFC 4180).
fn csv_field(s: &str) -> String {
    let s = inert(s);
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_names_become_single_components() {
        assert_eq!(safe_name("cat"), "cat");
        assert_eq!(safe_name("../etc"), "__etc");
        assert_eq!(safe_name(".."), "_");
        assert_eq!(safe_name("a/b\\c:d"), "a_b_c_d");
        assert_eq!(safe_name("日本語 tag"), "日本語 tag");
        assert_eq!(safe_name(".hidden"), "_hidden");
        assert_eq!(safe_name(""), "_");
    }

    #[test]
    fn names_are_capped_by_bytes_and_never_reserved() {
        let cjk = "猫".repeat(100);
        let name = safe_name(&cjk);
        assert!(name.len() <= MAX_NAME_BYTES && name.chars().all(|c| c == '猫'), "{} bytes", name.len());
        for reserved in ["CON", "con", "Aux.txt", "nul .tar.gz", "COM1", "lpt9.png", "COM¹"] {
            assert!(safe_name(reserved).starts_with('_'), "{reserved}");
        }
        for fine in ["CONE", "console", "COM10", "NULL"] {
            assert_eq!(safe_name(fine), fine);
        }
    }

    #[test]
    fn formulas_are_made_inert() {
        for f in ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"] {
            assert!(csv_field(f).trim_start_matches('"').starts_with('\''), "{f:?}");
        }
        assert_eq!(csv_field("=HYPERLINK(\"x\",\"y\")"), "\"'=HYPERLINK(\"\"x\"\",\"\"y\"\")\"");
        assert_eq!(csv_field("cat"), "cat");
    }

    #[test]
    fn csv_fields_are_quoted_when_needed() {
        assert_eq!(csv_field("a;b"), "a;b");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }
}
