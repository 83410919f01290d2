"""Raw HTTP to every operation the emulator serves; every JSON body validates against Training-v3.3.json.

The response schema is looked up from the request itself (method + path -> operation -> status,
or `default` for errors), so a wrong status is caught as surely as a wrong body. Swagger 2.0 is
turned into JSON Schema: `$ref`s resolve into `definitions`, `x-nullable: true` admits null, and,
stricter than the spec, objects with named properties admit no others, so a misspelt field fails.
"""

import copy
import re
import time
import uuid

import jsonschema
import pytest
import requests

BASE = "/customvision/v3.3/training"
IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM")
COVERED = set()


def to_json_schema(node):
    """Swagger 2.0 schema -> JSON Schema (draft 7)."""
    if isinstance(node, list):
        return [to_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    node = {k: to_json_schema(v) for k, v in node.items() if k not in ("example", "x-ms-enum", "readOnly")}
    nullable = node.pop("x-nullable", False)
    if node.get("type") == "object" and "properties" in node and "additionalProperties" not in node:
        node["additionalProperties"] = False
    if nullable:
        if "$ref" in node:
            node = {"$ref": node["$ref"]}
        return {"anyOf": [{"type": "null"}, node]}
    return node


class Spec:
    """Operations of the spec by method and path, and a validator per response schema."""

    def __init__(self, raw):
        self.definitions = to_json_schema(raw["definitions"])
        self.operations = []
        for template, ops in raw["paths"].items():
            literal = template.count("/") - template.count("{")
            pattern = re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$")
            for method, op in ops.items():
                if method != "parameters":
                    self.operations.append((-literal, method.upper(), pattern, op))
        self.operations.sort(key=lambda o: o[0])
        checker = jsonschema.FormatChecker(formats=())
        checker.checks("uuid", raises=ValueError)(lambda v: not isinstance(v, str) or uuid.UUID(v) is not None)
        self.checker = checker

    def operation(self, method, path):
        for _, m, pattern, op in self.operations:
            if m == method and pattern.match(path):
                return op
        raise AssertionError(f"{method} {path} is no operation of the spec")

    def check(self, response):
        """Validates one response against its operation's schema; returns (operationId, status)."""
        request = response.request
        path = requests.utils.urlparse(request.url).path
        assert path.startswith(BASE), path
        op = self.operation(request.method, path[len(BASE):])
        status = str(response.status_code)
        declared = op["responses"].get(status)
        if declared is None:
            assert not status.startswith("2"), f"{op['operationId']}: status {status} is not declared, only {sorted(op['responses'])}"
            declared = op["responses"]["default"]
        schema = declared.get("schema")
        where = f"{request.method} {request.url} -> {status} ({op['operationId']})"
        if schema is None:
            assert response.content == b"", f"{where}: declared no body, sent {response.content[:200]!r}"
        elif schema.get("type") == "file":
            assert response.content.startswith(IMAGE_MAGIC), f"{where}: not image bytes: {response.content[:16]!r}"
        else:
            assert response.headers.get("content-type", "").startswith("application/json"), f"{where}: {response.headers.get('content-type')}"
            violations = self.violations(schema, response.json())
            assert not violations, f"{where}: {len(violations)} schema violations:\n" + "\n".join(violations[:20])
        COVERED.add((op["operationId"], status))
        return op["operationId"], status

    def violations(self, schema, body):
        """Every way `body` breaks the (Swagger) `schema`, as readable lines."""
        full = {"definitions": self.definitions, **to_json_schema(schema)}
        errors = sorted(jsonschema.Draft7Validator(full, format_checker=self.checker).iter_errors(body), key=str)
        return [f"  at {'/'.join(map(str, e.absolute_path)) or '$'}: {e.message[:300]}" for e in errors]

    def response_schema(self, operation_id, status):
        for _, _, _, op in self.operations:
            if op["operationId"] == operation_id:
                return op["responses"][status].get("schema")
        raise KeyError(operation_id)


@pytest.fixture(scope="module")
def api(spec, emulator):
    return Api(Spec(spec), emulator)


class Api:
    """requests with the key, every answer validated against the spec."""

    def __init__(self, spec, em):
        self.spec, self.em = spec, em
        self.session = requests.Session()
        self.session.headers.update({"Training-Key": em.key, "Accept": "application/json"})

    def call(self, method, path, status, **kwargs):
        response = self.session.request(method, self.em.url(path), timeout=30, **kwargs)
        assert response.status_code == status, f"{method} {path}: {response.status_code}, wanted {status}: {response.text[:500]}"
        self.spec.check(response)
        return response

    def get(self, path, status=200, **kwargs):
        return self.call("GET", path, status, **kwargs)

    def roles(self):
        """The fixture projects by what they hold (ids are not assumed)."""
        roles = {}
        for project in self.get("/projects").json():
            images = self.get(f"/projects/{project['id']}/images", params={"take": 256}).json()
            if not images:
                role = "empty"
            elif any(not i["originalImageUri"].startswith("http") for i in images):
                role = "vnet"
            elif any(i.get("regions") for i in images):
                role = "detection"
            else:
                role = "classification"
            roles.setdefault(role, project)
        assert len(roles) == 4, f"fixture roles found: {sorted(roles)}"
        return roles


def test_the_converted_schema_accepts_the_spec_and_real_answers_and_rejects_drift(spec):
    """The converter itself: v3.3 examples and real v3.3 traffic pass, drift does not."""
    import json
    from conftest import spec_dir

    checked = Spec(spec)
    for example in sorted((spec_dir() / "examples" / "v3.3").glob("*.json")):
        op = example.stem
        for status, response in json.loads(example.read_text(encoding="utf-8"))["responses"].items():
            schema = checked.response_schema(op, status)
            if schema and schema.get("type") != "file":
                assert not checked.violations(schema, response["body"]), (example.name, checked.violations(schema, response["body"]))
    recorded = json.loads((spec_dir() / "recordings" / "GetTaggedImages.json").read_text(encoding="utf-8"))
    images = json.loads(recorded["Entries"][0]["ResponseBody"])
    images_schema = checked.response_schema("GetTaggedImages", "200")
    assert not checked.violations(images_schema, images)
    drifted = copy.deepcopy(images)
    drifted[0]["tags"][0]["tagname"] = drifted[0]["tags"][0].pop("tagName")
    assert any("tagname" in v for v in checked.violations(images_schema, drifted))
    drifted = copy.deepcopy(images)
    drifted[0]["id"] = "not-a-uuid"
    assert checked.violations(images_schema, drifted)
    drifted = copy.deepcopy(images)
    drifted[0]["tags"] = None  # x-nullable: allowed
    drifted[0]["width"] = None  # not nullable: refused
    assert [v for v in checked.violations(images_schema, drifted) if "width" in v or "/0" in v]
    error = checked.response_schema("GetProject", "default")
    assert not checked.violations(error, {"code": "NotFoundProject", "message": "m"})
    assert checked.violations(error, {"code": "NotFoundProject"})


def test_projects_domains_tags(api):
    for domain in api.get("/domains").json():
        api.get(f"/domains/{domain['id']}")
    for project in api.get("/projects").json():
        pid = project["id"]
        api.get(f"/projects/{pid}")
        for tag in api.get(f"/projects/{pid}/tags").json():
            api.get(f"/projects/{pid}/tags/{tag['id']}")


def test_images_and_counts(api):
    for project in api.get("/projects").json():
        pid = project["id"]
        for kind in ("tagged", "untagged"):
            listed = api.get(f"/projects/{pid}/images/{kind}", params={"take": 256, "skip": 0, "orderBy": "Oldest"}).json()
            assert int(api.get(f"/projects/{pid}/images/{kind}/count").text.strip('"')) == len(listed)
        images = api.get(f"/projects/{pid}/images", params={"take": 256, "taggingStatus": "All"}).json()
        assert int(api.get(f"/projects/{pid}/images/count").text.strip('"')) == len(images)
        if images:
            ids = ",".join(i["id"] for i in images[:2])
            assert len(api.get(f"/projects/{pid}/images/id", params={"imageIds": ids}).json()) == min(2, len(images))


def test_iterations_performance_exports(api):
    for project in api.get("/projects").json():
        pid = project["id"]
        for it in api.get(f"/projects/{pid}/iterations").json():
            iid = it["id"]
            api.get(f"/projects/{pid}/iterations/{iid}")
            if it["status"] == "Completed":
                api.get(f"/projects/{pid}/iterations/{iid}/performance", params={"threshold": 0.5, "overlapThreshold": 0.3})
                api.get(f"/projects/{pid}/iterations/{iid}/performance/images", params={"take": 256})
                api.get(f"/projects/{pid}/iterations/{iid}/performance/images/count")
                api.get(f"/projects/{pid}/iterations/{iid}/export")
            else:
                # Untrained: the service answers with an error body, never a made-up performance.
                r = api.session.get(api.em.url(f"/projects/{pid}/iterations/{iid}/performance"), timeout=30)
                assert r.status_code in (400, 404), f"performance of a {it['status']} iteration: {r.status_code}"
                api.spec.check(r)


def test_artifact_and_predictions(api):
    roles = api.roles()
    vnet = roles["vnet"]["id"]
    for image in api.get(f"/projects/{vnet}/images", params={"take": 256}).json():
        if not image["originalImageUri"].startswith("http"):
            r = api.get(f"/projects/{vnet}/artifacts", params={"path": image["originalImageUri"]})
            assert r.headers.get("content-type", "").startswith("application/octet-stream")
    pid = roles["classification"]["id"]
    token = {"maxCount": 1, "orderBy": "Newest"}
    for _ in range(100):
        page = api.call("POST", f"/projects/{pid}/predictions/query", 200, json=token).json()
        token = page["token"]
        if not token or not token.get("continuation"):
            break
    else:
        pytest.fail("QueryPredictions never ends")


def test_error_answers(api):
    missing = str(uuid.uuid4())
    pid = api.roles()["classification"]["id"]
    it = api.get(f"/projects/{pid}/iterations").json()[0]["id"]
    cases = [
        (f"/projects/{missing}", 404, "NotFoundProject"),
        (f"/projects/{missing}/images", 404, "NotFoundProject"),
        (f"/projects/{pid}/tags/{missing}", 404, "NotFoundTag"),
        (f"/projects/{pid}/iterations/{missing}", 404, "NotFoundIteration"),
        (f"/domains/{missing}", 404, "NotFoundDomain"),
    ]
    for path, status, code in cases:
        body = api.get(path, status).json()
        assert body["code"] == code, f"GET {path}: code {body['code']}, wanted {code}"
    for path in (f"/projects/{pid}/images/tagged", f"/projects/{pid}/images", f"/projects/{pid}/iterations/{it}/performance/images"):
        body = api.get(path, 400, params={"take": 257}).json()
        assert body["code"].startswith("BadRequest"), body
    r = requests.get(api.em.url("/projects"), headers={"Training-Key": "wrong"}, timeout=30)
    assert r.status_code == 401, r.status_code
    body = r.json()
    assert (body.get("code") and body.get("message")) or (body.get("error", {}).get("message")), body


def test_deletes(spec, fresh_emulator):
    api = Api(Spec(spec), fresh_emulator)
    roles = api.roles()
    pid = roles["classification"]["id"]
    images = api.get(f"/projects/{pid}/images", params={"take": 256}).json()
    api.call("DELETE", f"/projects/{pid}/images", 204, params={"imageIds": images[0]["id"]})
    tag = api.get(f"/projects/{pid}/tags").json()[0]
    api.call("DELETE", f"/projects/{pid}/tags/{tag['id']}", 204)
    api.get(f"/projects/{pid}/tags/{tag['id']}", 404)
    published = [i for i in api.get(f"/projects/{pid}/iterations").json() if i.get("publishName")]
    assert published, "no published iteration"
    iid = published[0]["id"]
    api.call("DELETE", f"/projects/{pid}/iterations/{iid}/publish", 204)
    api.call("DELETE", f"/projects/{pid}/iterations/{iid}", 204)
    api.get(f"/projects/{pid}/iterations/{iid}", 404)
    stored = api.call("POST", f"/projects/{pid}/predictions/query", 200, json={"maxCount": 100}).json()["results"]
    api.call("DELETE", f"/projects/{pid}/predictions", 204, params={"ids": stored[0]["id"]})
    api.call("DELETE", f"/projects/{pid}/images", 202, params={"allImages": "true"})
    deadline = time.monotonic() + 10
    while int(api.get(f"/projects/{pid}/images/count").text.strip('"')) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert api.get(f"/projects/{pid}/images/count").json() == 0
    for project in (roles["empty"], roles["classification"]):
        api.call("DELETE", f"/projects/{project['id']}", 204)
        api.get(f"/projects/{project['id']}", 404)


def test_every_served_operation_was_validated():
    wanted = {
        ("GetDomains", "200"), ("GetDomain", "200"), ("GetProjects", "200"), ("GetProject", "200"),
        ("GetTags", "200"), ("GetTag", "200"), ("GetIterations", "200"), ("GetIteration", "200"),
        ("GetIterationPerformance", "200"), ("GetImagePerformances", "200"), ("GetImagePerformanceCount", "200"),
        ("GetExports", "200"), ("GetTaggedImages", "200"), ("GetUntaggedImages", "200"),
        ("GetTaggedImageCount", "200"), ("GetUntaggedImageCount", "200"), ("GetImages", "200"),
        ("GetImageCount", "200"), ("GetImagesByIds", "200"), ("GetArtifact", "200"), ("QueryPredictions", "200"),
        ("GetProject", "404"), ("GetTag", "404"), ("GetIteration", "404"), ("GetDomain", "404"),
        ("GetTaggedImages", "400"), ("GetImages", "400"), ("GetImagePerformances", "400"),
        ("DeleteImages", "204"), ("DeleteImages", "202"), ("DeleteTag", "204"), ("UnpublishIteration", "204"),
        ("DeleteIteration", "204"), ("DeletePrediction", "204"), ("DeleteProject", "204"),
    }
    assert not wanted - COVERED, f"never validated: {sorted(wanted - COVERED)}"
