//! The backup a deletion relies on: opened once, and that one open file verified in full (every
//! payload file re-hashed), hashed as a whole for the receipt, and indexed by id and content so
//! the plan can be checked against it item by item. Replacing the path meanwhile changes nothing
//! read, and is noticed before anything is deleted. A backup in a store is read the same way, by
//! ranged reads pinned to the object's ETag, and a replaced object is noticed by its ETag.
//!
//! Memory per image: none account-wide. Each project's images and stored predictions are
//! indexed (id and [`ImageContent`], sorted by id) into a temporary file ([`super::held`]) and
//! read back one project at a time to check the plan: 38 bytes an image of that one project.
//! Nothing else of a listing line is kept: a line can only name its own file (the path follows
//! from the id), so one record per id is one per file, and no set of file names is needed.

use std::collections::{BTreeMap, HashMap, HashSet};

use std::fs::{File, Metadata};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::content::{Difference, Differences, ImageContent, RecordContent};
use super::held::{Block, HeldFile, HeldImages};
use super::plan::ProjectPlan;
use super::Error;
use crate::api::model::{ImageRegion, ImageTag, Iteration, Tag};
use crate::archive::bagit::{parse_tag_file, tag_value, BAG_INFO_NAME};
use crate::archive::data::{self, bound_file_problem, ListingKind, MAX_JSON_BYTES};
use crate::archive::digest;
use crate::archive::input::Input;
use crate::archive::{layout, BagReader};
use crate::store::{Location, RemoteFile, RemoteUrl};
use crate::verify::{verify_reader, VerifyOptions};

/// A verified backup, indexed.
#[derive(Debug, Clone)]
pub struct Backup {
    /// The archive file.
    pub path: PathBuf,
    /// Its SHA-256, hex.
    pub sha256: String,
    /// The endpoint host it was exported from (from `account.json`), if recorded.
    pub endpoint_host: Option<String>,
    /// The endpoint host `bag-info.txt` names (`Source-Endpoint-Host`), if any.
    pub bag_endpoint_host: Option<String>,
    /// What it holds, per project.
    pub projects: HashMap<Uuid, BackupProject>,
    /// Each project's images and stored predictions, in a temporary file.
    held: Arc<HeldFile>,
    /// The file as it was opened, to notice a replacement or a write before deleting.
    identity: Identity,
}

/// An archive opened once and verified in full, not yet hashed or indexed: the first half of
/// [`Backup::open`], so that a caller can report the verification before the rest.
#[derive(Debug)]
pub struct Verified {
    reader: BagReader,
    identity: Identity,
}

impl Verified {
    /// The archive's size in bytes.
    pub fn bytes(&self) -> u64 {
        self.reader.archive_len()
    }
}

/// What the backup's location named when it was opened.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Identity {
    /// Which file a path named, and its size and modification time then.
    File {
        /// Device and inode on Unix; `None` elsewhere (the size and time still tell a write).
        file: Option<(u64, u64)>,
        len: u64,
        modified: Option<SystemTime>,
    },
    /// Which version of an object an address named: its size and ETag (a store gives every
    /// new version a new ETag).
    Object { url: RemoteUrl, len: u64, etag: Option<String> },
}

impl Identity {
    fn of(m: &Metadata) -> Identity {
        let file = crate::platform::file_identity(m);
        Identity::File { file, len: m.len(), modified: m.modified().ok() }
    }

    fn of_object(remote: &RemoteFile) -> Identity {
        Identity::Object { url: remote.url().clone(), len: remote.len(), etag: remote.etag().map(str::to_owned) }
    }
}

/// What a backup holds of one project.
#[derive(Debug, Clone, Default)]
pub struct BackupProject {
    /// `project.json` is there.
    pub project_json: bool,
    /// Images listed in `images.jsonl` whose file (and hash) is in the archive: the workspace's
    /// and those only trained iterations held (`"workspace": false`), alike; with their tags,
    /// regions and metadata: where they are in the backup's temporary index.
    pub images: Block,
    /// Tags in `tags.json`.
    pub tags: HashMap<Uuid, RecordContent>,
    /// Iterations in `iterations.json`.
    pub iterations: HashMap<Uuid, RecordContent>,
    /// Stored predictions in `predictions.jsonl` whose image is in the archive: where they are
    /// in the backup's temporary index.
    pub predictions: Block,
}

/// What the gate found, project by project: what the backup lacks, and what it holds with other
/// content than the service.
#[derive(Debug, Clone, Default)]
pub struct Findings {
    /// Everything the plan would delete that the backup does not hold, in plan order.
    pub lacking: Vec<Lacking>,
    /// Everything about to be deleted that the backup holds with other content.
    pub differences: Differences,
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

/// One line of a project's `images.jsonl` or `predictions.jsonl`: what the backup check reads.
#[derive(Deserialize)]
struct ListingLine {
    id: Uuid,
    file: Option<String>,
    sha256: Option<String>,
    tags: Option<Vec<ImageTag>>,
    regions: Option<Vec<ImageRegion>>,
    metadata: Option<BTreeMap<String, String>>,
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
    /// Opens the archive once, verifies it in full, hashes it and indexes it, all from the one
    /// open file (or object version). Blocking: call it off the runtime.
    pub fn open(backup: impl Into<Location>) -> Result<Backup, Error> {
        Backup::index(Backup::verify(backup)?)
    }

    /// Opens the archive (a local file, or an object in a store read by ranged reads) and
    /// verifies it in full. Blocking.
    pub fn verify(backup: impl Into<Location>) -> Result<Verified, Error> {
        let backup = backup.into();
        let path = backup.display_path();
        let unreadable = |detail: String| Error::BackupUnreadable { path: path.clone(), detail };
        let (input, identity) = match &backup {
            Location::Local(local) => {
                let file = File::open(local).map_err(|e| unreadable(e.to_string()))?;
                let identity = Identity::of(&file.metadata().map_err(|e| unreadable(e.to_string()))?);
                (Input::Local(file), identity)
            }
            Location::Remote(url) => {
                let remote = RemoteFile::open(url).map_err(|e| unreadable(e.to_string()))?;
                let identity = Identity::of_object(&remote);
                (Input::Remote(remote), identity)
            }
        };
        let reader = BagReader::from_input(input, &path).map_err(|e| unreadable(crate::text::error_chain(&e)))?;
        let report = verify_reader(&reader, &VerifyOptions::default());
        // The browse page's code is no part of what the backup holds (an older version's differs).
        if !report.data_intact() {
            return Err(Error::BackupDamaged { path: path.to_path_buf(), findings: report.findings });
        }
        Ok(Verified { reader, identity })
    }

    /// Hashes and indexes the file [`Backup::verify`] opened (never the path again). Blocking.
    pub fn index(verified: Verified) -> Result<Backup, Error> {
        let Verified { reader, identity } = verified;
        let path = reader.path().to_path_buf();
        let unreadable = |detail: String| Error::BackupUnreadable { path: path.clone(), detail };
        let (sha256, _) = digest::hash_file(reader.input()).map_err(|e| unreadable(e.to_string()))?;
        let account: AccountHead = serde_json::from_slice(&read(&reader, layout::account_json())?)
            .map_err(|e| unreadable(format!("account.json: {e}")))?;
        let bag_info = read_tag(&reader, BAG_INFO_NAME)?;
        let (pairs, _) = parse_tag_file(&String::from_utf8_lossy(&bag_info));
        let mut backup = Backup {
            path: path.clone(),
            sha256,
            endpoint_host: account.source.and_then(|s| s.endpoint_host),
            bag_endpoint_host: tag_value(&pairs, "Source-Endpoint-Host").map(str::to_owned),
            projects: HashMap::new(),
            held: Arc::new(HeldFile::new(None)),
            identity,
        };
        // Beside the backup: its folder has room for an index of it (a relative path's parent is
        // ""); the system's temporary folder for a backup in a store.
        let dir =
            reader
                .local_path()
                .and_then(Path::parent)
                .map(|d| if d.as_os_str().is_empty() { Path::new(".") } else { d });
        let mut held = HeldFile::new(dir);
        let bag = reader.bag_name().unwrap_or_default().to_owned();
        let prefix = format!("{bag}/data/projects/");
        let mut ids: HashSet<Uuid> = HashSet::new();
        for e in reader.entries() {
            let e = e.map_err(|e| unreadable(crate::text::error_chain(&e)))?;
            if let Some(id) = e.name.strip_prefix(&prefix).and_then(|r| r.split_once('/')?.0.parse().ok()) {
                ids.insert(id);
            }
        }
        for id in ids {
            backup.projects.insert(id, index_project(&reader, id, &mut held)?);
        }
        backup.held = Arc::new(held);
        Ok(backup)
    }

    /// Refuses when the path no longer names the file verified (replaced, moved away) or that
    /// file was written since, or the address no longer names the object version verified
    /// (replaced, deleted): the receipt would name a backup that is not what was checked.
    pub fn check_unchanged(&self) -> Result<(), Error> {
        let same = match &self.identity {
            Identity::File { .. } => std::fs::metadata(&self.path).is_ok_and(|m| Identity::of(&m) == self.identity),
            Identity::Object { url, len, etag } => match RemoteFile::open(url) {
                Ok(now) => now.len() == *len && now.etag() == etag.as_deref(),
                Err(crate::store::Error::NotFound { .. }) => false,
                Err(e) => return Err(Error::BackupUnreadable { path: self.path.clone(), detail: e.to_string() }),
            },
        };
        if same {
            Ok(())
        } else {
            Err(Error::BackupChanged { path: self.path.clone() })
        }
    }

    /// How the backup names its source when that is not `host`: both `account.json` and
    /// `bag-info.txt` must name `host` (ASCII case aside). `None` when they do.
    pub fn other_endpoint(&self, host: &str) -> Option<String> {
        let same = |h: &Option<String>| h.as_deref().is_some_and(|h| h.eq_ignore_ascii_case(host));
        if same(&self.endpoint_host) && same(&self.bag_endpoint_host) {
            return None;
        }
        Some(match (&self.endpoint_host, &self.bag_endpoint_host) {
            (None, None) => "no endpoint recorded".into(),
            (Some(a), Some(b)) if a.eq_ignore_ascii_case(b) => a.clone(),
            (a, b) => format!(
                "{} (account.json), {} (bag-info.txt)",
                a.as_deref().unwrap_or("none"),
                b.as_deref().unwrap_or("none")
            ),
        })
    }

    /// Checks one surveyed project of a plan against the backup (its index read back once),
    /// adding to `out` what the backup lacks of what would be deleted, and what it holds with
    /// other content than the service holds now: images (tags, regions, metadata), tags and
    /// iterations, in plan order. `all_iterations`: the plan's [`super::Plan::all_iterations`].
    pub fn check(&self, all_iterations: bool, p: &ProjectPlan, out: &mut Findings) -> Result<(), Error> {
        if p.gone {
            return Ok(());
        }
        let empty = BackupProject::default();
        let held = self.projects.get(&p.id).unwrap_or(&empty);
        if p.delete_project && !held.project_json {
            out.lacking.push(Lacking { kind: "project", project: p.id, id: p.id, only_in_iteration: None });
        }
        let images = self.load(held.images)?;
        let mut lacking = Vec::new();
        for (&id, now) in planned_images(all_iterations, p) {
            let Some(then) = images.get(&id) else {
                lacking.push(id);
                continue;
            };
            // Without the service's content (never: the two are listed together) it fails closed.
            let what = now.map_or_else(|| vec!["tags", "regions", "metadata"], |now| then.differs(now));
            if !what.is_empty() {
                out.differences.push(Difference { kind: "image", project: p.id, id, what });
            }
        }
        drop(images);
        // Images only trained iterations hold go with those iterations (or with allIterations);
        // which iteration holds them is looked up only when some are lacking.
        if !lacking.is_empty() {
            let holder = first_holders(p);
            out.lacking.extend(lacking.into_iter().map(|id| Lacking {
                kind: "image",
                project: p.id,
                id,
                only_in_iteration: holder.get(&id).copied(),
            }));
        }
        let mut check = |kind: &'static str, ids: &[Uuid], have: &dyn Fn(&Uuid) -> bool| {
            out.lacking.extend(ids.iter().filter(|id| !have(id)).map(|&id| Lacking {
                kind,
                project: p.id,
                id,
                only_in_iteration: None,
            }));
        };
        check("tag", &p.tags, &|id| held.tags.contains_key(id));
        let iterations: Vec<Uuid> = p.iterations.iter().map(|i| i.id).collect();
        check("iteration", &iterations, &|id| held.iterations.contains_key(id));
        let predictions = self.load(held.predictions)?;
        check("prediction", &p.predictions, &|id| predictions.contains(id));

        let differences = &mut out.differences;
        let tags = p.tags.iter().copied();
        record_differences(differences, p.id, "tag", "name, description or type", tags, &held.tags, &p.tag_content);
        let iterations = p.iterations.iter().map(|i| i.id);
        let what = "name, status or training time";
        record_differences(differences, p.id, "iteration", what, iterations, &held.iterations, &p.iteration_content);
        Ok(())
    }

    /// One project's images or stored predictions, read back from the temporary index.
    fn load(&self, block: Block) -> Result<HeldImages, Error> {
        self.held.load(block).map_err(|e| Error::BackupUnreadable {
            path: self.path.clone(),
            detail: format!("cannot read its index back from a temporary file: {e}"),
        })
    }
}

/// The images a project's plan deletes or destroys, each once, with what the service holds of
/// each: the planned images (with `allIterations` these include the ones only trained
/// iterations hold), then, when the iterations' copies go with them, those only trained
/// iterations hold.
fn planned_images<'a>(
    all_iterations: bool,
    p: &'a ProjectPlan,
) -> impl Iterator<Item = (&'a Uuid, Option<&'a ImageContent>)> {
    // Every id, whatever the contents beside it: a content missing cannot hide an id.
    let with =
        |ids: &'a [Uuid], contents: &'a [ImageContent]| ids.iter().enumerate().map(|(i, id)| (id, contents.get(i)));
    let only = (p.iteration_copies_go && !all_iterations).then(|| with(&p.only_in_iterations, &p.only_content));
    with(&p.images, &p.image_content).chain(only.into_iter().flatten())
}

/// The first trained iteration holding each image that only trained iterations hold.
fn first_holders(p: &ProjectPlan) -> HashMap<Uuid, Uuid> {
    p.iteration_images.iter().rev().flat_map(|it| it.only_in_iterations.iter().map(move |id| (*id, it.id))).collect()
}

/// The tags or iterations among `ids` whose record differs between the backup (`then`) and the
/// service (`now`).
fn record_differences(
    out: &mut Differences,
    project: Uuid,
    kind: &'static str,
    what: &'static str,
    ids: impl Iterator<Item = Uuid>,
    then: &HashMap<Uuid, RecordContent>,
    now: &HashMap<Uuid, RecordContent>,
) {
    for id in ids {
        if let (Some(a), Some(b)) = (then.get(&id), now.get(&id)) {
            if a != b {
                out.push(Difference { kind, project, id, what: vec![what] });
            }
        }
    }
}

fn index_project(reader: &BagReader, id: Uuid, file: &mut HeldFile) -> Result<BackupProject, Error> {
    let mut held = BackupProject {
        project_json: bag_entry(reader, &format!("data/{}", layout::project_json(id)))?.is_some(),
        ..BackupProject::default()
    };
    let tags: Vec<Tag> = json_list(reader, &layout::tags_json(id))?;
    held.tags = tags.iter().map(|t| (t.id, RecordContent::of_tag(t))).collect();
    let iterations: Vec<Iteration> = json_list(reader, &layout::iterations_json(id))?;
    held.iterations = iterations.iter().map(|i| (i.id, RecordContent::of_iteration(i))).collect();
    let spill = |e: std::io::Error| Error::BackupUnreadable {
        path: reader.path().to_path_buf(),
        detail: format!("cannot write its index to a temporary file: {e}"),
    };
    // One listing in memory at a time, sorted, then written out.
    held.images = file.append(&HeldImages::new(listed(reader, id, ListingKind::Images)?)).map_err(spill)?;
    held.predictions = file.append(&HeldImages::new(listed(reader, id, ListingKind::Predictions)?)).map_err(spill)?;
    Ok(held)
}

/// A JSON array of the bag, or none when the file is not there.
fn json_list<T: serde::de::DeserializeOwned>(reader: &BagReader, path: &str) -> Result<Vec<T>, Error> {
    if bag_entry(reader, &format!("data/{path}"))?.is_none() {
        return Ok(Vec::new());
    }
    serde_json::from_slice(&read(reader, path)?)
        .map_err(|e| Error::BackupUnreadable { path: reader.path().to_path_buf(), detail: format!("{path}: {e}") })
}

/// The ids of a listing whose lines name their own file (the path follows from the id, as
/// verify checks), present in the archive, with a hash; each with the line's tags, regions and
/// metadata, in the listing's order (an id may come twice: [`HeldImages::new`] keeps the first).
fn listed(reader: &BagReader, project: Uuid, kind: ListingKind) -> Result<Vec<(Uuid, ImageContent)>, Error> {
    let path = format!("projects/{project}/{}", kind.listing_name());
    let bad = |detail: String| Error::BackupUnreadable { path: reader.path().to_path_buf(), detail };
    let mut ids = Vec::new();
    let Some(entry) = bag_entry(reader, &format!("data/{path}"))? else { return Ok(ids) };
    let mut failure = None;
    let folder = project.to_string();
    data::for_each_line(reader, &entry, |number, line| {
        if failure.is_some() {
            return;
        }
        let parsed = line.and_then(|l| serde_json::from_slice::<ListingLine>(l).map_err(|e| e.to_string()));
        let line = match parsed {
            Ok(line) => line,
            Err(why) => return failure = Some(bad(format!("{path} line {number}: {why}"))),
        };
        let hashed = line.sha256.is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()));
        let Some(file) = line.file else { return };
        // A line holds its image only when it names the image's own file, present (as verify
        // checks): a forged line copying another's file holds nothing. Since the file follows
        // from the id, lines of one file are lines of one id, and the first is kept.
        let own = bound_file_problem(kind, &folder, line.id, &file).is_none();
        let present = match own.then(|| bag_entry(reader, &format!("data/{file}"))) {
            Some(Ok(found)) => found.is_some(),
            Some(Err(e)) => return failure = Some(e),
            None => false,
        };
        if hashed && present {
            let content = ImageContent::of(line.tags.as_deref(), line.regions.as_deref(), line.metadata.as_ref());
            ids.push((line.id, content));
        }
    })
    .map_err(|e| bad(format!("{path}: {e}")))?;
    match failure {
        Some(e) => Err(e),
        None => Ok(ids),
    }
}

/// The entry named `<bag>/<rel>`; reading the directory back failing makes the backup unreadable.
fn bag_entry(reader: &BagReader, rel: &str) -> Result<Option<crate::archive::Entry>, Error> {
    reader.bag_entry(rel).map_err(|e| unreadable_archive(reader, e))
}

fn unreadable_archive(reader: &BagReader, e: crate::archive::Error) -> Error {
    Error::BackupUnreadable { path: reader.path().to_path_buf(), detail: crate::text::error_chain(&e) }
}

fn read(reader: &BagReader, path: &str) -> Result<Vec<u8>, Error> {
    let bad = |detail: String| Error::BackupUnreadable { path: reader.path().to_path_buf(), detail };
    let entry =
        bag_entry(reader, &format!("data/{path}"))?.ok_or_else(|| bad(format!("{path} is not in the archive")))?;
    reader.read_entry(&entry, MAX_JSON_BYTES).map_err(|e| bad(format!("{path}: {e}")))
}

/// A tag file of the bag (beside `data/`), read into memory under the same limit.
fn read_tag(reader: &BagReader, name: &str) -> Result<Vec<u8>, Error> {
    let bad = |detail: String| Error::BackupUnreadable { path: reader.path().to_path_buf(), detail };
    let entry = bag_entry(reader, name)?.ok_or_else(|| bad(format!("{name} is not in the archive")))?;
    reader.read_entry(&entry, MAX_JSON_BYTES).map_err(|e| bad(format!("{name}: {e}")))
}
