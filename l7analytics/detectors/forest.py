"""A fitted IsolationForest as plain NumPy arrays, scored without scikit-learn.

Why not keep the scikit-learn object in the stored model: unpickling it imports
scikit-learn and SciPy, about 0.8 s on the benchmark machine, in every process that scores.
That fixed cost exceeded the whole scoring of a one-hour window (a 56k-record hour took 1.2 s,
two thirds of it that import). Scoring a fitted forest needs only its trees' arrays: the job
fits with scikit-learn (``UnusualPairDetector.fit``), then keeps this form, which
``tests/test_forest.py`` holds equal to ``IsolationForest.decision_function`` (the same
float32 inputs, the same path lengths).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class CompiledForest:
    """Every tree's nodes in one set of arrays (node ids offset per tree)."""

    left: np.ndarray  # child node ids, -1 at a leaf
    right: np.ndarray
    feature: np.ndarray  # input column tested at the node (0 at a leaf)
    threshold: np.ndarray  # go left when x <= threshold
    leaf_depth: np.ndarray  # depth of the node plus the expected depth below it, minus 1
    roots: np.ndarray  # each tree's root node id
    max_depth: int
    denominator: float  # trees x average path length of max_samples
    offset: float  # IsolationForest.offset_

    @classmethod
    def of(cls, forest: Any) -> CompiledForest:
        """The arrays of a fitted :class:`sklearn.ensemble.IsolationForest`."""
        lefts, rights, features, thresholds, depths, roots = [], [], [], [], [], []
        base, max_depth = 0, 0
        for estimator, columns in zip(forest.estimators_, forest.estimators_features_, strict=True):
            tree = estimator.tree_
            leaf = tree.children_left == -1
            node_depth = tree.compute_node_depths()
            lefts.append(np.where(leaf, -1, tree.children_left + base))
            rights.append(np.where(leaf, -1, tree.children_right + base))
            tested = np.asarray(columns)[np.where(leaf, 0, tree.feature)]
            features.append(np.where(leaf, 0, tested))
            thresholds.append(tree.threshold)
            depths.append(node_depth + average_path_length(tree.n_node_samples) - 1.0)
            roots.append(base)
            base += tree.node_count
            max_depth = max(max_depth, int(tree.max_depth))
        trees = len(forest.estimators_)
        return cls(
            left=np.concatenate(lefts).astype(np.int64),
            right=np.concatenate(rights).astype(np.int64),
            feature=np.concatenate(features).astype(np.int64),
            threshold=np.concatenate(thresholds).astype(np.float64),
            leaf_depth=np.concatenate(depths).astype(np.float64),
            roots=np.asarray(roots, dtype=np.int64),
            max_depth=max_depth,
            denominator=float(trees * average_path_length(np.array([forest.max_samples_]))[0]),
            offset=float(forest.offset_),
        )

    def score_samples(self, x: np.ndarray) -> np.ndarray:
        """Opposite of the anomaly score, as ``IsolationForest.score_samples``."""
        # scikit-learn's trees compare float32 inputs with float64 thresholds.
        x = np.asarray(x, dtype=np.float32).astype(np.float64)
        rows = np.arange(len(x))
        depths = np.zeros(len(x))
        for root in self.roots:
            node = np.full(len(x), root)
            for _ in range(self.max_depth):
                left = self.left[node]
                inner = left >= 0
                if not inner.any():
                    break
                goes_left = x[rows, self.feature[node]] <= self.threshold[node]
                node = np.where(inner, np.where(goes_left, left, self.right[node]), node)
            depths += self.leaf_depth[node]
        if self.denominator == 0:
            return -np.ones(len(x))
        return -(2.0 ** (-depths / self.denominator))

    def decision_function(self, x: np.ndarray) -> np.ndarray:
        """``score_samples - offset``: negative for outliers, as ``IsolationForest``'s."""
        return self.score_samples(x) - self.offset


def average_path_length(n_samples_leaf: np.ndarray) -> np.ndarray:
    """Expected path length of an unsuccessful search in a binary tree of ``n`` samples
    (the normalization of the isolation forest paper, as scikit-learn computes it)."""
    n = np.asarray(n_samples_leaf, dtype=np.float64)
    out = np.zeros_like(n)
    out[n == 2] = 1.0
    many = n > 2
    out[many] = 2.0 * (np.log(n[many] - 1.0) + np.euler_gamma) - 2.0 * (n[many] - 1.0) / n[many]
    return out
