"""What many tests share: the console scripts as users run them, and a run directory's files."""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tensorboard.backend.event_processing import event_accumulator as ea

BIN = Path(sys.executable).parent
AE_TRAIN = str(BIN / "ae-train")
AE_EVAL = str(BIN / "ae-eval")


def _environment(env: dict | None) -> dict:
    """The test's environment without HYDRA_FULL_ERROR (tests assert that no traceback shows), plus `env`."""
    return {**{key: value for key, value in os.environ.items() if key != "HYDRA_FULL_ERROR"}, **(env or {})}


def ae_train(*args: str, cwd: Path, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """`ae-train args...` to completion, output captured as text."""
    return subprocess.run(
        [AE_TRAIN, *args], cwd=cwd, env=_environment(env), capture_output=True, text=True, timeout=timeout
    )


def ae_train_here(*args: str, monkeypatch, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """`ae-train args...` run by this test's own interpreter: the same `main()`, exit code, stdout
    and stderr as the command, without paying its ~8 s of imports again. For tests of what a run
    says and writes; where the process itself (signals, start-up, several processes) is what a
    test checks, `ae_train` runs the installed script."""
    import contextlib
    import io
    import logging

    from autoencoders.cli import train as cli

    if cwd is not None:
        monkeypatch.chdir(cwd)
    monkeypatch.setattr(sys, "argv", ["ae-train", *args])
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    out, err = io.StringIO(), io.StringIO()
    loggers = {name: logging.getLogger(name) for name in ("", "hydra", "autoencoders", "lightning")}
    saved = {name: (logger.handlers[:], logger.level, logger.propagate) for name, logger in loggers.items()}
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                cli.main()
            except SystemExit as stopped:  # what the interpreter would make of it
                if isinstance(stopped.code, str):
                    print(stopped.code, file=sys.stderr)
                code = stopped.code if isinstance(stopped.code, int) else (0 if stopped.code is None else 1)
    finally:
        forget_hydra()
        for name, (handlers, level, propagate) in saved.items():
            loggers[name].handlers[:] = handlers
            loggers[name].setLevel(level)
            loggers[name].propagate = propagate
    return subprocess.CompletedProcess(["ae-train", *args], code, out.getvalue(), err.getvalue())


def forget_hydra() -> None:
    """What an in-process Hydra run leaves set (its config, its initialised search path), cleared so
    that later tests of this worker start as a new process would."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    HydraConfig.instance().cfg = None
    GlobalHydra.instance().clear()


def start_ae_train(*args: str, cwd: Path, env: dict | None = None) -> subprocess.Popen:
    """`ae-train args...` started in the background (to signal it), output piped as text."""
    return subprocess.Popen(
        [AE_TRAIN, *args], cwd=cwd, env=_environment(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def run_dirs(root: Path) -> list[Path]:
    """Every run directory below `root` (those with a metrics.json), sorted."""
    return sorted(path.parent for path in Path(root).rglob("metrics.json"))


def only_run(root: Path) -> Path:
    (run,) = run_dirs(root)
    return run


def digest(run: Path) -> dict[str, str]:
    """Every file of a run directory (hidden ones too) with its content hash and mtime: equal
    digests mean no file was written, created or removed."""
    return {
        str(path.relative_to(run)): hashlib.sha256(path.read_bytes()).hexdigest() + str(path.stat().st_mtime_ns)
        for path in sorted(Path(run).rglob("*"))
        if path.is_file()
    }


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now, for a server a test starts."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def signal_when(
    process: subprocess.Popen, ready: Callable[[], bool], signal_number: int, timeout: float = 120
) -> tuple[str, str]:
    """Send `signal_number` to `process` as soon as `ready()` holds; then its stdout and stderr."""
    deadline = time.monotonic() + timeout
    while not ready() and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal_number)
    return process.communicate(timeout=timeout)


def sigterm_after_epoch(monkeypatch, model_class: type, epoch: int) -> None:
    """SIGTERM to this process at the end of training epoch `epoch` (after the model's own epoch
    end): Lightning finishes that epoch, then stops, an end-of-epoch stop."""
    original = model_class.on_train_epoch_end

    def terminate(self) -> None:
        original(self)
        if self.current_epoch == epoch:
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(model_class, "on_train_epoch_end", terminate)


def nan_loss_from_epoch(monkeypatch, epoch: int) -> None:
    """The plain autoencoder's loss becomes NaN from training epoch `epoch` on: a run that diverges there."""
    from autoencoders.models.autoencoder import Autoencoder

    original = Autoencoder.loss_terms

    def nan_from(self, x):
        terms, x_hat = original(self, x)
        if self.current_epoch >= epoch:
            terms["loss"] = terms["loss"] * float("nan")
        return terms, x_hat

    monkeypatch.setattr(Autoencoder, "loss_terms", nan_from)


def read_events(log_dir: Path) -> ea.EventAccumulator:
    """A log directory's events as TensorBoard reads them, with no point sampled away."""
    events = ea.EventAccumulator(str(log_dir), size_guidance={ea.IMAGES: 0, ea.SCALARS: 0, ea.TENSORS: 0})
    events.Reload()
    return events


def assert_finite_terms(metrics: dict[str, float], names: tuple[str, ...]) -> None:
    """Each term in `names` is recorded as a finite number for training, validation and test."""
    import math

    for name in names:
        for stage in ("train", "val", "test"):
            assert math.isfinite(metrics[f"{stage}/{name}"]), (stage, name)


def reloaded(run: Path, model_class: type, latent_dim: int):
    """The run's model through load_run, checked: of `model_class`, in eval mode, codes of
    `latent_dim`, and decode(encode(x)) is its reconstruction of x."""
    import torch

    from autoencoders import load_run

    model = load_run(run)
    assert isinstance(model, model_class) and not model.training
    x = torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        assert model.encode(x).shape == (3, latent_dim)
        assert torch.equal(model.decode(model.encode(x)), model.reconstruct(x))
    return model


def listening_sockets(pid: int) -> list[tuple[str, int]]:
    """(address, port) of every TCP socket process `pid` listens on, read from /proc (Linux): its
    open sockets' inodes, matched with the LISTEN entries (state 0A) of /proc/<pid>/net/tcp and tcp6."""
    import socket as sockets

    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    found = []
    for table, family in (("tcp", sockets.AF_INET), ("tcp6", sockets.AF_INET6)):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] != "0A" or fields[9] not in inodes:
                continue
            address, port = fields[1].split(":")
            raw = bytes.fromhex(address)  # 32-bit words in host (little-endian) order
            raw = b"".join(raw[start : start + 4][::-1] for start in range(0, len(raw), 4))
            found.append((sockets.inet_ntop(family, raw), int(port, 16)))
    return found
