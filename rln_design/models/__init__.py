"""Models: the proximal V-Net block (``proximal``) and the recurrent unroll (``recurrent``)."""

from rln_design.models.proximal import ProximalNet
from rln_design.models.recurrent import RLN, ModelConfig, RLNCell

__all__ = ["ProximalNet", "RLN", "RLNCell", "ModelConfig"]
