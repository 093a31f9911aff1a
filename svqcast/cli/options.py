"""The CLI's option vocabulary: every reusable `Annotated` option and argument, and the map
from a library parameter name to its flag.

One file holds them so that every command spells a flag the same way, with the same help,
and so that errors raised by the library (which name parameters, `` `init_time` ``, see
svqcast.errors) can be shown with the flag a CLI user typed (`--init-time`): `flag_for`.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional, get_origin

import typer

from svqcast.cli.output import OutputFormat
from svqcast.sources.formats import describe_formats

#: every input format a reading command accepts, from the one suffix table
INPUTS = describe_formats() + ": a file, a folder, a glob or a URL"


class TableFormat(str, Enum):
    """Reports that also have a long CSV form (evaluate, score)."""

    text = "text"
    json = "json"
    csv = "csv"


class ScoreFormat(str, Enum):
    """`score` also writes a WeatherBench2-style results file."""

    text = "text"
    json = "json"
    csv = "csv"
    netcdf = "netcdf"


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class Precision(str, Enum):
    fp32 = "32"
    bf16 = "bf16"


class ProgressKind(str, Enum):
    auto = "auto"
    rich = "rich"
    plain = "plain"
    none = "none"


class Compat(str, Enum):
    openstl = "openstl"


class ExportFormat(str, Enum):
    onnx = "onnx"
    torchscript = "torchscript"
    pt2 = "pt2"


class Layout(str, Enum):
    cf = "cf"
    wb2 = "wb2"
    valid_time = "valid-time"


def _version(value: bool) -> None:
    if value:
        from svqcast._version import __version__

        typer.echo(f"svqcast {__version__}")
        raise typer.Exit()


# --- shared by several commands -------------------------------------------------------------
VersionOpt = Annotated[
    bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
]
FormatOpt = Annotated[
    OutputFormat, typer.Option("--format", "-f", help="Output format: text for humans, json for scripts.")
]
TableFormatOpt = Annotated[TableFormat, typer.Option("--format", "-f", help="text, json or csv (long format).")]
SetOpt = Annotated[
    Optional[list[str]],
    typer.Option(
        "--set",
        "-s",
        help="Override a config key, e.g. --set model.codebook_size=4096 (repeatable).",
        metavar="KEY=VALUE",
    ),
]
RootOpt = Annotated[
    Optional[Path],
    typer.Option("--root", help="Data root (default: $SVQCAST_DATA_DIR or ~/.local/share/svqcast/datasets)."),
]
DeviceOpt = Annotated[Device, typer.Option("--device", help="auto (GPU when visible), cpu or cuda.")]
BatchSizeOpt = Annotated[Optional[int], typer.Option(
    "--batch-size", min=1, help="Samples per network call (predict: initialisations per call).")]
CompileOpt = Annotated[bool, typer.Option(
    "--compile", help="torch.compile the model: the first call pays the compilation.")]
TrainCompileOpt = Annotated[bool, typer.Option(
    "--compile", help="torch.compile the model (the config key train.compile): the first step pays the compilation.")]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Replace the output if it exists.")]
OutputOpt = Annotated[Path, typer.Option(
    "--output", "-o", help="Where to write: the file or directory the command's description names.")]
VariablesOpt = Annotated[Optional[list[str]], typer.Option(
    "--variables", help="Variables to keep (repeatable or comma-separated; default: all). WeatherBench: folder "
                        "or short names; your own data: variable names in the file.")]

# --- datasets, download, prepare --------------------------------------------------------------
YearsOpt = Annotated[Optional[str], typer.Option("--years", help="Year range A:B (WeatherBench), e.g. 2010:2018.")]
SourceOpt = Annotated[Optional[str], typer.Option(
    "--source", help="WeatherBench: tum (netCDF zips, default) or wb2 (WeatherBench 2 zarr); "
                     "KTH: openstl (jpg frames, default) or kth (original .avi zips).")]
FromOpt = Annotated[Optional[Path], typer.Option(
    "--from", help="Adopt a local archive or folder instead of downloading.")]
MirrorOpt = Annotated[Optional[str], typer.Option(
    "--mirror", help="Replace the upstream scheme://host (env SVQCAST_MIRROR).")]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Print what would be fetched and its size; fetch nothing.")]
DatasetArg = Annotated[str, typer.Argument(
    help="A catalog name, or your own data: a netCDF/GRIB file, a folder or glob of them, a zarr store "
         "(path or https:// URL), a .npy array, a video or a folder of images.")]
OptionalDatasetArg = Annotated[Optional[str], typer.Argument(
    help="A catalog name, or your own data: a netCDF/GRIB file, a folder or glob of them, a zarr store "
         "(path or https:// URL), a .npy array, a video or a folder of images. Not with --finalise.")]
# -- preparation at scale (docs/scale.md) --
WorkersOpt = Annotated[Optional[int], typer.Option(
    "--workers", help="Run the preparation on a local dask cluster of N worker processes.")]
SchedulerOpt = Annotated[Optional[str], typer.Option(
    "--scheduler", help="Run the preparation on an existing dask.distributed cluster, e.g. tcp://head:8786.")]
PartsOpt = Annotated[Optional[str], typer.Option(
    "--parts", help="Write only part I of N (e.g. 2/3) of the store, as one batch job; then --finalise.")]
FinaliseOpt = Annotated[Optional[str], typer.Option(
    "--finalise", help="Merge the parts of dataset NAME (written with --parts) into its store.")]
DownloadDatasetArg = Annotated[str, typer.Argument(
    help="Dataset name (see `svqcast datasets list`), or `weatherbench` for every WeatherBench-S/M variable.")]
DatasetNameArg = Annotated[str, typer.Argument(help="Dataset name, e.g. weatherbench-s-t2m.")]
VerifyOpt = Annotated[bool, typer.Option(
    "--verify", help="Check every file of the prepared store against its manifest's sha256 "
                     "(exit 3 naming a file that differs).")]
NameOpt = Annotated[Optional[str], typer.Option("--name", help="Your own data: the dataset name to register it under.")]
OfficialOpt = Annotated[bool, typer.Option(
    "--official-validation", help="Official split: no held-out validation, val = test (OpenSTL behaviour).")]
ForceOpt = Annotated[bool, typer.Option("--force", help="Rebuild even if a prepared store exists (replaces NAME).")]
SplitYearsOpt = Annotated[Optional[list[str]], typer.Option(
    "--years", metavar="SPLIT=A:B",
    help="WeatherBench: replace a split's years, SPLIT=A:B (repeatable), e.g. --years test=2018:2018.")]
ResizeOpt = Annotated[Optional[str], typer.Option(
    "--resize", help="Frame data only: area-average every frame to HxW (e.g. 136x320), for large videos.",
    metavar="HxW")]
AllowCutsOpt = Annotated[bool, typer.Option(
    "--allow-cuts", help="Frame data only: let windows straddle the scene cuts prepare finds in a video.")]
LevelOpt = Annotated[Optional[float], typer.Option(
    "--level", help="Your own data: the one level to keep when a variable has several (channel keeps its name).")]
LevelsOpt = Annotated[Optional[str], typer.Option(
    "--levels", help="Your own data: levels to keep of variables on levels, comma-separated, or all: one channel "
                     "per (variable, level), named t@850; forecasts write the level dimension back.")]
MaskOpt = Annotated[Optional[str], typer.Option(
    "--mask", help="Your own data: FILE[:VAR] on the data's grid (a land-sea mask): cells to keep (see --mask-keep); "
                   "cells that hold no value in any training step are masked anyway.")]
MaskKeepOpt = Annotated[str, typer.Option(
    "--mask-keep", help="Which cells of --mask to keep: nonzero (default) or zero (the sea of a land-sea mask).")]
AllowMissingOpt = Annotated[bool, typer.Option(
    "--allow-missing", help="Your own data: fill gaps the mask does not explain (with the training mean, counted) "
                            "instead of refusing them.")]
TInOpt = Annotated[Optional[int], typer.Option(
    "--t-in", min=1, help="Input steps per sample (default 12; 10 for frames).")]
TOutOpt = Annotated[Optional[int], typer.Option(
    "--t-out", min=1, help="Output steps per sample (default 12; 10 for frames).")]
TimeStepOpt = Annotated[Optional[str], typer.Option(
    "--time-step", help="Override the inferred step: 30min, 1h, 6h, 1D, 1M, 1Y.")]
SplitOpt = Annotated[Optional[list[str]], typer.Option(
    "--split", metavar="SPLIT=A:B", help="Your own data: train/val/test by dates (1979:2015, 2019-03-01:2019-03-23) "
                                         "or frame indices; default 70/15/15 in time order.")]

# --- train, evaluate ----------------------------------------------------------------------------
PresetOpt = Annotated[Optional[str], typer.Option("--preset", "-p", help="Preset name (svqcast models presets).")]
ConfigOpt = Annotated[Optional[Path], typer.Option("--config", "-c", help="A TOML config file instead of a preset.")]
TrainDatasetOpt = Annotated[
    Optional[str], typer.Option("--dataset", "-d", help="Train on this dataset, catalog or your own (sets "
                                "data.dataset; model.in_shape and out_frames follow it).")
]
RunDirOpt = Annotated[Optional[Path], typer.Option(
    "--run-dir", "-o", help="Run directory (default runs/<preset>, or runs/<preset>-<dataset> on another dataset).")]
MaxEpochsOpt = Annotated[Optional[int], typer.Option(
    "--max-epochs", min=1,
    help="Stop after this many epochs in total; the schedule still spans train.epochs, so --resume continues it.",
)]
ResumeOpt = Annotated[Optional[str], typer.Option(
    "--resume", help="'auto': continue the run in --run-dir if it has a trainer state; or a run directory to continue.",
)]
PrecisionOpt = Annotated[Optional[Precision], typer.Option("--precision", help="32 or bf16 (autocast).")]
SeedOpt = Annotated[Optional[int], typer.Option("--seed", help="Seed for random, numpy and torch (train.seed).")]
DeterministicOpt = Annotated[
    bool, typer.Option("--deterministic", help="Deterministic kernels: bit-identical reruns.")
]
ProgressOpt = Annotated[ProgressKind, typer.Option(
    "--progress", help="Progress on stderr: auto (Rich on a terminal), rich, plain, none."
)]
EvalRefArg = Annotated[str, typer.Argument(help="Run directory, checkpoint directory or zoo name.")]
EvalDatasetOpt = Annotated[
    Optional[str], typer.Option("--dataset", "-d", help="Dataset (default: the one the model was trained on).")
]
EvalSplitOpt = Annotated[str, typer.Option("--split", help="train, val or test.")]
PerLeadOpt = Annotated[bool, typer.Option("--per-lead-time", help="Also report scores per lead time.")]
CompatOpt = Annotated[
    Optional[Compat], typer.Option("--compat", help="openstl: only the official metric() scores of the model.")
]
MaxBatchesOpt = Annotated[
    Optional[int], typer.Option("--max-batches", min=1, help="Score only the first batches (quick check).")
]

# --- score ----------------------------------------------------------------------------------------
ForecastFileArg = Annotated[
    Path, typer.Argument(help="Forecast file or store: svqcast's layout or WeatherBench2's.")]
TruthOpt = Annotated[Path, typer.Option("--truth", help=f"Observations at the valid times: {INPUTS}.")]
ClimatologyOpt = Annotated[Optional[Path], typer.Option(
    "--climatology", help="Climatology for ACC: (dayofyear, hour), by time, or static.")]
ScoreVariablesOpt = Annotated[Optional[list[str]], typer.Option(
    "--variables", help="Forecast variable(s) to score, repeatable or comma-separated (default: all); "
                        "geopotential means all its levels, geopotential@500 one.")]
ScoreFormatOpt = Annotated[ScoreFormat, typer.Option(
    "--format", "-f", metavar="FORMAT",
    help="text, json, csv (long format), or netcdf: a WeatherBench2-style results file (metric, region, lead_time, "
         "level) written to --output.")]
ResultsOutputOpt = Annotated[Optional[Path], typer.Option(
    "--output", "-o", help="The results file of --format netcdf (NAME.nc).")]
RegionOpt = Annotated[Optional[str], typer.Option(
    "--region", help="WeatherBench2 regions to score, comma-separated, or all (default: global): global, tropics, "
                     "extra-tropics, northern-hemisphere, southern-hemisphere, europe, north-america, "
                     "north-atlantic, north-pacific, east-asia, ausnz, arctic, antarctic.")]
BootstrapOpt = Annotated[int, typer.Option(
    "--bootstrap", help="Resamples of the confidence intervals (bootstrap over initialisations; 0: none).")]
BootstrapSeedOpt = Annotated[int, typer.Option("--seed", help="Seed of the bootstrap resampling.")]
ThresholdsOpt = Annotated[Optional[str], typer.Option(
    "--thresholds", help="Categorical scores (POD, FAR, CSI, ETS, frequency bias) and FSS at these thresholds, "
                         "comma-separated, in the variable's units or as rates (1mm/h).")]
FssScalesOpt = Annotated[Optional[str], typer.Option(
    "--fss-scales", help="Fractions skill score window sizes in grid cells (default 1,5,15).")]
PlotOpt = Annotated[Optional[Path], typer.Option(
    "--plot", help="Also draw RMSE against lead time (.png, .pdf, .svg).")]

# --- models: zoo, export, convert, describe ---------------------------------------------------------
ZooPatternArg = Annotated[Optional[str], typer.Argument(help="Filter: a substring or a glob such as 'era5*'.")]
ZooNameArg = Annotated[str, typer.Argument(help="Zoo model name.")]
ZooRefArg = Annotated[str, typer.Argument(help="Zoo model name or hf://ORG/NAME@REVISION.")]
ForceDownloadOpt = Annotated[bool, typer.Option("--force", help="Download again even if cached.")]
PushSourceArg = Annotated[
    Path, typer.Argument(help="Training run directory (its best/ checkpoint), a checkpoint directory or a "
                              "bundled zoo model (pushed with its own card).")]
RepoIdOpt = Annotated[str, typer.Option("--repo-id", help="Hub repository, ORG/NAME.")]
RevisionOpt = Annotated[Optional[str], typer.Option("--revision", help="Branch to push to (default main).")]
PrivateOpt = Annotated[bool, typer.Option("--private", help="Create the repository as private.")]
ExportRefArg = Annotated[Optional[str], typer.Argument(
    help="Zoo name, hf://ORG/NAME@REVISION or checkpoint directory (default: the zoo's default).")]
ExportFormatOpt = Annotated[ExportFormat, typer.Option("--format", help="onnx, torchscript or pt2 (torch.export).")]
ValidateOpt = Annotated[bool, typer.Option(
    "--validate", help="Run the export on a real sample and compare with PyTorch.")]
ToleranceOpt = Annotated[float, typer.Option("--tolerance", help="Largest absolute difference --validate accepts.")]
ReportFormatOpt = Annotated[OutputFormat, typer.Option("--report-format", help="text or json report.")]
OpenSTLCheckpointArg = Annotated[
    Path, typer.Argument(help="OpenSTL / SVQ-Forecasting checkpoint.pth or latest.pth.")]
ConvertPresetOpt = Annotated[
    str, typer.Option("--preset", "-p", help="Preset (or TOML path) the checkpoint was trained with.")]
DataOpt = Annotated[Optional[str], typer.Option(
    "--data", help="Attach the data spec and training statistics of this prepared dataset (catalog or your own), "
                   "so predict/evaluate work.")]
PresetArg = Annotated[str, typer.Argument(help="A preset name or the path of a TOML config.")]

# --- predict, plot ----------------------------------------------------------------------------------
MODEL_HELP = ("Zoo name (svqcast models list), hf://ORG/NAME@REVISION, or a checkpoint/run directory. "
              "Default: the zoo's default model.")
ModelOpt = Annotated[Optional[str], typer.Option("--model", "-m", help=MODEL_HELP)]
ModelsOpt = Annotated[Optional[list[str]], typer.Option(
    "--model", "-m", help=MODEL_HELP + " Repeat it for a models ensemble (--perturb models).")]
MembersOpt = Annotated[Optional[int], typer.Option(
    "--members", help="An ensemble of this many members, made as --perturb says (docs/ensembles.md).")]
PerturbOpt = Annotated[str, typer.Option(
    "--perturb", help="How members differ: noise (perturbed initial state), lagged (earlier initialisations), "
                      "models (one per --model).")]
NoiseAmplitudeOpt = Annotated[Optional[str], typer.Option(
    "--noise-amplitude", help="Noise members: amplitude in physical units, one or one per channel "
                              "(default: the model's fitted amplitude).")]
NoiseLengthOpt = Annotated[float, typer.Option(
    "--noise-length", help="Noise members: correlation length of the perturbations, in grid cells.")]
EvalMembersOpt = Annotated[Optional[int], typer.Option(
    "--members", help="Also score the model's noise ensemble of this many members (its fitted amplitude): CRPS, "
                      "spread/skill, against its MAE and a climatological ensemble.")]
InitFromOpt = Annotated[Optional[str], typer.Option(
    "--init-from", help="Fine-tune: start from this model's weights where name and shape match (zoo name, "
                        "hf://ORG/NAME@REV, a run or checkpoint directory); the rest starts fresh.")]
FreezeOpt = Annotated[Optional[str], typer.Option(
    "--freeze", help="Fine-tune: parts that do not train, comma-separated: encoder, translator, quantizer, decoder.")]
KeepStatsOpt = Annotated[bool, typer.Option(
    "--keep-stats", help="Fine-tune: normalise with the parent model's statistics, not the new dataset's.")]
StrictInitOpt = Annotated[bool, typer.Option(
    "--strict", help="Fine-tune: refuse any tensor that does not match the parent by name and shape.")]
CalMembersOpt = Annotated[int, typer.Option("--members", help="Members of the calibration ensembles.")]
CalSamplesOpt = Annotated[int, typer.Option("--samples", help="Validation samples to calibrate on (evenly spaced).")]
MemberSeedOpt = Annotated[int, typer.Option("--seed", help="Seed of the members' perturbations.")]
InputArg = Annotated[Path, typer.Argument(help=f"The input: {INPUTS}.")]
ForecastOutputOpt = Annotated[
    Optional[Path], typer.Option("--output", "-o", help="Forecast to write: NAME.nc (netCDF4) or NAME.zarr.")
]
StepsOpt = Annotated[
    Optional[int], typer.Option("--steps", "-n", help="Number of output frames (default: the model's T_out).")
]
LeadTimeOpt = Annotated[
    Optional[str], typer.Option("--lead-time", help="Forecast horizon instead of --steps, e.g. 24h, 2d.")
]
InitTimesOpt = Annotated[
    Optional[list[str]],
    typer.Option("--init-time", help="Initialisation time (repeatable); default: the last time in the input."),
]
VarMapOpt = Annotated[
    Optional[list[str]],
    typer.Option("--var-map", help="Map an input variable to a model variable, INPUT=MODEL (repeatable).",
                 metavar="A=B"),
]
CoordsOpt = Annotated[
    Optional[list[str]],
    typer.Option("--coords", help="Name coordinates the guesser misses, ROLE=NAME (roles: time, lat, lon, y, x, level, "
                 "init, lead, member), e.g. lat=y,lon=x (repeatable).", metavar="ROLE=NAME"),
]
LayoutOpt = Annotated[
    Layout, typer.Option("--layout", help="cf (default, CF-1.8), wb2 (WeatherBench2), valid-time (CDO).")
]
CheckOpt = Annotated[bool, typer.Option("--check", help="Only validate the input against the model and report.")]
PlotFileArg = Annotated[Path, typer.Argument(
    help="Forecast file or store (netCDF or zarr): svqcast's layouts or WeatherBench2's.")]
PlotTruthOpt = Annotated[
    Optional[Path], typer.Option("--truth", help=f"Observations covering the valid times: {INPUTS}.")
]
VarOpt = Annotated[Optional[str], typer.Option("--variables", help="Variable to plot (default: the first).")]
PlotLeadTimesOpt = Annotated[
    Optional[list[str]],
    typer.Option("--lead-time", help="Lead time(s) to map, e.g. 6h (repeatable; default: 4 spread out)."),
]
AnimateOpt = Annotated[
    Optional[Path], typer.Option("--animate", help="Also write an animated GIF over all lead times.")
]
PlotInitTimeOpt = Annotated[
    Optional[str],
    typer.Option("--init-time", help="Initialisation to plot when the file holds several (default: the first)."),
]


# --- predict at scale (issue 26 item 3: svqcast predict --init-times) -----------------------------
InitTimesRangeOpt = Annotated[Optional[str], typer.Option(
    "--init-times", help="Many initialisations, streamed batch by batch into a .zarr store that resumes: "
                         "START:END:STEP (inclusive end, e.g. 2019-03-02T00:2019-03-31T00:6h) or a comma list.",
    metavar="START:END:STEP")]
ScoreAgainstOpt = Annotated[Optional[Path], typer.Option(
    "--score-against", help="With --init-times: score each batch against these observations while forecasting "
                            "(what `svqcast score` reports, without reading the forecast back).")]
# --- end predict at scale ---------------------------------------------------------------------------


# --- library parameter -> flag --------------------------------------------------------------------
# Library parameters whose flag is not the name spelled with dashes (`init_time` -> `--init-time`).
RENAMED_PARAMS = {
    "overrides": "--set",
    "from_path": "--from",
    "fmt": "--format",
    "var": "--variables",
    "splits": "--split",
}


def _vocabulary_flags() -> frozenset[str]:
    """Every long flag declared by the aliases of this module (and of the ones given)."""
    found: set[str] = set()
    for value in list(globals().values()):
        if get_origin(value) is not Annotated:
            continue
        for info in value.__metadata__:
            if isinstance(info, typer.models.OptionInfo):
                decls = (info.default, *(info.param_decls or ()))
                found.update(d for d in decls if isinstance(d, str) and d.startswith("--"))
    return frozenset(found)


def flag_for(param: str) -> str | None:
    """The flag a CLI user gives for library parameter `param`, or None when no command has one."""
    flag = RENAMED_PARAMS.get(param, "--" + param.replace("_", "-"))
    return flag if flag in _FLAGS else None


def cli_message(message: str) -> str:
    """A library error message as the CLI shows it: marked parameters become flags."""
    from svqcast.errors import rename_params

    return rename_params(message, flag_for)


_FLAGS = _vocabulary_flags()
