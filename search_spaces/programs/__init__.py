"""Lion-style optimizer programs (space "optimizer-programs"; Chen et al. 2023, "Symbolic
Discovery of Optimization Algorithms").

A program is the text of one function ``def train(w, g, m, v, lr[, t]): ... return update, m, v``
run once per step with the outer loop ``w = w - update``.  Modules: ``ops`` (the function
table), ``ir`` (flat typed SSA IR, liveness, canonical text, structural key), ``parser``,
``interp`` (numpy interpreter and the hash probe), ``mutation``, ``simplify``, ``classic``
(SGD ... Lion as programs), ``space`` (ProgramSpace).  ``search_spaces.programs.optim.ProgramOptimizer`` runs a
program as a torch optimizer.
"""
from .classic import CLASSIC_PROGRAMS
from .interp import PROBE_SPEC, probe, run
from .ir import INPUT_NAMES, N_INPUTS, Info, Instr, Program, structural_key, to_text
from .ops import OP_LIST, OPS, OpSpec, docs_table
from .parser import MAX_CHARS, MAX_STATEMENTS, parse
from .simplify import simplify
from .space import ProgramSpace

__all__ = ["ProgramSpace", "Program", "Instr", "Info", "parse", "to_text", "simplify", "structural_key",
           "probe", "run", "OPS", "OP_LIST", "OpSpec", "docs_table", "CLASSIC_PROGRAMS", "PROBE_SPEC",
           "INPUT_NAMES", "N_INPUTS", "MAX_STATEMENTS", "MAX_CHARS"]
