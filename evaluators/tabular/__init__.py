"""Tabular NAS benchmarks (zero-cost ground truth): NAS-Bench-201 and a NAS-Bench-101 subset.

Importing this package reads no data; tables load on first use.  Data and licences:
data/PROVENANCE.md.
"""
from .tables import CellNotInTable, NB101Tabular, NB201Tabular, nb101_table, nb201_table

__all__ = ["NB201Tabular", "NB101Tabular", "CellNotInTable", "nb201_table", "nb101_table"]
