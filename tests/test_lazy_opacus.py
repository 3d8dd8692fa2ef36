"""Generating from a saved table bundle does not import Opacus (issue 17, session 10's trial
finding 8: `synthkit generate` spent about 2.5 s importing Opacus through
synthkit.models.base -> models/dpsgd.py only to sample). Opacus is needed to TRAIN under DP,
never to sample from what was trained.

Negative control: on 580db96 (Opacus imported at the top of models/dpsgd.py) the generate
process reports `opacus` in sys.modules and the test fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

FIT = textwrap.dedent("""
    import sys
    import numpy as np, pandas as pd
    from synthkit import DPTVAE, PrivacyBudget
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.integers(0, 5, 400), "b": rng.normal(size=400).round(2),
                          "c": rng.choice(["x", "y"], 400)})
    DPTVAE(epochs=1, seed=0).fit(frame, budget=PrivacyBudget(epsilon=3, delta=1e-6)).save(sys.argv[1])
    print("opacus" in sys.modules)
""")

GENERATE = textwrap.dedent("""
    import json, sys
    from synthkit import load
    rows = load(sys.argv[1]).sample(50, seed=1)
    print(json.dumps({"rows": len(rows), "opacus": "opacus" in sys.modules,
                      "opacus_modules": sorted(m for m in sys.modules if m.startswith("opacus"))[:5]}))
""")


def _run(code: str, *args: str) -> str:
    env = {**os.environ, "SYNTHKIT_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, check=True)
    return out.stdout.strip().splitlines()[-1]


def test_sampling_a_private_bundle_does_not_import_opacus(tmp_path: Path) -> None:
    bundle = tmp_path / "model"
    assert _run(FIT, str(bundle)) == "True"  # training under DP does use it (the positive control)
    got = json.loads(_run(GENERATE, str(bundle)))
    assert got["rows"] == 50
    assert not got["opacus"], got["opacus_modules"]
