"""The trained imputer as an MLflow pyfunc model: a frame with NaN in, medians and quantiles out."""

from __future__ import annotations

from typing import Any

import pandas as pd
from mlflow.pyfunc import PythonModel


class ImputerPyfunc(PythonModel):
    """Loads the model directory logged as the artifact `model_dir`; `predict` imputes a frame.

    The output has the input's index, the median under each feature name (observed values
    untouched) and `<feature>_q<level>` columns for the 0.05, 0.5 and 0.95 quantiles.
    """

    def load_context(self, context: Any) -> None:
        from csdi.imputer import Imputer

        self.imputer = Imputer.load(context.artifacts["model_dir"])

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict | None = None
    ) -> pd.DataFrame:
        from csdi.imputer import imputation_frame

        result = self.imputer.impute(model_input, quantiles=(0.05, 0.5, 0.95))
        return imputation_frame(result, model_input.index, list(self.imputer.feature_names))
