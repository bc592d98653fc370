"""2-D views of a classifier's penultimate-layer features (the paper's embedding figure).

PCA shows the linear geometry of the features; t-SNE shows their neighbourhoods. Both are
computed on the private test data of one target and drawn side by side.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

PROJECTIONS = ("pca", "tsne")
PROJECTION_TITLES = {"pca": "PCA", "tsne": "t-SNE"}


def project_2d(features: np.ndarray, method: str, seed: int = 0) -> np.ndarray:
    """(N, D) features -> (N, 2) points by PCA or t-SNE (scikit-learn, fixed random state)."""
    features = np.asarray(features, dtype=np.float64)
    if method == "pca":
        from sklearn.decomposition import PCA

        if features.shape[1] < 2 or len(features) < 2:
            return np.pad(features[:, :2], ((0, 0), (0, max(0, 2 - features.shape[1]))))
        return PCA(n_components=2, random_state=seed).fit_transform(features)
    if method == "tsne":
        from sklearn.manifold import TSNE

        # t-SNE needs perplexity < N; 30 is scikit-learn's default.
        perplexity = float(min(30.0, max(1.0, (len(features) - 1) / 3)))
        return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed
                    ).fit_transform(features)
    raise ValueError(f"unknown projection {method!r}; use one of {PROJECTIONS}")


def embedding_table(features: np.ndarray, labels: np.ndarray, class_ids: list[int],
                    seed: int = 0) -> pd.DataFrame:
    """One row per sample: label, source class id and its PCA and t-SNE coordinates."""
    table = pd.DataFrame({"label": labels, "class_id": [class_ids[i] for i in labels]})
    for method in PROJECTIONS:
        points = project_2d(features, method, seed)
        table[f"{method}_x"], table[f"{method}_y"] = points[:, 0], points[:, 1]
    return table


def draw_embedding(ax, table: pd.DataFrame, method: str, title: str) -> None:  # noqa: ANN001
    """Scatter one projection of ``table`` into ``ax``, coloured by class."""
    from matplotlib import colormaps

    size = 10 if table["label"].nunique() <= 10 else 20
    colors = colormaps[f"tab{size}"](table["label"].to_numpy() % size)
    ax.scatter(table[f"{method}_x"], table[f"{method}_y"], c=colors, s=12, edgecolors="none")
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


def save_embedding_figure(table: pd.DataFrame, title: str, path: Path) -> Path:
    """PCA and t-SNE panels of one target's test features, saved as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(7.6, 3.9))
    for ax, method in zip(axes, PROJECTIONS, strict=True):
        draw_embedding(ax, table, method, PROJECTION_TITLES[method])
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
