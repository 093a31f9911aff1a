"""Verification: the one metric set, references as forecasts, evaluation of a model on a dataset
split, scoring of a forecast file against truth, and plots."""
