"""Discoverable options: `automl <family> --options NAME` and automl.registry.options list what
create() accepts (one source), with types, defaults and docs; Optuna sampler settings included."""
import inspect
import json

import pytest

from automl import registry
from automl.cli import main
from automl.errors import ConfigError, RegistryError

FAMILIES = ("space", "evaluator", "strategy", "runner")
PLUGINS = [(f, n) for f in FAMILIES for n in registry.names(f)]


@pytest.mark.parametrize("family, name", PLUGINS, ids=[f"{f}-{n}" for f, n in PLUGINS])
def test_every_option_of_every_plugin_is_listed_documented_and_accepted(family, name):
    """What is listed is exactly what create() validates against, and each option has a doc."""
    opts = registry.options(family, name)
    listed = [o.name for o in opts]
    assert len(set(listed)) == len(listed)
    cls = registry.get_class(family, name)
    own = [p.name for p in inspect.signature(cls).parameters.values()
           if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    assert listed[:len(own)] == own  # the constructor's keyword options, in order, then forwarded ones
    assert not [o.name for o in opts if not o.doc], f"{family} {name}: undocumented options"
    for o in opts:
        json.dumps(o.to_dict())
        registry.check_options(family, name, cls, {o.name: o.default} if not o.required else {o.name: 1})
    if not registry.accepts_any_options(family, name):
        with pytest.raises(ConfigError) as e:
            registry.check_options(family, name, cls, {"no_such_option_xyz": 1})
        for n in listed:
            assert n in str(e.value)


def test_options_carry_type_default_and_doc():
    by = {o.name: o for o in registry.options("evaluator", "nb201-tabular")}
    assert list(by) == ["dataset", "noise", "seed"]
    assert (by["dataset"].type, by["dataset"].default) == ("str", "cifar10")
    assert "cifar100" in by["dataset"].doc
    assert (by["noise"].type, by["noise"].default) == ("float", 0.0)
    proxy = {o.name: o for o in registry.options("evaluator", "optimizer-proxy")}
    assert proxy["steps"].default == 80 and "training steps" in proxy["steps"].doc
    with pytest.raises(RegistryError, match="unknown evaluator 'nope'"):
        registry.options("evaluator", "nope")
    with pytest.raises(RegistryError, match="unknown plugin family"):
        registry.options("evaluators", "nb201-tabular")


def test_option_docs_reads_google_bullet_and_prose_forms():
    doc = """Summary line.

    ``alpha`` sets the rate. Another sentence.

    - ``beta``: a bullet doc
      continued here;
    * ``gamma`` (int): starred.

    Args:
        delta: first line
            and its continuation.
        eps (float): one line.

            A second paragraph that is dropped.
        zeta:
            Doc on the next line.

    Returns:
        omega: not an option.
    """
    d = registry.option_docs(doc)
    assert d["alpha"] == "``alpha`` sets the rate."
    assert d["beta"] == "a bullet doc continued here"
    assert d["gamma"] == "starred."
    assert d["delta"] == "first line and its continuation."
    assert d["eps"] == "one line."
    assert d["zeta"] == "Doc on the next line."
    assert "omega" not in d


def test_optuna_sampler_settings_are_options_of_the_strategy():
    pytest.importorskip("optuna")
    by = {o.name: o for o in registry.options("strategy", "tpe")}
    assert {"multi_objective", "sampler_options", "n_startup_trials", "multivariate"} <= set(by)
    n = by["n_startup_trials"]
    assert (n.type, n.default, n.source) == ("int", 10, "optuna.samplers.TPESampler")
    assert "random sampling" in n.doc.lower()
    assert "seed" not in by and "gamma" not in by  # the search's seed; callables cannot come from JSON
    assert "sampler_options" in by["sampler_options"].doc and by["sampler_options"].doc
    cmaes = {o.name for o in registry.options("strategy", "cmaes")}
    assert {"sigma0", "restart_strategy", "popsize"} <= cmaes

    from search_spaces.cells import NB201Space

    for opts in ({"n_startup_trials": 3}, {"sampler_options": {"n_startup_trials": 3}}):
        s = registry.create("strategy", "tpe", **opts)
        assert s.sampler_options == {"n_startup_trials": 3}
        s.bind(NB201Space(), {"cifar10": "max"}, seed=0)
        assert s.study.sampler._n_startup_trials == 3
    with pytest.raises(ConfigError, match="no option 'n_startup_trial'.*n_startup_trials"):
        registry.create("strategy", "tpe", n_startup_trial=3)
    with pytest.raises(ConfigError, match="no setting 'n_startup_trial'.*strategies --options tpe"):
        registry.create("strategy", "tpe", sampler_options={"n_startup_trial": 3})
    with pytest.raises(ConfigError, match="both"):
        registry.create("strategy", "tpe", n_startup_trials=3, sampler_options={"n_startup_trials": 4})
    with pytest.raises(ConfigError, match="seed"):
        registry.create("strategy", "tpe", seed=3)


def test_cli_lists_options(capsys):
    assert main(["evaluators", "--options", "nb201-tabular"]) == 0
    out = capsys.readouterr().out
    assert "dataset: str  (default 'cifar10')" in out and "cifar100" in out and "noise: float" in out
    assert main(["strategies", "--options", "evolution", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    by = {o["name"]: o for o in data["options"]}
    assert by["population_size"]["default"] == 100 and by["population_size"]["type"] == "int"
    assert main(["runners"]) == 0
    assert {"serial", "process", "ray"} <= {line.split()[0] for line in capsys.readouterr().out.splitlines()}
    assert main(["runners", "--options", "serial"]) == 0
    assert "max_retries: int  (default 2)" in capsys.readouterr().out
    assert main(["spaces", "--options", "nb201"]) == 0
    assert "no options" in capsys.readouterr().out
    assert main(["spaces", "--options", "nope"]) == 2
    assert "unknown space 'nope'" in capsys.readouterr().err
