"""Experiment tracking with MLflow; a tracking failure warns once and the run goes on.

An unreachable tracking server costs seconds, not minutes (`HTTP_LIMITS`); a locked or corrupt
sqlite store, or any other tracking error, disables tracking for the rest of the run with one
warning, and the model directory is written as without tracking.

Default store: `sqlite:///mlflow.db` in the working directory, unless MLFLOW_TRACKING_URI is
set (MLflow 3 refuses the old ./mlruns file store). One experiment per dataset/task.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
#: MLflow's own HTTP defaults retry an unreachable server for about four minutes (measured: 249 s
#: on a closed port) before training could start; these bound it to seconds. Variables the user
#: has set win.
HTTP_LIMITS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "15",
}


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI", DEFAULT_TRACKING_URI)


class Tracker:
    """Thin, failure-tolerant wrapper over an MLflow run; `enabled=False`: every call a no-op."""

    def __init__(self, experiment: str, *, enabled: bool = True, run_name: str | None = None):
        self.experiment = experiment
        self.run_name = run_name
        self.enabled = enabled
        self.run_id: str | None = None
        self._mlflow: Any = None

    def _guard(self, what: str, fn: Callable[[], Any]) -> Any:
        if not self.enabled:
            return None
        try:
            return fn()
        except Exception as e:  # any tracking error: warn once, keep training
            warnings.warn(
                f"MLflow tracking disabled after an error while {what}: {type(e).__name__}: {e}",
                stacklevel=3,
            )
            self.enabled = False
            return None

    @contextmanager
    def run(self) -> Iterator[Tracker]:
        def start() -> None:
            for name, value in HTTP_LIMITS.items():
                os.environ.setdefault(name, value)
            import mlflow  # slow import: only when tracking is on

            logging.getLogger("alembic").setLevel(logging.WARNING)
            # mlflow sets its own level on import; its notes on pickled models are noise here
            logging.getLogger("mlflow").setLevel(logging.ERROR)
            mlflow.set_tracking_uri(tracking_uri())
            mlflow.set_experiment(self.experiment)
            active = mlflow.start_run(run_name=self.run_name)
            self._mlflow = mlflow
            self.run_id = active.info.run_id

        self._guard("starting the run", start)
        try:
            yield self
        finally:
            if self._mlflow is not None:
                status = "FINISHED"
                self._guard("ending the run", lambda: self._mlflow.end_run(status=status))

    def log_params(self, params: dict[str, Any]) -> None:
        clean = {k: ("None" if v is None else v) for k, v in params.items()}
        self._guard("logging params", lambda: self._mlflow.log_params(clean))

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self._guard("logging metrics", lambda: self._mlflow.log_metrics(metrics, step=step))

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        self._guard(f"logging {path}", lambda: self._mlflow.log_artifact(str(path), artifact_path))

    def log_model(self, model_dir: Path) -> None:
        """The trained model as an MLflow pyfunc: a frame with NaN in, quantiles out."""

        def do() -> None:
            from csdi.pyfunc import ImputerPyfunc

            self._mlflow.pyfunc.log_model(
                name="model",
                python_model=ImputerPyfunc(),
                artifacts={"model_dir": str(model_dir)},
                pip_requirements=["csdi", "torch", "numpy", "pandas"],
            )

        self._guard("logging the pyfunc model", do)
