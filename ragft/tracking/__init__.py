"""The one place that talks to MLflow: the store (``store``), runs (``runs``), a local server for
parallel writers (``server``), lineage and reproducibility info (``lineage``), secret masking (``redact``)."""

from ragft.tracking.lineage import reproducibility_info
from ragft.tracking.redact import mask_secrets, redact_uri
from ragft.tracking.runs import StageRun, metric_name, stage_run
from ragft.tracking.server import local_server
from ragft.tracking.store import TrackingError, ensure_experiment, is_server, tracking_uri

__all__ = [
    "StageRun", "TrackingError", "ensure_experiment", "is_server", "local_server", "mask_secrets", "metric_name",
    "redact_uri", "reproducibility_info", "stage_run", "tracking_uri",
]
