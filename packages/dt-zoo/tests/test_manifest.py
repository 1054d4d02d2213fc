import copy
import json
from importlib import resources

import pytest

import dt_zoo
from dt_zoo import ZooError, dump_manifest, parse_manifest


@pytest.fixture
def data():
    return json.loads((resources.files("dt_zoo") / "manifest.json").read_text())


def test_round_trip_and_the_committed_file_is_canonical(data):
    manifest = parse_manifest(data)
    text = dump_manifest(manifest)
    assert parse_manifest(json.loads(text)) == manifest
    assert text == (resources.files("dt_zoo") / "manifest.json").read_text()


def test_load_manifest_reads_a_file(tmp_path, data):
    path = tmp_path / "m.json"
    path.write_text(json.dumps(data))
    assert dt_zoo.load_manifest(path) == dt_zoo.default_manifest()


def _error(data, tmp_path) -> str:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ZooError) as err:
        dt_zoo.load_manifest(path)
    assert "\n" not in str(err.value)
    return str(err.value).removeprefix(f"invalid zoo manifest {path}: ")


@pytest.mark.parametrize(
    "edit, problem",
    [
        (
            lambda e: e[3]["weights"].update(sha256="abc"),
            "$.entries[3].weights.sha256: must be 64 hex digits (lower case), got 'abc'",
        ),
        (
            lambda e: e[3]["weights"].update(urls=["https://ok/x.pkl", "dl.fbaipublicfiles.com/x.pkl"]),
            "$.entries[3].weights.urls[1]: must be an http(s):// or file:// URL, "
            "got 'dl.fbaipublicfiles.com/x.pkl'",
        ),
        (
            lambda e: e[3]["weights"].update(sha265=None),
            "$.entries[3].weights.sha265: unknown key (did you mean 'sha256'?); "
            "allowed: urls, sha256, md5_prefix, size",
        ),
        (
            lambda e: e[3].update(task="detectoin"),
            "$.entries[3].task: expected one of 'detection', 'proposals', 'instance-segmentation', "
            "'keypoints', 'panoptic-segmentation', 'backbone', got str 'detectoin' "
            "(did you mean 'detection'?)",
        ),
        (
            lambda e: e[3]["metrics"].update(box_ap="40"),
            "$.entries[3].metrics.box_ap: expected float, got str '40'",
        ),
        (lambda e: e[3]["metrics"].update(box_ap=-1), "$.entries[3].metrics.box_ap: must be >= 0, got -1.0"),
        (lambda e: e[3].pop("weights"), "$.entries[3].weights: missing required key"),
        (lambda e: e[5].update(name=e[2]["name"]), "$.entries[5].name: duplicate of $.entries[2].name"),
    ],
)
def test_malformed_entry_is_reported_at_its_path(data, tmp_path, edit, problem):
    bad = copy.deepcopy(data)
    edit(bad["entries"])
    assert _error(bad, tmp_path) == problem


def test_every_problem_is_on_the_one_line(data, tmp_path):
    bad = copy.deepcopy(data)
    bad["entries"][0]["weights"]["size"] = 0
    bad["entries"][2]["metrics"]["pq"] = "high"
    assert _error(bad, tmp_path) == (
        "$.entries[0].weights.size: must be > 0, got 0; "
        "$.entries[2].metrics.pq: expected float, got str 'high'"
    )


def test_unknown_version(data, tmp_path):
    assert _error({**data, "version": 2}, tmp_path) == "$.version: must be one of [1], got 2"


def test_unreadable_manifest_files(tmp_path):
    with pytest.raises(ZooError, match="^zoo manifest .*nope.json does not exist$"):
        dt_zoo.load_manifest(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("{version: 1")
    with pytest.raises(
        ZooError, match="^invalid zoo manifest .*bad.json: not JSON \\(Expecting property name"
    ):
        dt_zoo.load_manifest(tmp_path / "bad.json")
