"""Search spaces.  Each registers under its name; classes are imported only when used."""
from automl.registry import register_space, set_default

register_space("expressions", "search_spaces.expressions:ExpressionSpace",
               "symbolic expressions / lambdas over x (symbolic regression)")
register_space("optimizer-programs", "search_spaces.programs:ProgramSpace",
               "Lion-style optimizer update programs (straight-line code over w, g, m, v, lr)")
register_space("nb201", "search_spaces.cells:NB201Space", "NAS-Bench-201 cells (4 nodes, 6 edges, 5 ops)")
register_space("nb101", "search_spaces.cells:NB101Space", "NAS-Bench-101 cells (<= 7 vertices, <= 9 edges)")
register_space("ofa-mbv3", "search_spaces.ofa:OFASpace",
               "OFA MobileNetV3 sub-networks (ks, e, d, r; DyNAS-T's text form)")
register_space("nb201-ensemble", "search_spaces.ensemble:EnsembleSpace",
               "NEAS ensembles: K NB201 networks (one genotype per stage) sharing their first layers")
register_space("ofa-ensemble", "search_spaces.ensemble:OFAEnsembleSpace",
               "NEAS ensembles: K OFA MobileNetV3 networks (per block slot: MBConv k x e or skip) "
               "sharing their first layers")
set_default("space", "expressions")
