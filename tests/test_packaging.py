"""The built package carries conf/: every config group folder is listed in pyproject.toml."""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_config_group_is_a_listed_package():
    # Nested groups too (conf/hydra/hydra_logging/): each folder with YAML files is a package.
    packages = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    folders = [path for path in (ROOT / "conf").rglob("*") if path.is_dir() and path.name != "__pycache__"]
    groups = {"autoencoders.conf." + ".".join(path.relative_to(ROOT / "conf").parts) for path in folders}
    assert "autoencoders.conf.model" in groups and "autoencoders.conf.hydra.hydra_logging" in groups
    assert groups <= packages, f"add {sorted(groups - packages)} to [tool.setuptools] packages"


def test_installed_configs_are_the_top_level_conf():
    from importlib.resources import files

    installed = files("autoencoders.conf")
    assert installed.joinpath("train.yaml").read_text() == (ROOT / "conf" / "train.yaml").read_text()
    assert installed.joinpath("model").joinpath("mlp.yaml").is_file()
