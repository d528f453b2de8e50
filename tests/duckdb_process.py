"""DuckDB queries answered by a separate process, never loaded into the test process.

With DuckDB loaded, later tests that parse NDJSON with Arrow's multithreaded JSON reader
crashed the whole pytest process (``Fatal Python error: Segmentation fault`` in
``pyarrow.json.read_json``, seen with ``test_hostile_documents`` after any DuckDB query: 5
runs in 6). Checking the lake with a real third-party reader matters; doing it in a process
of its own keeps that crash out of the suite.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

_SERVER = """
import json, sys
import duckdb
for line in sys.stdin:
    try:
        rows = duckdb.sql(json.loads(line)).fetchall()
        print(json.dumps({"rows": rows}, default=str), flush=True)
    except Exception as exc:
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}), flush=True)
"""


class DuckDBProcess:
    """One DuckDB process for many queries (it starts in about half a second)."""

    def __init__(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-c", _SERVER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def sql(self, query: str) -> list[tuple[Any, ...]]:
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.write(json.dumps(query) + "\n")
        self._proc.stdin.flush()
        answer = self._proc.stdout.readline()
        if not answer:
            raise RuntimeError(f"the DuckDB process ended (status {self._proc.wait()})")
        result = json.loads(answer)
        if "error" in result:
            raise RuntimeError(result["error"])
        return [tuple(row) for row in result["rows"]]

    def close(self) -> None:
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        self._proc.wait(timeout=30)

    def __enter__(self) -> DuckDBProcess:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
