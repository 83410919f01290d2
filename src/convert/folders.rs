//! One project as folders: one per tag, `untagged/`, and `labels.csv` (see [`super`]). Images
//! only trained iterations hold go where their tags put them; `labels.csv` marks them.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use uuid::Uuid;

use super::{extension, io, write_new, ArchivedProject, Error, ProjectReport, Skipped, Source};
use crate::progress::{Event, Progress};

/// The folder of images without tags.
const UNTAGGED: &str = "untagged";
/// The longest folder name written, in characters.
const MAX_NAME: usize = 100;

/// Writes the tag folders, `untagged/` and `labels.csv` into `dir`.
pub(super) fn write(
    source: &Source,
    archived: &ArchivedProject,
    dir: &Path,
    progress: &dyn Progress,
) -> Result<ProjectReport, Error> {
    let folders = folder_names(archived);
    let mut created: HashSet<String> = HashSet::new();
    // Archives written before iteration-only images were archived do not say which iterations
    // hold an image; their labels.csv keeps its old columns rather than claim "none".
    let membership = archived.images.iter().any(|a| a.iterations.is_some());
    let mut csv = String::from("image_id,file,tags,width,height,sha256");
    csv.push_str(if membership { ",workspace,iterations\n" } else { "\n" });
    let (mut images, mut files, mut skipped) = (0usize, 0usize, Vec::new());
    let mut only_in_iterations = 0usize;
    for a in &archived.images {
        let image = &a.image;
        let mut tag_ids: Vec<Uuid> = image.tags.iter().flatten().map(|t| t.tag_id).collect();
        for r in image.regions.iter().flatten() {
            if !tag_ids.contains(&r.tag_id) {
                tag_ids.push(r.tag_id);
            }
        }
        let targets: Vec<&str> = if tag_ids.is_empty() {
            vec![UNTAGGED]
        } else {
            tag_ids.iter().filter_map(|t| folders.get(t).map(String::as_str)).collect()
        };
        if targets.is_empty() {
            skipped.push(Skipped { image_id: image.id, reason: "its tags are not in tags.json".into() });
            continue;
        }
        let Some(bytes) = source.read_image_or_skip(a, &mut skipped) else { continue };
        let file_name = format!("{}.{}", image.id, extension(a));
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
        progress.event(Event::BlobArchived { bytes: bytes.len() as u64 });
        images += 1;
        let names: Vec<&str> =
            tag_ids.iter().filter_map(|t| archived.tags.iter().find(|x| x.id == *t).map(|x| x.name.as_str())).collect();
        let cell = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_default();
        csv.push_str(&format!(
            "{},{},{},{},{},{}",
            image.id,
            csv_field(&format!("{}/{file_name}", targets[0])),
            csv_field(&names.join(";")),
            cell(image.width),
            cell(image.height),
            a.sha256
        ));
        if membership {
            let holders: Vec<String> = a.iterations.iter().flatten().map(Uuid::to_string).collect();
            csv.push_str(&format!(",{},{}", a.in_workspace(), holders.join(";")));
        }
        csv.push('\n');
        only_in_iterations += usize::from(!a.in_workspace());
    }
    write_new(&dir.join("labels.csv"), csv.as_bytes())?;
    Ok(ProjectReport {
        id: archived.project.id,
        name: archived.project.name.clone(),
        path: dir.to_path_buf(),
        images,
        categories: archived.tags.len(),
        annotations: files,
        only_in_iterations,
        skipped,
    })
}

/// A folder name for every tag: its name made safe, unique case-insensitively and never
/// `untagged`.
fn folder_names(archived: &ArchivedProject) -> HashMap<Uuid, String> {
    let mut taken: HashSet<String> = HashSet::from([UNTAGGED.to_owned()]);
    let mut out = HashMap::new();
    for tag in &archived.tags {
        let mut name = safe_name(&tag.name);
        if !taken.insert(name.to_lowercase()) {
            name = format!("{name}-{}", &tag.id.simple().to_string()[..8]);
            taken.insert(name.to_lowercase());
        }
        out.insert(tag.id, name);
    }
    out
}

/// A tag name as a single, portable path component.
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
            .take(MAX_NAME)
            .collect();
    let trimmed = cleaned.trim_end_matches(['.', ' ']).trim_start();
    if trimmed.is_empty() || trimmed.starts_with('.') {
        format!("_{}", trimmed.trim_start_matches('.'))
    } else {
        trimmed.to_owned()
    }
}

/// A CSV field, quoted when it holds a comma, quote or line break (RFC 4180).
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
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
    fn csv_fields_are_quoted_when_needed() {
        assert_eq!(csv_field("a;b"), "a;b");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }
}
