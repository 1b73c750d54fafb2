"""What opening a run directory trusts (rundir/trust.py): a received run's config.yaml and checkpoint
name classes and functions, and none is imported unless the shipped configs put it there or the
user allows it for the command. Each case is refused before anything of it runs, through load_run,
ae-eval, ae-predict and a resume."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import yaml
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from autoencoders.cli.evaluate import main as ae_eval_main
from autoencoders.cli.predict import main as ae_predict_main
from autoencoders.errors import CheckpointError, UntrustedCode
from autoencoders.rundir.loading import load_run
from tests.helpers import ae_train_here, digest

QUIET = ["logging.images_every_n_epochs=0", "logging.projector_points=0", "eval.probe=false", "eval.nll_samples=0"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A finished tiny run, trained once for this module; each test tampers with a copy."""
    from autoencoders.training.pipeline import train

    root = tmp_path_factory.mktemp("trained")
    with initialize_config_module("autoencoders.conf", version_base="1.3"):
        cfg = compose("train", [f"output_root={root}", "data=synthetic", "trainer=fast", "torch_threads=1", *QUIET])
    train(cfg, run_dir=root / "run")
    return root / "run"


@pytest.fixture(autouse=True)
def no_allowance_from_the_environment(monkeypatch):
    monkeypatch.delenv("AE_TRUST", raising=False)


def received(trained: Path, tmp_path: Path) -> Path:
    """A copy of the trained run, as a colleague would send it."""
    return Path(shutil.copytree(trained, tmp_path / "received"))


def tamper(run: Path, edit: Callable[[dict], None]) -> None:
    """Edit config.yaml, and the config the record keeps, alike: a consistent forgery, which
    today's checks of a resume (config edits, checkpoint hashes) would accept."""
    config = yaml.safe_load((run / "config.yaml").read_text())
    edit(config)
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    record = json.loads((run / "metrics.json").read_text())
    record["config"]["resolved"] = config
    (run / "metrics.json").write_text(json.dumps(record))


def record_class(run: Path, name: str) -> None:
    """Every checkpoint of the run records `name` as its model class (weights-only files still)."""
    for path in (run / "checkpoints").glob("*.ckpt"):
        saved = torch.load(path, weights_only=True)
        torch.save({**saved, "model_class": name}, path)


def write_text_payload(target: Path) -> dict:
    """The issue's data.root: a nested `_target_` that writes `target` when Hydra instantiates it."""
    return {
        "_target_": "pathlib.Path.write_text",
        "_args_": [{"_target_": "pathlib.Path", "_args_": [str(target)]}, "hi\n"],
    }


# --- the two attacks of the issue ----------------------------------------------------------------
def test_a_popen_model_with_a_matching_weights_only_checkpoint_runs_nothing(trained, tmp_path, capsys):
    run, pwned = received(trained, tmp_path), tmp_path / "pwned"
    tamper(run, lambda config: config.update(model={"_target_": "subprocess.Popen", "args": ["touch", str(pwned)]}))
    for name in ("best.ckpt", "last.ckpt"):  # weights-only: the strings in it are the attacker's data
        torch.save(
            {"model_class": "subprocess.Popen", "hyper_parameters": {"args": ["touch", str(pwned)]}, "state_dict": {}},
            run / "checkpoints" / name,
        )
    with pytest.raises(UntrustedCode, match="'subprocess.Popen' as model._target_"):
        load_run(run)
    for main, argv in (
        (ae_eval_main, [str(run)]),
        (ae_predict_main, [str(run), "--split", "test", "--out", str(tmp_path / "p.npz")]),
    ):
        with pytest.raises(SystemExit) as stopped:
            main(argv)
        assert stopped.value.code == 1 and "'subprocess.Popen' as model._target_" in capsys.readouterr().err
    assert not pwned.exists()


def test_a_nested_target_in_the_data_block_runs_nothing(trained, tmp_path, capsys):
    run, pwned = received(trained, tmp_path), tmp_path / "pwned.txt"
    tamper(run, lambda config: config["data"].update(root=write_text_payload(pwned)))
    for main, argv in (
        (ae_eval_main, [str(run)]),
        (ae_predict_main, [str(run), "--split", "test", "--out", str(tmp_path / "p.npz")]),
    ):
        with pytest.raises(SystemExit) as stopped:
            main(argv)
        assert stopped.value.code == 1 and "'pathlib.Path.write_text' as data.root._target_" in capsys.readouterr().err
        assert not pwned.exists()


# --- one case per block, through every way of opening a run ------------------------------------
# block -> (tampering of the received run, where the refusal says the name is, the name, the file)
BLOCKS = {
    "model": (
        lambda run, pwned: tamper(
            run, lambda c: c.update(model={"_target_": "subprocess.Popen", "args": ["touch", str(pwned)]})
        ),
        "model._target_",
        "subprocess.Popen",
        "config.yaml",
    ),
    "data": (
        lambda run, pwned: tamper(run, lambda c: c["data"].update(root=write_text_payload(pwned))),
        "data.root._target_",
        "pathlib.Path.write_text",
        "config.yaml",
    ),
    "loggers": (  # Hydra instantiates the nested payload while it makes the logger's partial
        lambda run, pwned: tamper(
            run, lambda c: c.update(logger={"evil": {"_target_": "builtins.dict", "x": write_text_payload(pwned)}})
        ),
        "logger.evil._target_",
        "builtins.dict",
        "config.yaml",
    ),
    "callbacks": (
        lambda run, pwned: tamper(run, lambda c: c.update(callbacks={"evil": write_text_payload(pwned)})),
        "callbacks.evil._target_",
        "pathlib.Path.write_text",
        "config.yaml",
    ),
    "checkpoint": (
        lambda run, pwned: record_class(run, "subprocess.Popen"),
        "its model_class",
        "subprocess.Popen",
        ".ckpt",
    ),
    "networks": (  # the hook for user networks chosen by `_target_` under model.net
        lambda run, pwned: tamper(run, lambda c: c["model"].update(net=write_text_payload(pwned))),
        "model.net._target_",
        "pathlib.Path.write_text",
        "config.yaml",
    ),
}


def open_with_load_run(run: Path, tmp_path: Path, capsys, monkeypatch) -> str:
    with pytest.raises(UntrustedCode) as refused:
        load_run(run)
    return str(refused.value)


def open_with_ae_eval(run: Path, tmp_path: Path, capsys, monkeypatch) -> str:
    with pytest.raises(SystemExit) as stopped:
        ae_eval_main([str(run)])
    assert stopped.value.code == 1
    return capsys.readouterr().err


def open_with_ae_predict(run: Path, tmp_path: Path, capsys, monkeypatch) -> str:
    with pytest.raises(SystemExit) as stopped:
        ae_predict_main([str(run), "--split", "test", "--out", str(tmp_path / "p.npz")])
    assert stopped.value.code == 1 and not (tmp_path / "p.npz").exists()
    return capsys.readouterr().err


def open_with_resume(run: Path, tmp_path: Path, capsys, monkeypatch) -> str:
    # From a named checkpoint, whose recorded class is then the first name read.
    done = ae_train_here(f"resume={run / 'checkpoints' / 'last.ckpt'}", "trainer.max_epochs=2", monkeypatch=monkeypatch)
    assert done.returncode == 1
    return done.stderr


@pytest.mark.parametrize("block", sorted(BLOCKS))
@pytest.mark.parametrize("opening", [open_with_load_run, open_with_ae_eval, open_with_ae_predict, open_with_resume])
def test_each_block_is_refused_before_anything_of_it_runs(block, opening, trained, tmp_path, capsys, monkeypatch):
    run, pwned = received(trained, tmp_path), tmp_path / "pwned"
    edit, named, target, source = BLOCKS[block]
    edit(run, pwned)
    before = {name: value for name, value in digest(run).items() if name != ".lock"}  # ae-eval takes the lock
    message = opening(run, tmp_path, capsys, monkeypatch)
    module = target.rsplit(".", 1)[0]
    assert f"{target!r} as {named}" in message, message
    assert source in message.split(" names ")[0] and str(run) in message  # the file it was read from
    for allowance in (f"--trust {module}", f"trust=[{module}]", f"AE_TRUST={module}"):  # how to allow it
        assert allowance in message, (allowance, message)
    assert "Traceback" not in message and message.strip().count("\n") == 0  # one paragraph
    assert not pwned.exists()
    assert {name: value for name, value in digest(run).items() if name != ".lock"} == before


# --- the rule itself -----------------------------------------------------------------------------
def test_the_allowance_is_the_shipped_configs_at_that_path_moved_classes_and_the_users_modules(monkeypatch):
    from autoencoders.rundir import checkpoints
    from autoencoders.rundir.trust import check_target

    check_target("model", "autoencoders.models.vae.VAE", "config.yaml")
    check_target("logger.csv", "autoencoders.views.loggers.csv", "config.yaml")
    check_target("callbacks.timing", "autoencoders.training.timing.EpochTimes", "config.yaml")
    for path, target in (
        ("data", "autoencoders.models.vae.VAE"),  # a shipped class, at another path
        ("logger.mine", "autoencoders.views.loggers.csv"),
        ("model", "autoencoders.models.vae"),
        ("model", 3),  # not a name at all
        ("model", "mylab.nets.Net"),
    ):
        with pytest.raises(UntrustedCode):
            check_target(path, target, "config.yaml")
    monkeypatch.setitem(checkpoints.CLASS_ALIASES, "autoencoders.old_place.VAE", "autoencoders.models.vae.VAE")
    check_target("model", "autoencoders.old_place.VAE", "config.yaml")
    # The user's modules, for this call or from the environment: the module and what is inside it.
    check_target("model.net", "mylab.nets.Net", "config.yaml", trust=["mylab"])
    check_target("model.net", "mylab.nets.Net", "config.yaml", trust=["mylab.nets.Net"])
    with pytest.raises(UntrustedCode):
        check_target("model.net", "mylabother.Net", "config.yaml", trust=["mylab"])
    monkeypatch.setenv("AE_TRUST", "other, mylab")
    check_target("model.net", "mylab.nets.Net", "config.yaml")


def test_every_option_of_the_shipped_configs_passes_the_rule():
    # The allowance is read from conf/ itself: whatever a composed config holds is allowed.
    from autoencoders.rundir.trust import check_targets, targets_in

    conf = Path(__file__).resolve().parents[2] / "conf"
    choices = [
        f"{group}={path.stem}"
        for group in ("model", "data", "trainer", "logger", "callbacks", "experiment")
        for path in sorted((conf / group).glob("*.yaml"))
    ]
    seen = set()
    with initialize_config_module("autoencoders.conf", version_base="1.3"):
        for choice in choices:
            cfg = compose("train", [choice])
            check_targets(cfg, f"composed with {choice}")
            seen.update(path for path, _ in targets_in(OmegaConf.to_container(cfg, resolve=True)))
    assert {"model", "data", "logger.csv", "logger.mlflow", "logger.wandb", "callbacks.timing"} <= seen


def test_files_a_config_tree_places_at_a_path_allow_their_targets_there(tmp_path, monkeypatch):
    # How a new group joins the rule (a network group landing at model.net, say): by its files alone.
    from autoencoders.rundir import trust

    files = {
        "train.yaml": "defaults:\n  - model: plain\nseed: 1\n",
        "model/plain.yaml": "defaults:\n  - /shared/net@net: wide\n_target_: pkg.Model\n",
        "model/net/deep.yaml": "_target_: pkg.nets.Deep\n",
        "shared/net/wide.yaml": "_target_: pkg.nets.Wide\n",
        "experiment/big.yaml": "# @package _global_\nlogger:\n  mine:\n    _target_: pkg.Logger\n",
        "hydra/launcher/x.yaml": "# @package hydra.launcher\n_target_: pkg.Launcher\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    found = trust.targets_of_tree(tmp_path)
    assert found["model"] == {"pkg.Model"}
    assert found["model.net"] == {"pkg.nets.Deep", "pkg.nets.Wide"}  # its group, and placed there @net
    assert found["logger.mine"] == {"pkg.Logger"} and found["hydra.launcher"] == {"pkg.Launcher"}


def test_a_pickle_payload_in_a_checkpoint_is_refused_unrun(trained, tmp_path):
    # Checkpoints are read weights-only: a pickled object that would run code on loading is refused.
    run, pwned = received(trained, tmp_path), tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (Path.write_text, (pwned, "hi\n"))

    torch.save(
        {"model_class": "autoencoders.models.autoencoder.Autoencoder", "x": Payload()},
        run / "checkpoints" / "best.ckpt",
    )
    with pytest.raises(CheckpointError, match="cannot be loaded .*Unpickl"):
        load_run(run)
    assert not pwned.exists()


def test_a_resumes_allowance_is_its_own_and_the_records_overrides_are_checked_too(trained, tmp_path):
    from autoencoders.errors import ConfigError
    from autoencoders.rundir.resume import plan_resume, split_trust

    assert split_trust(["trainer.max_epochs=2", "trust=[mylab,other.nets]", "trust=third"]) == (
        ["mylab", "other.nets", "third"],
        ["trainer.max_epochs=2"],
    )
    for bad in ("trust=[]", "trust=1", "~trust"):
        with pytest.raises(ConfigError, match="is not an allowance"):
            split_trust([bad])
    # A resume's overrides come back from metrics.json and are replayed: what they name is checked.
    run = received(trained, tmp_path)
    record = json.loads((run / "metrics.json").read_text())
    record["resumes"] = [{"overrides": ["eval.extra={_target_:subprocess.Popen}"], "status": "completed"}]
    (run / "metrics.json").write_text(json.dumps(record))
    with pytest.raises(UntrustedCode, match=r"metrics.json names 'subprocess.Popen' as eval.extra._target_"):
        plan_resume(run, ["trainer.max_epochs=2"])
    with pytest.raises(ConfigError, match="eval.extra is not an eval setting"):  # allowed, then checked as usual
        plan_resume(run, ["trainer.max_epochs=2", "trust=[subprocess]"])
