"""The social network imitation runs over, as a sparse matrix.

A Watts-Strogatz small world (ring lattice of ``mean_degree`` ties, each rewired
with ``rewire_probability``) stands in for households, workplaces and
neighbourhoods. Built with numpy from the model's generator, so it is seeded and
scales to a million residents, unlike a per-node Python loop.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def small_world(
    n: int, mean_degree: int, rewire_probability: float, rng: np.random.Generator
) -> sp.csr_matrix:
    """Symmetric 0/1 adjacency, no self-ties; rewired ends land uniformly at random."""
    half = max(1, mean_degree // 2)
    source = np.repeat(np.arange(n), half)
    target = (source + np.tile(np.arange(1, half + 1), n)) % n
    rewire = rng.random(source.size) < rewire_probability
    target[rewire] = rng.integers(0, n, int(rewire.sum()))
    keep = source != target
    source, target = source[keep], target[keep]
    ones = np.ones(source.size * 2, dtype=np.float32)
    adj = sp.coo_matrix((ones, (np.r_[source, target], np.r_[target, source])), shape=(n, n))
    adj = adj.tocsr()
    adj.data[:] = 1.0  # duplicate ties count once
    return adj


def degrees(adj: sp.csr_matrix) -> np.ndarray:
    return np.asarray(adj.sum(axis=1)).ravel().astype(np.float32)


def adopted_share(adj: sp.csr_matrix, degree: np.ndarray, adopted: np.ndarray) -> np.ndarray:
    """Per resident, the share of their ties who have adopted (0 for the tie-less)."""
    neighbours = adj @ adopted.astype(np.float32)
    return np.divide(neighbours, degree, out=np.zeros_like(neighbours), where=degree > 0)
