"""What the official Python SDK does against the emulator, one case per function.

Run as `python sdk_cases.py CASE ENDPOINT KEY API_VERSION` by test_sdk.py, in a subprocess whose
PYTHONPATH selects the SDK (3.0.0 speaks v3.3, 3.1.x speaks v3.4-preview: they cannot share one
site-packages). Every case raises AssertionError on a wrong answer; msrest raises on a body it
cannot deserialize, so "the SDK parses every response" is checked by calling each operation.
"""

import sys
import time

import requests
from azure.cognitiveservices.vision.customvision.training import CustomVisionTrainingClient
from azure.cognitiveservices.vision.customvision.training import models
from azure.cognitiveservices.vision.customvision.training.version import VERSION as SDK_VERSION
from msrest.authentication import ApiKeyCredentials

MAX_TAKE = 256
IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM")


def client_for(endpoint, key):
    return CustomVisionTrainingClient(endpoint, ApiKeyCredentials(in_headers={"Training-key": key}))


def assert_image_bytes(data, what):
    assert len(data) > 0, f"{what}: empty body"
    assert data.startswith(IMAGE_MAGIC), f"{what}: not an image, starts with {data[:8]!r}"


def all_pages(fetch, count):
    """Pages `fetch(take, skip)` by MAX_TAKE until a short page; checks it against `count`."""
    items, skip, pages = [], 0, 0
    while True:
        page = fetch(MAX_TAKE, skip)
        pages += 1
        assert len(page) <= MAX_TAKE, f"page of {len(page)} > take={MAX_TAKE}"
        items.extend(page)
        if len(page) < MAX_TAKE:
            break
        skip += MAX_TAKE
        assert pages < 1000, "paging does not end"
    ids = [i.id for i in items]
    assert len(set(ids)) == len(ids), "an image came back on two pages"
    assert len(items) == count, f"pages hold {len(items)} images, count says {count}"
    return items, pages


def projects_by_role(client):
    """The fixture account's projects by what they hold, found by looking, not by id."""
    roles = {}
    for p in client.get_projects():
        images = client.get_images(p.id, take=MAX_TAKE)
        if not images:
            roles.setdefault("empty", p)
        elif any(i.original_image_uri and not i.original_image_uri.startswith("http") for i in images):
            roles.setdefault("vnet", p)
        elif any(i.regions for i in images):
            roles.setdefault("detection", p)
        else:
            roles.setdefault("classification", p)
    missing = {"empty", "vnet", "detection", "classification"} - roles.keys()
    assert not missing, f"fixture account lacks projects of kind {sorted(missing)}"
    return roles


def trained_and_new(client, project_id):
    iterations = client.get_iterations(project_id)
    trained = [i for i in iterations if i.status == "Completed"]
    new = [i for i in iterations if i.status == "New"]
    return trained, new


# ---------------------------------------------------------------------------------------------
# Read cases: the fixture account, shared.


def case_projects_and_domains(client, em):
    projects = client.get_projects()
    assert len(projects) >= 4, f"fixture account has {len(projects)} projects"
    domains = {d.id: d for d in client.get_domains()}
    assert domains, "get_domains is empty"
    for d in domains.values():
        assert d.type in ("Classification", "ObjectDetection"), d.type
    for p in projects:
        one = client.get_project(p.id)
        assert (one.id, one.name) == (p.id, p.name)
        assert one.created is not None and one.last_modified is not None
        assert one.settings.domain_id in domains, f"project {p.name}: domain {one.settings.domain_id} not in get_domains"


def case_tags(client, em):
    seen = 0
    for p in client.get_projects():
        for tag in client.get_tags(p.id):
            one = client.get_tag(p.id, tag.id)
            assert (one.id, one.name, one.type) == (tag.id, tag.name, tag.type)
            assert isinstance(one.image_count, int) and one.image_count >= 0
            seen += 1
    assert seen > 0, "no project has tags"


def case_iterations_performance_exports(client, em):
    roles = projects_by_role(client)
    published = 0
    for role in ("classification", "detection"):
        project = roles[role]
        trained, new = trained_and_new(client, project.id)
        assert trained, f"{role}: no Completed iteration"
        for it in client.get_iterations(project.id):
            one = client.get_iteration(project.id, it.id)
            assert (one.id, one.name, one.status) == (it.id, it.name, it.status)
            assert one.project_id == project.id
        for it in trained:
            published += bool(it.publish_name)
            perf = client.get_iteration_performance(project.id, it.id)
            assert perf.per_tag_performance, f"{role}: no per-tag performance"
            assert 0.0 <= perf.precision <= 1.0 and 0.0 <= perf.recall <= 1.0
            perf_t = client.get_iteration_performance(project.id, it.id, threshold=0.5, overlap_threshold=0.3)
            assert perf_t.per_tag_performance is not None
            count = client.get_image_performance_count(project.id, it.id)
            images = client.get_image_performances(project.id, it.id, take=MAX_TAKE)
            assert count == len(images) > 0, f"{role}: count {count}, listed {len(images)}"
            for ip in images:
                assert ip.image_uri and ip.width > 0 and ip.height > 0
            for export in client.get_exports(project.id, it.id):
                assert export.platform and export.status in ("Exporting", "Failed", "Done")
                if export.status == "Done":
                    assert export.download_uri, "a Done export has a downloadUri"
    assert published > 0, "no published Completed iteration"
    _, new = trained_and_new(client, roles["classification"].id)
    assert new, "classification project has no New iteration"


def case_images_and_counts(client, em):
    roles = projects_by_role(client)
    for role, project in roles.items():
        pid = project.id
        tagged_count = client.get_tagged_image_count(pid)
        untagged_count = client.get_untagged_image_count(pid)
        total = client.get_image_count(pid)
        assert total == tagged_count + untagged_count, f"{role}: {total} != {tagged_count} + {untagged_count}"
        tagged = client.get_tagged_images(pid, take=MAX_TAKE)
        untagged = client.get_untagged_images(pid, take=MAX_TAKE)
        everything = client.get_images(pid, take=MAX_TAKE)
        assert len(tagged) == tagged_count and len(untagged) == untagged_count and len(everything) == total
        assert {i.id for i in tagged} | {i.id for i in untagged} == {i.id for i in everything}
        for image in untagged:
            assert not image.tags and not image.regions, f"{role}: untagged image {image.id} has tags"
        for image in tagged:
            assert image.tags or image.regions, f"{role}: tagged image {image.id} has none"
            assert image.created is not None and image.width > 0 and image.height > 0
        if everything:
            wanted = [i.id for i in everything[:3]]
            by_ids = client.get_images_by_ids(pid, image_ids=wanted)
            assert sorted(i.id for i in by_ids) == sorted(wanted)
        if role == "empty":
            assert total == 0 and not everything
        if role == "detection":
            regions = [r for i in tagged for r in (i.regions or [])]
            assert regions, "detection project has no regions"
            for r in regions:
                assert r.region_id and r.tag_id
                assert 0.0 <= r.left <= 1.0 and 0.0 <= r.top <= 1.0 and 0.0 < r.width <= 1.0 and 0.0 < r.height <= 1.0
        if role == "classification":
            tag_ids = [t.id for t in client.get_tags(pid)]
            one_tag = client.get_tagged_images(pid, tag_ids=tag_ids[:1], take=MAX_TAKE)
            assert one_tag and all(any(t.tag_id == tag_ids[0] for t in i.tags) for i in one_tag)
            assert client.get_tagged_image_count(pid, tag_ids=tag_ids[:1]) == len(one_tag)


def case_downloads_and_artifact(client, em):
    roles = projects_by_role(client)
    for image in client.get_tagged_images(roles["classification"].id, take=5):
        assert image.original_image_uri.startswith(em.endpoint), image.original_image_uri
        response = requests.get(image.original_image_uri, timeout=30)
        assert response.status_code == 200, f"GET {image.original_image_uri}: {response.status_code}"
        assert_image_bytes(response.content, f"original of {image.id}")
    vnet = roles["vnet"]
    relative = [i for i in client.get_images(vnet.id, take=MAX_TAKE) if not i.original_image_uri.startswith("http")]
    assert relative, "VNET project has no relative originalImageUri"
    for image in relative:
        data = b"".join(client.get_artifact(vnet.id, image.original_image_uri))
        assert_image_bytes(data, f"artifact {image.original_image_uri}")


def case_query_predictions(client, em):
    project = projects_by_role(client)["classification"]
    token = models.PredictionQueryToken(order_by="Newest", max_count=1)
    ids, pages = [], 0
    while True:
        result = client.query_predictions(project.id, token)
        pages += 1
        for stored in result.results:
            assert stored.id and stored.project == project.id and stored.predictions
            ids.append(stored.id)
        token = result.token
        if not token or not token.continuation:
            break
        assert pages < 100, "the continuation token never ends"
    assert len(ids) >= 2, f"only {len(ids)} stored predictions"
    assert len(set(ids)) == len(ids), "a stored prediction came back twice"
    assert pages >= 2, f"maxCount=1 should page, got {pages} page for {len(ids)} results"


def case_wrong_key(client, em):
    bad = client_for(em.endpoint, "not-the-key")
    try:
        bad.get_projects()
    except models.CustomVisionErrorException as e:
        assert e.response.status_code == 401, f"wrong key answered {e.response.status_code}"
        assert str(e), "the error says nothing"
    else:
        raise AssertionError("a wrong key was accepted")


# ---------------------------------------------------------------------------------------------
# Destructive cases: each gets an emulator of its own.


def case_deletes(client, em):
    roles = projects_by_role(client)
    pid = roles["classification"].id

    images = client.get_images(pid, take=MAX_TAKE)
    victim = images[0].id
    client.delete_images(pid, image_ids=[victim])
    assert client.get_image_count(pid) == len(images) - 1
    assert victim not in {i.id for i in client.get_images(pid, take=MAX_TAKE)}

    tag = client.get_tags(pid)[0]
    client.delete_tag(pid, tag.id)
    assert tag.id not in {t.id for t in client.get_tags(pid)}

    trained, _ = trained_and_new(client, pid)
    published = [i for i in trained if i.publish_name]
    assert published, "no published iteration to unpublish"
    client.unpublish_iteration(pid, published[0].id)
    client.delete_iteration(pid, published[0].id)
    assert published[0].id not in {i.id for i in client.get_iterations(pid)}

    stored = client.query_predictions(pid, models.PredictionQueryToken(max_count=100)).results
    client.delete_prediction(pid, [stored[0].id])
    left = client.query_predictions(pid, models.PredictionQueryToken(max_count=100)).results
    assert stored[0].id not in {s.id for s in left}

    client.delete_images(pid, all_images=True, all_iterations=True)
    deadline = time.monotonic() + 10
    while client.get_image_count(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert client.get_image_count(pid) == 0, "allImages left images behind"

    for project in (roles["empty"], roles["classification"]):
        client.delete_project(project.id)
        assert project.id not in {p.id for p in client.get_projects()}
        try:
            client.get_project(project.id)
        except models.CustomVisionErrorException as e:
            assert e.response.status_code == 404
        else:
            raise AssertionError("a deleted project is still there")


# ---------------------------------------------------------------------------------------------
# Generated account: paging.


def case_paging_generated(client, em):
    projects = client.get_projects()
    assert projects, "generated account has no projects"
    for project in projects:
        tagged, pages = all_pages(
            lambda take, skip: client.get_tagged_images(project.id, take=take, skip=skip),
            client.get_tagged_image_count(project.id),
        )
        everything, everything_pages = all_pages(
            lambda take, skip: client.get_images(project.id, take=take, skip=skip),
            client.get_image_count(project.id),
        )
        assert len(everything) == 600, f"project {project.name}: {len(everything)} images, generated 600"
        assert everything_pages == 3, f"600 images in {everything_pages} pages of {MAX_TAKE}"
        assert len(tagged) > MAX_TAKE and pages >= 2, f"{len(tagged)} tagged images in {pages} pages"
        oldest, _ = all_pages(
            lambda take, skip: client.get_tagged_images(project.id, order_by="Oldest", take=take, skip=skip),
            len(tagged),
        )
        assert {i.id for i in oldest} == {i.id for i in tagged}
        if len({i.created for i in tagged}) == len(tagged):
            assert [i.id for i in oldest] == [i.id for i in reversed(tagged)], "orderBy=Oldest is not Newest reversed"
        response = requests.get(tagged[-1].original_image_uri, timeout=30)
        assert response.status_code == 200
        assert_image_bytes(response.content, f"original of {tagged[-1].id}")


CASES = {name[len("case_"):]: fn for name, fn in globals().items() if name.startswith("case_")}


class Endpoint:
    def __init__(self, endpoint, key):
        self.endpoint, self.key = endpoint.rstrip("/"), key


def main(argv):
    case, endpoint, key, api_version = argv[1:5]
    client = client_for(endpoint, key)
    base_url = client.config.base_url
    assert f"/customvision/{api_version}/training" in base_url, f"SDK {SDK_VERSION} calls {base_url}, expected {api_version}"
    CASES[case](client, Endpoint(endpoint, key))
    print(f"ok: {case} with SDK {SDK_VERSION} ({api_version})")


if __name__ == "__main__":
    main(sys.argv)
