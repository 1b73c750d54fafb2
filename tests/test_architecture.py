"""The package's layout: imports run one way, from the entry points down to the ground floor.

Every import under autoencoders/ is read from the source (inside functions too), so a lazy
import cannot hide a circle or an upward import.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "autoencoders"
# Lowest first. A module imports only from its own rank or lower. The package root is an entry
# point: `autoencoders.load_run` is the notebook's way in.
RANKS = {
    "autoencoders.errors": 0,
    "autoencoders.schema": 0,
    "autoencoders.config_keys": 0,
    "autoencoders.rules": 0,
    "autoencoders.internals": 0,
    "autoencoders.atomic": 0,  # Lightning's and torch's private names, behind one door
    "autoencoders.machine": 0,  # the machine's cores and memory
    "autoencoders.losses": 1,
    "autoencoders.nets": 1,
    "autoencoders.machinery": 1,
    "autoencoders.models": 1,
    "autoencoders.data": 1,
    "autoencoders.views": 2,
    "autoencoders.console": 2,
    "autoencoders.rundir": 2,
    "autoencoders.distributed": 2,
    "autoencoders.evaluation": 3,
    "autoencoders.training": 4,
    "autoencoders.compare": 4,
    "autoencoders.cli": 5,
    "autoencoders": 5,
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def rank(module: str) -> int:
    """The rank of the longest prefix of `module` in RANKS."""
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in RANKS:
            return RANKS[".".join(parts[:end])]
    raise AssertionError(f"{module} is in no wing; add it to RANKS")


def imports_of(module: str) -> set[str]:
    """The autoencoders modules `module` imports, at module level or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(MODULES[module].read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{module}: relative import; the package uses absolute ones"
            # `from package import submodule` imports the submodule; `from module import name`, the module.
            found.update(
                f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in MODULES else node.module
                for alias in node.names
            )
    return {name for name in found if name in MODULES}


GRAPH = {module: imports_of(module) - {module} for module in MODULES}


def test_every_module_belongs_to_a_wing():
    for module in MODULES:
        rank(module)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_import_reaches_up_to_a_higher_rank(module):
    upward = sorted(target for target in GRAPH[module] if rank(target) > rank(module))
    assert not upward, f"{module} (rank {rank(module)}) imports {upward} from a higher rank"


def test_no_import_circles():
    # Depth-first search; a back edge to a module still on the path is a circle.
    state: dict[str, str] = {}
    path: list[str] = []

    def visit(module: str) -> None:
        state[module] = "open"
        path.append(module)
        for target in sorted(GRAPH[module]):
            if state.get(target) == "open":
                circle = path[path.index(target) :] + [target]
                raise AssertionError("import circle: " + " -> ".join(circle))
            if target not in state:
                visit(target)
        path.pop()
        state[module] = "done"

    for module in sorted(MODULES):
        if module not in state:
            visit(module)


def test_the_checker_sees_lazy_imports_and_circles(tmp_path, monkeypatch):
    # The checks above must be able to fail: an import inside a function is found, and a
    # two-module circle is reported.
    assert "autoencoders.evaluation.finished_run" in GRAPH["autoencoders.cli.evaluate"]  # imported inside main()
    monkeypatch.setitem(
        GRAPH, "autoencoders.nets.families", GRAPH["autoencoders.nets.families"] | {"autoencoders.machinery.base"}
    )
    with pytest.raises(AssertionError, match="import circle: .*autoencoders.machinery.base"):
        test_no_import_circles()


def test_files_and_functions_stay_small():
    # DESIGN: files under ~300 lines, functions under ~60.
    for module, path in MODULES.items():
        source = path.read_text()
        assert len(source.splitlines()) <= 300, f"{path} has {len(source.splitlines())} lines"
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                assert length <= 60, f"{module}.{node.name} has {length} lines"


def repeated_names(modules: list[str]) -> dict[str, list[str]]:
    """Last names shared by several modules or wings, outside the entry points (cli/ mirrors the
    commands' names on purpose)."""
    by_name: dict[str, list[str]] = {}
    for module in modules:
        if module.startswith("autoencoders.cli.") or module == "autoencoders":
            continue
        by_name.setdefault(module.rsplit(".", 1)[-1], []).append(module)
    return {name: found for name, found in by_name.items() if len(found) > 1}


def test_no_two_modules_share_a_name():
    assert not repeated_names(sorted(MODULES))
    # The check can fail: a second sweep.py beside training's.
    planted = repeated_names([*MODULES, "autoencoders.compare.sweep"])
    assert planted == {"sweep": ["autoencoders.training.sweep", "autoencoders.compare.sweep"]}


WINGS = sorted(path.parent for path in PACKAGE.glob("*/__init__.py") if path.parent.name != "conf")


def unlisted_modules(wing: Path, docstring: str | None) -> list[str]:
    """The modules of `wing` its __init__ docstring does not name as `<module>.py`."""
    return sorted(
        path.name for path in wing.glob("*.py") if path.name != "__init__.py" and path.name not in (docstring or "")
    )


@pytest.mark.parametrize("wing", WINGS, ids=lambda wing: wing.name)
def test_every_wing_says_what_it_holds(wing):
    # A reader opens a wing's __init__ to learn what is in it: every module is named there.
    docstring = ast.get_docstring(ast.parse((wing / "__init__.py").read_text()))
    assert not unlisted_modules(wing, docstring), f"{wing.name}/__init__.py's docstring does not name them"


def test_the_docstring_check_can_fail():
    assert unlisted_modules(PACKAGE / "evaluation", "suite.py finished_run.py") == sorted(
        path.name
        for path in (PACKAGE / "evaluation").glob("*.py")
        if path.name not in ("__init__.py", "suite.py", "finished_run.py")
    )


def test_only_the_models_wing_holds_more_than_12_modules():
    # The objectives may grow one module each; any other wing past 12 modules holds two jobs.
    # The models wing holds objectives only: the shared machinery, networks and maths live elsewhere.
    sizes = {wing.name: len([p for p in wing.glob("*.py") if p.name != "__init__.py"]) for wing in WINGS}
    assert {name: size for name, size in sizes.items() if size > 12 and name != "models"} == {}
    from autoencoders.machinery.base import AutoencoderBase

    for path in (PACKAGE / "models").glob("*.py"):
        if path.name == "__init__.py":
            continue
        module = __import__(f"autoencoders.models.{path.stem}", fromlist=["_"])
        objectives = [
            value
            for value in vars(module).values()
            if isinstance(value, type) and issubclass(value, AutoencoderBase) and value.__module__ == module.__name__
        ]
        assert len(objectives) == 1, f"models/{path.name} defines {len(objectives)} objectives; one module each"
