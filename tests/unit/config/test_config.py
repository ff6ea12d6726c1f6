"""The config contract: conf/ composes into params.yaml, every option validates, bad settings fail clearly."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from ragft.config import ConfigError, check_params_fresh, compose_conf, load_params, validate

CONF = Path("conf")


def test_params_yaml_is_fresh_composition_of_conf():
    assert load_params("params.yaml") == compose_conf(), "params.yaml is stale: run `make params`"


GROUP_OPTIONS = sorted((group.name, option.stem) for group in CONF.iterdir() if group.is_dir()
                       for option in group.glob("*.yaml"))


@pytest.mark.parametrize(("group", "option"), GROUP_OPTIONS)
def test_every_config_option_composes_and_validates(group, option):
    needs = {("reranker", "cross_encoder"): ["reranker.path=/models/my-cross-encoder"]}   # a value the user gives
    cfg = compose_conf(overrides=[f"{group}={option}", *needs.get((group, option), [])])
    validate(cfg, source=f"conf/{group}/{option}.yaml")


def test_every_group_is_composed_typed_by_its_schema():
    """Each conf/ group is in the composition as its schema's dataclass (so composition type-checks it),
    and each option file extends the schema (directly, or through another option of its group)."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from ragft.config.schema import GROUPS, register

    register()
    with initialize_config_dir(config_dir=str(CONF.resolve()), version_base=None):
        cfg = compose(config_name="config")
    groups = {g.name for g in CONF.iterdir() if g.is_dir() and g.name != "experiment"}
    assert groups == set(GROUPS)
    for group, schema in GROUPS.items():
        assert OmegaConf.get_type(cfg, group) is schema, group
        options = {p.stem: p.read_text() for p in (CONF / group).glob("*.yaml")}
        for name, text in options.items():
            first = next(line for line in text.splitlines() if line.strip() and not line.startswith("#"))
            parents = re.findall(r"[\w]+", text.split("defaults:", 1)[1].split("\n\n")[0]) if "defaults:" in text else []
            assert first.startswith("defaults:") and (f"{group}_schema" in parents or set(parents) & set(options)), (
                f"conf/{group}/{name}.yaml does not extend {group}_schema")


BAD = [
    ({"chunking": {"sizee": 3}}, "chunking.sizee"),
    ({"chunkin": {"size": 3}}, "chunkin"),
    ({"chunking": {"size": "big"}}, "chunking.size"),
    ({"retrieval": {"top_k": "three"}}, "retrieval.top_k"),
    ({"chunking": {"size": 32, "overlap": 32}}, "chunking.overlap"),
    ({"retrieval": {"top_k": 0}}, "retrieval.top_k"),
    ({"retrieval": {"top_k": 50}}, "retrieval.depth"),
    ({"index": {"metric": "cosine"}}, "index.metric"),
    ({"finetune": {"mode": "everything"}}, "finetune.mode"),
    ({"model": {"source": "hub", "path": None}}, "model.path"),
    ({"arms": {"contexts": ["none", "wikipedia"]}}, "arms.contexts"),
    ({"dataset": {"eval_fraction": 1.5}}, "dataset.eval_fraction"),
    ({"inference": {"engine": "openai"}}, "inference.openai.base_url"),
    ({"inference": {"engine": "vllm"}}, "inference.engine"),
    ({"inference": {"openai": {"concurrency": 0}}}, "inference.openai.concurrency"),
]


@pytest.mark.parametrize(("patch", "field"), BAD, ids=[f for _, f in BAD])
def test_bad_settings_are_rejected_naming_file_and_field(patch, field):
    cfg = OmegaConf.merge(OmegaConf.create(compose_conf()), OmegaConf.create(patch))
    # OmegaConf.merge on a plain config accepts unknown keys; validate() is what must reject them.
    with pytest.raises(ConfigError) as err:
        validate(cfg, source="params.yaml")
    message = str(err.value)
    assert "params.yaml" in message and field in message and "fix" in message.lower()


def test_stale_params_are_refused(tmp_path, monkeypatch):
    import shutil

    shutil.copytree(CONF, tmp_path / "conf")
    params = compose_conf()
    params["chunking"]["size"] = 999
    (tmp_path / "params.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(params)))
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    with pytest.raises(ConfigError, match=r"stale.*chunking\.size.*make params"):
        check_params_fresh(tmp_path)
    monkeypatch.setenv("DVC_EXP_NAME", "exp-1")  # `dvc exp run -S` composes params.yaml itself
    check_params_fresh(tmp_path)


def test_tiny_experiment_preset_overrides_groups(tiny_cfg, default_cfg):
    assert tiny_cfg.dataset.n_people < default_cfg.dataset.n_people
    assert tiny_cfg.model.scratch.steps < default_cfg.model.scratch.steps
    assert tiny_cfg.embedder == default_cfg.embedder


def _dvc_stage_names(tmp_path, params: dict) -> set[str]:
    """The stages dvc.yaml expands to for ``params`` (DVC's own templating, in a scratch repo)."""
    import shutil

    from dvc.repo import Repo
    from omegaconf import OmegaConf

    tmp_path.mkdir(parents=True)
    Repo.init(str(tmp_path), no_scm=True)
    shutil.copy(paths_root() / "dvc.yaml", tmp_path / "dvc.yaml")
    (tmp_path / "params.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(params)))
    with Repo(str(tmp_path)) as repo:
        return {s.name for s in repo.index.stages}


def paths_root():

    from tests.helpers import REPO

    return REPO


def test_arms_expand_into_the_factorial_matrix(tmp_path, default_cfg):
    from omegaconf import OmegaConf

    params = OmegaConf.to_container(default_cfg, resolve=True)
    names = _dvc_stage_names(tmp_path / "all", params)
    infer = {n for n in names if n.startswith("infer@")}
    assert infer == {f"infer@{m}" for m in default_cfg.arms.models}  # one stage per model, every context
    assert len(infer) == 3
    assert {n for n in names if n.startswith("finetune@")} == {"finetune@finetuned", "finetune@raft"}
    assert {n for n in names if n.startswith("base_model@")} == {"base_model@base"}
    # any subset by config: base only → no finetune stage at all (the dag follows arms.models)
    subset = compose_conf(overrides=["arms.models=[base]", "arms.contexts=[none,oracle]"])
    validate(subset)
    names = _dvc_stage_names(tmp_path / "subset", subset)
    assert {n for n in names if n.startswith(("infer@", "finetune@", "base_model@"))} == {"infer@base",
                                                                                         "base_model@base"}


def test_candidates_on_a_second_base_get_their_own_stages(tmp_path):
    params = compose_conf(overrides=["+model@bases.big=scratch_wide", "+candidates.big={base: big}",
                                     "+candidates.big_raft={base: big, recipe: raft}",
                                     "arms.models=[base,raft,big,big_raft]"])
    validate(params)
    assert params["dag"] == {
        "bases": {"base": {"dir": "models/base", "model": "model"}, "big": {"dir": "models/big", "model": "bases.big"}},
        "trained": {"raft": {"base": "base", "model": "model", "recipe": "raft", "input": "data/chunks/chunks.jsonl"},
                    "big_raft": {"base": "big", "model": "bases.big", "recipe": "raft",
                                 "input": "data/chunks/chunks.jsonl"}},
        "infer": {"base": {"base": "base", "model": "model", "weights": "models/base"},
                  "raft": {"base": "base", "model": "model", "weights": "models/raft"},
                  "big": {"base": "big", "model": "bases.big", "weights": "models/big"},
                  "big_raft": {"base": "big", "model": "bases.big", "weights": "models/big_raft"}}}
    names = _dvc_stage_names(tmp_path / "two", params)
    assert {n for n in names if "@" in n} == {"base_model@base", "base_model@big", "finetune@raft",
                                              "finetune@big_raft", "infer@base", "infer@raft", "infer@big",
                                              "infer@big_raft"}
    from dvc.repo import Repo

    with Repo(str(tmp_path / "two")) as repo:
        stage = next(s for s in repo.index.stages if s.name == "infer@big_raft")
        deps = {str(d.def_path) for d in stage.deps}
        assert {"models/big", "models/big_raft"} <= deps and "models/base" not in deps
        finetune = next(s for s in repo.index.stages if s.name == "finetune@big_raft")
        assert "models/big" in {str(d.def_path) for d in finetune.deps}
        params_deps = {k for d in finetune.deps if hasattr(d, "params") for k in (d.params or [])}
        assert {"candidates.big_raft", "bases.big.dtype", "finetune"} <= params_deps


@pytest.mark.parametrize("overrides, words", [
    (["arms.models=[base,mine]"], ["arms.models", "'mine' is not declared", "+candidates.mine"]),
    (["+candidates.my-model={recipe: raft}"], ["candidates.my-model", "without '-'"]),
    (["+candidates.oracle={recipe: raft}"], ["candidates.oracle", "clashes with a context"]),
    (["+candidates.both={recipe: raft, adapter: somewhere}"], ["candidates.both", "keep one of recipe, adapter"]),
    (["+candidates.far={base: nowhere}"], ["candidates.far.base", "'nowhere'", "declare it in `bases`"]),
    (["+candidates.api={served: gpt}"], ["candidates.api.served", "inference.openai.base_url"]),
    (["+candidates.odd={recipe: distill}"], ["candidates.odd.recipe", "finetuned", "raft"]),
    (["+candidates.typo={recipe: raft, finetune: {lrr: 1}}"], ["candidates.typo.finetune", "lrr"]),
])
def test_bad_candidates_are_refused_with_the_field_and_the_fix(overrides, words):
    with pytest.raises(ConfigError) as err:
        validate(compose_conf(overrides=overrides))
    for word in words:
        assert word in str(err.value)


def test_the_derived_dag_must_follow_the_candidates(default_cfg):
    from omegaconf import OmegaConf

    params = OmegaConf.to_container(default_cfg, resolve=True)
    params["arms"]["models"] = ["base", "raft"]   # edited without recomposing: dag still lists finetuned
    with pytest.raises(ConfigError, match=r"field 'dag'.*make params"):
        validate(params)


def test_contexts_must_be_known(default_cfg):
    from omegaconf import OmegaConf

    params = OmegaConf.to_container(default_cfg, resolve=True)
    params["arms"]["contexts"] = ["none", "gold"]
    with pytest.raises(ConfigError, match="arms.contexts"):
        validate(params)
