//! The project folders under `--out`: their names, the marker that says convert wrote one, and
//! putting a finished project in place, replacing (with `--force`) only an earlier output of
//! convert for the same project.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{io, write_new, Error, Target};

/// The file in each project folder that marks it as convert's output, naming the project: what
/// `--force` checks before it replaces a folder.
pub const MARKER: &str = ".cvarchive-convert.json";

/// The most bytes of a project's name in its folder's name (the id follows it).
const MAX_PROJECT_NAME_BYTES: usize = 100;

/// What the marker holds.
#[derive(Debug, Serialize, Deserialize)]
struct Marker {
    /// `cvarchive <version>`.
    tool: String,
    /// The project converted.
    project: Uuid,
    /// The format written.
    to: Target,
}

/// The folder name of a project: `<name>-<id>` for tag folders, the name made safe as tag
/// folder names are ([`super::folders::safe_name`]) and cut to [`MAX_PROJECT_NAME_BYTES`];
/// `<id>` for COCO, which tools find by its `annotations.json`.
pub fn folder_name(to: Target, id: Uuid, name: &str) -> String {
    match to {
        Target::Coco => id.to_string(),
        Target::Folders => {
            let safe = super::folders::safe_name(name);
            let mut end = safe.len().min(MAX_PROJECT_NAME_BYTES);
            while !safe.is_char_boundary(end) {
                end -= 1;
            }
            format!("{}-{id}", safe[..end].trim_end_matches(['.', ' ']))
        }
    }
}

/// Whether `path` exists (as anything, a link included) and, if so, whether it may be
/// replaced: only with `force`, and only a real folder whose marker names `id`.
pub fn check_target(path: &Path, id: Uuid, force: bool) -> Result<bool, Error> {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(false);
    };
    if !force {
        return Err(Error::Exists(path.to_path_buf()));
    }
    let ours = meta.is_dir() && marker_names(&path.join(MARKER), id);
    if !ours {
        return Err(Error::NotOurs(path.to_path_buf()));
    }
    Ok(true)
}

fn marker_names(path: &Path, id: Uuid) -> bool {
    let is_file = std::fs::symlink_metadata(path).is_ok_and(|m| m.is_file() && m.len() < 4096);
    is_file
        && std::fs::read(path)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Marker>(&bytes).ok())
            .is_some_and(|m| m.project == id)
}

/// Writes the marker into a project's staging folder.
pub fn mark(staging: &Path, id: Uuid, to: Target) -> Result<(), Error> {
    let marker = Marker { tool: format!("cvarchive {}", env!("CARGO_PKG_VERSION")), project: id, to };
    write_new(&staging.join(MARKER), &serde_json::to_vec_pretty(&marker).expect("a marker serialises"))
}

/// Puts the finished `staging` folder at `done`. An earlier output there (already checked by
/// [`check_target`]) is first moved aside to a hidden name, then removed once the new one is in
/// place (or moved back if it cannot be), so `done` never holds a mix of the two. An aside
/// folder an interrupted run left is removed first: only convert's own output is ever moved
/// there.
pub fn put_in_place(out: &Path, staging: &Path, done: &Path, id: Uuid, replace: bool) -> Result<(), Error> {
    let aside: PathBuf = out.join(format!(".{id}.replaced"));
    if std::fs::symlink_metadata(&aside).is_ok() {
        std::fs::remove_dir_all(&aside).map_err(|e| io(&aside, e))?;
    }
    if !replace {
        return std::fs::rename(staging, done).map_err(|e| io(done, e));
    }
    std::fs::rename(done, &aside).map_err(|e| io(done, e))?;
    if let Err(e) = std::fs::rename(staging, done) {
        let _ = std::fs::rename(&aside, done);
        return Err(io(done, e));
    }
    std::fs::remove_dir_all(&aside).map_err(|e| io(&aside, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_names_carry_the_safe_name_and_the_id() {
        let id = Uuid::from_u128(1);
        assert_eq!(folder_name(Target::Folders, id, "Cats / dogs"), format!("Cats _ dogs-{id}"));
        assert_eq!(folder_name(Target::Folders, id, "../x"), format!("__x-{id}"));
        assert_eq!(folder_name(Target::Coco, id, "Cats"), id.to_string());
        let long = folder_name(Target::Folders, id, &"é".repeat(300));
        assert!(long.len() <= MAX_PROJECT_NAME_BYTES + 37 && long.ends_with(&id.to_string()), "{long}");
    }
}
