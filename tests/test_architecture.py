"""The import rules of ARCHITECTURE.md, read statically (an import inside a function counts):

- the core, the detectors and the use cases never import an adapter, Elasticsearch, Airflow
  or the filesystem;
- each inner layer ignores the outer ones;
- adapters (the lake, the model store, sources, sinks) are built in one place, the
  composition root; the command line, the tasks, the DAGs, the notebooks and the benchmarks
  all go through it.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "l7analytics"

#: The inner layers, inside out, with what each may not import (besides the I/O modules).
INNER = {
    "core": ("l7analytics.detectors", "l7analytics.jobs"),
    "detectors": ("l7analytics.jobs",),
    "jobs/ports.py": (),
    "jobs/pipeline.py": ("l7analytics.jobs.composition", "l7analytics.jobs.tasks"),
    "jobs/prefetch.py": ("l7analytics.jobs.composition", "l7analytics.jobs.tasks"),
}
#: Never in an inner layer: the outer layers, the servers' clients, and the filesystem.
OUTER_AND_IO = (
    "l7analytics.adapters", "l7analytics.ui", "l7analytics.evaluation",
    "elasticsearch", "elastic_transport", "airflow", "urllib3", "requests", "deltalake",
    "yaml", "pyarrow.fs", "pyarrow.dataset", "os", "pathlib", "shutil", "fcntl", "glob",
    "tempfile", "io", "importlib.resources",
)  # fmt: skip
#: Adapters that only the composition root builds (their modules are imported nowhere else
#: outside ``adapters/``).
BUILT_BY_COMPOSITION = (
    "l7analytics.adapters.lake", "l7analytics.adapters.delta_lake",
    "l7analytics.adapters.model_store",
    "l7analytics.adapters.ndjson_source", "l7analytics.adapters.elasticsearch.source",
    "l7analytics.adapters.elasticsearch.sinks",
)  # fmt: skip


def modules(where: str) -> list[Path]:
    path = PACKAGE / where
    return [path] if path.suffix == ".py" else sorted(path.rglob("*.py"))


def imported(source: str) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


@pytest.mark.parametrize("layer", list(INNER))
def test_inner_layers_import_no_outer_layer_and_no_io(layer):
    forbidden = OUTER_AND_IO + INNER[layer]
    for path in modules(layer):
        bad = sorted(m for m in imported(path.read_text()) if under(m, forbidden))
        assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


def test_the_core_imports_no_detector():
    """Checked by the rule above; here the rule is shown to bite (a planted import fails)."""
    planted = "from l7analytics.detectors.base import Detector\n"
    assert under(min(imported(planted)), OUTER_AND_IO + INNER["core"])


def outer_sources() -> list[tuple[str, str]]:
    """Every file that wires a job: the package outside adapters/ and the composition root,
    the DAGs, the benchmarks, and the notebooks' code cells."""
    files = [
        p for p in PACKAGE.rglob("*.py") if "adapters" not in p.parts and p.name != "composition.py"
    ]
    files += [*(ROOT / "dags").glob("*.py"), *(ROOT / "benchmarks").glob("*.py")]
    sources = [(str(p.relative_to(ROOT)), p.read_text()) for p in files]
    for notebook in (ROOT / "notebooks").glob("*.ipynb"):
        cells = json.loads(notebook.read_text())["cells"]
        code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
        sources.append((str(notebook.relative_to(ROOT)), code))
    return sources


SOURCES = outer_sources()


@pytest.mark.parametrize("name,source", SOURCES, ids=[name for name, _ in SOURCES])
def test_adapters_are_built_only_by_the_composition_root(name, source):
    # bench_es compares the source's read options; bench_lake the two lake formats on one disk.
    if name in ("benchmarks/bench_es.py", "benchmarks/bench_lake.py"):
        return
    bad = sorted(m for m in imported(source) if under(m, BUILT_BY_COMPOSITION))
    assert not bad, f"{name} builds adapters itself ({bad}); use l7analytics.jobs.composition"


def test_every_module_is_placed_in_a_layer():
    """A new package or top-level module must be given a layer in ARCHITECTURE.md."""
    documented = (ROOT / "ARCHITECTURE.md").read_text()
    for path in PACKAGE.iterdir():
        if path.name.startswith(("_", ".")) or path.suffix not in ("", ".py"):
            continue
        assert f"`{path.stem}/`" in documented or f"`{path.stem}`" in documented, path.name


def test_extracting_imports_no_model_library():
    """An extract task (CLI or Airflow) pays no import of scikit-learn or SciPy: they load
    when a model is fitted or scored (1.3 s of a 2 s import, measured)."""
    import subprocess
    import sys

    code = (
        "import sys, l7analytics.jobs.pipeline, l7analytics.jobs.tasks, l7analytics.ui.cli\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'sklearn', 'scipy'}))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
