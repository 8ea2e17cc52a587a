"""Every benchmark script imports and explains itself (the measurements themselves are run by hand)."""
import glob
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = sorted(glob.glob(os.path.join(ROOT, "benchmarks", "*.py")))


@pytest.mark.parametrize("script", SCRIPTS, ids=os.path.basename)
def test_benchmark_help(script):
    r = subprocess.run([sys.executable, script, "--help"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "usage:" in r.stdout


def test_core_throughput_runs_small(tmp_path):
    r = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "core_throughput.py"), "--candidates", "300",
                        "--hash-samples", "20", "--repeats", "1",
                        "--output", str(tmp_path / "out.json")], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "cand/s" in r.stdout and "functional us" in r.stdout
    assert (tmp_path / "out.json").exists()


def test_supernet_ranking_runs_small(tmp_path):
    r = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "supernet_ranking.py"),
                        "--data", "synthetic:100:40:8:0", "--channels", "4", "--epochs", "1", "--batch-size", "50",
                        "--train-per-class", "10", "--test-per-class", "4", "--eval-batch", "40", "--classes", "6",
                        "--seeds", "0,1", "--samplers", "spos,pada", "--workdir", str(tmp_path / "w"),
                        "--output", str(tmp_path / "out.json")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    import json

    res = json.loads((tmp_path / "out.json").read_text())
    assert set(res["tau"]) == {"spos", "pada"} and all(len(v) == 2 for v in res["tau"].values())
    assert res["overhead"]["spos"] == 1.0 and res["charged_rank_evaluations"] == 6
    assert res["cells_ranked"] >= 6 and (tmp_path / "out.png").exists()


def test_ensemble_search_runs_tiny(tmp_path):
    out = tmp_path / "ens.json"
    r = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "ensemble_search.py"), "--tiny",
                        "--work", str(tmp_path / "w"), "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    import json

    res = json.loads(out.read_text())
    assert res["partial"] is False and len(res["ensemble_acc"]) == len(res["single_acc"]) == len(res["seeds"])
    assert all(s <= e for s, e in zip(res["flops"]["single"], res["flops"]["ensemble"]))  # <= equal MACs
    for row in res["per_seed"]:  # the retrained networks cost what the search counted
        for k in ("ensemble_shrink", "ensemble_noshrink", "single"):
            assert row[k]["macs"] == row[k]["retrained_macs"]
    assert res["shrink_ablation"]["with_shrinking"]["tau_n"] == 3 and "protocol" in res
    for row in res["per_seed"]:  # each contender retrained with 2 inits, its accuracy their mean
        for k in ("ensemble_shrink", "ensemble_noshrink", "single"):
            assert len(row[k]["test_acc_inits"]) == 2 and row[k]["init_seeds"] == [row["seed"], row["seed"] + 100]
            assert abs(row[k]["test_acc"] - sum(row[k]["test_acc_inits"]) / 2) < 1e-9
    e, s = res["ensemble_acc"], res["single_acc"]
    assert res["summary"]["ensemble_wins"] == sum(a > b for a, b in zip(e, s))
    assert res["verdict"]["holds"] == (res["verdict"]["wins_every_seed"] and res["verdict"]["intervals_separated"])
    # the same run as two seed processes and a tau process, folded with --merge: the same results
    parts = []
    for i, extra in enumerate((["--part", "seeds", "--seeds", "1"], ["--part", "seeds", "--seeds", "0"],
                               ["--part", "tau"])):
        parts.append(str(tmp_path / f"part{i}.json"))
        r = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "ensemble_search.py"), "--tiny",
                            "--work", str(tmp_path / "w2"), "--out", parts[-1], *extra],
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
    r = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "ensemble_search.py"), "--merge", *parts,
                        "--out", str(tmp_path / "merged.json")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    merged = json.loads((tmp_path / "merged.json").read_text())
    assert merged["partial"] is False and merged["seeds_done"] == [0, 1]
    for key in ("ensemble_acc", "single_acc", "flops", "shrink_ablation", "summary", "verdict", "protocol"):
        assert merged[key] == res[key], key
