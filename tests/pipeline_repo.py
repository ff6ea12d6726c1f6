"""A throwaway copy of this repository, as a fresh git repo set to `experiment=tiny`, for tests that run DVC."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
OUTPUTS = ("data/", "models/", "metrics/", "plots/", "reports/", "mlflow.db", "mlartifacts/")


class PipelineRepo:
    def __init__(self, root: Path):
        self.root = root
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_", "PYTEST_"))}
        self.env.update(
            PATH=f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}",
            PYTHONPATH=str(root),  # the copy's ragft, not the editable install's
            DVC_NO_ANALYTICS="1",
            GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t",
        )

    @classmethod
    def create(cls, dest: Path, experiment: str = "tiny") -> PipelineRepo:
        files = subprocess.run(
            ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, capture_output=True, check=True
        ).stdout.decode().split("\0")
        for rel in filter(None, files):
            if rel.startswith(OUTPUTS) and not rel.startswith("data/raw/"):
                continue  # stage outputs of the developer's own runs
            src = REPO / rel
            if src.is_file():
                (dest / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dest / rel)
        config = dest / "conf" / "config.yaml"
        config.write_text(re.sub(r"experiment: null", f"experiment: {experiment}", config.read_text()))
        repo = cls(dest)
        repo.run(sys.executable, "-m", "ragft.config", "compose")
        repo.run("git", "init", "-q")
        repo.commit("baseline")
        return repo

    def run(self, *cmd: str, check: bool = True, timeout: int = 900) -> subprocess.CompletedProcess:
        proc = subprocess.run(cmd, cwd=self.root, env=self.env, capture_output=True, text=True, timeout=timeout, check=False)
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")
        return proc

    def dvc(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.run(str(VENV_BIN / "dvc"), *args, check=check)

    def commit(self, message: str) -> None:
        self.run("git", "add", "-A")
        self.run("git", "commit", "-qm", message, "--allow-empty")

    def reset(self) -> None:
        """Back to the last commit: params, dvc.lock and (from the DVC cache) every output."""
        self.run("git", "reset", "-q", "--hard")
        self.dvc("checkout", "--force", "-q")

    def ran(self, output: str) -> set[str]:
        """Names of the stages a `dvc repro`/`dvc exp run` output says it ran."""
        return set(re.findall(r"Running stage '([^']+)'", output))


def stage_names(repo: PipelineRepo) -> set[str]:
    out = repo.dvc("stage", "list", "--name-only").stdout
    return set(out.split())
