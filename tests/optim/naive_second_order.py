"""Deliberately naive references for Newton, BFGS, L-BFGS and the strong-Wolfe line search.

Plain Python floats and lists, one coordinate at a time, written from the textbook rather than
from descentlab's code, so that a test comparing the two checks the library's tensor arithmetic,
masks and stacking against the mathematics:

* Newton's method from its definition, x <- x - lr (H + damping I)^{-1} g (solved by Gaussian
  elimination), or per coordinate g_i / (H_ii + damping);
* Nocedal & Wright, Numerical Optimization (2nd ed., 2006): Algorithms 3.5 and 3.6 (strong Wolfe
  line search: bracketing and zoom), 6.1 with update (6.17) and scaling (6.20) (BFGS), 7.4 and 7.5
  (L-BFGS two-loop recursion), with the choices the textbook leaves open made as in minFunc and
  torch.optim.LBFGS (cubic interpolation, its safeguards, the stopping rules; see the library's
  ``_line_search`` docstring).

A problem is ``value_and_grad(x) -> (f, g)`` and, for Newton, ``hessian(x)``. Param groups are
lists of coordinate indices.
"""

from __future__ import annotations

import math


def dot(a, b):
    total = 0.0
    for u, v in zip(a, b, strict=True):
        total += u * v
    return total


def solve(matrix, rhs):
    """Gaussian elimination with partial pivoting."""
    n = len(rhs)
    a = [list(row) + [rhs[i]] for i, row in enumerate(matrix)]
    for col in range(n):
        pivot = max(range(col, n), key=lambda r: abs(a[r][col]))
        a[col], a[pivot] = a[pivot], a[col]
        for row in range(col + 1, n):
            factor = a[row][col] / a[col][col]
            for k in range(col, n + 1):
                a[row][k] -= factor * a[col][k]
    x = [0.0] * n
    for row in range(n - 1, -1, -1):
        x[row] = (a[row][n] - sum(a[row][k] * x[k] for k in range(row + 1, n))) / a[row][row]
    return x


# ----------------------------------------------------------------------------- Newton


def newton(value_and_grad, hessian, x, groups, lr, damping, steps, diagonal=False):
    """``steps`` Newton steps; each group uses its own Hessian block, all at the same point.

    ``lr`` and ``damping`` are lists, one value per group.
    """
    x = list(x)
    for _ in range(steps):
        _, g = value_and_grad(x)
        h = hessian(x)
        new = list(x)
        for group, rate, lam in zip(groups, lr, damping, strict=True):
            if diagonal:
                delta = [g[i] / (h[i][i] + lam) for i in group]
            else:
                block = [[h[i][j] + (lam if i == j else 0.0) for j in group] for i in group]
                delta = solve(block, [g[i] for i in group])
            for i, step in zip(group, delta, strict=True):
                new[i] = x[i] - rate * step
        x = new
    return x


# ----------------------------------------------------------------------------- line search


def cubic_min(x1, f1, g1, x2, f2, g2, low, high):
    """Minimizer of the cubic interpolating two points (N&W 3.59), clipped; midpoint if none."""
    d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    d2_square = d1 * d1 - g1 * g2
    if d2_square < 0:
        return (low + high) / 2
    d2 = math.sqrt(d2_square)
    if x1 <= x2:
        t = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
    else:
        t = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
    return min(max(t, low), high)


def strong_wolfe(phi, f0, g0, d, t, c1, c2, tolerance_change, max_ls):
    """N&W Algorithm 3.5 (bracketing) and 3.6 (zoom). ``phi(t) -> (f, g)`` at x + t d.

    Returns (f, g, t, evaluations).
    """
    slope0 = dot(g0, d)
    d_norm = max(abs(v) for v in d)
    f1, g1 = phi(t)
    evals = 1
    slope1 = dot(g1, d)
    prev = (0.0, f0, g0, slope0)
    trials = 0  # evaluations after the first
    while True:
        if trials == max_ls:
            pair = [(0.0, f0, g0, slope0), (t, f1, g1, slope1)]
            best = pair[0] if pair[0][1] <= pair[1][1] else pair[1]
            return best[1], best[2], best[0], evals
        current = (t, f1, g1, slope1)
        # minFunc and torch apply "no decrease since the last trial" from the third trial on.
        if f1 > f0 + c1 * t * slope0 or (trials > 1 and f1 >= prev[1]):
            return _zoom(
                phi,
                [prev, current],
                f0,
                slope0,
                d,
                c1,
                c2,
                tolerance_change,
                max_ls,
                trials,
                evals,
                d_norm,
            )
        if abs(slope1) <= -c2 * slope0:
            return f1, g1, t, evals
        if slope1 >= 0:
            return _zoom(
                phi,
                [prev, current],
                f0,
                slope0,
                d,
                c1,
                c2,
                tolerance_change,
                max_ls,
                trials,
                evals,
                d_norm,
            )
        # Choose the next trial in (t, 10 t]: the cubic's minimizer, kept away from t.
        new_t = cubic_min(
            prev[0], prev[1], prev[3], t, f1, slope1, t + 0.01 * (t - prev[0]), t * 10
        )
        prev = current
        t = new_t
        f1, g1 = phi(t)
        evals += 1
        trials += 1
        slope1 = dot(g1, d)


def _zoom(phi, bracket, f0, slope0, d, c1, c2, tolerance_change, max_ls, trials, evals, d_norm):
    low = 0 if bracket[0][1] <= bracket[1][1] else 1
    insufficient = False
    while trials < max_ls:
        if abs(bracket[1][0] - bracket[0][0]) * d_norm < tolerance_change:
            break
        a, b = bracket
        left, right = min(a[0], b[0]), max(a[0], b[0])
        t = cubic_min(a[0], a[1], a[3], b[0], b[1], b[3], left, right)
        margin = 0.1 * (right - left)
        if min(right - t, t - left) < margin:
            if insufficient or t >= right or t <= left:
                t = right - margin if abs(t - right) < abs(t - left) else left + margin
                insufficient = False
            else:
                insufficient = True
        else:
            insufficient = False
        f, g = phi(t)
        evals += 1
        trials += 1
        point = (t, f, g, dot(g, d))
        high = 1 - low
        if f > f0 + c1 * t * slope0 or f >= bracket[low][1]:
            bracket[high] = point
            low = 0 if bracket[0][1] <= bracket[1][1] else 1
        else:
            if abs(point[3]) <= -c2 * slope0:
                bracket[low] = point
                break
            if point[3] * (bracket[high][0] - bracket[low][0]) >= 0:
                bracket[high] = bracket[low]
            bracket[low] = point
    best = bracket[low]
    return best[1], best[2], best[0], evals


# ----------------------------------------------------------------------------- BFGS, L-BFGS


def bfgs_direction(memory, g):
    h = memory["H"]
    return [-sum(h[i][j] * g[j] for j in range(len(g))) for i in range(len(g))]


def bfgs_remember(memory, s, y, ys):
    # Skip pairs without clearly positive curvature (cosine of the angle of s and y <= 1e-10).
    if ys <= 1e-10 * math.sqrt(dot(s, s)) * math.sqrt(dot(y, y)):
        return
    n = len(s)
    h = memory["H"]
    if memory["updates"] == 0:  # N&W (6.20)
        scale = ys / dot(y, y)
        h = [[scale * h[i][j] for j in range(n)] for i in range(n)]
    rho = 1.0 / ys
    left = [[(1.0 if i == j else 0.0) - rho * s[i] * y[j] for j in range(n)] for i in range(n)]
    right = [[(1.0 if i == j else 0.0) - rho * y[i] * s[j] for j in range(n)] for i in range(n)]
    lh = [[sum(left[i][k] * h[k][j] for k in range(n)) for j in range(n)] for i in range(n)]
    memory["H"] = [
        [sum(lh[i][k] * right[k][j] for k in range(n)) + rho * s[i] * s[j] for j in range(n)]
        for i in range(n)
    ]
    memory["updates"] += 1


def lbfgs_direction(memory, g):
    """N&W Algorithm 7.4 with H0 = gamma I (7.20)."""
    pairs = memory["pairs"]
    q = [-v for v in g]
    alphas = [0.0] * len(pairs)
    for i in range(len(pairs) - 1, -1, -1):
        s, y, rho = pairs[i]
        alphas[i] = dot(s, q) * rho
        q = [qj - alphas[i] * yj for qj, yj in zip(q, y, strict=True)]
    r = [qj * memory["gamma"] for qj in q]
    for i, (s, y, rho) in enumerate(pairs):
        beta = dot(y, r) * rho
        r = [rj + sj * (alphas[i] - beta) for rj, sj in zip(r, s, strict=True)]
    return r


def lbfgs_remember(memory, s, y, ys):
    if ys <= 1e-10:  # torch's absolute curvature test
        return
    if len(memory["pairs"]) == memory["history_size"]:
        memory["pairs"].pop(0)
    memory["pairs"].append((s, y, 1.0 / ys))
    memory["gamma"] = ys / dot(y, y)


def quasi_newton(value_and_grad, x, groups, settings, steps, kind):
    """``steps`` calls of step(): each group in turn runs up to max_iter iterations (N&W 6.1).

    ``settings`` is one dict per group: lr, max_iter, max_eval, tolerance_grad,
    tolerance_change, line_search (bool), c1, c2 and, for L-BFGS, history_size.
    """
    x = list(x)
    states = [None] * len(groups)
    for _ in range(steps):
        for index, (group, hp) in enumerate(zip(groups, settings, strict=True)):
            if states[index] is None:
                n = len(group)
                states[index] = {
                    "n_iter": 0,
                    "H": [[1.0 if i == j else 0.0 for j in range(n)] for i in range(n)],
                    "updates": 0,
                    "pairs": [],
                    "gamma": 1.0,
                    "history_size": hp.get("history_size"),
                }
            _group_step(value_and_grad, x, group, hp, states[index], kind)
    return x


def _group_step(value_and_grad, x, group, hp, st, kind):
    direction = bfgs_direction if kind == "bfgs" else lbfgs_direction
    remember = bfgs_remember if kind == "bfgs" else lbfgs_remember

    def evaluate(point):
        f, g = value_and_grad(point)
        return f, [g[i] for i in group]

    f, g = evaluate(x)
    evals = 1
    if max(abs(v) for v in g) <= hp["tolerance_grad"]:
        return
    n_iter = 0
    while n_iter < hp["max_iter"]:
        n_iter += 1
        st["n_iter"] += 1
        if st["n_iter"] == 1:
            d = [-v for v in g]
        else:
            y = [a - b for a, b in zip(g, st["prev_g"], strict=True)]
            s = [v * st["t"] for v in st["d"]]
            ys = dot(y, s)
            remember(st, s, y, ys)
            d = direction(st, g)
        st["d"], st["prev_g"], st["prev_f"] = d, list(g), f
        # The very first step moves at most lr in the l1 norm (minFunc's and torch's choice).
        first_step = min(1.0, 1.0 / sum(abs(v) for v in g)) * hp["lr"]
        t = first_step if st["n_iter"] == 1 else hp["lr"]
        st["t"] = t
        if dot(g, d) > -hp["tolerance_change"]:
            break
        base = list(x)
        if hp["line_search"]:

            def phi(step, base=base, d=d):
                trial = list(base)
                for i, di in zip(group, d, strict=True):
                    trial[i] = base[i] + step * di
                return evaluate(trial)

            f, g, t, used = strong_wolfe(
                phi, f, g, d, t, hp["c1"], hp["c2"], hp["tolerance_change"], hp["max_eval"] - evals
            )
            st["t"] = t
            for i, di in zip(group, d, strict=True):
                x[i] = base[i] + t * di
        else:
            for i, di in zip(group, d, strict=True):
                x[i] = base[i] + t * di
            used = 0
            if n_iter != hp["max_iter"]:
                f, g = evaluate(x)
                used = 1
        evals += used
        if n_iter == hp["max_iter"] or evals >= hp["max_eval"]:
            break
        if max(abs(v) for v in g) <= hp["tolerance_grad"]:
            break
        if max(abs(v * t) for v in d) <= hp["tolerance_change"]:
            break
        if abs(f - st["prev_f"]) < hp["tolerance_change"]:
            break


# ----------------------------------------------------------------------------- the test problem


class Problem:
    """f(x) = 1/2 x'Ax - b'x + 1/4 sum c_i x_i^4 + w sum cos(x_i): curvature depends on x.

    ``A`` is symmetric with eigenvalues >= 1 (diagonal when ``separable``), so with w = 0.1 the
    problem is strongly convex and Newton is well defined everywhere.
    """

    def __init__(self, size, seed, separable=False, w=0.1):
        import random

        rng = random.Random(seed)
        m = [[rng.uniform(-1, 1) for _ in range(size)] for _ in range(size)]
        self.a = [
            [
                (
                    sum(m[i][k] * m[j][k] for k in range(size)) / size
                    if not separable or i == j
                    else 0
                )
                + (1.0 if i == j else 0.0)
                for j in range(size)
            ]
            for i in range(size)
        ]
        self.b = [rng.uniform(-1, 1) for _ in range(size)]
        self.c = [rng.uniform(0.1, 1.0) for _ in range(size)]
        self.w = w
        self.size = size

    def value_and_grad(self, x):
        n = self.size
        ax = [sum(self.a[i][j] * x[j] for j in range(n)) for i in range(n)]
        f = 0.5 * dot(x, ax) - dot(self.b, x)
        f += sum(0.25 * c * xi**4 + self.w * math.cos(xi) for c, xi in zip(self.c, x, strict=True))
        g = [ax[i] - self.b[i] + self.c[i] * x[i] ** 3 - self.w * math.sin(x[i]) for i in range(n)]
        return f, g

    def hessian(self, x):
        n = self.size
        return [
            [
                self.a[i][j]
                + ((3 * self.c[i] * x[i] ** 2 - self.w * math.cos(x[i])) if i == j else 0.0)
                for j in range(n)
            ]
            for i in range(n)
        ]

    def torch_loss(self, flat):
        """The same function in torch for a tensor of shape S + (D,): losses of shape S."""
        import torch

        a = torch.tensor(self.a, dtype=flat.dtype)
        b = torch.tensor(self.b, dtype=flat.dtype)
        c = torch.tensor(self.c, dtype=flat.dtype)
        # Row by row (no matmul), so a stacked run rounds exactly as the same run alone.
        quadratic = 0.5 * ((flat.unsqueeze(-2) * a).sum(-1) * flat).sum(-1) - (flat * b).sum(-1)
        return quadratic + (0.25 * c * flat**4 + self.w * flat.cos()).sum(-1)
