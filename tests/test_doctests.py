"""Every docstring example in the package runs, so none can go stale."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import l7analytics

MODULES = sorted(
    name
    for _, name, _ in pkgutil.walk_packages(l7analytics.__path__, "l7analytics.")
    if not name.endswith("__main__")
)


def test_the_package_has_examples():
    assert sum(_examples(name) for name in MODULES) >= 10


def _examples(name: str) -> int:
    finder = doctest.DocTestFinder()
    return sum(len(t.examples) for t in finder.find(importlib.import_module(name)))


@pytest.mark.parametrize("name", [m for m in MODULES if _examples(m)])
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
