"""SVQ-raw: unrolled non-negative ISTA really solves the non-negative lasso.

Oracle: exact cyclic coordinate descent on the same objective (a different algorithm,
written in numpy), run to convergence and checked against the KKT conditions.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from svqcast.errors import UsageError
from svqcast.models.quantizers.registry import build_quantizer
from svqcast.models.quantizers.svq_raw import SVQRaw, lipschitz_constant


def nonneg_lasso_cd(zt: np.ndarray, x: np.ndarray, lam: float, sweeps: int = 20000) -> np.ndarray:
    """argmin_{a>=0} 1/2||x - D a||^2 + lam*sum(a), D = Z^T (C x N), by coordinate descent."""
    d = zt
    n = d.shape[1]
    a = np.zeros(n)
    r = x.copy()  # residual x - D a
    sq = (d**2).sum(axis=0)
    for _ in range(sweeps):
        change = 0.0
        for i in range(n):
            old = a[i]
            new = max(0.0, old + (d[:, i] @ r - lam) / sq[i])
            if new != old:
                r -= d[:, i] * (new - old)
                a[i] = new
                change = max(change, abs(new - old))
        if change < 1e-15:
            break
    return a


def kkt_violation(zt: np.ndarray, x: np.ndarray, a: np.ndarray, lam: float) -> float:
    """max violation of: g_i = (D^T (x - D a))_i = lam where a_i > 0, g_i <= lam where a_i = 0."""
    g = zt.T @ (x - zt @ a)
    active = a > 1e-12
    v_active = np.abs(g[active] - lam).max() if active.any() else 0.0
    v_inactive = np.maximum(g[~active] - lam, 0).max() if (~active).any() else 0.0
    return float(max(v_active, v_inactive))


def objective(zt: np.ndarray, x: np.ndarray, a: np.ndarray, lam: float) -> float:
    return 0.5 * float(((x - zt @ a) ** 2).sum()) + lam * float(a.sum())


def make_problem(c: int, n: int, lam: float = 0.3):
    torch.manual_seed(3)
    q = SVQRaw(c, codebook_size=n, iters=1, threshold=lam).double()
    q.reset_step()
    x = torch.randn(c, dtype=torch.float64) * 2
    return q, x, q.threshold.item()  # the float32-initialised value, exactly


@pytest.fixture()
def problem():
    return make_problem(8, 20)


def test_one_step_from_zero_is_the_paper_equation(problem) -> None:
    q, x, lam = problem
    z = q.codebook.detach()
    eta = q.step.item()
    assert eta == pytest.approx(1.0 / float(lipschitz_constant(z)), rel=1e-12)
    a1 = q.codes(x[None], iters=1)[0]
    expected = eta * torch.relu(z @ x - lam)  # eta * relu(Z^T x - lambda) in column form
    assert torch.allclose(a1, expected, rtol=1e-13, atol=1e-15)
    assert (a1 == 0).any() and (a1 > 0).any()  # the threshold really cuts


@pytest.mark.parametrize("c,n", [(12, 8), (8, 20)], ids=["undercomplete", "overcomplete"])
def test_unrolled_ista_converges_to_the_nonnegative_lasso_solution(c: int, n: int) -> None:
    q, x, lam = make_problem(c, n)
    zt = q.codebook.detach().numpy().T.copy()
    xn = x.numpy()
    a_star = nonneg_lasso_cd(zt, xn, lam)
    assert kkt_violation(zt, xn, a_star, lam) < 1e-9
    assert (a_star == 0).any() and (a_star > 0).any()
    f_star = objective(zt, xn, a_star, lam)
    ks = (1, 5, 20, 100, 1000, 5000)
    errors, gaps = [], []
    for k in ks:
        with torch.no_grad():
            a = q.codes(x[None], iters=k)[0].numpy()
        assert (a >= 0).all()
        errors.append(np.abs(a - a_star).max())
        gaps.append(objective(zt, xn, a, lam) - f_star)
    # ISTA with step 1/L decreases the objective monotonically towards the optimum
    assert all(g >= -1e-12 for g in gaps)
    assert all(g1 >= g2 - 1e-12 for g1, g2 in zip(gaps, gaps[1:], strict=False))
    assert gaps[0] > 100 * gaps[-2] and gaps[-1] < 1e-5 * max(1.0, abs(f_star))
    assert errors[0] > errors[2] > errors[-1]
    # over-complete: the objective converges fast, the coefficients slowly (flat directions)
    assert errors[-1] < 1e-2
    if c > n:  # strongly convex: linear convergence to the unique minimiser, KKT holds
        assert errors[-1] < 1e-10 and gaps[-1] < 1e-13
        with torch.no_grad():
            a_long = q.codes(x[None], iters=5000)[0].numpy()
        assert kkt_violation(zt, xn, a_long, lam) < 1e-9


def test_forward_is_reconstruction_and_learnable() -> None:
    torch.manual_seed(0)
    q = SVQRaw(16, codebook_size=64, iters=3).double()
    z = torch.randn(2, 16, 3, 5, dtype=torch.float64, requires_grad=True)
    out = q(z)
    x = z.detach().permute(0, 2, 3, 1).reshape(-1, 16)
    rec = (q.codes(x) @ q.codebook).reshape(2, 3, 5, 16).permute(0, 3, 1, 2)
    assert torch.allclose(out.quantized, rec, atol=1e-14)
    assert float(out.aux_loss) == 0.0
    out.quantized.square().sum().backward()
    for name in ("codebook", "step", "threshold"):
        assert getattr(q, name).grad is not None, name
    assert z.grad is not None


def test_lateral_is_quadratic_in_codebook_size() -> None:
    q = SVQRaw(8, codebook_size=50, iters=2)
    s = q.lateral()
    assert s.shape == (50, 50)
    g = q.codebook @ q.codebook.t()
    assert torch.allclose(s, torch.eye(50) - q.step * g)


def test_registry_options() -> None:
    q = build_quantizer(
        {"quantizer": "svq-raw", "codebook_size": 32, "vq_options": {"iters": 7, "threshold": 0.05}}, 16
    )
    assert isinstance(q, SVQRaw) and q.iters == 7 and q.threshold.item() == pytest.approx(0.05)
    with pytest.raises(UsageError, match="unknown svq-raw option"):
        build_quantizer({"quantizer": "svq-raw", "vq_options": {"decay": 0.8}}, 16)
    with pytest.raises(UsageError):
        SVQRaw(8, 8, iters=0)
