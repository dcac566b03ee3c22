"""rln-design: materials inverse design with periodic voxel FE and Recurrent Localization Networks.

Conventions (every public function follows them):
    * Array axes ``(batch, x, y, z)``; a single structure is ``(x, y, z)``.
    * The macroscopic load eps_xx acts along ``x`` (axis 1 of a batch, axis 0 of a single structure).
    * Phase 0 = soft (modulus E_soft), phase 1 = stiff (E_hard = contrast * E_soft).
    * Strain fields used for learning and design are eps_xx divided by the imposed eps_xx, so the
      mean of every such field is 1.

The public API is re-exported here lazily (heavy modules load on first use), so a design script
reads ``from rln_design import Surrogate, generate, solve_fe``.
"""

from __future__ import annotations

import importlib

from rln_design._version import __version__

# public name -> module that defines it
_EXPORTS = {
    # microstructure
    "generate": "rln_design.structure.generator",
    "generate_batch": "rln_design.structure.generator",
    "generate_torch": "rln_design.structure.generator",
    "generate_pymks": "rln_design.structure.generator",
    "noise": "rln_design.structure.generator",
    "latin_hypercube": "rln_design.structure.generator",
    "ParameterBox": "rln_design.structure.generator",
    # finite elements
    "solve_fe": "rln_design.fe.solver",
    "FEResult": "rln_design.fe.solver",
    "ConvergenceError": "rln_design.fe.solver",
    # statistics
    "STATISTICS": "rln_design.design.stats",
    "compute_statistic": "rln_design.design.stats",
    "compute_statistics": "rln_design.design.stats",
    "two_point_correlation": "rln_design.structure.twopoint",
    "correlation_length": "rln_design.structure.twopoint",
    # data
    "generate_dataset": "rln_design.data",
    "load_dataset": "rln_design.data",
    "StrainDataset": "rln_design.data",
    "dataset_info": "rln_design.data",
    "DatasetConfig": "rln_design.data",
    # models / training / surrogate
    "RLN": "rln_design.models.recurrent",
    "ProximalNet": "rln_design.models.proximal",
    "TrainConfig": "rln_design.training.loop",
    "train_model": "rln_design.training.loop",
    "Surrogate": "rln_design.surrogate.strain",
    "HomogenizationModel": "rln_design.surrogate.homogenization",
    "evaluate_model": "rln_design.training.evaluate",
    # design
    "parse_target": "rln_design.design.targets",
    "Target": "rln_design.design.targets",
    "optimize": "rln_design.design.run",
    "OptimizeConfig": "rln_design.design.run",
    "parse_objective": "rln_design.design.targets",
    "DesignSpace": "rln_design.design.space",
    "DesignProblem": "rln_design.design.objective",
    "BayesLoop": "rln_design.design.bayes",
    "GradientLoop": "rln_design.design.gradient",
    "verify_designs": "rln_design.design.verify",
    "SurrogateEvaluator": "rln_design.design.evaluators",
    "FEEvaluator": "rln_design.design.evaluators",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name):
    if name in _EXPORTS:
        module = importlib.import_module(_EXPORTS[name])
        return getattr(module, name)
    raise AttributeError(f"module 'rln_design' has no attribute {name!r}")
