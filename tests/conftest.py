"""Shared fixtures. Importing ragft applies the offline switches to the test process."""

from __future__ import annotations

import pytest

import ragft  # noqa: F401  (offline env)
from ragft.config import compose_conf, validate


@pytest.fixture(scope="session")
def default_cfg():
    """The default config, validated (typed OmegaConf DictConfig)."""
    return validate(compose_conf())


@pytest.fixture(scope="session")
def tiny_cfg():
    """The `experiment=tiny` config, validated: what the end-to-end tests run."""
    return validate(compose_conf(overrides=["experiment=tiny"]))


@pytest.fixture(autouse=True)
def _isolated_mlflow(tmp_path, monkeypatch):
    """Unit tests never touch the repo's mlflow.db."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")


@pytest.fixture(scope="module")
def tiny_encoder_dir(tmp_path_factory):
    """(path, model, tokenizer) of a random tiny BERT saved as any hub encoder is."""
    from tests.helpers import save_tiny_encoder

    return save_tiny_encoder(tmp_path_factory.mktemp("tiny-encoder"))


@pytest.fixture
def judge_server():
    """The OpenAI-compatible judge stand-in (tests.helpers.FakeJudge) on 127.0.0.1, a fresh one per test."""
    import threading
    from http.server import ThreadingHTTPServer

    from tests.helpers import FakeJudge

    FakeJudge.requests = []
    srv = ThreadingHTTPServer(("127.0.0.1", 0), FakeJudge)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture(scope="session")
def tiny_build(tmp_path_factory, worker_id):
    """The one real `dvc repro` of experiment=tiny_reads of a test run, shared by every xdist worker: the first
    worker to get here builds it in the run's common temp folder under a file lock; the others wait, then find it.
    RAGFT_TEST_TINY_BUILD names a finished build to reuse instead (iterating on the end-to-end tests)."""
    import os
    from pathlib import Path

    from filelock import FileLock

    from tests.helpers import build_tiny

    if os.environ.get("RAGFT_TEST_TINY_BUILD"):
        return build_tiny(Path(os.environ["RAGFT_TEST_TINY_BUILD"]))

    shared = tmp_path_factory.getbasetemp()
    if worker_id != "master":
        shared = shared.parent  # pytest-N/, above each worker's popen-gwK/
    with FileLock(str(shared / "tiny-build.lock")):
        return build_tiny(shared / "tiny-build")


@pytest.fixture(scope="session")
def tiny_repo(tiny_build, tmp_path_factory):
    """This worker's clone of the shared tiny build, outputs checked out from its own copy of the DVC cache: the
    end-to-end tests (test_pipeline, test_remote, test_sweep) share it; a test that changes it resets it."""
    from tests.helpers import clone_build

    return clone_build(tiny_build, tmp_path_factory.mktemp("pipeline"))
