//! What a restore would do, from the archive alone: per project the images it would send
//! (grouped by content, as the service keeps one copy of each), their bytes, and what it would
//! not recreate. `restore --dry-run` prints it without a single request; a real restore counts
//! the same way before its first upload, and builds each project's [`Unit`]s to send.
//!
//! Memory: a plan streams each project's listing once and keeps, for that project only, one
//! entry per distinct content (its SHA-256, size and whether it is already restored: about 56
//! bytes with the map's overhead), dropped before the next project. The units a real restore
//! sends keep each image's tags, regions and metadata for one project at a time.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::report::{NotRecreated, ProjectMap};
use super::{Error, RestoreOptions};
use crate::api::model::Region;
use crate::archive::data::{AccountView, ArchivedView, MAX_JSON_BYTES};
use crate::archive::layout;
use crate::archive::source::{ArchivedImage, ArchivedProject, Source};
use crate::store::Location;

/// What restoring an archive would do (`restore --dry-run`): nothing is sent.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// Always true: nothing was sent.
    pub dry_run: bool,
    /// The archive, as given.
    pub archive: String,
    /// SHA-256 of its manifest (what a restore report is tied to).
    pub archive_manifest_sha256: String,
    /// One entry per project, in id order.
    pub projects: Vec<ProjectPlan>,
    /// Images the uploads carry, all projects.
    pub images: u64,
    /// Uploads (distinct contents), all projects.
    pub uploads: u64,
    /// Bytes of the uploads (before base64), all projects.
    pub bytes: u64,
}

/// What restoring one project would do.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProjectPlan {
    /// The archived project's id.
    pub id: Uuid,
    /// Its name.
    pub name: String,
    /// Tags to create.
    pub tags: u64,
    /// Images the archive holds for it (each id once).
    pub archived_images: u64,
    /// Of those, the images that would be uploaded (without `--iteration-images`, not those
    /// only trained iterations held).
    pub images: u64,
    /// Uploads: distinct contents of those images (identical bytes go once, merged).
    pub uploads: u64,
    /// Bytes of the uploads, before base64.
    pub bytes: u64,
    /// What the archive holds of it that a restore does not recreate.
    pub not_recreated: Vec<NotRecreated>,
}

/// One distinct image content of a project: every archived image with these bytes, and the
/// union of their tags, regions and metadata.
#[derive(Debug, Clone)]
pub(super) struct Unit {
    /// The first such image's file (below `data/`) and its listed SHA-256.
    pub file: String,
    pub sha256: String,
    pub old_ids: Vec<Uuid>,
    pub tags: Vec<Uuid>,
    pub regions: Vec<Region>,
    pub metadata: BTreeMap<String, String>,
    pub size: u64,
}

impl Unit {
    /// Every tag the unit names, its own and its regions': what a batch's tag limit counts.
    pub fn all_tags(&self) -> BTreeSet<Uuid> {
        self.tags.iter().copied().chain(self.regions.iter().map(|r| r.tag_id)).collect()
    }
}

/// The plan for restoring `archive` as `opts` says, reading the archive only (no report, no
/// service): `restore --dry-run`. The archive may be in a store ([`Location`]).
pub fn plan(archive: impl Into<Location>, opts: &RestoreOptions) -> Result<Plan, Error> {
    let source = Source::open(archive)?;
    let account = account(&source);
    let mut plan = Plan {
        dry_run: true,
        archive: source.path().display().to_string(),
        archive_manifest_sha256: source.manifest_sha256().to_owned(),
        projects: Vec::new(),
        images: 0,
        uploads: 0,
        bytes: 0,
    };
    for id in source.selected(&opts.projects)? {
        let archived = source.project(id)?;
        let p = project_plan(&source, &archived, &account, opts, None)?;
        (plan.images, plan.uploads, plan.bytes) =
            (plan.images + p.images, plan.uploads + p.uploads, plan.bytes + p.bytes);
        plan.projects.push(p);
    }
    Ok(plan)
}

/// What the export counted of each project (iterations, model exports, stored predictions),
/// for the list of what is not recreated; empty when `account.json` cannot be read.
pub(super) fn account(source: &Source) -> AccountView {
    (source.read(layout::account_json(), MAX_JSON_BYTES).ok())
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default()
}

/// The project's plan: its listing streamed once. Uploads already recorded in `map` (a report
/// a rerun resumes from) are not counted.
pub(super) fn project_plan(
    source: &Source,
    archived: &ArchivedProject,
    account: &AccountView,
    opts: &RestoreOptions,
    map: Option<&ProjectMap>,
) -> Result<ProjectPlan, Error> {
    let id = archived.project.id;
    // Content -> (size, whether every image with it is already restored).
    let mut contents: HashMap<[u8; 32], (u64, bool)> = HashMap::new();
    let mut images = 0;
    for a in source.images(archived)? {
        let a = a?;
        if !(opts.iteration_images || a.in_workspace()) {
            continue;
        }
        images += 1;
        let mapped = map.is_some_and(|m| m.images.contains_key(&a.image.id));
        let (_, all_mapped) = contents.entry(content_key(&a.sha256)).or_insert((a.size, true));
        *all_mapped &= mapped;
    }
    let todo = contents.values().filter(|(_, done)| !done);
    let (uploads, bytes) = todo.fold((0, 0), |(n, b), (size, _)| (n + 1, b + size));
    let counts = account.projects.iter().flat_map(|p| &p.kept).find(|p| p.id == Some(id.to_string()));
    let not_recreated = NotRecreated::list(
        counts.and_then(|p| p.archived.as_ref()).unwrap_or(&ArchivedView::default()),
        archived.only_in_iterations,
        opts.iteration_images,
    );
    Ok(ProjectPlan {
        id,
        name: archived.project.name.clone(),
        tags: archived.tags.len() as u64,
        archived_images: archived.images,
        images,
        uploads,
        bytes,
        not_recreated,
    })
}

/// The content an image's listed SHA-256 names, as 32 bytes: the hash itself, or (for a text
/// that is not one, which no read will match) the SHA-256 of that text, so equal texts group.
fn content_key(sha256: &str) -> [u8; 32] {
    let mut key = [0u8; 32];
    match hex::decode_to_slice(sha256.to_ascii_lowercase(), &mut key) {
        Ok(()) => key,
        Err(_) => Sha256::digest(sha256.as_bytes()).into(),
    }
}

/// The project's images to send (all, or only the workspace's), grouped by content, in archive
/// order.
pub(super) fn units(source: &Source, archived: &ArchivedProject, opts: &RestoreOptions) -> Result<Vec<Unit>, Error> {
    let mut by_content: HashMap<[u8; 32], usize> = HashMap::new();
    let mut units: Vec<Unit> = Vec::new();
    for a in source.images(archived)? {
        let a = a?;
        if !(opts.iteration_images || a.in_workspace()) {
            continue;
        }
        let unit = unit(&a);
        match by_content.get(&content_key(&a.sha256)) {
            Some(&u) => units[u].merge(unit),
            None => {
                by_content.insert(content_key(&a.sha256), units.len());
                units.push(unit);
            }
        }
    }
    Ok(units)
}

/// One image as a unit of its own.
fn unit(a: &ArchivedImage) -> Unit {
    let image = &a.image;
    let regions: Vec<Region> = image
        .regions
        .iter()
        .flatten()
        .map(|r| Region { tag_id: r.tag_id, left: r.left, top: r.top, width: r.width, height: r.height })
        .collect();
    // Tags carried by a region come back with it; only the others are sent as image tags.
    let tags: Vec<Uuid> =
        image.tags.iter().flatten().map(|t| t.tag_id).filter(|t| !regions.iter().any(|r| r.tag_id == *t)).collect();
    Unit {
        file: a.file.clone(),
        sha256: a.sha256.clone(),
        old_ids: vec![image.id],
        tags,
        regions,
        metadata: image.metadata.clone().unwrap_or_default(),
        size: a.size,
    }
}

impl Unit {
    /// Adds an image with the same content: its id, and its tags, regions and metadata.
    fn merge(&mut self, other: Unit) {
        self.old_ids.extend(other.old_ids);
        for t in other.tags {
            if !self.tags.contains(&t) {
                self.tags.push(t);
            }
        }
        for r in other.regions {
            if !self.regions.contains(&r) {
                self.regions.push(r);
            }
        }
        self.metadata.extend(other.metadata);
    }
}
