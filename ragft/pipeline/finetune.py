"""finetune@<name>: one recipe candidate of the experiment → models/<name>/ (a LoRA adapter on its base).

    python stages/finetune.py +arm.model=<name>

Its recipe (`candidates.<name>.recipe`): `finetuned` injects the documents (finetune.mode); `raft` trains reading
among distractors (finetune.raft); `candidates.<name>.finetune` overrides the `finetune` group for it alone.
Both train on training data only. Also writes metrics/finetune/<model>.json (time, loss, sizes,
the contamination check), plots/finetune_loss/<model>.csv (step,loss) and, with finetune.validation,
plots/finetune_validation/<model>.csv (step,eval_loss: early stopping keeps the best checkpoint); with finetune.export_merged,
models/<model>/merged/ too (the adapter folded into the base weights, for any server).
"""

from __future__ import annotations

import logging

from ragft import paths
from ragft.pipeline.runner import is_main_process, stage_main

log = logging.getLogger(__name__)


def finetune(cfg, run) -> None:
    import tempfile

    from ragft.config import for_candidate
    from ragft.finetune.lora import finetune as train
    from ragft.finetune.lora import write_loss_curve, write_validation_curve
    from ragft.io import atomic_dir, write_json

    model = str(cfg.arm.model)
    entry = cfg.dag.trained[model]
    recipe, base = str(entry.recipe), paths.base_dir(str(entry.base))
    cfg = for_candidate(cfg, model)
    if not is_main_process():  # another rank of `accelerate launch`: train in step with the main one, write nothing
        with tempfile.TemporaryDirectory(prefix="ragft-rank-") as scratch:
            train(cfg, base, paths.PREPARED, scratch, recipe=recipe, chunks_file=paths.CHUNKS_FILE)
        return
    with atomic_dir(paths.model_dir(model)) as out:
        result = train(cfg, base, paths.PREPARED, out, recipe=recipe, chunks_file=paths.CHUNKS_FILE)
        write_json(out / "manifest.json", result.manifest)
        # the model carries its own training record (what evaluate reads), mirrored below for `dvc metrics/plots`
        write_json(out / paths.TRAIN_METRICS, result.metrics)
        write_loss_curve(out / paths.TRAIN_CURVE, result.log_history)
        write_validation_curve(out / paths.VALIDATION_CURVE, result.log_history)
        if cfg.finetune.export_merged:  # for servers without adapter support (`ragft serve` merges on demand otherwise)
            from ragft.finetune.lora import export_merged

            export_merged(base, out, out / paths.MERGED_DIR)
        run.write_record(out)

    write_json(paths.finetune_metrics(model), result.metrics)
    n_points = write_loss_curve(paths.train_curve(model), result.log_history)
    write_validation_curve(paths.validation_curve(model), result.log_history)
    for entry in result.log_history:
        if "loss" in entry:
            run.log_metrics({"finetune_loss": entry["loss"]}, step=int(entry["step"]))
        if "eval_loss" in entry:
            run.log_metrics({"finetune_eval_loss": entry["eval_loss"]}, step=int(entry["step"]))
    run.log_metrics(result.metrics)
    run.log_artifact(paths.train_curve(model))
    run.log_artifact(paths.validation_curve(model))
    log.info("fine-tuned %s: %s; %d loss points", model, result.metrics, n_points)


main = stage_main("finetune", finetune, arm={"model": lambda cfg: cfg.dag.trained}, torch=True)
