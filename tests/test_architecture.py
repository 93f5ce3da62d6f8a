"""The import graph docs/architecture.md draws: one way, no cycle, imports at the top.

Every module has a layer; a module may import only modules of a lower layer (the package
`__init__` files only re-export, and only the faces import them). A new module fails here until it
is given its place, which is also its place in docs/architecture.md.
"""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).parent.parent / "src"

# lowest first: core (groups → rules → optim) ← study, a folder per layer (plan → train → run → analysis →
# search → report) ← faces (cli, api). Inside a layer, modules in the order they may import each other.
LAYER_MODULES = {
    "core": [
        "wdscale.errors",
        "wdscale.checks",
        "wdscale.sgdw",
        "wdscale.muon",
        "wdscale.schedules",
        "wdscale.groups",
        "wdscale.rules",
        "wdscale.optim",
    ],
    # what a run is, what it trains on, the plan
    "plan": [
        "wdscale.study.plan.config",
        "wdscale.study.plan.models",
        "wdscale.study.plan.markov_text",
        "wdscale.study.plan.tasks",
        "wdscale.study.plan.study_plan",
    ],
    # training one run, and K runs at once
    "train": [
        "wdscale.study.train.loop",
        "wdscale.study.train.stack",
        "wdscale.study.train.batched_step",
        "wdscale.study.train.mlp_forward",
        "wdscale.study.train.engine",
        "wdscale.study.train.user_loop",
        "wdscale.study.train.script_run",
    ],
    # jobs, where they run, where results go, the driver
    "run": [
        "wdscale.study.run.command",
        "wdscale.study.run.jobs",
        "wdscale.study.run.placement",
        "wdscale.study.run.ray_backend",
        "wdscale.study.run.processes",
        "wdscale.study.run.backends",
        "wdscale.study.run.execution",
        "wdscale.study.run.store",
        "wdscale.study.run.identity",
        "wdscale.study.run.runner",
        "wdscale.study.run.external",
        "wdscale.study.run.relabel",
    ],
    # what the runs say: pure pandas, never trains
    "analysis": [
        "wdscale.study.analysis.study_analysis",
        "wdscale.study.analysis.cost",
        "wdscale.study.analysis.joint",
        "wdscale.study.analysis.advise",
    ],
    # more runs where the decision is made: reads the measured optima, drives the runner again
    "search": [
        "wdscale.study.search.refine",
        "wdscale.study.search.tune",
        "wdscale.study.search.replay",
        "wdscale.study.search.optuna_search",
    ],
    "report": [
        "wdscale.study.report.document",
        "wdscale.study.report.figures",
        "wdscale.study.report.study_report",
    ],
    "faces": [
        "wdscale.loading",
        "wdscale.study.api",
        "wdscale.study.cli",
        "wdscale.cli",
        "wdscale.__main__",
    ],
}
LAYERS = [m for modules in LAYER_MODULES.values() for m in modules]
STUDY_FOLDERS = ["plan", "train", "run", "analysis", "search", "report"]
PACKAGES = {"wdscale", "wdscale.study"} | {f"wdscale.study.{f}" for f in STUDY_FOLDERS}
FACES = set(LAYER_MODULES["faces"])
# imported inside a function only where the dependency is optional or platform-bound: a Ray
# cluster, the plotting backend (chosen before pyplot loads), the POSIX lock, a task's data
# package, the study extra from the core's command line, and Optuna (a joint study's TPE baseline)
OPTIONAL = {"ray", "matplotlib", "fcntl", "mnist1d", "sklearn", "wdscale.study", "optuna"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def resolve(importer: str, is_package: bool, node: ast.ImportFrom) -> list[str]:
    if node.level == 0:
        base = node.module or ""
    else:
        parts = importer.split(".") if is_package else importer.split(".")[:-1]
        parts = parts[: len(parts) - (node.level - 1)]
        base = ".".join(parts + ([node.module] if node.module else []))
    # `from . import study` names a module; `from .rules import RULES` names a module's attribute
    return [f"{base}.{a.name}" if f"{base}.{a.name}" in KNOWN else base for a in node.names]


def imports(path: Path) -> list[tuple[str, bool]]:
    """(imported module, at the top of the file?) for every import in the file."""
    tree = ast.parse(path.read_text())
    name, is_package = module_name(path), path.name == "__init__.py"
    top = set(map(id, tree.body))
    for node in tree.body:  # conditional imports at the top (sys.version_info) count as top
        if isinstance(node, ast.If):
            top |= {id(n) for n in ast.walk(node)}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, id(node) in top) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            out += [(m, id(node) in top) for m in resolve(name, is_package, node)]
    return out


FILES = sorted(SRC.rglob("*.py"))
KNOWN = {module_name(p) for p in FILES}


def test_every_module_has_a_layer():
    assert KNOWN - PACKAGES == set(LAYERS), "give a new module its layer here and in docs/architecture.md"


def test_a_study_module_sits_in_the_folder_of_its_layer():
    for layer in STUDY_FOLDERS:
        for m in LAYER_MODULES[layer]:
            assert m.startswith(f"wdscale.study.{layer}."), f"{m} belongs in study/{layer}/"
    for m in LAYER_MODULES["core"] + LAYER_MODULES["faces"]:
        assert m.count(".") <= 2 and not any(m.startswith(f"wdscale.study.{f}.") for f in STUDY_FOLDERS), m
    assert set(STUDY_FOLDERS) == {
        p.name for p in (SRC / "wdscale" / "study").iterdir() if p.is_dir() and p.name[0] != "_"
    }


@pytest.mark.parametrize("path", FILES, ids=lambda p: module_name(p))
def test_imports_run_one_way(path):
    importer = module_name(path)
    for imported, _ in imports(path):
        if not imported.startswith("wdscale") or imported == importer:
            continue
        if importer in PACKAGES:
            assert imported.startswith(importer), f"{importer} re-exports only its own modules, not {imported}"
            continue
        if imported in PACKAGES:
            assert importer in FACES, f"{importer} imports the package {imported}: only the faces may"
            continue
        assert LAYERS.index(imported) < LAYERS.index(importer), f"{importer} imports {imported}, a higher layer"


@pytest.mark.parametrize("path", FILES, ids=lambda p: module_name(p))
def test_imports_are_at_the_top_unless_optional(path):
    late = [m for m, at_top in imports(path) if not at_top]
    assert [m for m in late if not any(m == o or m.startswith(o + ".") for o in OPTIONAL)] == []


def test_the_architecture_page_names_every_module():
    page = (SRC.parent / "docs" / "architecture.md").read_text()
    missing = [m for m in LAYERS if f"{m.rsplit('.', 1)[-1]}.py" not in page]
    assert missing == [], "docs/architecture.md does not say what these modules own"
