"""Deliberately naive reference optimizers, written from the papers, one scalar at a time.

Each reference keeps its parameters as flat lists of Python floats (IEEE float64) and its state as
one dictionary per scalar element, and updates element after element in a plain loop. Nothing here
calls descentlab or vectorises anything: the point is a second, independent reading of each paper
that a learner can check line by line against the paper's algorithm box, and that the library's
tensor code must reproduce to 1e-10 (see ``test_against_naive.py``).

Where the paper leaves a choice open, or where torch.optim departs from it, the reference follows
torch.optim (the library is a drop-in for torch) and says so in a comment that names the paper's
equation it departs from. The state keys are torch.optim's names (``exp_avg``, ``square_avg`` ...)
so the tests can compare state buffers as well as parameters.

Conventions shared by every reference, all torch.optim's:

* ``maximize`` negates the gradient first, before anything else sees it;
* coupled weight decay (L2) adds ``weight_decay * x`` to the (possibly negated) gradient, i.e. the
  method runs on ``f(x) + weight_decay / 2 * x**2``;
* decoupled weight decay (AdamW, and NAdam/RAdam with ``decoupled_weight_decay=True``) shrinks the
  weight by the factor ``1 - lr * weight_decay`` before the step: scaled by the learning rate;
* the step counter ``t`` starts at 1 on the first step.
"""

from __future__ import annotations

import math
from typing import Any


class NaiveOptimizer:
    """Plain-loop optimizer over lists of floats, with torch.optim's param-group conventions.

    ``groups`` is a list of dicts ``{"params": [list_of_floats, ...], **overrides}`` (one flat
    list per parameter); keyword arguments set the defaults of every group, as in torch.optim.
    Subclasses give ``name`` (the torch.optim class), ``defaults`` (torch's signature defaults),
    and the two per-element functions ``init_element`` and ``update_element``.
    """

    name: str = ""
    defaults: dict[str, Any] = {}
    #: Settings that the class pins and the caller cannot change (AdamW's decoupled decay).
    fixed: dict[str, Any] = {}

    def __init__(self, groups: list[dict[str, Any]], **hyperparameters: Any) -> None:
        for key in hyperparameters:
            if key not in self.defaults:
                raise TypeError(f"{self.name}: unknown hyperparameter {key!r}")
        self.groups: list[dict[str, Any]] = []
        self.state: list[list[list[dict[str, float]]]] = []
        for group in groups:
            settings = {**self.defaults, **hyperparameters, **self.fixed}
            for key, value in group.items():
                if key == "params":
                    continue
                if key not in self.defaults:
                    raise TypeError(f"{self.name}: unknown hyperparameter {key!r} in a group")
                settings[key] = value
            params = [[float(value) for value in param] for param in group["params"]]
            self.groups.append({"params": params, **settings})
            self.state.append([[self.init_element(settings) for _ in param] for param in params])

    def step(self, grads: list[list[list[float]]]) -> None:
        """One step; ``grads[g][p][i]`` is the gradient of element ``i`` of param ``p`` of group ``g``."""
        for group, group_grads, group_state in zip(self.groups, grads, self.state, strict=True):
            for values, gradient, states in zip(
                group["params"], group_grads, group_state, strict=True
            ):
                for i in range(len(values)):
                    values[i] = self.update_element(values[i], float(gradient[i]), states[i], group)

    def params(self) -> list[list[list[float]]]:
        return [group["params"] for group in self.groups]

    def init_element(self, h: dict[str, Any]) -> dict[str, float]:
        raise NotImplementedError

    def update_element(self, x: float, g: float, s: dict[str, float], h: dict[str, Any]) -> float:
        raise NotImplementedError


def _signed_gradient(x: float, g: float, h: dict[str, Any]) -> float:
    """The gradient after ``maximize`` and coupled L2 weight decay (torch's order: sign first)."""
    if h["maximize"]:
        g = -g
    if h["weight_decay"] != 0:
        g = g + h["weight_decay"] * x
    return g


class NaiveSGD(NaiveOptimizer):
    """Gradient descent (Robbins & Monro 1951) with heavy-ball momentum (Polyak 1964).

    Robbins, H. and Monro, S. (1951). A Stochastic Approximation Method. The Annals of
    Mathematical Statistics 22(3). Polyak, B. T. (1964). Some methods of speeding up the
    convergence of iteration methods. USSR Comp. Math. and Math. Physics 4(5). Nesterov's variant
    as in Sutskever, Martens, Dahl and Hinton (2013), On the importance of initialization and
    momentum in deep learning, ICML; in the rewritten form torch uses.

        v_t = mu v_{t-1} + (1 - dampening) g_t        (v_1 = g_1)
        x_t = x_{t-1} - lr v_t                        heavy ball
        x_t = x_{t-1} - lr (g_t + mu v_t)             Nesterov

    With ``dampening = momentum`` this is the exponentially weighted average of the course notes.
    """

    name = "SGD"
    defaults = {
        "lr": 1e-3,
        "momentum": 0.0,
        "dampening": 0.0,
        "weight_decay": 0.0,
        "nesterov": False,
        "maximize": False,
    }

    def init_element(self, h):
        # The velocity is created from the first gradient, so there is nothing to hold yet.
        return {}

    def update_element(self, x, g, s, h):
        g = _signed_gradient(x, g, h)
        mu = h["momentum"]
        if mu == 0:
            return x - h["lr"] * g
        if "momentum_buffer" not in s:
            # torch's first-step choice: v_1 = g_1 undamped. Polyak's heavy ball starts from
            # v_0 = 0, which with dampening would give v_1 = (1 - dampening) g_1 instead.
            velocity = g
        else:
            velocity = mu * s["momentum_buffer"] + (1 - h["dampening"]) * g
        s["momentum_buffer"] = velocity
        if h["nesterov"]:
            # Sutskever et al. (2013) evaluate the gradient at the look-ahead point x + mu v;
            # torch stores the look-ahead point as the parameter instead, which turns the step
            # into g + mu v with the gradient at the stored point.
            return x - h["lr"] * (g + mu * velocity)
        return x - h["lr"] * velocity


class NaiveAdagrad(NaiveOptimizer):
    """Adagrad, diagonal form (Duchi, Hazan & Singer 2011).

    Duchi, J., Hazan, E. and Singer, Y. (2011). Adaptive Subgradient Methods for Online Learning
    and Stochastic Optimization. JMLR 12.

        G_t = G_{t-1} + g_t^2                         (G_0 = initial_accumulator_value)
        x_t = x_{t-1} - lr_t g_t / (sqrt(G_t) + eps)  lr_t = lr / (1 + (t - 1) lr_decay)

    eps sits outside the square root, as the paper's delta I + diag(G_t)^(1/2) puts it.
    """

    name = "Adagrad"
    defaults = {
        "lr": 1e-2,
        "lr_decay": 0.0,
        "weight_decay": 0.0,
        "initial_accumulator_value": 0.0,
        "eps": 1e-10,
        "maximize": False,
    }

    def init_element(self, h):
        # The paper starts the sum of squares at 0; torch lets it start at any value >= 0.
        return {"step": 0.0, "sum": float(h["initial_accumulator_value"])}

    def update_element(self, x, g, s, h):
        s["step"] += 1
        t = s["step"]
        g = _signed_gradient(x, g, h)
        # The paper has a constant step size eta; torch adds an inverse-time decay of it.
        lr_t = h["lr"] / (1 + (t - 1) * h["lr_decay"])
        s["sum"] = s["sum"] + g * g
        return x - lr_t * g / (math.sqrt(s["sum"]) + h["eps"])


class NaiveAdadelta(NaiveOptimizer):
    """Adadelta (Zeiler 2012), Algorithm 1, with torch's learning-rate multiplier.

    Zeiler, M. D. (2012). ADADELTA: An Adaptive Learning Rate Method. arXiv:1212.5701.

        E[g^2]_t  = rho E[g^2]_{t-1} + (1 - rho) g_t^2
        dx_t      = sqrt(E[dx^2]_{t-1} + eps) / sqrt(E[g^2]_t + eps) * g_t
        E[dx^2]_t = rho E[dx^2]_{t-1} + (1 - rho) dx_t^2     (the squared UPDATE, not x^2)
        x_t       = x_{t-1} - lr dx_t

    eps is inside both square roots, as in the paper's RMS[y] = sqrt(E[y^2] + eps).
    """

    name = "Adadelta"
    defaults = {
        "lr": 1.0,
        "rho": 0.9,
        "eps": 1e-6,
        "weight_decay": 0.0,
        "maximize": False,
    }

    def init_element(self, h):
        return {"step": 0.0, "square_avg": 0.0, "acc_delta": 0.0}

    def update_element(self, x, g, s, h):
        s["step"] += 1
        g = _signed_gradient(x, g, h)
        rho, eps = h["rho"], h["eps"]
        s["square_avg"] = rho * s["square_avg"] + (1 - rho) * g * g
        rms_update = math.sqrt(s["acc_delta"] + eps)
        rms_gradient = math.sqrt(s["square_avg"] + eps)
        delta = rms_update / rms_gradient * g
        # Zeiler's Algorithm 1 accumulates the update it applies. torch accumulates dx before its
        # lr multiplier (which the paper does not have): the two agree only at lr = 1, the default.
        s["acc_delta"] = rho * s["acc_delta"] + (1 - rho) * delta * delta
        return x - h["lr"] * delta


class NaiveRMSprop(NaiveOptimizer):
    """RMSprop (Tieleman & Hinton 2012), centered variant (Graves 2013), optional momentum.

    Tieleman, T. and Hinton, G. (2012). Lecture 6.5, rmsprop: Divide the gradient by a running
    average of its recent magnitude. COURSERA: Neural Networks for Machine Learning.
    Graves, A. (2013). Generating Sequences With Recurrent Neural Networks. arXiv:1308.0850,
    eq. 38-41 (centered: divide by the standard deviation instead of the root mean square).

        v_t   = alpha v_{t-1} + (1 - alpha) g_t^2
        gbar_t = alpha gbar_{t-1} + (1 - alpha) g_t               (centered only)
        d_t   = sqrt(v_t - gbar_t^2) + eps   (centered)   or   sqrt(v_t) + eps
        b_t   = momentum b_{t-1} + g_t / d_t,  x_t = x_{t-1} - lr b_t   (momentum > 0)
        x_t   = x_{t-1} - lr g_t / d_t                                   (momentum = 0)

    eps convention: OUTSIDE the square root, as torch.optim (and course notes 001). Course notes
    000/002 and Graves (eq. 38-41) put it inside, sqrt(v_t - gbar_t^2 + eps); both conventions
    exist and differ only while v_t is comparable to eps.
    Neither the lecture nor torch bias-corrects v: with alpha = 0.99, v_1 = 0.01 g_1^2 and the
    first step is about 10 lr.
    """

    name = "RMSprop"
    defaults = {
        "lr": 1e-2,
        "alpha": 0.99,
        "eps": 1e-8,
        "weight_decay": 0.0,
        "momentum": 0.0,
        "centered": False,
        "maximize": False,
    }

    def init_element(self, h):
        state = {"step": 0.0, "square_avg": 0.0}
        if h["centered"]:
            state["grad_avg"] = 0.0
        if h["momentum"] > 0:
            state["momentum_buffer"] = 0.0
        return state

    def update_element(self, x, g, s, h):
        s["step"] += 1
        g = _signed_gradient(x, g, h)
        alpha = h["alpha"]
        s["square_avg"] = alpha * s["square_avg"] + (1 - alpha) * g * g
        if h["centered"]:
            s["grad_avg"] = alpha * s["grad_avg"] + (1 - alpha) * g
            # Departs from Graves eq. 38-41, which add eps inside the root: torch adds it outside.
            denominator = math.sqrt(s["square_avg"] - s["grad_avg"] ** 2) + h["eps"]
        else:
            denominator = math.sqrt(s["square_avg"]) + h["eps"]
        if h["momentum"] > 0:
            # Graves (eq. 38-41) keeps lr inside the velocity (D = m D - lr g / d); torch keeps
            # it outside, which is the same method while lr is constant.
            s["momentum_buffer"] = h["momentum"] * s["momentum_buffer"] + g / denominator
            return x - h["lr"] * s["momentum_buffer"]
        return x - h["lr"] * g / denominator


class NaiveAdam(NaiveOptimizer):
    """Adam (Kingma & Ba 2015), Algorithm 1; AMSGrad (Reddi et al. 2018); AdamW (decoupled).

    Kingma, D. P. and Ba, J. (2015). Adam: A Method for Stochastic Optimization. ICLR.
    Reddi, S. J., Kale, S. and Kumar, S. (2018). On the Convergence of Adam and Beyond. ICLR.
    Loshchilov, I. and Hutter, F. (2019). Decoupled Weight Decay Regularization. ICLR.

        m_t = beta1 m_{t-1} + (1 - beta1) g_t,     mhat_t = m_t / (1 - beta1^t)
        v_t = beta2 v_{t-1} + (1 - beta2) g_t^2,   vhat_t = v_t / (1 - beta2^t)
        x_t = x_{t-1} - lr mhat_t / (sqrt(vhat_t) + eps)

    AMSGrad, as torch: keep vmax_t = max(vmax_{t-1}, v_t) of the RAW v and bias-correct it like
    v (vhat_t = vmax_t / (1 - beta2^t)), so the max is not of vhat. Reddi et al.'s AMSGrad takes
    the max with no bias correction at all (and, in its analysis, a decaying beta1_t and step
    size alpha / sqrt(t)): torch's amsgrad is "Adam with a non-decreasing v", not the paper's
    exact algorithm.
    """

    name = "Adam"
    defaults = {
        "lr": 1e-3,
        "betas": (0.9, 0.999),
        "eps": 1e-8,
        "weight_decay": 0.0,
        "amsgrad": False,
        "maximize": False,
        "decoupled_weight_decay": False,
    }

    def init_element(self, h):
        state = {"step": 0.0, "exp_avg": 0.0, "exp_avg_sq": 0.0}
        if h["amsgrad"]:
            state["max_exp_avg_sq"] = 0.0
        return state

    def update_element(self, x, g, s, h):
        s["step"] += 1
        t = s["step"]
        beta1, beta2 = h["betas"]
        if h["decoupled_weight_decay"]:
            # Loshchilov & Hutter's Algorithm 2 (theta -= eta_t (alpha mhat / (...) + lambda theta))
            # scales the decay by the schedule multiplier eta_t only, not by the learning rate
            # alpha; torch scales it by lr, so torch's weight_decay is the paper's lambda / lr.
            x = x * (1 - h["lr"] * h["weight_decay"])
            g = -g if h["maximize"] else g
        else:
            g = _signed_gradient(x, g, h)
        s["exp_avg"] = beta1 * s["exp_avg"] + (1 - beta1) * g
        s["exp_avg_sq"] = beta2 * s["exp_avg_sq"] + (1 - beta2) * g * g
        second_moment = s["exp_avg_sq"]
        if h["amsgrad"]:
            s["max_exp_avg_sq"] = max(s["max_exp_avg_sq"], s["exp_avg_sq"])
            second_moment = s["max_exp_avg_sq"]
        m_hat = s["exp_avg"] / (1 - beta1**t)
        v_hat = second_moment / (1 - beta2**t)
        return x - h["lr"] * m_hat / (math.sqrt(v_hat) + h["eps"])


class NaiveAdamW(NaiveAdam):
    """AdamW: Adam with decoupled weight decay (Loshchilov & Hutter 2019), torch's defaults."""

    name = "AdamW"
    defaults = {
        "lr": 1e-3,
        "betas": (0.9, 0.999),
        "eps": 1e-8,
        "weight_decay": 1e-2,
        "amsgrad": False,
        "maximize": False,
    }
    fixed = {"decoupled_weight_decay": True}


class NaiveNAdam(NaiveOptimizer):
    """NAdam (Dozat 2016), Algorithm 2, with the momentum schedule torch uses.

    Dozat, T. (2016). Incorporating Nesterov Momentum into Adam. ICLR Workshop.

        mu_t   = beta1 (1 - 0.5 * 0.96^(t psi))                psi = momentum_decay
        m_t    = beta1 m_{t-1} + (1 - beta1) g_t
        v_t    = beta2 v_{t-1} + (1 - beta2) g_t^2
        mbar_t = (1 - mu_t) g_t / (1 - prod_{i<=t} mu_i) + mu_{t+1} m_t / (1 - prod_{i<=t+1} mu_i)
        x_t    = x_{t-1} - lr mbar_t / (sqrt(v_t / (1 - beta2^t)) + eps)

    The schedule 0.96^(t/250) is Dozat's (after Sutskever et al. 2013); psi = 0.004 = 1/250.
    """

    name = "NAdam"
    defaults = {
        "lr": 2e-3,
        "betas": (0.9, 0.999),
        "eps": 1e-8,
        "weight_decay": 0.0,
        "momentum_decay": 4e-3,
        "decoupled_weight_decay": False,
        "maximize": False,
    }

    def init_element(self, h):
        return {"step": 0.0, "exp_avg": 0.0, "exp_avg_sq": 0.0, "mu_product": 1.0}

    def update_element(self, x, g, s, h):
        s["step"] += 1
        t = s["step"]
        beta1, beta2 = h["betas"]
        psi = h["momentum_decay"]
        if h["decoupled_weight_decay"]:
            # Not in Dozat's paper: torch's NAdamW-style option, decay scaled by lr as in AdamW.
            x = x * (1 - h["lr"] * h["weight_decay"])
            g = -g if h["maximize"] else g
        else:
            g = _signed_gradient(x, g, h)
        mu = beta1 * (1 - 0.5 * 0.96 ** (t * psi))
        mu_next = beta1 * (1 - 0.5 * 0.96 ** ((t + 1) * psi))
        s["mu_product"] = s["mu_product"] * mu
        mu_product_next = s["mu_product"] * mu_next
        s["exp_avg"] = beta1 * s["exp_avg"] + (1 - beta1) * g
        s["exp_avg_sq"] = beta2 * s["exp_avg_sq"] + (1 - beta2) * g * g
        g_hat = g / (1 - s["mu_product"])
        m_hat = s["exp_avg"] / (1 - mu_product_next)
        v_hat = s["exp_avg_sq"] / (1 - beta2**t)
        m_bar = (1 - mu) * g_hat + mu_next * m_hat
        return x - h["lr"] * m_bar / (math.sqrt(v_hat) + h["eps"])


class NaiveAdamax(NaiveOptimizer):
    """Adamax (Kingma & Ba 2015, section 7.1, Algorithm 2): Adam with the infinity norm.

        m_t = beta1 m_{t-1} + (1 - beta1) g_t
        u_t = max(beta2 u_{t-1}, |g_t| + eps)
        x_t = x_{t-1} - lr / (1 - beta1^t) * m_t / u_t

    eps placement: Algorithm 2 has u_t = max(beta2 u_{t-1}, |g_t|) and no eps at all (u_t can
    be 0 on a zero gradient). torch puts eps INSIDE the max, added to |g_t|, so u_t >= eps always;
    the reference does the same.
    """

    name = "Adamax"
    defaults = {
        "lr": 2e-3,
        "betas": (0.9, 0.999),
        "eps": 1e-8,
        "weight_decay": 0.0,
        "maximize": False,
    }

    def init_element(self, h):
        return {"step": 0.0, "exp_avg": 0.0, "exp_inf": 0.0}

    def update_element(self, x, g, s, h):
        s["step"] += 1
        t = s["step"]
        beta1, beta2 = h["betas"]
        g = _signed_gradient(x, g, h)
        s["exp_avg"] = beta1 * s["exp_avg"] + (1 - beta1) * g
        s["exp_inf"] = max(beta2 * s["exp_inf"], abs(g) + h["eps"])
        return x - h["lr"] / (1 - beta1**t) * s["exp_avg"] / s["exp_inf"]


class NaiveRAdam(NaiveOptimizer):
    """RAdam (Liu et al. 2020), Algorithm 2: Adam with a rectified adaptive learning rate.

    Liu, L., Jiang, H., He, P., Chen, W., Liu, X., Gao, J. and Han, J. (2020). On the Variance of
    the Adaptive Learning Rate and Beyond. ICLR.

        rho_inf = 2 / (1 - beta2) - 1,    rho_t = rho_inf - 2 t beta2^t / (1 - beta2^t)
        mhat_t  = m_t / (1 - beta1^t)
        rho_t > 5:  l_t = sqrt(1 - beta2^t) / (sqrt(v_t) + eps)
                    r_t = sqrt((rho_t - 4)(rho_t - 2) rho_inf / ((rho_inf - 4)(rho_inf - 2) rho_t))
                    x_t = x_{t-1} - lr r_t l_t mhat_t
        otherwise:  x_t = x_{t-1} - lr mhat_t            (momentum SGD while v is unreliable)
    """

    name = "RAdam"
    defaults = {
        "lr": 1e-3,
        "betas": (0.9, 0.999),
        "eps": 1e-8,
        "weight_decay": 0.0,
        "decoupled_weight_decay": False,
        "maximize": False,
    }

    def init_element(self, h):
        return {"step": 0.0, "exp_avg": 0.0, "exp_avg_sq": 0.0}

    def update_element(self, x, g, s, h):
        s["step"] += 1
        t = s["step"]
        beta1, beta2 = h["betas"]
        if h["decoupled_weight_decay"]:
            # Not in Liu et al.: torch's option, decay scaled by lr as in AdamW.
            x = x * (1 - h["lr"] * h["weight_decay"])
            g = -g if h["maximize"] else g
        else:
            g = _signed_gradient(x, g, h)
        s["exp_avg"] = beta1 * s["exp_avg"] + (1 - beta1) * g
        s["exp_avg_sq"] = beta2 * s["exp_avg_sq"] + (1 - beta2) * g * g
        m_hat = s["exp_avg"] / (1 - beta1**t)
        rho_inf = 2 / (1 - beta2) - 1
        rho_t = rho_inf - 2 * t * beta2**t / (1 - beta2**t)
        # Algorithm 2 rectifies when rho_t > 4 (r_t is real there); torch waits for rho_t > 5
        # (the authors' released code uses >= 5). With beta2 = 0.999, rho_5 = 4.996, so step 5
        # is rectified in the paper and a plain momentum step in torch.
        if rho_t > 5:
            # Algorithm 2's adaptive rate l_t = sqrt((1 - beta2^t) / v_t) has no eps; torch adds
            # eps to sqrt(v_t), as Adam does.
            adaptive = math.sqrt(1 - beta2**t) / (math.sqrt(s["exp_avg_sq"]) + h["eps"])
            rectifier = math.sqrt(
                (rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)
            )
            return x - h["lr"] * rectifier * adaptive * m_hat
        return x - h["lr"] * m_hat


#: Every reference, under the class name torch.optim and descentlab use.
REFERENCES: dict[str, type[NaiveOptimizer]] = {
    reference.name: reference
    for reference in (
        NaiveSGD,
        NaiveAdagrad,
        NaiveAdadelta,
        NaiveRMSprop,
        NaiveAdam,
        NaiveAdamW,
        NaiveNAdam,
        NaiveAdamax,
        NaiveRAdam,
    )
}
