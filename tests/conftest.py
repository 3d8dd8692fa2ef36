"""Test-session settings.

- What must stay on the machine (the holdout fingerprint key) goes to a throw-away
  SYNTHKIT_HOME, never to the user's ~/.synthkit.
- The DP noise source is fixed for the session, per module (module-scoped fixtures) and
  per test from the test's id
  (synthkit.noise's internal hook), so a test's outcome does not hang on one noise draw
  (production draws OS entropy). Tests marked `real_noise` run on OS entropy: they test
  that source itself.
"""

import hashlib
import os
import tempfile

import pytest

from synthkit import noise

os.environ["SYNTHKIT_HOME"] = tempfile.mkdtemp(prefix="synthkit-home-")
# Progress lines come on time, and a loaded CI machine can stretch any command past the
# default 10 s: a test that counts a command's lines must not see them. Tests of progress
# set their own interval (monkeypatch); subprocesses inherit this default.
os.environ.setdefault("SYNTHKIT_PROGRESS_INTERVAL", "3600")
noise._fixed[:] = [20261206, 0]  # module-scoped fixtures fit before any per-test fixture


def pytest_configure(config):
    config.addinivalue_line("markers", "real_noise: the test draws DP noise from OS entropy, as production does")


def _seed_of(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "little")


@pytest.fixture(autouse=True, scope="module")
def _reproducible_module_noise(request):
    """Module-scoped fixtures (fits shared by a module's tests) get a source fixed by the
    module's name, whatever ran before in the session (autouse runs first in its scope)."""
    with noise._fixed_for_tests(_seed_of(request.module.__name__)):
        yield


@pytest.fixture(autouse=True)
def _reproducible_dp_noise(request):
    if request.node.get_closest_marker("real_noise"):
        with noise._entropy_for_tests():
            yield
        return
    with noise._fixed_for_tests(_seed_of(request.node.nodeid)):
        yield


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a module's fits (same results on any core count); modules opt in
    with `pytestmark = pytest.mark.usefixtures("one_torch_thread")`."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
