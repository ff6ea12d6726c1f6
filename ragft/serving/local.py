"""`ragft serve`: the pipeline's own models behind an OpenAI-compatible server on 127.0.0.1.

`transformers serve` (transformers[serving]) loads any model folder named in a request, so one server
answers for models/base and for each fine-tuned model's merged folder (the LoRA adapter folded into a
copy of the base weights: `finetune.export_merged`, or merged here on first use into
``.cache/ragft/merged/<model>-<adapter hash>``). It cannot serve the GGUF file itself (a GGUF-derived
config names no architecture): it serves the converted safetensors folder. The server binds to
127.0.0.1 only. On a GPU machine vLLM serves the base model with the adapters instead (README).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from ragft import paths
from ragft.io import DataError

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
MERGED_CACHE = Path(".cache/ragft/merged")
START_TIMEOUT = 120.0  # seconds for the server to answer /health (imports + uvicorn start; models load lazily)


def merged_folder(model: str, root: Path = Path("."), base: Path | None = None, adapter: Path | None = None) -> Path:
    """A folder with ``model``'s weights merged into its ``base`` (models/base when not given), for a server: the
    exported one, else one merged now (cached by the adapter's hash, so a retrained adapter gets a fresh merge).
    ``adapter``: the candidate's tuned weights (models/<model> when not given; an adapter trained elsewhere)."""
    from ragft.finetune.lora import export_merged
    from ragft.model.loading import is_full_model
    from ragft.model.manifest import weights_hash

    adapter = root / (adapter or paths.model_dir(model))
    base = root / (base or paths.BASE_MODEL)
    if is_full_model(adapter):   # finetune.method=full: the folder is the whole model, tokenizer included
        return adapter
    if not (adapter / "adapter_config.json").exists():
        raise DataError(f"{adapter}: no adapter for model {model!r}. Run `dvc repro finetune@{model}` first.")
    exported = adapter / paths.MERGED_DIR
    if (exported / "config.json").exists():
        return exported
    out = root / MERGED_CACHE / f"{model}-{weights_hash(adapter).split(':')[-1][:12]}"
    if not (out / "config.json").exists():
        log.info("merging %s's adapter into a copy of the base model for serving: %s", model, out)
        export_merged(base, adapter, out)
    return out


def served_folders(models: list[str] | None, root: Path = Path(".")) -> dict[str, Path]:
    """Candidate → the absolute folder the server loads it from (its name in requests): its base, untuned, or its
    tuned weights merged into its base. ``models``: candidates of params.yaml's dag (None: every one not served)."""
    from ragft.config import load_params

    infer = load_params(root / paths.PARAMS).get("dag", {}).get("infer", {})
    candidates = load_params(root / paths.PARAMS).get("candidates", {})
    models = models or [m for m in infer if not (candidates.get(m) or {}).get("served")]
    unknown = [m for m in models if m not in infer]
    if unknown:
        raise DataError(f"--models {unknown}: not candidates of this experiment (params.yaml's dag.infer: "
                        f"{sorted(infer)}). Fix: name some of those.")
    out = {}
    for m in models:
        base = root / paths.base_dir(infer[m]["base"])
        if not (base / "config.json").exists():
            raise DataError(f"{base}: no base model. Run `dvc repro base_model@{infer[m]['base']}` (or `make demo`) "
                            "first.")
        weights = Path(infer[m]["weights"])
        out[m] = (base if root / weights == base else merged_folder(m, root, base.relative_to(root), weights)).resolve()
    return out


def exp_run_line(url: str, folders: dict[str, Path]) -> str:
    """The `dvc exp run` command that answers the arms through this server."""
    sets = ["-S inference.engine=openai", f"-S inference.openai.base_url={url}"]
    sets += [f"-S inference.openai.models.{m}={folder}" for m, folder in folders.items()]
    return "dvc exp run " + " ".join(sets)


def serve_command(port: int) -> list[str]:
    """`transformers serve` on 127.0.0.1:``port``, logging each request (what the tests count)."""
    cli = shutil.which("transformers", path=str(Path(sys.executable).parent)) or shutil.which("transformers")
    if cli is None:
        raise DataError("the `transformers` command is not installed: `pip install 'transformers[serving]'`.")
    return [cli, "serve", "--host", HOST, "--port", str(port), "--log-level", "info", "--no-enable-cors"]


def start(port: int, log_path: Path | None = None) -> subprocess.Popen:
    """Start the server in the background (its log to ``log_path``) and wait for /health."""
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115 (the child keeps it open)
    proc = subprocess.Popen(serve_command(port), stdout=out, stderr=subprocess.STDOUT, env=os.environ.copy())
    wait_healthy(f"http://{HOST}:{port}", proc)
    return proc


def wait_healthy(url: str, proc: subprocess.Popen | None = None, timeout: float = START_TIMEOUT) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise DataError(f"`transformers serve` exited with code {proc.returncode} before {url}/health answered.")
        try:
            if httpx.get(f"{url}/health", timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise DataError(f"{url}/health did not answer within {timeout:.0f} s.")


def serve(port: int, models: list[str]) -> int:
    """Run the server in the foreground until interrupted; print the URL and the `dvc exp run` line."""
    folders = served_folders(models)
    url = f"http://{HOST}:{port}/v1"
    proc = subprocess.Popen(serve_command(port))
    try:
        wait_healthy(f"http://{HOST}:{port}", proc)
        print(f"serving {', '.join(models)} at {url} (models load on their first request)")
        for model, folder in folders.items():
            print(f"  {model}: {folder}")
        print("answer the arms through it with:\n  " + exp_run_line(url, folders))
        print("stop with Ctrl-C")
        return proc.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
