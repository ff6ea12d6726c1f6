"""Team storage: push the reproduced experiment to a DVC remote, clone the repo afresh, pull, and nothing
needs to run."""

from __future__ import annotations

import pytest

from ragft import paths
from ragft.io import hash_paths
from tests.helpers import PipelineRepo

pytestmark = pytest.mark.slow


def test_fresh_clone_pulls_the_outputs_and_repro_is_a_no_op(tiny_repo, tmp_path):
    repo, storage = tiny_repo, tmp_path / "storage"
    # --local: the shared session repo's committed config stays as it is (a team commits `dvc remote add -d`)
    repo.dvc("remote", "add", "--local", "-d", "team", str(storage))
    try:
        repo.dvc("push")
    finally:
        repo.dvc("remote", "remove", "--local", "team")
    assert any(storage.rglob("*")), "nothing was pushed"

    clone = PipelineRepo(tmp_path / "clone")
    repo.run("git", "clone", "-q", str(repo.root), str(clone.root))
    assert not (clone.root / paths.BASE_MODEL).exists()  # outputs are not in git
    clone.dvc("remote", "add", "-d", "team", str(storage))
    clone.dvc("pull")
    assert clone.dvc("status").stdout.strip().startswith("Data and pipelines are up to date")
    assert clone.ran(clone.dvc("repro").stdout) == set()
    for out in (paths.PREPARED, paths.INDEX, paths.BASE_MODEL, paths.FINETUNED):
        assert hash_paths([clone.root / out]) == hash_paths([repo.root / out]), out
