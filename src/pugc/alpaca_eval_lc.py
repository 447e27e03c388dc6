"""AlpacaEval 2's length-controlled win rate, computed by the `alpaca-eval` package itself
(`alpaca_eval.metrics.glm_winrate`, `length_controlled_v1`), never re-implemented: fitted on the annotations
of pugc.stages.benchmarks and on the instruction difficulties and gamed-baseline annotations of the hub file
`df_gamed.csv`, which the user supplies (nothing is downloaded). Only evaluation_gate's task (base image)
imports this module: the package and its scikit-learn live there.
"""
from __future__ import annotations

import contextlib
from pathlib import Path


def alpaca_eval_figures(annotations: list[dict], glm_data: str) -> dict[str, float]:
    """alpaca_eval's own win rate and length-controlled win rate (fractions; alpaca_eval reports percent)."""
    if not annotations:
        return {"prompts": 0.0}
    metrics = length_controlled_winrate(annotations, glm_data)
    percent = {"win_rate": "win_rate", "lc_win_rate": "length_controlled_winrate", "standard_error": "standard_error",
               "lc_standard_error": "lc_standard_error", "discrete_win_rate": "discrete_win_rate"}
    return {"prompts": float(len(annotations)),
            **{name: round(float(metrics[key]) / 100, 4) for name, key in percent.items()}}


def length_controlled_winrate(annotations: list[dict], glm_data: str) -> dict:
    """`alpaca_eval.metrics.glm_winrate.get_length_controlled_winrate` itself, its GLM data read from the
    user's copy of the hub file instead of downloaded; no weights saved."""
    import warnings

    # pkg_resources' deprecation (alpaca_eval's imports) and scikit-learn's FutureWarnings on the arguments
    # alpaca_eval passes: the package's business, not the run's
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from alpaca_eval.metrics import glm_winrate

        with _hub_files(glm_winrate, {"df_gamed.csv": _local_copy(glm_data)}):
            return glm_winrate.get_length_controlled_winrate(annotations, save_weights_dir=None,
                                                             is_warn_extreme_changes=False)


@contextlib.contextmanager
def _hub_files(module, files: dict[str, str]):
    """The module's `hf_hub_download` answering from local files: the package's code runs unchanged, only
    where it reads its data from changes (a file it was not given is an error, never a download)."""
    original = module.hf_hub_download

    def from_local(repo_id: str, filename: str, **_) -> str:
        if filename not in files:
            raise FileNotFoundError(f"alpaca_eval asked for {repo_id}/{filename}, which the recipe does not supply")
        return files[filename]

    module.hf_hub_download = from_local
    try:
        yield
    finally:
        module.hf_hub_download = original


def _local_copy(uri: str) -> str:
    from pugc import gcs

    if not gcs.is_gcs(uri):
        return str(Path(uri))
    import tempfile

    target = Path(tempfile.mkdtemp(prefix="pugc-alpaca-eval-")) / Path(uri).name
    target.write_bytes(gcs.read_bytes(uri))
    return str(target)
