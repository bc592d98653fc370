"""2-D views of a classifier's penultimate-layer features (the paper's embedding figure).

Trials draw PCA (the linear geometry of the features, deterministic and cheap); t-SNE (their
neighbourhoods) is available from :func:`project_2d` but costs tens of seconds per target on
a busy 2-core CPU, so it is not drawn by default. Trials also keep the raw features
(``features.npz``) for other views.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

PROJECTIONS = ("pca",)
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
    raise ValueError(f"unknown projection {method!r}; use pca or tsne")


def embedding_table(features: np.ndarray, labels: np.ndarray, class_ids: list[int],
                    seed: int = 0, projections: tuple[str, ...] = PROJECTIONS) -> pd.DataFrame:
    """One row per sample: label, source class id and its coordinates per projection
    (columns ``pca_x``, ``pca_y``, ...)."""
    table = pd.DataFrame({"label": labels, "class_id": [class_ids[i] for i in labels]})
    for method in projections:
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
    """One panel per projection in ``table`` of one target's test features, saved as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = [m for m in PROJECTION_TITLES if f"{m}_x" in table]
    # A constrained layout makes room for the figure title (tight_layout ignores it and the
    # title was cut off at the top).
    fig, axes = plt.subplots(1, len(methods), figsize=(4.2 * len(methods), 4.4), squeeze=False,
                             layout="constrained")
    for ax, method in zip(axes[0], methods, strict=True):
        draw_embedding(ax, table, method, PROJECTION_TITLES[method])
    fig.suptitle(title, fontsize=10, wrap=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
