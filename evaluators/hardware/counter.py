"""The OFA MobileNetV3 MACs / parameter counter lives in :mod:`search_spaces.ofa.counter` (the
space side, numpy only, so the NEAS ensemble space can count the MACs of its MobileNetV3 layers
without importing an evaluator); it is re-exported here for the hardware-aware evaluators."""
from search_spaces.ofa.counter import Counter

__all__ = ["Counter"]
