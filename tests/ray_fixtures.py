"""One Ray session for the whole test session (``ray.init`` costs 3-4 s).

Test modules that need Ray do ``from ray_fixtures import ray_session  # noqa: F401`` and take the
``ray_session`` fixture.  The fixture is idempotent (a second module's copy reuses the session).
It runs Ray with token authentication on (Ray's default for a local instance, which also sets
``RAY_AUTH_MODE=token`` in this process) and a token of its own (``RAY_AUTH_TOKEN_PATH`` in a
temporary directory), so the tests never touch ``~/.ray`` and subprocess clusters and drivers
(which inherit the environment) share the token.
"""
from __future__ import annotations

import os
import secrets
import sys

import pytest

AUTH_ENV = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH", "RAY_AUTH_TOKEN", "RAY_ADDRESS")


@pytest.fixture(scope="session")
def ray_session(tmp_path_factory):
    if "ray" in sys.modules and sys.modules["ray"].is_initialized():
        yield sys.modules["ray"]
        return
    saved = {k: os.environ.get(k) for k in AUTH_ENV}
    token = tmp_path_factory.mktemp("ray-auth") / "auth_token"
    token.write_text(secrets.token_hex(32))
    os.environ.pop("RAY_ADDRESS", None)
    os.environ.pop("RAY_AUTH_TOKEN", None)
    # Leave RAY_AUTH_MODE unset: a local ray.init then turns token mode on itself (and refreshes
    # its cached configuration, which matters when ray was imported before this fixture ran).
    os.environ.pop("RAY_AUTH_MODE", None)
    os.environ["RAY_AUTH_TOKEN_PATH"] = str(token)
    ray = pytest.importorskip("ray")
    ray.init(address="local", num_cpus=4, num_gpus=0, include_dashboard=False, log_to_driver=False,
             object_store_memory=256 * 1024 * 1024)
    assert os.environ.get("RAY_AUTH_MODE") == "token"
    try:
        yield ray
    finally:
        ray.shutdown()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
