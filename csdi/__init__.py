"""csdi: probabilistic time-series imputation and forecasting with conditional score-based diffusion."""

from csdi.imputer import Imputer

__all__ = ["Imputer"]
