"""The import direction of ARCHITECTURE.md: the core never imports an adapter, Elasticsearch,
Airflow or the filesystem (read statically, so an import inside a function counts too)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "l7analytics"
CORE = [
    "schema", "rawjson", "normalize", "urls", "identity", "windows", "arrowutil", "summary",
    "errors", "alerts", "allowlist", "config", "ports", "pipeline", "prefetch",
    *(f"detectors/{p.stem}" for p in (PACKAGE / "detectors").glob("*.py")),
]  # fmt: skip
FORBIDDEN = (
    "l7analytics.adapters", "l7analytics.cli", "l7analytics.orchestration", "l7analytics.kibana",
    "l7analytics.report", "l7analytics.plots", "l7analytics.synth",
    "elasticsearch", "elastic_transport", "airflow", "urllib3", "requests", "deltalake",
    "pyarrow.fs", "os", "pathlib", "shutil", "fcntl", "glob", "tempfile", "io",
)  # fmt: skip
#: config reads the settings file itself (see ARCHITECTURE.md): the filesystem, nothing else.
ALLOWED = {"config": {"pathlib"}}


def imports(module: str) -> set[str]:
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
    return found


def forbidden(name: str) -> bool:
    return any(name == f or name.startswith(f + ".") for f in FORBIDDEN)


@pytest.mark.parametrize("module", CORE)
def test_the_core_imports_no_adapter_and_no_io(module):
    bad = {m for m in imports(module) if forbidden(m)} - ALLOWED.get(module, set())
    assert not bad, f"l7analytics/{module}.py imports {sorted(bad)}"


def test_every_module_is_placed_in_a_layer():
    """A new top-level module must be given a layer in ARCHITECTURE.md (and here)."""
    documented = (PACKAGE.parent / "ARCHITECTURE.md").read_text()
    for path in PACKAGE.glob("*.py"):
        if path.stem != "__init__":
            assert f"`{path.stem}`" in documented, f"{path.name} is not in ARCHITECTURE.md"
