"""Figures: reconstruction grids have no empty columns; embedding titles are not cut off."""

from __future__ import annotations

import pandas as pd
import torch
from PIL import Image

from lsmia_bench.attacks.grids import save_reconstruction_grid
from lsmia_bench.benchmark.embedding import save_embedding_figure


def _grid(tmp_path, per_attack: int):
    labels = torch.arange(3).repeat_interleave(per_attack)
    recon = torch.rand(len(labels), 1, 8, 8)
    private, private_labels = torch.rand(30, 1, 8, 8), torch.arange(3).repeat_interleave(10)
    path = save_reconstruction_grid(recon, labels, private, private_labels,
                                    tmp_path / f"grid{per_attack}.png", per_class=5, title="t")
    return Image.open(path).size


def test_grid_has_as_many_real_columns_as_reconstructions(tmp_path):
    two_wide, _ = _grid(tmp_path, 2)
    five_wide, _ = _grid(tmp_path, 5)
    # Two reconstructions per class: 2 + 2 columns, not 5 + 5 with three empty ones.
    assert two_wide < 0.6 * five_wide


def test_embedding_title_fits_in_the_figure(tmp_path):
    table = pd.DataFrame({"label": [0, 1, 0, 1], "pca_x": [0.0, 1.0, 0.5, 1.5],
                          "pca_y": [0.0, 1.0, 0.2, 0.8]})
    title = ("target resnet label_smoothing(alpha=-0.05) seed=0: penultimate features of the "
             "private test data")
    image = Image.open(save_embedding_figure(table, title, tmp_path / "e.png")).convert("L")
    # Nothing drawn on any edge: a title wider than the figure wraps instead of being cut.
    edges = [image.getpixel((x, y)) for x in (0, image.width - 1) for y in range(image.height)]
    edges += [image.getpixel((x, 0)) for x in range(image.width)]
    assert min(edges) > 200
