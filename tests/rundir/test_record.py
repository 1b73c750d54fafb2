"""metrics.json: schema, statuses and atomic writes."""

import json

import pytest

from autoencoders.rundir.record import RunRecord, read_record, write_json_atomic


def test_schema_and_lifecycle(tmp_path):
    record = RunRecord(tmp_path, ["model=conv"], torch_threads=2)
    saved = read_record(tmp_path)
    assert saved["status"] == "running" and saved["overrides"] == ["model=conv"]
    assert set(saved) == {
        "schema_version",
        "status",
        "metrics",
        "data",
        "model",
        "overrides",
        "resumes",
        "error",
        "attempt",
        "provenance",
    }
    assert saved["resumes"] == []
    provenance = saved["provenance"]
    assert provenance["torch_threads"] == 2 and provenance["versions"]["torch"]
    assert {"command", "git_commit", "started", "finished", "run_dir"} <= set(provenance)
    record.finish("completed", metrics={"test/mse": 0.01})
    saved = read_record(tmp_path)
    assert saved["status"] == "completed" and saved["metrics"] == {"test/mse": 0.01}
    assert saved["provenance"]["finished"] and "attempt" not in saved  # the attempt ended


def test_failure_keeps_the_error(tmp_path):
    record = RunRecord(tmp_path, [], torch_threads=1)
    record.finish("failed", error=ValueError("bad value"), traceback_text="Traceback ...")
    assert read_record(tmp_path)["error"] == {
        "type": "ValueError",
        "message": "bad value",
        "traceback": "Traceback ...",
    }
    with pytest.raises(ValueError, match="unknown run status"):
        record.finish("exploded")


def test_atomic_write_leaves_old_file_when_serialisation_fails(tmp_path):
    path = tmp_path / "metrics.json"
    write_json_atomic(path, {"status": "running"})

    class Unserialisable:
        def __str__(self):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        write_json_atomic(path, {"status": Unserialisable()})
    assert json.loads(path.read_text()) == {"status": "running"}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # no temp file left behind


def test_a_record_names_its_schema_version_and_older_ones_still_read(tmp_path):
    from autoencoders.rundir.record import SCHEMA_VERSION

    RunRecord(tmp_path, ["model=vae"], torch_threads=1)
    assert json.loads((tmp_path / "metrics.json").read_text())["schema_version"] == SCHEMA_VERSION == 2
    old = tmp_path / "old"
    old.mkdir()
    (old / "metrics.json").write_text(json.dumps({"status": "completed", "metrics": {"test/mse": 0.5}}))
    assert read_record(old)["metrics"] == {"test/mse": 0.5}  # no schema_version: version 1


def test_a_record_of_a_newer_layout_is_refused_and_left_alone(tmp_path):
    from autoencoders.errors import UnsupportedVersion
    from autoencoders.training.sweep import plan_for_existing_dir

    text = json.dumps({"schema_version": 99, "status": "completed", "metrics": {}, "overrides": []})
    (tmp_path / "metrics.json").write_text(text)
    with pytest.raises(UnsupportedVersion, match=r"schema_version 99, newer than this autoencoders reads \(up to 2\)"):
        read_record(tmp_path)
    with pytest.raises(UnsupportedVersion):  # a sweep re-run does not take it for a half-written file to restart
        plan_for_existing_dir(tmp_path, [])
    assert (tmp_path / "metrics.json").read_text() == text
