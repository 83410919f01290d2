//! The backup a deletion relies on: verified in full (every payload file re-hashed), hashed as a
//! whole for the receipt, and indexed by id so the plan can be checked against it item by item.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::plan::Plan;
use super::Error;
use crate::archive::data::{self, bound_file_problem, ListedFile, ListingKind, MAX_JSON_BYTES};
use crate::archive::{layout, BagReader};
use crate::verify::{verify, VerifyOptions};

/// A verified backup, indexed.
#[derive(Debug, Clone)]
pub struct Backup {
    /// The archive file.
    pub path: PathBuf,
    /// Its SHA-256, hex.
    pub sha256: String,
    /// The endpoint host it was exported from (from `account.json`), if recorded.
    pub endpoint_host: Option<String>,
    /// What it holds, per project.
    pub projects: HashMap<Uuid, BackupProject>,
}

/// What a backup holds of one project.
#[derive(Debug, Clone, Default)]
pub struct BackupProject {
    /// `project.json` is there.
    pub project_json: bool,
    /// Images listed in `images.jsonl` whose file (and hash) is in the archive: the workspace's
    /// and those only trained iterations held (`"workspace": false`), alike.
    pub images: HashSet<Uuid>,
    /// Tags in `tags.json`.
    pub tags: HashSet<Uuid>,
    /// Iterations in `iterations.json`.
    pub iterations: HashSet<Uuid>,
    /// Stored predictions in `predictions.jsonl` whose image is in the archive.
    pub predictions: HashSet<Uuid>,
}

/// Something a deletion would remove that the backup does not hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Lacking {
    /// `project`, `image`, `tag`, `iteration` or `prediction`.
    pub kind: &'static str,
    /// The project.
    pub project: Uuid,
    /// The item (the project's own id for `project`).
    pub id: Uuid,
    /// For an image no longer in the workspace: the first trained iteration holding it (the
    /// deletion destroys it with that iteration, or with `allIterations`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub only_in_iteration: Option<Uuid>,
}

impl std::fmt::Display for Lacking {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.kind == "project" {
            write!(f, "project {} (its project.json)", self.project)
        } else {
            write!(f, "{} {} of project {}", self.kind, self.id, self.project)?;
            match self.only_in_iteration {
                Some(it) => write!(f, " (not in the workspace; held only by trained iterations, e.g. {it})"),
                None => Ok(()),
            }
        }
    }
}

#[derive(Deserialize)]
struct WithId {
    id: Uuid,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AccountHead {
    source: Option<Source>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Source {
    endpoint_host: Option<String>,
}

impl Backup {
    /// Verifies the archive in full, hashes it and indexes it. Blocking: call it off the runtime.
    pub fn open(path: &Path) -> Result<Backup, Error> {
        let unreadable = |detail: String| Error::BackupUnreadable { path: path.to_path_buf(), detail };
        let report = verify(path, &VerifyOptions::default()).map_err(|e| unreadable(e.to_string()))?;
        if !report.is_clean() {
            return Err(Error::BackupDamaged { path: path.to_path_buf(), findings: report.findings });
        }
        let sha256 = hash_file(path).map_err(|e| unreadable(e.to_string()))?;
        let reader = BagReader::open(path).map_err(|e| unreadable(e.to_string()))?;
        let account: AccountHead = serde_json::from_slice(&read(&reader, layout::account_json())?)
            .map_err(|e| unreadable(format!("account.json: {e}")))?;
        let mut backup = Backup {
            path: path.to_path_buf(),
            sha256,
            endpoint_host: account.source.and_then(|s| s.endpoint_host),
            projects: HashMap::new(),
        };
        let bag = reader.bag_name().unwrap_or_default().to_owned();
        let prefix = format!("{bag}/data/projects/");
        let ids: HashSet<Uuid> = reader
            .entries()
            .iter()
            .filter_map(|e| e.name.strip_prefix(&prefix)?.split_once('/')?.0.parse().ok())
            .collect();
        for id in ids {
            backup.projects.insert(id, index_project(&reader, id)?);
        }
        Ok(backup)
    }

    /// Everything the plan would delete that this backup does not hold, in plan order.
    pub fn lacks(&self, plan: &Plan) -> Vec<Lacking> {
        let empty = BackupProject::default();
        let mut out = Vec::new();
        for p in plan.projects.iter().filter(|p| !p.gone) {
            let held = self.projects.get(&p.id).unwrap_or(&empty);
            if p.delete_project && !held.project_json {
                out.push(Lacking { kind: "project", project: p.id, id: p.id, only_in_iteration: None });
            }
            // Images only trained iterations hold go with those iterations (or with allIterations).
            let holder: HashMap<Uuid, Uuid> = p
                .iteration_images
                .iter()
                .rev()
                .flat_map(|it| it.only_in_iterations.iter().map(move |id| (*id, it.id)))
                .collect();
            let mut images = p.images.clone();
            if p.iteration_copies_go {
                let planned: HashSet<Uuid> = images.iter().copied().collect();
                images.extend(p.only_in_iterations.iter().filter(|id| !planned.contains(id)));
            }
            out.extend(images.iter().filter(|id| !held.images.contains(id)).map(|&id| Lacking {
                kind: "image",
                project: p.id,
                id,
                only_in_iteration: holder.get(&id).copied(),
            }));
            let mut check = |kind: &'static str, ids: &[Uuid], have: &HashSet<Uuid>| {
                out.extend(ids.iter().filter(|id| !have.contains(id)).map(|&id| Lacking {
                    kind,
                    project: p.id,
                    id,
                    only_in_iteration: None,
                }));
            };
            check("tag", &p.tags, &held.tags);
            let iterations: Vec<Uuid> = p.iterations.iter().map(|i| i.id).collect();
            check("iteration", &iterations, &held.iterations);
            check("prediction", &p.predictions, &held.predictions);
        }
        out
    }
}

fn index_project(reader: &BagReader, id: Uuid) -> Result<BackupProject, Error> {
    let mut held = BackupProject {
        project_json: reader.bag_entry(&format!("data/{}", layout::project_json(id))).is_some(),
        ..BackupProject::default()
    };
    for (path, set) in [(layout::tags_json(id), &mut held.tags), (layout::iterations_json(id), &mut held.iterations)] {
        if reader.bag_entry(&format!("data/{path}")).is_none() {
            continue;
        }
        let items: Vec<WithId> = serde_json::from_slice(&read(reader, &path)?).map_err(|e| {
            Error::BackupUnreadable { path: reader.path().to_path_buf(), detail: format!("{path}: {e}") }
        })?;
        set.extend(items.into_iter().map(|i| i.id));
    }
    held.images = listed(reader, id, ListingKind::Images)?;
    held.predictions = listed(reader, id, ListingKind::Predictions)?;
    Ok(held)
}

/// The ids of a listing whose lines name their own file (the path follows from the id, as
/// verify checks), present in the archive, with a hash; a file listed twice counts once.
fn listed(reader: &BagReader, project: Uuid, kind: ListingKind) -> Result<HashSet<Uuid>, Error> {
    let path = format!("projects/{project}/{}", kind.listing_name());
    let bad = |detail: String| Error::BackupUnreadable { path: reader.path().to_path_buf(), detail };
    let mut ids = HashSet::new();
    let mut files = HashSet::new();
    let Some(entry) = reader.bag_entry(&format!("data/{path}")) else { return Ok(ids) };
    let mut failure = None;
    let folder = project.to_string();
    data::for_each_line(reader, entry, |number, line| {
        if failure.is_some() {
            return;
        }
        let parsed = line.and_then(|l| serde_json::from_slice::<ListedFile>(l).map_err(|e| e.to_string()));
        let line = match parsed {
            Ok(line) => line,
            Err(why) => return failure = Some(bad(format!("{path} line {number}: {why}"))),
        };
        let hashed = line.sha256.is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()));
        let (Some(id), Some(file)) = (line.id, line.file) else { return };
        let own = bound_file_problem(kind, &folder, id, &file).is_none();
        let present = own && reader.bag_entry(&format!("data/{file}")).is_some();
        if hashed && present && files.insert(file) {
            ids.insert(id);
        }
    })
    .map_err(|e| bad(format!("{path}: {e}")))?;
    match failure {
        Some(e) => Err(e),
        None => Ok(ids),
    }
}

fn read(reader: &BagReader, path: &str) -> Result<Vec<u8>, Error> {
    let bad = |detail: String| Error::BackupUnreadable { path: reader.path().to_path_buf(), detail };
    let entry =
        reader.bag_entry(&format!("data/{path}")).ok_or_else(|| bad(format!("{path} is not in the archive")))?;
    reader.read_entry(entry, MAX_JSON_BYTES).map_err(|e| bad(format!("{path}: {e}")))
}

/// The SHA-256 of a whole file, hex.
pub fn hash_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut sha = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => sha.update(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(hex::encode(sha.finalize()))
}
