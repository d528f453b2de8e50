"""The partial summaries of a large scoring window, beside the lake: the map step of scoring
(one task per cluster and hour, on any worker) writes them, the reduce step (one task per
cluster) combines them and detects, then deletes them.

Layout: ``<lake>/_parts/cluster=<name>/<scope>/<part>/`` holds one Arrow IPC file per
detector (``<detector>.arrow``) and ``meta.json``, written last: a part without it is
unfinished and is not loaded. ``scope`` and ``part`` are made of window times by the
scheduled tasks, checked here anyway (they become object keys). On a local lake the part is
written in a staging directory and renamed into place; on object storage each object is put
whole and ``meta.json`` comes last.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.ipc as ipc

from l7analytics.core.errors import ConfigError, LakeError

#: Scope and part names: window times such as 20261101T0400-20261102T0000.
_NAME = re.compile(r"^[0-9A-Za-z._-]{1,80}$")
META = "meta.json"


class LakeParts:
    """A :class:`~l7analytics.jobs.ports.PartStore` under the lake's root."""

    def __init__(self, lake: Any) -> None:
        self.lake = lake
        self.fs: pafs.FileSystem = lake.fs
        self.atomic = getattr(lake, "atomic_rename", True)
        self.base = lake.path("_parts", f"cluster={lake.cluster}")

    def _dir(self, scope: str, part: str | None = None) -> str:
        for name in (scope, part):
            if name is not None and not _NAME.match(name):
                raise ConfigError(f"scoring part {name!r}: letters, digits, '.', '_', '-' only")
        return f"{self.base}/{scope}" if part is None else f"{self.base}/{scope}/{part}"

    def save(self, scope: str, part: str, summaries: dict[str, pa.Table], meta: dict) -> None:
        """Write ``part``'s summaries (one per detector) and ``meta``, replacing a previous
        write of the same part whole."""
        final = self._dir(scope, part)
        target = f"{final}.{uuid.uuid4().hex}.staging" if self.atomic else final
        try:
            if not self.atomic:  # in place: the old part goes first, its meta.json with it
                self._delete(final)
            self.fs.create_dir(target, recursive=True)
            for detector, table in summaries.items():
                path = f"{target}/{detector}.arrow"
                with self.fs.open_output_stream(path) as out, ipc.new_file(out, table.schema) as w:
                    w.write_table(table)
            document = {**meta, "detectors": sorted(summaries)}
            with self.fs.open_output_stream(f"{target}/{META}") as out:
                out.write(json.dumps(document, sort_keys=True).encode())
            if self.atomic:
                self._delete(final)
                self.fs.move(target, final)
        except OSError as exc:
            raise LakeError(f"lake {self.lake}: cannot write scoring part {part}: {exc}") from None

    def load(self, scope: str) -> dict[str, tuple[dict[str, pa.Table], dict]]:
        """Every finished part of ``scope``: part -> (detector -> summary, meta)."""
        parts: dict[str, tuple[dict[str, pa.Table], dict]] = {}
        try:
            infos = self.fs.get_file_info(pafs.FileSelector(self._dir(scope), allow_not_found=True))
            for info in infos:
                name = info.base_name
                if info.type != pafs.FileType.Directory or name.endswith(".staging"):
                    continue
                loaded = self._load_part(f"{info.path}")
                if loaded is not None:
                    parts[name] = loaded
        except OSError as exc:
            raise LakeError(f"lake {self.lake}: cannot read scoring parts: {exc}") from None
        return parts

    def _load_part(self, path: str) -> tuple[dict[str, pa.Table], dict] | None:
        if self.fs.get_file_info(f"{path}/{META}").type != pafs.FileType.File:
            return None  # unfinished: the reduce step summarizes that hour itself
        with self.fs.open_input_stream(f"{path}/{META}") as stream:
            meta = json.loads(stream.read())
        summaries = {}
        for detector in meta.get("detectors", []):
            with self.fs.open_input_file(f"{path}/{detector}.arrow") as source:
                summaries[detector] = ipc.open_file(source).read_all()
        return summaries, meta

    def clear(self, scope: str) -> None:
        """Delete ``scope``'s parts (after its reduce step published)."""
        try:
            self._delete(self._dir(scope))
        except OSError as exc:
            raise LakeError(f"lake {self.lake}: cannot delete scoring parts: {exc}") from None

    def _delete(self, path: str) -> None:
        if self.fs.get_file_info(path).type == pafs.FileType.Directory:
            self.fs.delete_dir(path)
