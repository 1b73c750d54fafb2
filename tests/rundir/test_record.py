"""metrics.json: schema, statuses and atomic writes."""

import json

import pytest

from autoencoders.rundir.record import RunRecord, read_record, write_json_atomic


def test_schema_and_lifecycle(tmp_path):
    record = RunRecord(tmp_path, ["model=conv"], torch_threads=2)
    saved = read_record(tmp_path)
    assert saved["status"] == "running" and saved["overrides"] == ["model=conv"]
    assert set(saved) == {"status", "metrics", "data", "model", "overrides", "resumes", "error", "provenance"}
    assert saved["resumes"] == []
    provenance = saved["provenance"]
    assert provenance["torch_threads"] == 2 and provenance["versions"]["torch"]
    assert {"command", "git_commit", "started", "finished", "run_dir"} <= set(provenance)
    record.finish("completed", metrics={"test/mse": 0.01})
    saved = read_record(tmp_path)
    assert saved["status"] == "completed" and saved["metrics"] == {"test/mse": 0.01}
    assert saved["provenance"]["finished"]


def test_failure_keeps_the_error(tmp_path):
    record = RunRecord(tmp_path, [], torch_threads=1)
    record.finish("failed", error=ValueError("bad value"), traceback_text="Traceback ...")
    assert read_record(tmp_path)["error"] == {"type": "ValueError", "message": "bad value", "traceback": "Traceback ..."}
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
