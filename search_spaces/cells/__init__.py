"""NAS-Bench-201 and NAS-Bench-101 cell search spaces.

``import search_spaces.cells`` loads numpy and xxhash only; torch modules for the cells live in
``search_spaces.cells.torch_cells`` (imported on demand), networkx only in ``to_networkx``.
"""
from .canon import canonical_form, canonical_string
from .nb101 import NB101Cell, NB101Space
from .nb201 import NB201Cell, NB201Space

__all__ = ["NB201Space", "NB201Cell", "NB101Space", "NB101Cell", "canonical_form", "canonical_string"]
