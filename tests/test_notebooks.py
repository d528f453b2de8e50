"""The notebooks run top to bottom on generated data, and are committed without outputs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from l7analytics.ui.cli import main

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
NAMES = ["01_explore.ipynb", "02_triage_alert.ipynb", "03_tune_detectors.ipynb"]


@pytest.mark.parametrize("name", NAMES)
def test_committed_without_outputs(name):
    nb = json.loads((NOTEBOOKS / name).read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(c["outputs"] == [] and c["execution_count"] is None for c in code), (
        f"{name} has outputs: run `nbstripout notebooks/*.ipynb`"
    )
    parameters = code[0]
    assert "parameters" in parameters["metadata"].get("tags", [])
    source = "".join(parameters["source"])
    for parameter in ("LAKE", "START", "END"):
        assert f"\n{parameter} = " in source


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    """Four generated days in a lake, a model trained on three, the last day scored."""
    out = tmp_path_factory.mktemp("notebooks") / "demo"
    assert main(["demo", "--out", str(out), "--days", "4"]) == 0
    return out


@pytest.fixture
def notebook_env(demo, monkeypatch):
    monkeypatch.setenv("L7_LAKE", str(demo / "lake"))
    monkeypatch.setenv("L7_ALERTS", str(demo / "alerts.ndjson"))
    monkeypatch.setenv("L7_LABELS", str(demo / "l7logs.labels.json"))
    for name in ("L7_START", "L7_END", "L7_CONFIG", "MPLBACKEND"):
        monkeypatch.delenv(name, raising=False)  # defaults; the kernel's inline backend
    return demo


def execute(name: str, cwd: Path, **parameters: object):
    """Run a notebook in a kernel of this interpreter, ``parameters`` injected after the
    ``parameters`` cell as papermill does. Raises ``CellExecutionError`` on any error."""
    import ipykernel  # noqa: F401 - the kernel the notebooks run in
    import matplotlib  # noqa: F401
    import nbclient
    import nbformat
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    if parameters:
        index = next(
            i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])
        )
        cell = nbformat.v4.new_code_cell(
            "\n".join(f"{key} = {value!r}" for key, value in parameters.items())
        )
        cell.metadata["tags"] = ["injected-parameters"]
        nb.cells.insert(index + 1, cell)
    # A kernel spec of its own, so the kernel is this interpreter whatever else is installed.
    kernels = cwd / "kernels"
    (kernels / "l7analytics-test").mkdir(parents=True, exist_ok=True)
    (kernels / "l7analytics-test" / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "l7analytics tests",
                "language": "python",
            }
        )
    )
    manager = KernelManager(
        kernel_name="l7analytics-test",
        kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernels)]),
    )
    client = nbclient.NotebookClient(
        nb, km=manager, timeout=300, resources={"metadata": {"path": str(cwd)}}
    )
    client.execute()
    return nb


def outputs(nb) -> list[dict]:
    return [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]


def images(nb) -> int:
    return sum("image/png" in o.get("data", {}) for o in outputs(nb))


def text(nb) -> str:
    parts = [o.get("text", "") for o in outputs(nb)]
    parts += [o.get("data", {}).get("text/plain", "") for o in outputs(nb)]
    return "\n".join(parts)


#: Text each notebook must show (beyond running without error and drawing a plot).
EXPECTED = {
    "01_explore.ipynb": ["requests", "caller -> destination edges", "unlogged requests"],
    "02_triage_alert.ipynb": ["in the evidence", "per hour before", "new destination"],
    "03_tune_detectors.ipynb": ["min_distinct_error_templates", "deviation_threshold", "recall"],
}


@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_on_generated_data(name, notebook_env):
    nb = execute(name, notebook_env.parent)
    assert images(nb) >= 1, f"{name} drew no plot"
    out = text(nb)
    for expected in EXPECTED[name]:
        assert expected in out, f"{name}: {expected!r} not in the outputs"


def test_triage_of_a_model_alert_charts_feature_contributions(notebook_env):
    alerts = [json.loads(line) for line in (notebook_env / "alerts.ndjson").open()]
    model_alerts = [a for a in alerts if a["origin"] == "l7.unusual_pair"]
    assert model_alerts, "the demo should raise unusual-pair alerts"
    alert = max(model_alerts, key=lambda a: a["severity"])
    nb = execute(
        "02_triage_alert.ipynb",
        notebook_env.parent,
        ALERT_ID=alert["id"],
        START="2026-11-02T00:00:00Z",
        END="2026-11-05T00:00:00Z",
    )
    out = text(nb)
    assert alert["description"] in out
    assert "[2026-11-02T00:00:00Z, 2026-11-05T00:00:00Z)" in out  # the baseline period given
    assert "quantity" in out and "z" in out  # the contributions table under the chart
    assert images(nb) >= 3


@pytest.mark.parametrize("name", ["01_explore.ipynb", "03_tune_detectors.ipynb"])
def test_notebook_reads_a_lake_on_object_storage(name, notebook_env, monkeypatch):
    """The demo lake migrated to a real S3 API (moto): the notebooks open it through the
    same helper, with the standard AWS variables only."""
    from s3_server import environment, make_bucket, s3_server

    with s3_server() as endpoint:
        make_bucket(endpoint, "lake")
        for key, value in environment(endpoint).items():
            monkeypatch.setenv(key, value)
        migrate = ["lake", "migrate", "--from", str(notebook_env / "lake"), "--lake", "s3://lake/d"]
        assert main(migrate) == 0
        monkeypatch.setenv("L7_LAKE", "s3://lake/d")
        nb = execute(name, notebook_env.parent)
    out = text(nb)
    assert "lake s3://lake/d holds" in out or name != "01_explore.ipynb"
    for expected in EXPECTED[name]:
        assert expected in out, f"{name}: {expected!r} not in the outputs"
