"""Versioned models stored next to the lake: ``<lake>/models/<detector>/<version>/``
(on object storage, ``models/cluster=<cluster>/...``: a model serves the cluster it learned).

Each version holds ``model.pickle.gz`` (``model.joblib`` before: still read) and
``metadata.json`` (training window, rows, parameters, library versions, the model's file).
Scoring a window takes the newest model trained on data that ended at or before the window's
start, so a backfill of last month uses last month's model and gives the alerts a scheduled run
gave then.
"""

from __future__ import annotations

import gzip
import io
import json
import pickle
from datetime import UTC, datetime
from typing import Any

import pyarrow.fs as pafs

from l7analytics import __version__
from l7analytics.adapters.delta_lake import DeltaLake
from l7analytics.adapters.lake import ParquetLake
from l7analytics.core.errors import ModelError
from l7analytics.core.windows import Window, parse_time

#: The model of a version: a pickle, gzip-compressed (models are trusted like the lake).
MODEL_FILE = "model.pickle.gz"


class LakeModelStore:
    """A :class:`~l7analytics.jobs.ports.ModelStore` on the lake's filesystem."""

    def __init__(self, lake: ParquetLake | DeltaLake) -> None:
        self.lake = lake

    def _dir(self, detector_id: str, version: str | None = None) -> str:
        parts = [*self.lake.models_dir, detector_id]
        return self.lake.path(*parts, version) if version else self.lake.path(*parts)

    def save(self, detector_id: str, version: str, model: object, metadata: dict) -> str:
        fs = self.lake.fs
        final = self._dir(detector_id, version)
        # Where a directory rename is atomic, stage and move; on object storage write in
        # place, metadata.json last: a version without it is not listed.
        atomic = getattr(self.lake, "atomic_rename", True)
        staging = self.lake.path("_staging", f"model-{detector_id}-{version}") if atomic else final
        fs.create_dir(staging, recursive=True)
        import sklearn  # here, not at import: only training records its version

        # pickle and gzip from the standard library, not joblib: loading joblib imports
        # loky and psutil (0.16 s) in every process that scores.
        with fs.open_output_stream(f"{staging}/{MODEL_FILE}") as out:
            out.write(gzip.compress(pickle.dumps(model, protocol=5), compresslevel=6))
        meta = {
            **metadata,
            "version": version,
            "detector": detector_id,
            "trained_at": datetime.now(UTC).isoformat(),
            "l7analytics_version": __version__,
            "sklearn_version": sklearn.__version__,
            "model_file": MODEL_FILE,
        }
        with fs.open_output_stream(f"{staging}/metadata.json") as out:
            out.write(json.dumps(meta, indent=2, sort_keys=True, default=str).encode())
        if not atomic:
            return final
        fs.create_dir(self._dir(detector_id), recursive=True)
        if fs.get_file_info(final).type == pafs.FileType.Directory:
            fs.delete_dir(final)
        fs.move(staging, final)
        return final

    def versions(self, detector_id: str) -> list[dict[str, Any]]:
        base = self._dir(detector_id)
        fs = self.lake.fs
        if fs.get_file_info(base).type != pafs.FileType.Directory:
            return []
        out = []
        for info in fs.get_file_info(pafs.FileSelector(base)):
            meta_path = f"{info.path}/metadata.json"
            if info.type == pafs.FileType.Directory and fs.get_file_info(meta_path).is_file:
                with fs.open_input_stream(meta_path) as stream:
                    out.append(json.loads(stream.read()))
        return sorted(out, key=lambda m: (m["training_end"], m.get("trained_at", "")))

    def latest(self, detector_id: str, trained_before: Window | None = None) -> tuple[object, dict]:
        """The newest model whose training data ended at or before ``trained_before.start``."""
        candidates = self.versions(detector_id)
        if trained_before is not None:
            limit = trained_before.start
            candidates = [m for m in candidates if _time(m["training_end"]) <= limit]
        if not candidates:
            raise ModelError(
                f"no {detector_id} model trained on data before "
                f"{trained_before.start if trained_before else 'now'}; run `l7analytics train`"
            )
        meta = candidates[-1]
        name = meta.get("model_file", "model.joblib")  # versions saved before: joblib
        path = f"{self._dir(detector_id, meta['version'])}/{name}"
        with self.lake.fs.open_input_stream(path) as stream:
            data = stream.read()
        if name == "model.joblib":
            import joblib

            return joblib.load(io.BytesIO(data)), meta
        return pickle.loads(gzip.decompress(data)), meta


def _time(text: str) -> datetime:
    return parse_time(text)
