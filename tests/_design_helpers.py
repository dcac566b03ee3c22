"""Synthetic design problems with a known optimum, and a physics-like stand-in surrogate."""

import numpy as np
import torch

# tiny GPs and grids: one thread is faster than two on a shared 2-core machine
torch.set_num_threads(1)

from rln_design.design.evaluators import FunctionEvaluator
from rln_design.design.space import DesignSpace
from rln_design.structure.generator import ParameterBox

U_STAR = np.array([0.7, 0.3, 0.4, 0.6])  # optimum in unit-cube coordinates
SPACE = DesignSpace(box=ParameterBox(), shape=(7, 7, 7), n_realizations=3, seed=0)


def _noise(seeds):
    return 0.005 * np.array([np.random.default_rng(int(s)).standard_normal() for s in seeds])


def quadratic_peak(params, space=SPACE):
    """The synthetic peak strain without its seed noise: ``1 + |u - u*|^2`` for ``(..., 4)`` params."""
    return 1 + ((space.to_unit(params) - U_STAR) ** 2).sum(-1)


def quadratic_evaluator(space=SPACE):
    """``peak_strain = 1 + |u - u*|^2 + small seed noise``: minimum 1 at ``u*`` (unit cube)."""

    def fn(params, seeds):
        return {"peak_strain": quadratic_peak(params, space) + _noise(seeds)}

    def torch_fn(params, seeds):
        lo, hi = space._transformed_bounds()
        t = torch.cat([torch.log(params[:, :3]), params[:, 3:]], 1)
        u = (t - torch.as_tensor(lo)) / torch.as_tensor(hi - lo)
        return {"peak_strain": 1 + ((u - torch.as_tensor(U_STAR)) ** 2).sum(1)
                + torch.as_tensor(_noise(seeds))}

    return FunctionEvaluator(fn, torch_fn, name="quadratic")


class ReussSurrogate:
    """Stand-in surrogate: iso-stress strain ``eps ~ 1 / E(m)`` normalized to mean 1 (differentiable)."""

    contrast = 10.0
    grid = None

    def predict(self, structures):
        if isinstance(structures, np.ndarray):
            c = 1 - structures + structures / self.contrast
            return (c / c.mean(axis=(1, 2, 3), keepdims=True)).astype(np.float32)
        c = 1 - structures + structures / self.contrast
        return c / c.mean(dim=(1, 2, 3), keepdim=True)
