#!/usr/bin/env python3
"""The way people export a Custom Vision project today, kept as the baseline of benchmark 2.

It follows Microsoft's migrate_project.py sample and the other published scripts: the official
Python SDK (azure-cognitiveservices-vision-customvision), get_tagged_images / get_untagged_images
with take=50, one requests.get per image, sequentially, each image written into a zip with its
SHA-256 beside it. It is deliberately the ordinary script, not an optimised one.

    VISION_TRAINING_KEY=... python export_sdk.py --endpoint URL --out baseline.zip

Prints one JSON line: {"projects": N, "images": N, "bytes": N, "seconds": S}.
"""

import argparse
import hashlib
import json
import os
import sys
import time
import zipfile

import requests
from azure.cognitiveservices.vision.customvision.training import CustomVisionTrainingClient
from msrest.authentication import ApiKeyCredentials

PAGE = 50  # what migrate_project.py and the SDK's own default use


def extension(data):
    if data[:2] == b"\xff\xd8":
        return "jpg"
    if data[:4] == b"\x89PNG":
        return "png"
    return "bin"


def export_images(trainer, project, list_page, tagged, archive, manifest, metadata):
    count = size = 0
    skip = 0
    while True:
        images = list_page(project.id, take=PAGE, skip=skip)
        if not images:
            break
        for image in images:
            response = requests.get(image.original_image_uri, timeout=60)
            response.raise_for_status()
            data = response.content
            name = "%s/images/%s.%s" % (project.id, image.id, extension(data))
            archive.writestr(name, data)
            manifest.append("%s  %s" % (hashlib.sha256(data).hexdigest(), name))
            record = image.as_dict()
            record["tagged"] = tagged
            record["file"] = name
            metadata.append(record)
            count += 1
            size += len(data)
        skip += PAGE
    return count, size


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    key = os.environ["VISION_TRAINING_KEY"]

    started = time.monotonic()
    trainer = CustomVisionTrainingClient(args.endpoint, ApiKeyCredentials(in_headers={"Training-key": key}))
    images = size = 0
    manifest = []
    projects = trainer.get_projects()
    with zipfile.ZipFile(args.out, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        for project in projects:
            metadata = []
            tags = trainer.get_tags(project.id)
            archive.writestr("%s/project.json" % project.id, json.dumps(project.as_dict(), default=str))
            archive.writestr("%s/tags.json" % project.id, json.dumps([t.as_dict() for t in tags], default=str))
            for list_page, tagged in ((trainer.get_tagged_images, True), (trainer.get_untagged_images, False)):
                n, b = export_images(trainer, project, list_page, tagged, archive, manifest, metadata)
                images += n
                size += b
            archive.writestr("%s/images.json" % project.id, json.dumps(metadata, default=str))
        archive.writestr("manifest-sha256.txt", "\n".join(manifest) + "\n")
    seconds = time.monotonic() - started
    print(json.dumps({"projects": len(projects), "images": images, "bytes": size, "seconds": seconds}))


if __name__ == "__main__":
    sys.exit(main())
