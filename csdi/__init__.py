"""csdi: probabilistic imputation and forecasting of time series with score-based diffusion."""

from csdi.imputer import Imputer

__all__ = ["Imputer"]
