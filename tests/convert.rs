//! Convert, end to end: the fixture account exported, then turned into COCO datasets and tag
//! folders; boxes checked by arithmetic, bytes checked against the archive, damage refused.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cvarchive::convert::{convert, ConvertOptions, Target};
use cvarchive::progress::NoProgress;
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::support::fixtures::{fixture_archive, CLASSIFICATION};
use crate::support::*;

const DETECTION: &str = "dc77de6a-c75e-4bb4-be00-87e8d4320d4d";
/// The fixture's image that only the classification project's trained iteration holds.
const ONLY_IN_ITERATION: &str = "0c7e2a51-8f3b-4d6e-9a1c-5b2f7d9e4a60";
/// That iteration.
const ITERATION: &str = "661c64d6-e4ab-46a0-96c9-b06934fac218";

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

#[tokio::test]
async fn coco_boxes_are_the_regions_in_pixels() {
    let (dir, archive) = fixture_archive().await;
    let out = dir.path().join("coco");
    let report = convert(
        &archive,
        &ConvertOptions { to: Target::Coco, out: out.clone(), projects: vec![], force: false },
        &NoProgress,
    )
    .unwrap();
    assert!(report.is_complete());
    assert_eq!(report.projects.len(), 4);
    let payload = payload(&archive);

    let doc = read_json(&out.join(DETECTION).join("annotations.json"));
    let cats: BTreeMap<u64, String> = doc["categories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["id"].as_u64().unwrap(), c["name"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(cats.values().cloned().collect::<Vec<_>>(), ["car", "person", "tree"]);
    // od-street.jpg is 80x60; its car region is (0.1, 0.2, 0.3, 0.25): [8, 12, 24, 15] pixels.
    let street = doc["images"].as_array().unwrap().iter().find(|i| i["width"] == 80).expect("the street image");
    assert_eq!(street["height"], 60);
    assert_eq!(street["metadata"]["street"], "Rue de la Paix");
    let car: Vec<&Value> = doc["annotations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["image_id"] == street["id"] && cats[&a["category_id"].as_u64().unwrap()] == "car")
        .collect();
    assert_eq!(car.len(), 1);
    let bbox: Vec<f64> = car[0]["bbox"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    for (got, want) in bbox.iter().zip([8.0, 12.0, 24.0, 15.0]) {
        assert!((got - want).abs() < 1e-9, "bbox {bbox:?}");
    }
    assert!((car[0]["area"].as_f64().unwrap() - 360.0).abs() < 1e-9);

    // Every region of every archived image is one annotation, left*W, top*H, width*W, height*H.
    let lines = jsonl(&payload, &format!("projects/{DETECTION}/images.jsonl"));
    let regions: usize = lines.iter().map(|l| l["regions"].as_array().map_or(0, Vec::len)).sum();
    assert_eq!(doc["annotations"].as_array().unwrap().len(), regions);
    for line in &lines {
        let coco = doc["images"].as_array().unwrap().iter().find(|i| i["custom_vision_id"] == line["id"]).unwrap();
        let (w, h) = (line["width"].as_f64().unwrap(), line["height"].as_f64().unwrap());
        for r in line["regions"].as_array().into_iter().flatten() {
            let ann = doc["annotations"]
                .as_array()
                .unwrap()
                .iter()
                .find(|a| a["custom_vision_region_id"] == r["regionId"])
                .expect("an annotation per region");
            assert_eq!(ann["image_id"], coco["id"]);
            let want = [
                r["left"].as_f64().unwrap() * w,
                r["top"].as_f64().unwrap() * h,
                r["width"].as_f64().unwrap() * w,
                r["height"].as_f64().unwrap() * h,
            ];
            for (got, want) in ann["bbox"].as_array().unwrap().iter().zip(want) {
                assert!((got.as_f64().unwrap() - want).abs() < 1e-9);
            }
        }
        // The image file is the archived one, byte for byte.
        let written =
            std::fs::read(out.join(DETECTION).join("images").join(coco["file_name"].as_str().unwrap())).unwrap();
        assert_eq!(hex::encode(Sha256::digest(&written)), line["sha256"].as_str().unwrap());
    }

    // Classification tags are in category_ids; images keep their metadata. Seven images are in
    // the workspace, one only in the trained iteration.
    let doc = read_json(&out.join(CLASSIFICATION).join("annotations.json"));
    assert_eq!(doc["images"].as_array().unwrap().len(), 8);
    let only: Vec<&Value> = doc["images"].as_array().unwrap().iter().filter(|i| i["workspace"] == false).collect();
    assert_eq!(only.len(), 1);
    assert_eq!(only[0]["custom_vision_id"], ONLY_IN_ITERATION);
    assert_eq!(only[0]["iterations"], serde_json::json!([ITERATION]));
    assert!(doc["annotations"].as_array().unwrap().is_empty());
    let names: BTreeMap<u64, &str> = doc["categories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["id"].as_u64().unwrap(), c["name"].as_str().unwrap()))
        .collect();
    let dog = doc["images"].as_array().unwrap().iter().find(|i| i["width"] == 48 && i["height"] == 64).unwrap();
    let mut tags: Vec<&str> =
        dog["category_ids"].as_array().unwrap().iter().map(|c| names[&c.as_u64().unwrap()]).collect();
    tags.sort();
    assert_eq!(tags, ["café", "dog"]);
    let cat = doc["images"].as_array().unwrap().iter().find(|i| i["width"] == 64 && i["height"] == 48).unwrap();
    assert_eq!(cat["metadata"]["photographer"], "Zoë");
    assert!(!out.read_dir().unwrap().any(|e| e.unwrap().file_name().to_string_lossy().ends_with(".partial")));
}

#[tokio::test]
async fn folders_hold_each_tags_images_and_labels() {
    let (dir, archive) = fixture_archive().await;
    let out = dir.path().join("folders");
    let opts = ConvertOptions {
        to: Target::Folders,
        out: out.clone(),
        projects: vec![CLASSIFICATION.parse().unwrap()],
        force: false,
    };
    let report = convert(&archive, &opts, &NoProgress).unwrap();
    assert_eq!(report.projects.len(), 1);
    let root = folder_of(&out, CLASSIFICATION);
    let count = |folder: &str| std::fs::read_dir(root.join(folder)).map(|d| d.count()).unwrap_or(0);
    // cat: cls-cat, dup-a and the image only the iteration holds; dog: cls-dog and dup-b; café:
    // cls-dog and cls-cafe; 日本語: cls-cafe.
    assert_eq!(count("cat"), 3);
    assert_eq!(count("dog"), 2);
    assert_eq!(count("café"), 2);
    assert_eq!(count("日本語 tag"), 1);
    assert_eq!(count("untagged"), 2);
    let labels = std::fs::read_to_string(root.join("labels.csv")).unwrap();
    assert_eq!(labels.lines().count(), 1 + 8);
    assert!(labels.starts_with("image_id,file,tags,width,height,sha256,workspace,iterations\n"), "{labels}");
    let row = labels.lines().find(|l| l.starts_with(ONLY_IN_ITERATION)).expect("a row for it");
    assert!(row.contains(&format!("cat/{ONLY_IN_ITERATION}.jpg,")), "in its tag's folder: {row}");
    assert!(row.ends_with(&format!(",false,{ITERATION}")), "{row}");
    assert_eq!(labels.lines().filter(|l| l.contains(&format!(",true,{ITERATION}"))).count(), 5, "{labels}");
    assert_eq!(report.projects[0].only_in_iterations, 1);
    // A multi-label image is the same bytes in each of its folders.
    let dog_files: Vec<_> = std::fs::read_dir(root.join("dog")).unwrap().map(|e| e.unwrap().file_name()).collect();
    let cafe_files: Vec<_> = std::fs::read_dir(root.join("café")).unwrap().map(|e| e.unwrap().file_name()).collect();
    let shared: Vec<_> = dog_files.iter().filter(|f| cafe_files.contains(f)).collect();
    assert_eq!(shared.len(), 1);
    assert_eq!(
        std::fs::read(root.join("dog").join(shared[0])).unwrap(),
        std::fs::read(root.join("café").join(shared[0])).unwrap()
    );
    // Converting again into the same place is refused rather than mixed in.
    assert!(matches!(convert(&archive, &opts, &NoProgress), Err(cvarchive::convert::Error::Exists(_))));
}

#[tokio::test]
async fn a_tampered_image_is_left_out_and_named() {
    let (dir, archive) = fixture_archive().await;
    // Images are stored uncompressed: flip one byte of one of them inside the zip.
    let payload = payload(&archive);
    let line = &jsonl(&payload, &format!("projects/{DETECTION}/images.jsonl"))[0];
    let image = &payload[line["file"].as_str().unwrap()];
    let mut bytes = std::fs::read(&archive).unwrap();
    let at = bytes.windows(image.len()).position(|w| w == image.as_slice()).expect("stored image bytes");
    bytes[at + image.len() / 2] ^= 0xFF;
    std::fs::write(&archive, &bytes).unwrap();

    let out = dir.path().join("coco");
    let opts =
        ConvertOptions { to: Target::Coco, out: out.clone(), projects: vec![DETECTION.parse().unwrap()], force: false };
    let report = convert(&archive, &opts, &NoProgress).unwrap();
    assert!(!report.is_complete());
    let skipped = &report.projects[0].skipped;
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0].image_id.to_string(), line["id"].as_str().unwrap());
    assert!(skipped[0].reason.contains("SHA-256"), "{}", skipped[0].reason);
    let doc = read_json(&out.join(DETECTION).join("annotations.json"));
    assert_eq!(doc["images"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn the_cli_converts_and_exits_by_completeness() {
    let (dir, archive) = fixture_archive().await;
    let out = dir.path().join("out");
    let o =
        cvarchive(&["convert", archive.to_str().unwrap(), "--to", "coco", "--out", out.to_str().unwrap()], &[]).await;
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.join(DETECTION).join("annotations.json").is_file());
    let o =
        cvarchive(&["convert", archive.to_str().unwrap(), "--to", "coco", "--out", out.to_str().unwrap()], &[]).await;
    assert_eq!(o.status.code(), Some(2), "existing project folders are refused");
    assert!(String::from_utf8_lossy(&o.stderr).contains("exists already"));
}

/// Issue 13: images only trained iterations hold, exported over a real socket from a generated
/// account, are in both outputs with their bytes, boxes and labels, marked as such.
#[tokio::test]
async fn images_only_iterations_hold_are_converted_and_marked() {
    let dir = tempfile::tempdir().unwrap();
    let (emu, archive) = exported_generated("projects=2,images=40,iteration_only=3,size=2000", dir.path(), "gen").await;
    let payload = payload(&archive);
    let coco_out = dir.path().join("coco");
    let coco = convert(
        &archive,
        &ConvertOptions { to: Target::Coco, out: coco_out.clone(), projects: vec![], force: false },
        &NoProgress,
    )
    .unwrap();
    let folders_out = dir.path().join("folders");
    let folders = convert(
        &archive,
        &ConvertOptions { to: Target::Folders, out: folders_out.clone(), projects: vec![], force: false },
        &NoProgress,
    )
    .unwrap();
    assert!(coco.is_complete() && folders.is_complete());
    let mut regions = 0;
    for p in emu.projects() {
        let lines = jsonl(&payload, &format!("projects/{p}/images.jsonl"));
        let only = only_in_iterations(&payload, p);
        assert_eq!(only.len(), 3, "{p}: the archive holds them");
        let workspace: std::collections::HashSet<String> = emu.image_ids(p).iter().map(Uuid::to_string).collect();
        let iterations = json(&payload, &format!("projects/{p}/iterations.json"));
        let trained = iterations[0]["id"].clone();

        let doc = read_json(&coco_out.join(p.to_string()).join("annotations.json"));
        let images = doc["images"].as_array().unwrap();
        assert_eq!(images.len(), lines.len());
        for image in images {
            let id = image["custom_vision_id"].as_str().unwrap();
            assert_eq!(image["workspace"], workspace.contains(id), "{id}");
            assert!(image["iterations"].is_array(), "{id}: the archive records it");
            if image["workspace"] == false {
                assert_eq!(image["iterations"], serde_json::json!([trained]), "{id}");
                let line = only.iter().find(|l| l["id"] == id).unwrap();
                let written = std::fs::read(
                    coco_out.join(p.to_string()).join("images").join(image["file_name"].as_str().unwrap()),
                )
                .unwrap();
                assert_eq!(hex::encode(Sha256::digest(&written)), line["sha256"].as_str().unwrap());
                let boxes =
                    doc["annotations"].as_array().unwrap().iter().filter(|a| a["image_id"] == image["id"]).count();
                assert_eq!(boxes, line["regions"].as_array().map_or(0, Vec::len), "{id}: its regions");
                regions += boxes;
            }
        }
        let report = coco.projects.iter().find(|r| r.id == p).unwrap();
        assert_eq!(report.only_in_iterations, 3);

        let labels = std::fs::read_to_string(folder_of(&folders_out, p).join("labels.csv")).unwrap();
        assert!(labels.starts_with("image_id,file,tags,width,height,sha256,workspace,iterations\n"));
        for line in &only {
            let id = line["id"].as_str().unwrap();
            let row = labels.lines().find(|l| l.starts_with(id)).unwrap_or_else(|| panic!("{id} in labels.csv"));
            assert!(row.ends_with(&format!(",false,{}", trained.as_str().unwrap())), "{row}");
            let file = row.split(',').nth(1).unwrap();
            assert!(!file.starts_with("untagged/"), "a tagged image is in its tag's folder: {row}");
            assert!(folder_of(&folders_out, p).join(file).is_file(), "{file}");
        }
        assert_eq!(labels.lines().filter(|l| l.contains(",false,")).count(), 3);
    }
    assert!(regions > 0, "the detection project's iteration-only images keep their boxes");
}

/// An archive written before images.jsonl said which iterations hold each image converts as
/// before: every image in the workspace, iterations unknown (null), labels.csv's old columns.
#[test]
fn an_archive_without_membership_converts_as_before() {
    let dir = tempfile::tempdir().unwrap();
    let old = crate::support::fixtures::write_good_bag(dir.path(), "old");
    let out = dir.path().join("coco");
    let report = convert(
        &old,
        &ConvertOptions { to: Target::Coco, out: out.clone(), projects: vec![], force: false },
        &NoProgress,
    )
    .unwrap();
    assert!(report.is_complete());
    assert_eq!(report.projects[0].only_in_iterations, 0);
    let doc = read_json(&out.join(crate::support::fixtures::PROJECT.to_string()).join("annotations.json"));
    let images = doc["images"].as_array().unwrap();
    assert_eq!(images.len(), 3);
    for image in images {
        assert_eq!(image["workspace"], true);
        assert_eq!(image["iterations"], Value::Null, "unknown, not empty");
    }
    let out = dir.path().join("folders");
    convert(
        &old,
        &ConvertOptions { to: Target::Folders, out: out.clone(), projects: vec![], force: false },
        &NoProgress,
    )
    .unwrap();
    let labels =
        std::fs::read_to_string(folder_of(&out, crate::support::fixtures::PROJECT).join("labels.csv")).unwrap();
    assert!(labels.starts_with("image_id,file,tags,width,height,sha256\n"), "{labels}");
    assert!(labels.lines().all(|l| l.split(',').count() == 6), "{labels}");
}

/// Issue 14 item 7: a bag of one project with these tags (id, name) and images (id, tag ids),
/// the listing repeating the first image's line when `repeat_first`.
fn tagged_bag(dir: &Path, tags: &[(Uuid, String)], images: &[(Uuid, Vec<Uuid>)], repeat_first: bool) -> PathBuf {
    use cvarchive::archive::layout::{self, sniff_extension};
    use cvarchive::archive::BagWriter;
    let path = dir.join("hostile.zip");
    let file = std::fs::OpenOptions::new().read(true).write(true).create_new(true).open(&path).unwrap();
    let mut w = BagWriter::new(file, &layout::bag_name_for(&path)).unwrap();
    let p = crate::support::fixtures::PROJECT;
    w.add_deflated(&layout::project_json(p), serde_json::json!({"id": p, "name": "hostile"}).to_string().as_bytes())
        .unwrap();
    let tag_list: Vec<Value> =
        tags.iter().map(|(id, name)| serde_json::json!({"id": id, "name": name, "imageCount": 1})).collect();
    w.add_deflated(&layout::tags_json(p), Value::from(tag_list).to_string().as_bytes()).unwrap();
    let mut listing = String::new();
    for (i, (id, tag_ids)) in images.iter().enumerate() {
        let bytes = crate::support::fixtures::image_bytes(i);
        let file = layout::image_file(p, *id, sniff_extension(&bytes));
        w.add_stored(&file, &bytes, crc32fast::hash(&bytes), Sha256::digest(&bytes).into()).unwrap();
        let tags: Vec<Value> = tag_ids
            .iter()
            .map(|t| serde_json::json!({"tagId": t, "tagName": tags.iter().find(|x| x.0 == *t).unwrap().1}))
            .collect();
        let line = serde_json::json!({
            "id": id, "width": 10, "height": 10, "file": file, "sha256": hex::encode(Sha256::digest(&bytes)),
            "size": bytes.len(), "taggingStatus": "Tagged", "tags": tags,
        });
        listing.push_str(&format!("{line}\n"));
        if i == 0 && repeat_first {
            listing.push_str(&format!("{line}\n"));
        }
    }
    w.add_deflated_from(&layout::images_jsonl(p), &mut listing.as_bytes()).unwrap();
    let account = serde_json::json!({
        "format": "cvarchive/1", "tool": {"name": "cvarchive", "version": "0.1.0"},
        "source": {"endpointHost": "westus.api.cognitive.microsoft.com", "apiVersion": "v3.3"},
        "complete": true, "projects": [{"id": p, "name": "hostile", "domainType": "Classification", "missing": []}],
        "missing": []
    });
    w.add_deflated(layout::account_json(), account.to_string().as_bytes()).unwrap();
    w.finish(&crate::support::fixtures::info()).unwrap();
    path
}

fn tag(n: u128) -> Uuid {
    Uuid::from_u128(0x7a90_0000_0000_0000_0000_0000_0000_0000 + n)
}

/// Folder name -> the image ids (file stems) it holds, for the project converted into `out`.
fn folders_of(out: &Path) -> BTreeMap<String, Vec<String>> {
    let project = folder_of(out, crate::support::fixtures::PROJECT);
    let mut folders = BTreeMap::new();
    for entry in std::fs::read_dir(&project).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            let mut images: Vec<String> = std::fs::read_dir(entry.path())
                .unwrap()
                .map(|f| f.unwrap().file_name().to_string_lossy().split('.').next().unwrap().to_owned())
                .collect();
            images.sort();
            folders.insert(entry.file_name().to_string_lossy().into_owned(), images);
        }
    }
    folders
}

fn convert_folders(archive: &Path, out: &Path) -> cvarchive::convert::Report {
    let opts = ConvertOptions { to: Target::Folders, out: out.to_path_buf(), projects: vec![], force: false };
    convert(archive, &opts, &NoProgress).unwrap_or_else(|e| panic!("convert fails: {e:#}"))
}

#[test]
fn tags_whose_names_collide_get_folders_of_their_own() {
    let dir = tempfile::tempdir().unwrap();
    // `dog`, a tag literally named `dog-<id prefix of the next>`, and the next, also `dog`,
    // whose clash suffix would make it that name; then the same three in the other order.
    let third = tag(3).simple().to_string();
    let tags = [(tag(1), "dog".to_owned()), (tag(2), format!("dog-{}", &third[..8])), (tag(3), "dog".to_owned())];
    let images: Vec<(Uuid, Vec<Uuid>)> = vec![
        (Uuid::from_u128(0xa1), vec![tag(2), tag(3)]),
        (Uuid::from_u128(0xa2), vec![tag(1)]),
        (Uuid::from_u128(0xa3), vec![tag(2)]),
    ];
    for (n, order) in [[0, 1, 2], [2, 0, 1]].into_iter().enumerate() {
        let tags: Vec<(Uuid, String)> = order.iter().map(|&i| tags[i].clone()).collect();
        let case = dir.path().join(n.to_string());
        std::fs::create_dir(&case).unwrap();
        let archive = tagged_bag(&case, &tags, &images, false);
        let out = case.join("folders");
        let report = convert_folders(&archive, &out);
        assert!(report.is_complete(), "{:?}", report.projects[0].skipped);
        let folders = folders_of(&out);
        assert_eq!(folders.len(), 3, "one folder per tag: {folders:?}");
        // Each folder holds exactly the images of one tag.
        for (t, _) in &tags {
            let mut want: Vec<String> =
                images.iter().filter(|(_, ts)| ts.contains(t)).map(|(id, _)| id.to_string()).collect();
            want.sort();
            assert!(folders.values().any(|held| *held == want), "tag {t}'s images {want:?}: {folders:?}");
        }
    }
}

#[test]
fn a_repeated_id_is_converted_once() {
    let dir = tempfile::tempdir().unwrap();
    let tags = vec![(tag(1), "cat".to_owned())];
    let images = vec![(Uuid::from_u128(0xa1), vec![tag(1)]), (Uuid::from_u128(0xa2), vec![tag(1)])];
    let archive = tagged_bag(dir.path(), &tags, &images, true);
    let out = dir.path().join("folders");
    let report = convert_folders(&archive, &out);
    assert_eq!(report.projects[0].images, 2);
    let labels =
        std::fs::read_to_string(folder_of(&out, crate::support::fixtures::PROJECT).join("labels.csv")).unwrap();
    assert_eq!(labels.matches(&Uuid::from_u128(0xa1).to_string()).count(), 2, "one line (id and file): {labels}");
    let coco = dir.path().join("coco");
    let opts = ConvertOptions { to: Target::Coco, out: coco.clone(), projects: vec![], force: false };
    let report = convert(&archive, &opts, &NoProgress).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(report.projects[0].images, 2);
    let doc = read_json(&coco.join(crate::support::fixtures::PROJECT.to_string()).join("annotations.json"));
    assert_eq!(doc["images"].as_array().unwrap().len(), 2);
}

#[test]
fn long_and_reserved_tag_names_make_valid_folder_names() {
    let dir = tempfile::tempdir().unwrap();
    let reserved = ["CON", "prn", "Aux.txt", "NUL", "COM1", "lpt9.csv"];
    let mut tags = vec![(tag(0), "猫".repeat(100))];
    tags.extend(reserved.iter().enumerate().map(|(i, n)| (tag(i as u128 + 1), n.to_string())));
    let images: Vec<(Uuid, Vec<Uuid>)> =
        tags.iter().enumerate().map(|(i, t)| (Uuid::from_u128(0xa0 + i as u128), vec![t.0])).collect();
    let archive = tagged_bag(dir.path(), &tags, &images, false);
    let out = dir.path().join("folders");
    let report = convert_folders(&archive, &out);
    assert!(report.is_complete());
    let folders = folders_of(&out);
    assert_eq!(folders.len(), tags.len(), "{folders:?}");
    for name in folders.keys() {
        assert!(name.len() <= 255, "{} bytes: {name}", name.len());
        let stem = name.split('.').next().unwrap().to_uppercase();
        assert!(!reserved.iter().any(|r| r.split('.').next().unwrap().to_uppercase() == stem), "{name} is reserved");
    }
    assert!(folders.keys().any(|n| n.starts_with("猫猫猫") && n.len() > 150), "the CJK name is kept, cut: {folders:?}");
}

#[test]
fn a_tag_name_that_is_a_formula_stays_text_in_labels_csv() {
    let dir = tempfile::tempdir().unwrap();
    let formulas = ["=HYPERLINK(\"http://evil.example\",\"x\")", "+1+1", "-2+3", "@SUM(1)", "\tx"];
    let tags: Vec<(Uuid, String)> = formulas.iter().enumerate().map(|(i, f)| (tag(i as u128), f.to_string())).collect();
    let all: Vec<Uuid> = tags.iter().map(|t| t.0).collect();
    let images = vec![(Uuid::from_u128(0xa1), all.clone()), (Uuid::from_u128(0xa2), vec![all[0]])];
    let archive = tagged_bag(dir.path(), &tags, &images, false);
    let out = dir.path().join("folders");
    convert_folders(&archive, &out);
    let labels =
        std::fs::read_to_string(folder_of(&out, crate::support::fixtures::PROJECT).join("labels.csv")).unwrap();
    let mut rows = csv_rows(&labels);
    rows.remove(0);
    assert_eq!(rows.len(), 2);
    for row in &rows {
        for cell in row.iter().flat_map(|c| c.split(';')) {
            assert!(!cell.starts_with(['=', '+', '-', '@', '\t', '\r']), "a live formula {cell:?} in {labels}");
        }
    }
    assert!(labels.contains("'=HYPERLINK"), "{labels}");
}

/// The cells of an RFC 4180 text (quoted fields with doubled quotes).
fn csv_rows(text: &str) -> Vec<Vec<String>> {
    let (mut rows, mut row, mut cell, mut quoted) = (Vec::new(), Vec::new(), String::new(), false);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                cell.push('"');
            }
            ('"', _) => quoted = !quoted,
            (',', false) => row.push(std::mem::take(&mut cell)),
            ('\n', false) => {
                row.push(std::mem::take(&mut cell));
                rows.push(std::mem::take(&mut row));
            }
            (c, _) => cell.push(c),
        }
    }
    rows
}
