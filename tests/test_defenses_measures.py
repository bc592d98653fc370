"""The math of MID and BiDO against hand computations: the KL term, HSIC, COCO, the kernels."""

from __future__ import annotations

import math

import pytest
import torch

from lsmia_bench.defenses.dependence import (
    centering_matrix,
    coco,
    doubly_centered,
    gaussian_kernel,
    hsic_resolvent,
    linear_kernel,
    normalized_hsic,
)
from lsmia_bench.defenses.mid import gaussian_kl_to_standard_normal, log_softplus, split_statistics


def test_kl_matches_hand_computation():
    mu = torch.tensor([[1.0, 0.0], [0.0, 0.0]], dtype=torch.float64)
    std = torch.tensor([[1.0, 0.5], [1.0, 1.0]], dtype=torch.float64)
    # Row 0: 0.5 * [(1 + 1 - 1 - 0) + (0 + 0.25 - 1 - 2 ln 0.5)]; row 1: N(0, I) itself, 0.
    row0 = 0.5 * (1.0 + (0.25 - 1.0 - 2.0 * math.log(0.5)))
    expected = (row0 + 0.0) / 2  # summed over the code, averaged once over the batch
    assert gaussian_kl_to_standard_normal(mu, std).item() == pytest.approx(expected, abs=1e-12)
    assert expected == pytest.approx(0.4090736, abs=1e-7)


def test_kl_equals_torch_distributions():
    gen = torch.Generator().manual_seed(1)
    mu = torch.randn(6, 4, generator=gen, dtype=torch.float64)
    std = torch.rand(6, 4, generator=gen, dtype=torch.float64) + 0.1
    q = torch.distributions.Normal(mu, std)
    p = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(std))
    expected = torch.distributions.kl_divergence(q, p).sum(dim=1).mean()
    assert gaussian_kl_to_standard_normal(mu, std).item() == pytest.approx(expected.item())


def test_statistics_use_the_authors_softplus_shift():
    s = torch.tensor([[0.3, -1.0, 5.0, 7.0]])
    mu, std = split_statistics(s, 2)
    assert mu[0].tolist() == pytest.approx([0.3, -1.0])
    expected = [math.log1p(math.exp(0.0)), math.log1p(math.exp(2.0))]  # softplus(s - 5)
    assert std[0].tolist() == pytest.approx(expected)


def test_log_softplus_stays_finite_where_softplus_underflows():
    x = torch.tensor([-300.0, -20.0, -1.0, 0.0, 3.0], requires_grad=True)
    value = log_softplus(x)
    reference = torch.log(torch.nn.functional.softplus(x[1:].double()))
    assert value[0].item() == pytest.approx(-300.0)
    assert value[1:].double().tolist() == pytest.approx(reference.tolist(), rel=1e-5)
    value.sum().backward()
    assert torch.isfinite(x.grad).all()


def test_gaussian_kernel_scales_bandwidth_by_dimension():
    x = torch.tensor([[0.0, 0.0], [3.0, 4.0]], dtype=torch.float64)
    k = gaussian_kernel(x, sigma=5.0)
    off = math.exp(-25.0 / (2 * 25.0 * 2))  # ||x0 - x1||^2 = 25, d = 2
    assert k.flatten().tolist() == pytest.approx([1.0, off, off, 1.0])
    assert linear_kernel(x).flatten().tolist() == pytest.approx([0.0, 0.0, 0.0, 25.0])


def test_normalized_hsic_hand_computed_linear_cases():
    # Linear kernel, 1-D: K H = x xc^T has the single eigenvalue lam = ||xc||^2, so
    # R = K H (K H + c I)^-1 has eigenvalue lam / (lam + c), c = 1e-5 * m.
    x = torch.tensor([[1.0], [2.0], [4.0], [9.0]], dtype=torch.float64)
    m, lam = 4, ((x - x.mean()) ** 2).sum().item()
    shrink = lam / (lam + 1e-5 * m)
    assert normalized_hsic(x, x, "linear", "linear").item() == pytest.approx(shrink**2)
    assert normalized_hsic(x, -3 * x + 1, "linear", "linear").item() == pytest.approx(
        normalized_hsic(x, x, "linear", "linear").item(), rel=1e-6)
    # Centred and orthogonal: tr(R_x R_y) = (xc . yc)^2 / ((lam_x + c)(lam_y + c)) = 0.
    a = torch.tensor([[1.0], [-1.0], [1.0], [-1.0]], dtype=torch.float64)
    b = torch.tensor([[1.0], [1.0], [-1.0], [-1.0]], dtype=torch.float64)
    assert normalized_hsic(a, b, "linear", "linear").item() == pytest.approx(0.0, abs=1e-12)
    r = hsic_resolvent(linear_kernel(x))
    assert torch.trace(r).item() == pytest.approx(shrink)


def test_coco_hand_computed_linear_case():
    # Linear kernels: H K H = xc xc^T, so ||K~ L~||_F = |xc . yc| ||xc|| ||yc||.
    x = torch.tensor([[1.0], [2.0], [4.0], [9.0]], dtype=torch.float64)
    y = torch.tensor([[0.0], [3.0], [1.0], [1.0]], dtype=torch.float64)
    xc, yc = x - x.mean(), y - y.mean()
    frob = abs((xc * yc).sum().item()) * xc.norm().item() * yc.norm().item()
    assert coco(x, y, "linear", "linear").item() == pytest.approx(math.sqrt(frob) / 4)


def _samples(m: int, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(m, 2, generator=gen, dtype=torch.float64)
    independent = torch.randn(m, 2, generator=gen, dtype=torch.float64)
    dependent = x + 0.1 * torch.randn(m, 2, generator=gen, dtype=torch.float64)
    return x, independent, dependent


@pytest.mark.parametrize("kernel", ["linear", "gaussian"])
def test_normalized_hsic_near_zero_when_independent_positive_when_dependent(kernel):
    x, independent, dependent = _samples(300)
    self_dependence = normalized_hsic(x, x, kernel, kernel).item()
    assert self_dependence > 1.0  # linear: rank 2, so about 2
    assert normalized_hsic(x, independent, kernel, kernel).item() < 0.05 * self_dependence
    assert normalized_hsic(x, dependent, kernel, kernel).item() > 0.9 * self_dependence


def test_gaussian_hsic_sees_a_nonlinear_dependence_the_linear_kernel_misses():
    x, _, _ = _samples(300)
    squared = x**2
    ratio = {k: normalized_hsic(x, squared, k, k).item() / normalized_hsic(x, x, k, k).item()
             for k in ("linear", "gaussian")}
    assert ratio["linear"] < 0.1 < 0.3 < ratio["gaussian"]


@pytest.mark.parametrize("kernel", ["linear", "gaussian"])
def test_coco_small_when_independent_clearly_positive_when_dependent(kernel):
    x, independent, dependent = _samples(400)
    self_dependence = coco(x, x, kernel, kernel).item()
    assert self_dependence > 0
    assert coco(x, independent, kernel, kernel).item() < 0.35 * self_dependence
    assert coco(x, dependent, kernel, kernel).item() > 0.95 * self_dependence


def test_coco_of_independent_samples_shrinks_towards_zero_with_more_samples():
    def mean_ratio(m: int) -> float:
        ratios = []
        for seed in range(3):
            x, independent, _ = _samples(m, seed)
            ratios.append(coco(x, independent, "linear", "linear").item()
                          / coco(x, x, "linear", "linear").item())
        return sum(ratios) / len(ratios)

    # The estimate falls like m^(-1/4): about 0.35 at m = 64 and 0.19 at m = 1000.
    small, large = mean_ratio(64), mean_ratio(1000)
    assert large < 0.3
    assert large < 0.7 * small


def test_centring_shortcuts_equal_the_matrix_products():
    gen = torch.Generator().manual_seed(2)
    k = gaussian_kernel(torch.randn(7, 3, generator=gen, dtype=torch.float64), 1.0)
    h = centering_matrix(7, k)
    assert torch.allclose(doubly_centered(k), h @ k @ h)
    ridge = k @ h + 1e-5 * 7 * torch.eye(7, dtype=torch.float64)
    assert torch.allclose(hsic_resolvent(k), k @ h @ torch.linalg.inv(ridge))


def test_coco_of_constant_labels_is_zero_with_finite_gradient():
    z = torch.randn(8, 3, dtype=torch.float64, requires_grad=True)
    labels = torch.ones(8, 2, dtype=torch.float64)
    value = coco(z, labels, "gaussian", "linear")
    value.backward()
    assert value.item() == pytest.approx(0.0, abs=1e-6)
    assert torch.isfinite(z.grad).all()


def test_measures_are_differentiable_and_keep_dtype():
    gen = torch.Generator().manual_seed(3)
    z = torch.randn(16, 5, generator=gen, requires_grad=True)
    x = torch.rand(16, 1, 4, 4, generator=gen)  # images are flattened per sample
    for measure in (normalized_hsic, coco):
        value = measure(z, x)
        assert value.dtype == torch.float32 and value.ndim == 0
        (grad,) = torch.autograd.grad(value, z)
        assert torch.isfinite(grad).all() and grad.abs().sum() > 0
