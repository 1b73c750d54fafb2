"""scripts/bench.py: its (a) minimal loop and (b) tutorial pipeline train on a few real batches."""

import importlib.util
import math
import sys
import time
from pathlib import Path

import pytest
import torch

from autoencoders.data.sources import DEBIAN_FASHION_MNIST

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench.py"
sys.path.insert(0, str(SCRIPT.parent))  # as `python scripts/bench.py` has it: its bench_*.py modules
spec = importlib.util.spec_from_file_location("bench", SCRIPT)
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)
pytestmark = pytest.mark.skipif(
    not (DEBIAN_FASHION_MNIST / "train-images-idx3-ubyte.gz").is_file(),
    reason="needs Debian's dataset-fashion-mnist (make data)",
)


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return bench.tutorial_root(tmp_path_factory.mktemp("torchvision"))


def test_both_loops_see_the_same_60000_images(root):
    images = bench.tutorial_images(root)
    tutorial = bench.TutorialLoop(root, "mlp")
    assert images.shape == (60_000, 1, 28, 28) and images.dtype == torch.float32
    assert images.min() >= 0 and images.max() == 1
    assert torch.equal(images[7], tutorial.dataset[7][0])  # ToTensor gives the same pixels


@pytest.mark.parametrize(("net", "plain_adam"), [("mlp", False), ("conv", False), ("mlp", True)])
def test_minimal_loop_trains_a_few_batches(root, net, plain_adam):
    loop = bench.MinimalLoop(bench.tutorial_images(root)[:600], net, plain_adam=plain_adam)
    # (a) has ae-train's fused Adam, (a') torch.optim.Adam's defaults
    assert loop.optimizer.defaults["fused"] is (None if plain_adam else True)
    before = [p.detach().clone() for p in loop.model.parameters()]
    assert loop.steps(2) == 2 * 256
    assert all(not torch.equal(a, b) for a, b in zip(before, loop.model.parameters()))
    assert loop.steps(2, timed=True) == 88 + 256  # the epoch's last, short batch, then the next epoch
    assert set(loop.parts) == {"data", "forward", "backward", "optimizer"}


def test_tutorial_loop_trains_a_few_batches(root):
    loop = bench.TutorialLoop(root, "mlp")
    assert loop.steps(3) == 3 * 256
    assert 0 < loop.epoch_loss / (3 * 256) < 0.3


def test_results_file_keeps_the_other_section(tmp_path):
    out = tmp_path / "results.md"
    bench.write_section(out, "quality", "## Quality\n\nq1\n")
    bench.write_section(out, "speed", "## Speed\n\ns1\n")
    bench.write_section(out, "speed", "## Speed\n\ns2\n")
    text = out.read_text()
    assert text.startswith("# Benchmarks") and "s1" not in text
    assert text.index("s2") < text.index("q1")


def test_before_names_the_checkout_its_interpreter_imports_whatever_the_working_directory(tmp_path, monkeypatch):
    # `python -c` imports from its working directory first: run from another checkout (here a
    # folder holding a package of the same name), it named that one instead of the interpreter's.
    (tmp_path / "autoencoders").mkdir()
    (tmp_path / "autoencoders" / "__init__.py").write_text("")
    monkeypatch.chdir(tmp_path)
    import autoencoders

    assert bench.checkout_of(sys.executable) == Path(autoencoders.__file__).parents[1] != tmp_path


def test_interleave_times_train_epochs_without_the_inserted_work(tiny_cfg, tmp_path):
    calls = []
    clock = bench.Interleave(lambda epoch: (calls.append(epoch), time.sleep(0.05)), every=5)
    cfg = tiny_cfg("trainer.max_epochs=2", "trainer.limit_train_batches=1.0")  # 14 steps an epoch
    metrics, own_seconds = bench.run_ours(cfg, tmp_path, clock)
    assert "test/mse" in metrics and clock.trainer is not None  # given to train(), not patched into lightning.Trainer
    assert calls == [0, 0, 1, 1] and clock.images_per_epoch == 448
    assert [mark["paused"] >= 0.1 for mark in clock.marks] == [True, True]
    assert all(0 < seconds < mark["end"] - mark["start"] - 0.1 for seconds, mark in zip(clock.seconds, clock.marks))
    assert own_seconds > 0


def test_the_same_work_loop_validates_and_writes_two_checkpoints_each_epoch_on_its_schedule(root, tmp_path):
    images = bench.tutorial_images(root)
    loop = bench.SameWorkLoop(
        images[:600],  # 3 steps an epoch at batch 256
        "mlp",
        32,
        256,
        lr=8e-3,
        schedule="cosine",
        total_steps=6,
        val_images=images[600:700],
        checkpoint_dir=tmp_path,
    )
    assert loop.steps(2) == 512 and loop.epoch_ends == 0 and not list(tmp_path.iterdir())
    assert loop.steps(2) == 88 + 256 and loop.epoch_ends == 1  # the epoch's short last batch, then the next one
    assert sorted(path.name for path in tmp_path.iterdir()) == ["best.ckpt", "last.ckpt"]
    saved = torch.load(tmp_path / "last.ckpt", weights_only=True)
    assert saved["lr_scheduler"]["last_epoch"] == 3 and 0 < saved["val_loss"] < 0.3
    # cosine from 8e-3 over 6 steps, 4 taken
    assert loop.optimizer.param_groups[0]["lr"] == pytest.approx(8e-3 * 0.5 * (1 + math.cos(math.pi * 4 / 6)))


def test_equal_steps_gives_the_other_paths_every_step_of_the_epoch(tiny_cfg, tmp_path):
    calls = []
    clock = bench.EqualSteps(lambda epoch, steps: calls.append((epoch, steps)), every=5)
    cfg = tiny_cfg("trainer.max_epochs=2", "trainer.limit_train_batches=1.0")  # 14 steps an epoch
    bench.run_ours(cfg, tmp_path, clock)
    assert calls == [(0, 5), (0, 5), (0, 4), (1, 5), (1, 5), (1, 4)]


def test_lightnings_floor_takes_turns_with_a_plain_loop():
    for manual in (False, True):
        lightning_seconds, plain_seconds = bench.lightning_floor(steps=80, chunk=10, manual=manual)
        assert len(lightning_seconds) == len(plain_seconds) == 3  # 8 turns, 5 of them warm-up
        assert all(seconds > 0 for seconds in lightning_seconds + plain_seconds)
