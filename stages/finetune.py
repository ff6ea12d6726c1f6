"""finetune: a LoRA adapter on the base model, trained on the training data only → models/finetuned/.

Also writes metrics/finetune.json (time, loss, sizes) and plots/finetune_loss.csv (step,loss).
"""

from __future__ import annotations

import logging

from ragft import paths
from ragft.stage import stage

log = logging.getLogger("ragft.stages.finetune")


@stage("finetune", inputs=lambda cfg: [str(paths.BASE_MODEL), str(paths.PREPARED)])
def main(cfg, run) -> None:
    from ragft.finetune import finetune, write_loss_curve
    from ragft.io import atomic_dir, write_json

    with atomic_dir(paths.FINETUNED) as out:
        result = finetune(cfg, paths.BASE_MODEL, paths.PREPARED, out)
        write_json(out / "manifest.json", result.manifest)
        run.write_record(out)

    write_json(paths.FINETUNE_METRICS, result.metrics)
    n_points = write_loss_curve(paths.TRAIN_CURVE_PLOT, result.log_history)
    for entry in result.log_history:
        if "loss" in entry:
            run.log_metrics({"finetune_loss": entry["loss"]}, step=int(entry["step"]))
    run.log_metrics(result.metrics)
    run.log_artifact(paths.TRAIN_CURVE_PLOT)
    log.info("fine-tuned (%s): %s; %d loss points", cfg.finetune.mode, result.metrics, n_points)


if __name__ == "__main__":
    main()
