"""Hardware-aware evaluation of OFA MobileNetV3 sub-networks: analytic MACs/params, measured
latency, latency/accuracy predictors, the DyNAS-T surrogate oracle.  Importing this package reads
no data and does not import torch."""
from .counter import Counter

__all__ = ["Counter"]
