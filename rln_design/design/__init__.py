"""Inverse design: targets -> stochastic design space -> loops -> FE verification -> report.

Modules: ``targets`` (parser), ``space`` (bounds, realizations, common random numbers),
``evaluators`` (surrogate / FE / function), ``objective`` (margins, score, history), ``bayes``
(BoTorch), ``gradient`` (Adam through the differentiable generator and surrogate), ``verify``
(FE evidence), ``report`` (JSON, PNGs, summary), ``run`` (:func:`~rln_design.design.run.optimize`).
"""
