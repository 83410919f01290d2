//! The restore itself: projects, tags, image batches, metadata, counts, with the report
//! rewritten after every step.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use base64::Engine as _;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::report::{now, Counts, FailedImage, NotRecreated, ProjectMap, ProjectStage, Report};
use super::{Error, RestoreOptions, REPORT_FORMAT};
use crate::api::model::{ImageCreateResult, ImageCreateSummary, ImageFileCreateBatch, ImageFileCreateEntry, Region};
use crate::api::{Client, NewProject, MAX_BATCH_TAGS, MAX_UPLOAD_BATCH};
use crate::archive::data::{AccountView, MAX_JSON_BYTES};
use crate::archive::layout;
use crate::archive::source::{ArchivedProject, Source};
use crate::progress::{Event, Phase, Progress};

/// One distinct image content of a project: every archived image with these bytes, and the
/// union of their tags, regions and metadata.
#[derive(Debug, Clone)]
struct Unit {
    /// Index of the first such image in the project's list.
    first: usize,
    old_ids: Vec<Uuid>,
    tags: Vec<Uuid>,
    regions: Vec<Region>,
    metadata: BTreeMap<String, String>,
    size: u64,
}

/// Restores the archive at `archive` into the resource `client` talks to, resuming from
/// `opts.report` if it exists. Returns the final report (also written to `opts.report`).
pub async fn restore(
    client: &Client,
    archive: &Path,
    opts: &RestoreOptions,
    progress: &dyn Progress,
    cancel: &CancellationToken,
) -> Result<Report, Error> {
    let source = Arc::new(Source::open(archive)?);
    let ids = source.selected(&opts.projects)?;
    let mut report = match Report::load(&opts.report)? {
        Some(r) => {
            if r.archive_manifest_sha256 != source.manifest_sha256() || r.target_host != client.host() {
                return Err(Error::Mismatch {
                    path: opts.report.clone(),
                    detail: format!("archive {} restored into {}", r.archive, r.target_host),
                });
            }
            r
        }
        None => Report {
            format: REPORT_FORMAT.to_owned(),
            archive: archive.display().to_string(),
            archive_manifest_sha256: source.manifest_sha256().to_owned(),
            target_host: client.host().to_owned(),
            started: now(),
            updated: now(),
            complete: false,
            projects: Vec::new(),
        },
    };
    // What the export counted: how many iterations, model exports and stored predictions each
    // project had, for the report's list of what is not recreated.
    let account: AccountView = (source.read(layout::account_json(), MAX_JSON_BYTES).ok())
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default();
    progress.event(Event::Started { projects: ids.len() });
    // The totals up front, from the archive and the report, before the first upload.
    progress.event(Event::Phase { phase: Phase::Listing, project_id: None });
    for id in &ids {
        let archived = source.project(*id)?;
        let map = report.projects.iter().find(|p| p.old_id == *id);
        progress.event(Event::ImagesFound { project_id: id.to_string(), total: to_upload(&archived, opts, map) });
    }
    progress.event(Event::Phase { phase: Phase::Uploading, project_id: None });
    for id in ids {
        if cancel.is_cancelled() {
            report.save(&opts.report)?;
            return Err(Error::Interrupted(opts.report.clone()));
        }
        let archived = source.project(id)?;
        let at = match report.projects.iter().position(|p| p.old_id == id) {
            Some(at) => at,
            None => {
                report.projects.push(ProjectMap {
                    old_id: id,
                    name: archived.project.name.clone(),
                    new_name: format!("{}{}", archived.project.name, opts.name_suffix),
                    new_id: None,
                    stage: ProjectStage::Pending,
                    tags: BTreeMap::new(),
                    images: BTreeMap::new(),
                    metadata_done: Default::default(),
                    failed: Vec::new(),
                    counts: None,
                    notes: Vec::new(),
                    not_recreated: Vec::new(),
                });
                report.projects.len() - 1
            }
        };
        let only_in_iterations = archived.images.iter().filter(|i| !i.in_workspace()).count() as u64;
        let counts = account.projects.iter().flat_map(|p| &p.kept).find(|p| p.id == Some(id.to_string()));
        report.projects[at].not_recreated = NotRecreated::list(
            counts.and_then(|p| p.archived.as_ref()).unwrap_or(&Default::default()),
            only_in_iterations,
            opts.iteration_images,
        );
        progress.event(Event::ProjectStarted { project_id: id.to_string(), name: archived.project.name.clone() });
        let mut job = Job { client, source: &source, opts, progress, cancel, report: &mut report, at };
        job.project(&archived).await?;
        let restored = job.report.projects[at].images.len() as u64;
        progress.event(Event::ProjectFinished { project_id: id.to_string(), images: restored });
    }
    report.save(&opts.report)?;
    Ok(report)
}

/// The restore of one project, with the report it keeps up to date.
struct Job<'a> {
    client: &'a Client,
    source: &'a Arc<Source>,
    opts: &'a RestoreOptions,
    progress: &'a dyn Progress,
    cancel: &'a CancellationToken,
    report: &'a mut Report,
    at: usize,
}

impl Job<'_> {
    fn map(&mut self) -> &mut ProjectMap {
        &mut self.report.projects[self.at]
    }

    fn phase(&self, project: Uuid, phase: Phase) {
        self.progress.event(Event::Phase { phase, project_id: Some(project.to_string()) });
    }

    fn save(&mut self) -> Result<(), Error> {
        self.report.save(&self.opts.report)
    }

    async fn project(&mut self, archived: &ArchivedProject) -> Result<(), Error> {
        let old = archived.project.id;
        let new_id = self.create_project(archived).await?;
        self.tags(archived, new_id).await?;
        let selected = self.iteration_images(archived);
        let archived = selected.as_ref().unwrap_or(archived);
        let units = units(archived);
        let merged: usize = units.iter().map(|u| u.old_ids.len() - 1).sum();
        if merged > 0 {
            let note = format!("{merged} image(s) have the same bytes as another and were merged into it");
            if !self.map().notes.contains(&note) {
                self.map().notes.push(note);
            }
        }
        self.phase(old, Phase::Uploading);
        self.images(archived, &units, new_id).await?;
        self.phase(old, Phase::Finishing);
        self.metadata(&units, new_id).await?;
        let (tagged, untagged) =
            (self.client.get_tagged_image_count(new_id).await?, self.client.get_untagged_image_count(new_id).await?);
        let service_tags = self.client.get_tags(new_id, None).await?.len() as u64;
        let counts = Counts {
            archived_images: archived.images.len() as u64,
            archived_distinct: units.len() as u64,
            archived_tags: archived.tags.len() as u64,
            service_images: tagged + untagged,
            service_tags,
        };
        if !counts.agree() {
            self.progress.event(Event::Warning {
                message: format!(
                    "project {old}: the service holds {} images and {service_tags} tags; the archive {} and {}",
                    counts.service_images, counts.archived_distinct, counts.archived_tags
                ),
            });
        }
        let map = self.map();
        map.counts = Some(counts);
        map.stage = ProjectStage::Done;
        self.save()
    }

    /// The project without the images only trained iterations held, unless they are asked for
    /// (`None`: nothing to leave out); notes either way what happens to them.
    fn iteration_images(&mut self, archived: &ArchivedProject) -> Option<ArchivedProject> {
        let only = archived.images.iter().filter(|i| !i.in_workspace()).count();
        if only == 0 {
            return None;
        }
        let (note, selected) = match self.opts.iteration_images {
            true => (
                format!(
                    "{only} image(s) only trained iterations held (deleted from the workspace) were uploaded \
                     into the workspace (--iteration-images)"
                ),
                None,
            ),
            false => (
                format!(
                    "{only} image(s) only trained iterations held (deleted from the workspace) were not restored: \
                     the new project has no trained iterations; --iteration-images uploads them into its workspace"
                ),
                Some(ArchivedProject {
                    images: archived.images.iter().filter(|i| i.in_workspace()).cloned().collect(),
                    ..archived.clone()
                }),
            ),
        };
        if !self.map().notes.contains(&note) {
            self.map().notes.push(note);
        }
        selected
    }

    /// The new project: created, or found again after an interrupted CreateProject.
    async fn create_project(&mut self, archived: &ArchivedProject) -> Result<Uuid, Error> {
        let old = archived.project.id;
        if let Some(id) = self.map().new_id {
            return Ok(id);
        }
        let new_name = self.map().new_name.clone();
        if self.map().stage == ProjectStage::Creating {
            let existing: Vec<_> =
                self.client.get_projects().await?.into_iter().filter(|p| p.name == new_name).collect();
            if let [found] = existing.as_slice() {
                return self.created(found.id);
            }
        }
        let settings = archived.project.settings.clone().unwrap_or_default();
        let domain = match settings.domain_id {
            None => None,
            Some(d) => {
                let domains = self.client.get_domains().await?;
                let ours = domains.iter().find(|x| x.id == d);
                Some(ours.ok_or(Error::Domain { project: old, domain: d })?.id)
            }
        };
        let new = NewProject {
            name: new_name,
            description: archived.project.description.clone().filter(|d| !d.is_empty()),
            domain_id: domain,
            classification_type: settings.classification_type.clone(),
            target_export_platforms: settings.target_export_platforms.clone().unwrap_or_default(),
        };
        self.map().stage = ProjectStage::Creating;
        self.save()?;
        let project = self.client.create_project(&new).await?;
        self.created(project.id)
    }

    fn created(&mut self, id: Uuid) -> Result<Uuid, Error> {
        let map = self.map();
        map.new_id = Some(id);
        map.stage = ProjectStage::Created;
        self.save()?;
        Ok(id)
    }

    /// Every archived tag mapped to a tag of the new project, found by name or created.
    async fn tags(&mut self, archived: &ArchivedProject, new_id: Uuid) -> Result<(), Error> {
        let existing = self.client.get_tags(new_id, None).await?;
        for tag in &archived.tags {
            let mapped = self.map().tags.get(&tag.id).copied();
            if mapped.is_some_and(|n| existing.iter().any(|e| e.id == n)) {
                continue;
            }
            let new_tag = match existing.iter().find(|e| e.name == tag.name) {
                Some(e) => e.id,
                None => {
                    let kind = tag.tag_type.as_deref().filter(|k| !k.is_empty());
                    self.client.create_tag(new_id, &tag.name, tag.description.as_deref(), kind).await?.id
                }
            };
            self.map().tags.insert(tag.id, new_tag);
            self.save()?;
        }
        Ok(())
    }

    /// Uploads every unit not yet mapped, in batches of at most `batch_images` images,
    /// `batch_bytes` bytes and [`MAX_BATCH_TAGS`] distinct tags (a unit over a limit alone goes
    /// alone). Units are sorted by their tags first, so that batches of a project with many
    /// tags stay full.
    async fn images(&mut self, archived: &ArchivedProject, units: &[Unit], new_id: Uuid) -> Result<(), Error> {
        self.map().failed.clear();
        let mut todo: Vec<&Unit> =
            units.iter().filter(|u| !u.old_ids.iter().all(|o| self.map().images.contains_key(o))).collect();
        todo.sort_by_cached_key(|u| u.all_tags());
        let mut rest = todo.as_slice();
        while !rest.is_empty() {
            if self.cancel.is_cancelled() {
                self.save()?;
                return Err(Error::Interrupted(self.opts.report.clone()));
            }
            let n = batch_len(rest, self.opts);
            let (batch, rest_after) = rest.split_at(n);
            rest = rest_after;
            self.batch(archived, batch, new_id).await?;
        }
        Ok(())
    }

    /// One CreateImagesFromFiles call, its results matched to the units by name. Units the
    /// answer has no result for (`images: null`, or left out) are sent once more: the service
    /// keeps one copy of each content and answers `OKDuplicate` with the image for any the
    /// first call created, so a second call learns their ids without creating anything twice.
    async fn batch(&mut self, archived: &ArchivedProject, batch: &[&Unit], new_id: Uuid) -> Result<(), Error> {
        let old = archived.project.id;
        let mut entries = self.entries(archived, batch).await?;
        let mut waiting: BTreeMap<Uuid, &Unit> = batch.iter().map(|u| (u.old_ids[0], *u)).collect();
        let mut uploaded = Vec::new();
        for attempt in 0..2 {
            if attempt > 0 {
                entries.retain(|e| e.name.as_deref().is_some_and(|n| waiting.keys().any(|w| w.to_string() == n)));
                self.progress.event(Event::Warning {
                    message: format!(
                        "project {old}: CreateImagesFromFiles answered no result for {} image(s); sending them again to learn their ids",
                        waiting.len()
                    ),
                });
            }
            let sent = ImageFileCreateBatch { images: entries, tag_ids: None, metadata: None };
            let summary = match self.client.create_images_from_files(new_id, &sent).await {
                Ok(summary) => summary,
                Err(e) if refused_for_tags(&e, &waiting) => {
                    let unit = *waiting.values().next().expect("one unit waits");
                    let status =
                        format!("{}: {} tags on one image", e.code().unwrap_or_default(), unit.all_tags().len());
                    self.map().failed.push(FailedImage { image_ids: unit.old_ids.clone(), status });
                    waiting.clear();
                    break;
                }
                Err(e) => return Err(e.into()),
            };
            entries = sent.images;
            for (name, result) in match_results(old, &summary, &waiting)? {
                let unit = waiting.remove(&name).expect("matched units wait");
                match (&result.image, result.status.as_str()) {
                    (Some(image), "OK" | "OKDuplicate") => {
                        for o in &unit.old_ids {
                            self.map().images.insert(*o, image.id);
                        }
                        uploaded.push(unit.size);
                    }
                    (_, status) => self
                        .map()
                        .failed
                        .push(FailedImage { image_ids: unit.old_ids.clone(), status: status.to_owned() }),
                }
            }
            if waiting.is_empty() {
                break;
            }
        }
        self.save()?;
        for bytes in uploaded {
            self.progress.event(Event::Transferred { project_id: old.to_string(), bytes });
        }
        match waiting.keys().next() {
            None => Ok(()),
            Some(first) => Err(Error::Unmatched {
                project: old,
                image: first.to_string(),
                detail: format!(
                    "CreateImagesFromFiles answered no result for it, twice ({} image(s) of the batch in all)",
                    waiting.len()
                ),
            }),
        }
    }

    /// The batch's entries: each unit's bytes read, checked and base64-encoded off the async
    /// threads, named by its first archived image id so its result can be found by name.
    async fn entries(&self, archived: &ArchivedProject, batch: &[&Unit]) -> Result<Vec<ImageFileCreateEntry>, Error> {
        let old = archived.project.id;
        let tag_map = &self.report.projects[self.at].tags;
        let map_tag = |t: &Uuid| {
            tag_map
                .get(t)
                .copied()
                .ok_or_else(|| Error::Refused { project: old, detail: format!("tag {t} has no new id") })
        };
        let source = Arc::clone(self.source);
        let files: Vec<_> = batch.iter().map(|u| archived.images[u.first].clone()).collect();
        let contents = tokio::task::spawn_blocking(move || {
            files
                .iter()
                .map(|f| source.read_image(f).map(|b| base64::engine::general_purpose::STANDARD.encode(b)))
                .collect::<Result<Vec<_>, _>>()
        })
        .await
        .map_err(|e| Error::Refused { project: old, detail: format!("reading images failed: {e}") })??;
        let mut entries = Vec::with_capacity(batch.len());
        for (unit, contents) in batch.iter().zip(contents) {
            let tags = unit.tags.iter().map(map_tag).collect::<Result<Vec<_>, _>>()?;
            let regions = unit
                .regions
                .iter()
                .map(|r| Ok(Region { tag_id: map_tag(&r.tag_id)?, ..r.clone() }))
                .collect::<Result<Vec<_>, Error>>()?;
            entries.push(ImageFileCreateEntry {
                name: Some(unit.old_ids[0].to_string()),
                contents,
                tag_ids: (!tags.is_empty()).then_some(tags),
                regions: (!regions.is_empty()).then_some(regions),
            });
        }
        Ok(entries)
    }

    /// UpdateImageMetadata for every restored unit with metadata not yet set, grouped by equal
    /// metadata, 64 images a call.
    async fn metadata(&mut self, units: &[Unit], new_id: Uuid) -> Result<(), Error> {
        let mut groups: BTreeMap<&BTreeMap<String, String>, Vec<Uuid>> = BTreeMap::new();
        for unit in units.iter().filter(|u| !u.metadata.is_empty()) {
            let Some(&new) = self.map().images.get(&unit.old_ids[0]) else { continue };
            if !self.map().metadata_done.contains(&new) {
                groups.entry(&unit.metadata).or_default().push(new);
            }
        }
        for (metadata, ids) in groups {
            for chunk in ids.chunks(MAX_UPLOAD_BATCH) {
                let summary = self.client.update_image_metadata(new_id, chunk, metadata).await?;
                for entry in summary.images {
                    if entry.status == "OK" {
                        self.map().metadata_done.insert(entry.image_id);
                    } else {
                        let old: Vec<Uuid> =
                            self.map().images.iter().filter(|(_, n)| **n == entry.image_id).map(|(o, _)| *o).collect();
                        self.map()
                            .failed
                            .push(FailedImage { image_ids: old, status: format!("metadata: {}", entry.status) });
                    }
                }
                self.save()?;
            }
        }
        Ok(())
    }
}

/// How many uploads the project still needs (units of identical images not yet mapped): what
/// [`Job::images`] sends, counted before any upload so the totals are known from the start.
fn to_upload(archived: &ArchivedProject, opts: &RestoreOptions, map: Option<&ProjectMap>) -> u64 {
    let workspace;
    let archived = match opts.iteration_images {
        true => archived,
        false => {
            let images = archived.images.iter().filter(|i| i.in_workspace()).cloned().collect();
            workspace = ArchivedProject { images, ..archived.clone() };
            &workspace
        }
    };
    let mapped = |u: &Unit| map.is_some_and(|m| u.old_ids.iter().all(|o| m.images.contains_key(o)));
    units(archived).iter().filter(|u| !mapped(u)).count() as u64
}

/// The project's images grouped by content, in archive order.
fn units(archived: &ArchivedProject) -> Vec<Unit> {
    let mut by_sha: BTreeMap<String, usize> = BTreeMap::new();
    let mut units: Vec<Unit> = Vec::new();
    for (n, a) in archived.images.iter().enumerate() {
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
        let metadata = image.metadata.clone().unwrap_or_default();
        let key = a.sha256.to_ascii_lowercase();
        match by_sha.get(&key) {
            Some(&u) => {
                let unit = &mut units[u];
                unit.old_ids.push(image.id);
                for t in tags {
                    if !unit.tags.contains(&t) {
                        unit.tags.push(t);
                    }
                }
                for r in regions {
                    if !unit.regions.contains(&r) {
                        unit.regions.push(r);
                    }
                }
                unit.metadata.extend(metadata);
            }
            None => {
                by_sha.insert(key, units.len());
                units.push(Unit { first: n, old_ids: vec![image.id], tags, regions, metadata, size: a.size });
            }
        }
    }
    units
}

impl Unit {
    /// Every tag the unit names, its own and its regions': what a batch's tag limit counts.
    fn all_tags(&self) -> BTreeSet<Uuid> {
        self.tags.iter().copied().chain(self.regions.iter().map(|r| r.tag_id)).collect()
    }
}

/// How many of `rest` the next batch takes: at most `batch_images` (and 64) units,
/// `batch_bytes` bytes and [`MAX_BATCH_TAGS`] distinct tags, and always at least one.
fn batch_len(rest: &[&Unit], opts: &RestoreOptions) -> usize {
    let most = opts.batch_images.clamp(1, MAX_UPLOAD_BATCH);
    let (mut n, mut bytes, mut tags) = (0, 0u64, BTreeSet::new());
    while n < rest.len() && n < most {
        let unit_tags = rest[n].all_tags();
        let with: BTreeSet<Uuid> = tags.union(&unit_tags).copied().collect();
        let over = bytes + rest[n].size > opts.batch_bytes as u64 || with.len() > MAX_BATCH_TAGS;
        if n > 0 && over {
            break;
        }
        bytes += rest[n].size;
        tags = with;
        n += 1;
    }
    n
}

/// The results of a CreateImagesFromFiles answer, each with the unit it names: the spec
/// promises no order, and the service echoes each entry's `name` as `sourceUrl` ([rec]
/// azure-sdk-for-net TrainingTests/CreateImagesFromFiles.json: `"name": "hemlock_1.jpg"` came
/// back as `"sourceUrl": "hemlock_1.jpg"`). A result that names no waiting unit, or names one
/// twice, makes the whole answer untrustworthy: nothing of it is used.
fn match_results<'s>(
    project: Uuid,
    summary: &'s ImageCreateSummary,
    waiting: &BTreeMap<Uuid, &Unit>,
) -> Result<Vec<(Uuid, &'s ImageCreateResult)>, Error> {
    let mut matched: Vec<(Uuid, &ImageCreateResult)> = Vec::new();
    for result in summary.images.iter().flatten() {
        let name = result.source_url.as_deref().unwrap_or_default();
        let unmatched = |detail: &str| Error::Unmatched { project, image: name.to_owned(), detail: detail.to_owned() };
        let id = Uuid::parse_str(name.trim())
            .ok()
            .filter(|id| waiting.contains_key(id))
            .ok_or_else(|| unmatched("CreateImagesFromFiles answered a result for an image that was not sent"))?;
        if matched.iter().any(|(m, _)| *m == id) {
            return Err(unmatched("CreateImagesFromFiles answered two results for it"));
        }
        matched.push((id, result));
    }
    Ok(matched)
}

/// Whether `err` is the service refusing a batch of one unit that names more tags than a
/// batch may: under a per-batch reading of the tag limit such an image cannot be uploaded
/// whole, and it is recorded as refused instead of stopping the restore.
fn refused_for_tags(err: &crate::api::Error, waiting: &BTreeMap<Uuid, &Unit>) -> bool {
    err.status() == Some(400) && waiting.len() == 1 && waiting.values().all(|u| u.all_tags().len() > MAX_BATCH_TAGS)
}
