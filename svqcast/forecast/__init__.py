"""From a model and an input file to a forecast file: the forecaster, input validation, the
writer (CF netCDF, zarr, layouts), export, and the predict-from-file pipeline."""
