"""What keeps Lightning's per-step work small without changing what a run does: the callbacks
Lightning calls every step (few: the lr monitor, the views and the signal stop as one group), the default
profiler that does nothing cheaply, checkpoint and clipping hooks that skip only what decides
nothing, and `compile=true`."""

import lightning as L
import pytest
import torch
from lightning.pytorch.profilers import SimpleProfiler

from autoencoders.machinery.base import AutoencoderBase
from autoencoders.models.autoencoder import Autoencoder
from autoencoders.rundir.checkpoints import RunCheckpoint
from autoencoders.training.callback_group import CallbackGroup
from autoencoders.training.pipeline import train
from autoencoders.training.profiling import NoProfiler

QUIET = ["logging.projector_points=0", "eval.probe=false"]


class Kept(L.Callback):
    """Keeps the Trainer it was given."""

    def on_train_start(self, trainer, module) -> None:
        self.trainer = trainer


class Calls(L.Callback):
    def __init__(self, name: str, calls: list) -> None:
        self.name, self.calls = name, calls

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        self.calls.append((self.name, batch_idx))


class Starts(Calls):
    def on_train_start(self, trainer, module) -> None:
        self.calls.append((self.name, "start"))


def test_a_group_calls_its_members_in_order_only_for_the_hooks_they_define():
    calls = []
    group = CallbackGroup([Calls("first", calls), Starts("second", calls)])
    group.on_train_start("trainer", "module")
    group.on_train_batch_end("trainer", "module", None, None, 7)
    group.on_before_backward("trainer", "module", "loss")  # nobody's: nothing happens
    assert calls == [("second", "start"), ("first", 7), ("second", 7)]
    assert group.members["on_before_backward"] == [] and len(group.members["on_train_batch_end"]) == 2


def test_a_callback_with_state_in_checkpoints_is_not_grouped():
    class Stateful(L.Callback):
        def state_dict(self) -> dict:
            return {"seen": 1}

    with pytest.raises(ValueError, match="Stateful keeps state in checkpoints: it cannot be grouped"):
        CallbackGroup([Stateful()])


def test_lightning_calls_six_callbacks_a_step_and_the_lr_views_and_stop_are_one_of_them(tiny_cfg, tmp_path):
    kept = Kept()
    train(tiny_cfg(*QUIET, "trainer.enable_progress_bar=true"), run_dir=tmp_path, callbacks=[kept])
    names = [type(callback).__name__ for callback in kept.trainer.callbacks]
    assert names == [
        "CallbackGroup",
        "RunProgressBar",
        "ConfigStamp",
        "Kept",
        "RichModelSummary",
        "RunCheckpoint",
        "RunCheckpoint",
    ]
    group = kept.trainer.callbacks[0]
    assert [type(member).__name__ for member in group.callbacks] == [
        "LearningRateMonitor",
        "Throughput",
        "CurveLayout",
        "HParamsSession",
        "ImageGrids",
        "GracefulStop",
    ]
    assert (tmp_path / "checkpoints" / "best.ckpt").is_file() and (tmp_path / "checkpoints" / "last.ckpt").is_file()


def test_the_default_profiler_costs_nothing_and_a_chosen_one_is_kept(tiny_cfg, tmp_path):
    quiet = NoProfiler()
    assert quiet.profile("training_step") is quiet.profile("backward")  # one shared context, no generator
    with quiet.profile("x"):
        pass
    for overrides, profiler in (((), NoProfiler), (("++trainer.profiler=simple",), SimpleProfiler)):
        kept = Kept()
        train(tiny_cfg(*QUIET, *overrides), run_dir=tmp_path / profiler.__name__, callbacks=[kept])
        assert type(kept.trainer.profiler) is profiler
    assert any("training_step" in action for action in kept.trainer.profiler.recorded_durations)


def test_checkpoints_every_n_training_steps_are_still_written_mid_epoch(tmp_path):
    data = torch.utils.data.DataLoader(torch.rand(40, 1, 8, 8), batch_size=4)  # 10 steps an epoch

    class Tiny(Autoencoder):
        def training_step(self, batch, batch_idx):
            return super().training_step((batch, batch), batch_idx)

    model = Tiny(input_shape=[1, 8, 8], latent_dim=2)
    every = RunCheckpoint(dirpath=tmp_path, filename="{step}", every_n_train_steps=3, save_top_k=-1)
    epochs = RunCheckpoint(dirpath=tmp_path / "epochs", filename="{step}", save_top_k=-1)
    assert every.saves_within_epochs and not epochs.saves_within_epochs
    trainer = L.Trainer(max_epochs=1, callbacks=[every, epochs], logger=False, enable_progress_bar=False)
    trainer.fit(model, train_dataloaders=data)
    assert sorted(path.name for path in tmp_path.glob("*.ckpt")) == ["step=3.ckpt", "step=6.ckpt", "step=9.ckpt"]
    assert sorted(path.name for path in (tmp_path / "epochs").glob("*.ckpt")) == ["step=10.ckpt"]


class GradientNorms(L.Callback):
    """The gradient norm each optimizer step used (read after the step: clipping happened before it)."""

    def __init__(self) -> None:
        self.norms = []

    def on_train_start(self, trainer, module) -> None:
        def after_step(optimizer, *args) -> None:
            grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
            self.norms.append(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])).item())

        trainer.optimizers[0].register_step_post_hook(after_step)


def test_gradient_clipping_still_clips_a_one_optimizer_model(tiny_cfg, tmp_path):
    unclipped, clipped = GradientNorms(), GradientNorms()
    train(tiny_cfg(*QUIET), run_dir=tmp_path / "a", callbacks=[unclipped])
    train(tiny_cfg(*QUIET, "++trainer.gradient_clip_val=0.01"), run_dir=tmp_path / "b", callbacks=[clipped])
    assert len(clipped.norms) == 2 and max(unclipped.norms) > 0.05
    assert max(clipped.norms) <= 0.01 + 1e-6


def test_lightnings_hook_name_is_a_plain_attribute_and_modules_still_register():
    model = Autoencoder(input_shape=[1, 8, 8], latent_dim=2)
    model._current_fx_name = "training_step"
    assert model._current_fx_name == "training_step" and "_current_fx_name" not in model._modules
    model.extra = torch.nn.Linear(2, 2)  # nn.Module's own __setattr__ for everything else
    assert "extra" in model._modules and any(name.startswith("extra.") for name, _ in model.named_parameters())


def test_compile_true_compiles_the_networks_and_checkpoints_keep_their_keys(tiny_cfg, tmp_path, monkeypatch):
    model = Autoencoder(input_shape=[1, 8, 8], latent_dim=2)
    keys = list(model.state_dict())
    model.compile_networks()  # nn.Module.compile: lazy, the first forward compiles
    assert list(model.state_dict()) == keys
    compiled = []
    # The run itself without compiling (minutes on a CPU): that compile=true asks for it is what is checked.
    monkeypatch.setattr(AutoencoderBase, "compile_networks", lambda self: compiled.append(type(self).__name__))
    train(tiny_cfg(*QUIET), run_dir=tmp_path / "off")
    assert compiled == []
    train(tiny_cfg(*QUIET, "compile=true"), run_dir=tmp_path / "on")
    assert compiled == ["Autoencoder"]


class Steps(L.Callback):
    """Keeps the module's step path and, at the end, its weights; `listen` makes it a callback
    that defines on_before_optimizer_step (counted), so Lightning's full optimizer step runs."""

    def __init__(self, listen: bool = False) -> None:
        self.before_steps = 0
        if listen:
            self.on_before_optimizer_step = self.count

    def count(self, trainer, module, optimizer) -> None:
        self.before_steps += 1

    def on_train_end(self, trainer, module) -> None:
        self.plain, self.steps = module._plain_step, module.global_step
        self.weights = {name: value.clone() for name, value in module.state_dict().items()}


def test_the_plain_optimizer_step_makes_the_same_update_as_lightnings_full_step(tiny_cfg, tmp_path):
    plain, full = Steps(), Steps(listen=True)
    train(tiny_cfg(*QUIET, "trainer.max_epochs=2"), run_dir=tmp_path / "plain", callbacks=[plain])
    train(tiny_cfg(*QUIET, "trainer.max_epochs=2"), run_dir=tmp_path / "full", callbacks=[full])
    assert plain.plain and not full.plain
    assert plain.steps == full.steps == full.before_steps == 4  # the full step still calls every hook
    assert plain.before_steps == 0
    assert plain.weights.keys() == full.weights.keys()
    for name, value in plain.weights.items():
        assert torch.equal(value, full.weights[name]), name


def test_the_full_optimizer_step_runs_wherever_it_does_more(tmp_path):
    from autoencoders.machinery.optim import listens, plain_optimizer_step

    class Listening(L.Callback):
        def on_before_optimizer_step(self, trainer, module, optimizer) -> None:
            pass

    def trainer(*callbacks, **options):
        return L.Trainer(logger=False, callbacks=list(callbacks), default_root_dir=tmp_path, **options)

    assert plain_optimizer_step(trainer(), True)
    assert plain_optimizer_step(trainer(CallbackGroup([Calls("quiet", [])])), True)
    assert not listens(CallbackGroup([Calls("quiet", [])]), "on_before_optimizer_step")
    assert listens(CallbackGroup([Calls("quiet", []), Listening()]), "on_before_optimizer_step")
    assert not plain_optimizer_step(trainer(CallbackGroup([Listening()])), True)
    assert not plain_optimizer_step(trainer(Listening()), True)
    assert not plain_optimizer_step(trainer(), False)  # the module defines the hooks itself
    assert not plain_optimizer_step(trainer(gradient_clip_val=0.5), True)
    assert not plain_optimizer_step(trainer(precision="bf16-mixed"), True)
    assert not plain_optimizer_step(trainer(precision="64-true"), True)
