"""The OFA MobileNetV3 sub-network space.  ``import search_spaces.ofa`` loads numpy only; the
elastic supernet (torch) lives in ``search_spaces.ofa.supernet``."""
from .space import OFAConfig, OFASpace

__all__ = ["OFAConfig", "OFASpace"]
