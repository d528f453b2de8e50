"""The compiled forest scores exactly as the scikit-learn IsolationForest it was made from."""

from __future__ import annotations

import pickle
import subprocess
import sys

import numpy as np
import pytest
from sklearn.ensemble import IsolationForest

from l7analytics.detectors.forest import CompiledForest


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(
    ("n_features", "max_samples", "contamination"),
    [(3, 256, "auto"), (6, 64, 0.05), (5, "auto", 0.2), (2, 3, "auto")],
)
def test_scores_equal_scikit_learns(seed, n_features, max_samples, contamination):
    rng = np.random.default_rng(seed)
    train = np.vstack([rng.normal(size=(400, n_features)), rng.normal(6, 1, (8, n_features))])
    forest = IsolationForest(n_estimators=50, max_samples=max_samples,
                             contamination=contamination, random_state=seed).fit(train)  # fmt: skip
    compiled = CompiledForest.of(forest)
    probe = np.vstack([rng.normal(0, 3, (500, n_features)), train[:50],
                       np.round(train[:50], 1), np.zeros((1, n_features))])  # fmt: skip
    np.testing.assert_allclose(compiled.score_samples(probe), forest.score_samples(probe),
                               rtol=0, atol=1e-12)  # fmt: skip
    np.testing.assert_allclose(compiled.decision_function(probe), forest.decision_function(probe),
                               rtol=0, atol=1e-12)  # fmt: skip


def test_inputs_on_a_threshold_go_left_as_in_float32():
    """scikit-learn's trees compare float32 inputs: a float64 input just above a threshold may
    round onto it and go left; the compiled forest must do the same."""
    rng = np.random.default_rng(7)
    forest = IsolationForest(n_estimators=20, random_state=0).fit(rng.normal(size=(300, 2)))
    compiled = CompiledForest.of(forest)
    edges = compiled.threshold[compiled.left >= 0][:200]
    probe = np.column_stack([np.nextafter(edges, np.inf), np.nextafter(edges, -np.inf)])
    np.testing.assert_allclose(compiled.decision_function(probe), forest.decision_function(probe),
                               rtol=0, atol=1e-12)  # fmt: skip


def test_a_pickled_compiled_forest_loads_without_scikit_learn():
    rng = np.random.default_rng(3)
    forest = IsolationForest(n_estimators=10, random_state=0).fit(rng.normal(size=(100, 3)))
    blob = pickle.dumps(CompiledForest.of(forest))
    code = (
        "import pickle, sys; f = pickle.loads(sys.stdin.buffer.read()); "
        "f.decision_function([[0.0, 0.0, 0.0]]); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('sklearn', 'scipy')))"
    )
    out = subprocess.run([sys.executable, "-c", code], input=blob, capture_output=True,
                         check=True).stdout  # fmt: skip
    assert out.strip() == b"[]"
