//! The restore itself: projects, tags, image batches, metadata, counts, with the report
//! rewritten after every step.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use base64::Engine as _;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::plan::{self, Unit};
use super::report::{now, Counts, FailedImage, ProjectMap, ProjectStage, Report};
use super::{Error, RestoreOptions, REPORT_FORMAT};
use crate::api::model::{ImageCreateResult, ImageCreateSummary, ImageFileCreateBatch, ImageFileCreateEntry, Region};
use crate::api::{Client, NewProject, MAX_BATCH_TAGS, MAX_UPLOAD_BATCH};
use crate::archive::source::{ArchivedProject, Source};
use crate::progress::{Event, Phase, Progress};
use crate::store::Location;

/// Restores the archive at `archive` (local, or a [`Location`] in a store) into the resource `client` talks to, resuming from
/// `opts.report` if it exists. Returns the final report (also written to `opts.report`).
pub async fn restore(
    client: &Client,
    archive: impl Into<Location>,
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
            archive: source.path().display().to_string(),
            archive_manifest_sha256: source.manifest_sha256().to_owned(),
            target_host: client.host().to_owned(),
            started: now(),
            updated: now(),
            complete: false,
            projects: Vec::new(),
        },
    };
    let account = plan::account(&source);
    progress.event(Event::Started { projects: ids.len() });
    // The totals up front, from the archive and the report, before the first upload.
    progress.event(Event::Phase { phase: Phase::Listing, project_id: None });
    let mut not_recreated = Vec::with_capacity(ids.len());
    for id in &ids {
        let archived = source.project(*id)?;
        let map = report.projects.iter().find(|p| p.old_id == *id);
        let plan = plan::project_plan(&source, &archived, &account, opts, map)?;
        progress.event(Event::ImagesFound { project_id: id.to_string(), total: plan.uploads });
        not_recreated.push(plan.not_recreated);
    }
    progress.event(Event::Phase { phase: Phase::Uploading, project_id: None });
    for (id, not_recreated) in ids.into_iter().zip(not_recreated) {
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
        report.projects[at].not_recreated = not_recreated;
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
        self.note_iteration_images(archived);
        let units = plan::units(self.source, archived, self.opts)?;
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
            archived_images: units.iter().map(|u| u.old_ids.len() as u64).sum(),
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

    /// Notes what happens to the images only trained iterations held, if there are any: left
    /// out (by [`plan::units`]) unless they are asked for.
    fn note_iteration_images(&mut self, archived: &ArchivedProject) {
        let only = archived.only_in_iterations;
        if only == 0 {
            return;
        }
        let note = match self.opts.iteration_images {
            true => format!(
                "{only} image(s) only trained iterations held (deleted from the workspace) were uploaded \
                 into the workspace (--iteration-images)"
            ),
            false => format!(
                "{only} image(s) only trained iterations held (deleted from the workspace) were not restored: \
                 the new project has no trained iterations; --iteration-images uploads them into its workspace"
            ),
        };
        if !self.map().notes.contains(&note) {
            self.map().notes.push(note);
        }
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
        let files: Vec<(String, String)> = batch.iter().map(|u| (u.file.clone(), u.sha256.clone())).collect();
        let contents = tokio::task::spawn_blocking(move || {
            files
                .iter()
                .map(|(file, sha)| {
                    source.read_file(file, sha).map(|b| base64::engine::general_purpose::STANDARD.encode(b))
                })
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
