"""Write the golden digests of every registered space (or the named ones) into DIR/<space>.json.

    python -m automl.testing.golden tests/golden [space ...]

Run it only when a digest change is intended (a new canonical form, probe or hash namespace):
every cache built before then no longer matches.
"""
from __future__ import annotations

import json
import os
import sys

from automl import registry
from automl.testing.contracts import golden_digests


def write(directory: str, names: list[str] | None = None) -> list[str]:
    os.makedirs(directory, exist_ok=True)
    out = []
    for name in names or registry.names("space"):
        path = os.path.join(directory, f"{name}.json")
        with open(path, "w", encoding="utf-8") as f:
            json.dump(golden_digests(name), f, indent=1, sort_keys=True)
            f.write("\n")
        out.append(path)
    return out


if __name__ == "__main__":
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    for p in write(sys.argv[1], sys.argv[2:] or None):
        print(p)
