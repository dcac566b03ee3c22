"""Models: building blocks (``proximal``: the tiny V-Net; ``corrector``: a periodic conv block) and
assembled localization models (``recurrent``: RLN, RLN-t, FLN; ``krylov``: PCG and PCG-net).

:func:`build_model` is the one place that turns a saved ``model_config`` dict into a module.
"""

from __future__ import annotations

from torch import nn

from rln_design.models.corrector import Corrector
from rln_design.models.krylov import KRYLOV_KINDS, KrylovConfig, KrylovNet
from rln_design.models.proximal import ProximalNet
from rln_design.models.recurrent import KINDS as RLN_KINDS
from rln_design.models.recurrent import RLN, ModelConfig, RLNCell

__all__ = ["ProximalNet", "Corrector", "RLN", "RLNCell", "ModelConfig", "KrylovConfig", "KrylovNet",
           "MODEL_KINDS", "FULL_TENSOR_KINDS", "build_model", "config_from_dict"]

#: every model kind a checkpoint may name
MODEL_KINDS = RLN_KINDS + KRYLOV_KINDS
#: kinds that predict all six strain components (``model.strain``), not eps_xx alone
FULL_TENSOR_KINDS = KRYLOV_KINDS


def config_from_dict(model_config: dict) -> ModelConfig | KrylovConfig:
    """The configuration record of a saved ``model_config`` dict (:class:`ModelConfig` for the RLN
    kinds, :class:`KrylovConfig` for the Krylov kinds; a missing kind is ``"rln"``).

    Raises:
        ValueError: unknown kind (the message lists :data:`MODEL_KINDS`) or invalid arguments.
    """
    kind = model_config.get("kind", "rln")
    if kind in RLN_KINDS:
        return ModelConfig(**model_config)
    if kind in KRYLOV_KINDS:
        config = dict(model_config)
        if "load" in config:
            config["load"] = tuple(config["load"])
        return KrylovConfig(**config)
    raise ValueError(f"unknown model kind {kind!r}; known kinds: {', '.join(MODEL_KINDS)}")


def build_model(model_config: dict | ModelConfig | KrylovConfig) -> nn.Module:
    """An untrained model of the kind and constructor arguments saved in ``model_config``.

    Raises:
        ValueError: unknown kind (the message lists :data:`MODEL_KINDS`) or invalid arguments.
    """
    config = config_from_dict(model_config) if isinstance(model_config, dict) else model_config
    return RLN(config) if isinstance(config, ModelConfig) else KrylovNet(config)
