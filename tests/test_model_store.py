"""Models are stored as gzip'd pickles and loaded without joblib or scikit-learn; versions
stored before as ``model.joblib`` still load."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime

import joblib

from l7analytics.adapters.lake import ParquetLake
from l7analytics.adapters.model_store import MODEL_FILE, LakeModelStore
from l7analytics.core.windows import Window

END = "2026-11-02T00:00:00Z"
LATER = Window(datetime(2026, 11, 2, tzinfo=UTC), datetime(2026, 11, 3, tzinfo=UTC))


def test_a_saved_model_loads_back_with_its_metadata(tmp_path):
    store = LakeModelStore(ParquetLake(tmp_path / "lake"))
    path = store.save("l7.x", "v1", {"weights": [1.5, 2.5]}, {"training_end": END, "rows": 3})
    assert (tmp_path / "lake").exists() and path.endswith("v1")
    model, meta = store.latest("l7.x", LATER)
    assert model == {"weights": [1.5, 2.5]}
    assert meta["model_file"] == MODEL_FILE and meta["rows"] == 3


def test_a_version_stored_with_joblib_before_still_loads(tmp_path):
    lake = ParquetLake(tmp_path / "lake")
    version = tmp_path / "lake" / "models" / "l7.x" / "old"
    version.mkdir(parents=True)
    joblib.dump({"old": True}, version / "model.joblib", compress=3)
    meta = {"training_end": END, "version": "old", "detector": "l7.x"}
    (version / "metadata.json").write_text(json.dumps(meta))
    model, meta = LakeModelStore(lake).latest("l7.x", LATER)
    assert model == {"old": True} and meta["version"] == "old"


def test_loading_a_model_imports_neither_joblib_nor_scikit_learn(tmp_path):
    LakeModelStore(ParquetLake(tmp_path / "lake")).save(
        "l7.x", "v1", [1, 2, 3], {"training_end": END}
    )
    code = (
        "import sys; from datetime import UTC, datetime; "
        "from l7analytics.adapters.lake import ParquetLake; "
        "from l7analytics.adapters.model_store import LakeModelStore; "
        "from l7analytics.core.windows import Window; "
        f"w = Window(datetime(2026, 11, 2, tzinfo=UTC), datetime(2026, 11, 3, tzinfo=UTC)); "
        f"m, _ = LakeModelStore(ParquetLake({str(tmp_path / 'lake')!r})).latest('l7.x', w); "
        "assert m == [1, 2, 3]; "
        "print(sorted({k.split('.')[0] for k in sys.modules} & {'joblib', 'sklearn', 'scipy'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True, text=True)
    assert out.stdout.strip() == "[]"
