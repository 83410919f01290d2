"""The COCO output of `cvarchive convert` loads with pycocotools, and its boxes are the archived
regions in pixels (left * width, top * height, width * width, height * height)."""

import json
import os
import subprocess
import zipfile
from pathlib import Path

from pycocotools.coco import COCO

DETECTION = "dc77de6a-c75e-4bb4-be00-87e8d4320d4d"


def run(*args):
    done = subprocess.run([os.environ["CVARCHIVE_BIN"], *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done


def archived_images(archive, project):
    with zipfile.ZipFile(archive) as z:
        name = next(n for n in z.namelist() if n.endswith(f"data/projects/{project}/images.jsonl"))
        return [json.loads(line) for line in z.read(name).decode().splitlines()]


def test_coco_output_of_the_demo_account_loads_with_pycocotools(tmp_path: Path):
    archive = tmp_path / "demo.zip"
    run("export", "--demo", "--out", str(archive), "--no-progress")
    out = tmp_path / "coco"
    run("convert", str(archive), "--to", "coco", "--out", str(out))

    loaded = 0
    for project_dir in sorted(p for p in out.iterdir() if p.is_dir()):
        coco = COCO(str(project_dir / "annotations.json"))
        for image in coco.loadImgs(coco.getImgIds()):
            assert (project_dir / "images" / image["file_name"]).is_file()
        loaded += 1
    assert loaded == 4

    coco = COCO(str(out / DETECTION / "annotations.json"))
    cats = {c["id"]: c["name"] for c in coco.loadCats(coco.getCatIds())}
    assert sorted(cats.values()) == ["car", "person", "tree"]
    by_cv_id = {i["custom_vision_id"]: i for i in coco.loadImgs(coco.getImgIds())}
    regions = 0
    for line in archived_images(archive, DETECTION):
        image = by_cv_id[line["id"]]
        assert (image["width"], image["height"]) == (line["width"], line["height"])
        anns = {a["custom_vision_region_id"]: a for a in coco.loadAnns(coco.getAnnIds(imgIds=[image["id"]]))}
        for r in line.get("regions") or []:
            ann = anns[r["regionId"]]
            w, h = line["width"], line["height"]
            want = [r["left"] * w, r["top"] * h, r["width"] * w, r["height"] * h]
            assert all(abs(a - b) < 1e-9 for a, b in zip(ann["bbox"], want)), (ann["bbox"], want)
            assert cats[ann["category_id"]] == next(t["tagName"] for t in line["tags"] if t["tagId"] == r["tagId"])
            regions += 1
        # pycocotools can turn every annotation into a mask the size of its image.
        for ann in anns.values():
            assert coco.annToMask(ann).shape == (image["height"], image["width"])
    assert regions == 3


CLASSIFICATION = "e532f7f9-9827-476d-9159-4b592bf2ea6f"
ONLY_IN_ITERATION = "0c7e2a51-8f3b-4d6e-9a1c-5b2f7d9e4a60"


def test_images_only_iterations_hold_load_as_images_marked_so(tmp_path: Path):
    """The demo's image deleted from the workspace, that its trained iteration still holds, is an
    ordinary COCO image with two extra keys, which pycocotools loads and leaves alone."""
    archive = tmp_path / "demo.zip"
    run("export", "--demo", "--out", str(archive), "--no-progress")
    out = tmp_path / "coco"
    run("convert", str(archive), "--to", "coco", "--out", str(out))
    coco = COCO(str(out / CLASSIFICATION / "annotations.json"))
    images = coco.loadImgs(coco.getImgIds())
    lines = {line["id"]: line for line in archived_images(archive, CLASSIFICATION)}
    assert len(images) == len(lines) == 8
    for image in images:
        line = lines[image["custom_vision_id"]]
        assert image["workspace"] is line["workspace"]
        assert image["iterations"] == line["iterations"]
        assert (out / CLASSIFICATION / "images" / image["file_name"]).is_file()
    only = [i for i in images if not i["workspace"]]
    assert [i["custom_vision_id"] for i in only] == [ONLY_IN_ITERATION]
    assert only[0]["iterations"] == ["661c64d6-e4ab-46a0-96c9-b06934fac218"]
