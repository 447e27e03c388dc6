"""Checks that run before a pipeline launches: the input file and the models a recipe names.

A task that fails on a missing file or an unknown model costs a start-up of the local runner (or a cluster
pod) and hides the cause in a task log; these checks read a few lines and a few paths and fail in under a
second, each with one line that names the file or key and what to do.
"""
from __future__ import annotations

import dataclasses
import itertools
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from pugc.config import EnginesConfig, EvaluationConfig, InputConfig

SAMPLE_LINES = 200  # lines read to check the format and the fields; the whole file is ingest's job
OFFLINE_VALUES = ("1", "on", "yes", "true")


class UserError(ValueError):
    """Something the user can fix (a path, a field name, a model id); the message says what and how.
    `exit_code`: 2 for what is caught before launch, 1 for a run that started and failed."""

    def __init__(self, message: str, exit_code: int = 2):
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class InputSummary:
    uri: str
    files: list[str] = field(default_factory=list)
    size_bytes: int = 0
    sampled: int = 0  # records read for the check
    skipped: list[str] = field(default_factory=list)  # a folder's files of no input format
    fields: list[str] = field(default_factory=list)
    lines_checked: int = 0  # JSONL lines put through ingest's own rules
    quarantined: Counter = field(default_factory=Counter)  # of those, what ingest will quarantine, by reason
    repaired: Counter = field(default_factory=Counter)  # and what it will repair, by rule (pugc.text)

    def describe(self) -> str:
        if not self.files:
            return f"{self.uri} (remote: read by the ingest task)"
        where = self.files[0] if len(self.files) == 1 else f"{len(self.files)} files under {self.uri}"
        text = (f"{where}, {self.size_bytes / 1e6:.2f} MB; fields in the first {self.sampled} records: "
                f"{', '.join(self.fields)}")
        if self.skipped:
            text += f"; skipped (no input format): {', '.join(self.skipped)}"
        return text + self.describe_problems()

    def describe_problems(self) -> str:
        if not (self.quarantined or self.repaired):
            return ""
        parts = []
        if self.quarantined:
            parts.append(f"{sum(self.quarantined.values())} to quarantine ({_by_key(self.quarantined)})")
        if self.repaired:
            parts.append(f"repairs: {_by_key(self.repaired)}")
        return f"; in the first {self.lines_checked} lines: {', '.join(parts)}"


def _by_key(counts: Counter) -> str:
    return ", ".join(f"{key} {count}" for key, count in sorted(counts.items()))


def resolve_input(cli_input: str | None, recipe_uri: str | None, recipe_path: Path | None) -> str:
    """--input is read from the current folder, as users expect; the recipe's own input.uri from the recipe's
    folder, so a recipe finds its data wherever the command runs."""
    if cli_input:
        return cli_input if "://" in cli_input else str(Path(cli_input).expanduser().resolve())
    if recipe_uri:
        if "://" in recipe_uri:
            return recipe_uri
        base = recipe_path.resolve().parent if recipe_path else Path.cwd()
        return str((base / Path(recipe_uri).expanduser()).resolve())
    raise UserError("no input: pass --input FILE (JSONL or Parquet) or set input.uri in the recipe")


def check_screens(config: InputConfig, recipe_path: Path | None) -> str | None:
    """The consent and language screens set up once before launch (pugc.consent): input.opt_out resolved as
    input.uri is (from the recipe's folder) and read, the language codes checked. Returns the opt-out URI."""
    from pugc.consent import LanguageFilter, load_opt_out
    from pugc.personal_data import PersonalDataScreen

    uri = config.opt_out
    if uri and "://" not in uri:
        base = recipe_path.resolve().parent if recipe_path else Path.cwd()
        uri = str((base / Path(uri).expanduser()).resolve())
        try:
            load_opt_out(uri, config)
        except FileNotFoundError:
            raise UserError(f"input.opt_out {uri}: no such file (a relative path is read from the recipe's "
                            "folder)") from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise UserError(f"input.opt_out: {exc}") from None
    if config.languages:
        try:
            LanguageFilter(config)
        except ValueError as exc:
            raise UserError(str(exc)) from None
    try:
        PersonalDataScreen.for_config(config.personal_data, "input.personal_data")
    except ValueError as exc:
        raise UserError(str(exc)) from None
    return uri


def check_benchmarks(config) -> None:
    """Every local benchmark file of evaluation.benchmarks read before launch (a gs:// one is read by its task):
    a misspelt path or a row in the wrong format fails now, naming the file and row, not at evaluate."""
    from pugc.stages import benchmarks

    alpaca, mt_bench = config.benchmarks.alpaca_eval, config.benchmarks.mt_bench
    readers = []
    if alpaca:
        readers += [("alpaca_eval.reference_outputs", alpaca.reference_outputs,
                     lambda uri: sum(1 for _ in benchmarks.alpaca_eval_items(uri))),
                    ("alpaca_eval.glm_data", alpaca.glm_data, lambda uri: Path(uri).stat())]
    if mt_bench:
        readers += [("mt_bench.questions", mt_bench.questions,
                     lambda uri: sum(1 for _ in benchmarks.mt_bench_items(uri, mt_bench.reference_answers))),
                    ("mt_bench.judge_prompts", mt_bench.judge_prompts, benchmarks.load_judge_prompts)]
    for key, uri, read in readers:
        if "://" in uri:
            continue
        try:
            read(uri)
        except FileNotFoundError as exc:
            raise UserError(f"evaluation.benchmarks.{key} {exc.filename or uri}: no such file") from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise UserError(str(exc)) from None


def check_input(uri: str, config: InputConfig) -> InputSummary:
    """The input exists, is not empty, is JSONL, Parquet, CSV or TSV (text formats maybe gzipped), and its records
    carry the text (and id) field."""
    if "://" in uri:
        return InputSummary(uri)
    path = Path(uri)
    if not path.exists():
        raise UserError(f"input {uri}: no such file or folder (--input is read from the current folder, "
                        f"{Path.cwd()})")
    from pugc.io import file_format, skipped_input_files

    files = _input_files(path)
    summary = InputSummary(uri, files, sum(os.path.getsize(f) for f in files),
                           skipped=skipped_input_files(path) if path.is_dir() else [])
    if summary.size_bytes == 0:
        raise UserError(f"input {uri}: the file is empty: give a JSONL file with one JSON object per line")
    rows = []
    for source in files:
        fmt = file_format(source, config.format) or "jsonl"
        rows += _sample_parquet(source) if fmt == "parquet" else _sample_rows(source, fmt, config, summary)
        if len(rows) >= SAMPLE_LINES:
            break
    summary.sampled = len(rows)
    summary.fields = sorted({key for row in rows for key in row})
    _check_fields(uri, rows, summary.fields, config)
    return summary


def _input_files(path: Path) -> list[str]:
    from pugc.io import INPUT_KINDS, file_format, skipped_input_files

    if path.is_file():
        return [str(path)]
    files = sorted(str(p) for p in path.iterdir() if p.is_file() and file_format(p.name))
    if not files:
        others = skipped_input_files(path)
        raise UserError(f"input {path}: a folder without input files ({INPUT_KINDS})"
                        + (f"; it holds {', '.join(others[:5])}" if others else ""))
    return files


def _tabular_hint(source: str, first_line: str) -> str:
    """For a file read as JSONL whose lines look like comma/tab separated values: how to read it as such."""
    kind = "TSV" if "\t" in first_line else "CSV" if "," in first_line else None
    if kind is None:
        return ""
    return f"; it looks like {kind}: name it .{kind.lower()} or set input.format: {kind.lower()} (read directly)"


def _sample_rows(source: str, fmt: str, config: InputConfig, summary: InputSummary) -> list[dict]:
    """The first records; each also goes through ingest's own rules, so the check reports what ingest will
    quarantine or repair (summary.quarantined, summary.repaired)."""
    from pugc.io import iter_input_rows
    from pugc.stages import ingest

    lines = list(itertools.islice(iter_input_rows(source, fmt, config.max_line_bytes), SAMPLE_LINES))
    counts = ingest.IngestCounts()
    for _ in ingest.stream(lines, dataclasses.replace(config, near_duplicates=False), counts):
        pass
    summary.lines_checked += counts.input_lines
    summary.quarantined.update(counts.quarantined)
    summary.repaired.update(counts.repaired)
    rows = [row for _, _, row, error in lines if error is None and isinstance(row, dict)]
    first_bad = next((row for _, _, row, error in lines if error is not None and error.reason != "blank_line"), None)
    if not rows and first_bad is not None:
        if fmt != "jsonl":
            raise UserError(f"input {source}: none of the first {fmt.upper()} records could be read "
                            f"({first_bad[:60]!r})")
        raise UserError(f"input {source}: none of the first lines is a JSON object (line 1: {first_bad[:60]!r}); "
                        "input is JSONL, one JSON object per line" + _tabular_hint(source, first_bad.strip()))
    return rows


def _sample_parquet(source: str) -> list[dict]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(source)
        return parquet.read_row_group(0).slice(0, SAMPLE_LINES).to_pylist() if parquet.num_row_groups else []
    except Exception as exc:  # pyarrow raises several types for a file that is not Parquet
        raise UserError(f"input {source}: not a readable Parquet file ({exc})") from None


def _check_fields(uri: str, rows: list[dict], fields: list[str], config: InputConfig) -> None:
    present = ", ".join(fields) or "none"
    if not any(config.text_field in row for row in rows):
        raise UserError(f"input {uri}: no record has the text field '{config.text_field}' (fields present: "
                        f"{present}); pick the field that holds the text with --text-field FIELD")
    if config.id_field != InputConfig.id_field and not any(config.id_field in row for row in rows):
        raise UserError(f"input {uri}: no record has the id field '{config.id_field}' (fields present: {present}); "
                        "pick one with --id-field FIELD, or leave it unset to use content hashes")


# ------------------------------------------------------------------------------------------------ models
def check_models(engines: EnginesConfig, evaluation: EvaluationConfig | None = None) -> dict[str, str]:
    """Every model a role names resolves here before any task starts, for what its backend does with it:
    {role: where it comes from}. A served policy (backend openai) is also trained, from its weights, so its
    name must be a model training can load; so must the evaluation's baseline (trained checkpoints and a
    baseline answer on a local backend: pugc.evaluation)."""
    found = {}
    for role in ("policy", "generator", "judge", "evaluator"):
        engine = getattr(engines, role)
        if engine is None:
            continue
        if engine.backend == "openai":
            from pugc.engines.openai_engine import check_options

            try:
                check_options(engine.options, f"engines.{role}.options")
            except ValueError as exc:
                raise UserError(str(exc)) from None
            found[role] = f"{engine.model} (served over the OpenAI API)"
            continue
        where = check_model(engine.model, f"engines.{role}.model", engine.revision)
        found[role] = f"{engine.model}{'@' + engine.revision if engine.revision else ''} ({where})"
    if engines.policy.backend == "openai":
        try:
            weights = check_model(engines.policy.model, "engines.policy.model", engines.policy.revision)
        except UserError as exc:
            raise UserError(f"{exc} (the policy is served over the OpenAI API, but dpo_training trains it from "
                            "its weights: name the served model by its hub id or local folder)") from None
        found["policy"] += f"; trained from its weights ({weights})"
    baseline = evaluation.baseline if evaluation else None
    if baseline:
        where = "downloaded by the task" if baseline.startswith("gs://") else check_model(baseline, "evaluation.baseline")
        found["baseline"] = f"{baseline} ({where})"
    return found


def check_model(model_id: str, key: str, revision: str | None = None) -> str:
    from pugc.models import TINY_PREFIX

    if model_id.startswith(TINY_PREFIX):
        return _check_tiny_model(model_id, key)
    path = Path(model_id).expanduser()
    if path.exists() or model_id.startswith(("/", ".", "~")) or model_id.count("/") != 1:
        if not (path / "config.json").is_file():
            what = "has no config.json" if path.is_dir() else "does not exist"
            raise UserError(f"{key}: local model folder {model_id} {what}; give a from_pretrained folder or a "
                            "Hugging Face hub id (org/name)")
        return "local folder"
    return _check_hub_model(model_id, key, revision)


def _check_tiny_model(model_id: str, key: str) -> str:
    """A tiny model is built here, so its name is checked here: a misspelt one would fail only when its task
    starts."""
    from pugc.models import TINY_PREFIX
    from pugc.models.tiny import MISTRAL_ROLE, TINY_MODELS, mistral_tokenizer_file

    role = model_id[len(TINY_PREFIX):]
    if role not in TINY_MODELS:
        known = ", ".join(TINY_PREFIX + name for name in TINY_MODELS)
        raise UserError(f"{key}: no tiny model {model_id!r}; the tiny models are {known}")
    if role == MISTRAL_ROLE:
        try:
            mistral_tokenizer_file()
        except ValueError as exc:
            raise UserError(f"{key}: {exc}") from None
    return "built locally"


def _offline() -> bool:
    return any(os.environ.get(name, "").lower() in OFFLINE_VALUES
               for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _check_hub_model(model_id: str, key: str, revision: str | None = None) -> str:
    """The model (at `revision`, when pinned) is cached here, or on the hub for the task to download."""
    from huggingface_hub import try_to_load_from_cache

    if isinstance(try_to_load_from_cache(model_id, "config.json", revision=revision), str):
        return "in the local Hugging Face cache"
    if _offline():
        at = f" at revision {revision}" if revision else ""
        download = f"hf download {model_id}{' --revision ' + revision if revision else ''}"
        raise UserError(f"{key}: {model_id}{at} is not in the local Hugging Face cache and HF_HUB_OFFLINE=1 allows "
                        f"no download: run `{download}` where the hub is reachable, or unset HF_HUB_OFFLINE")
    from huggingface_hub import HfApi
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError, RevisionNotFoundError

    try:
        HfApi().model_info(model_id, revision=revision, timeout=10)
    except RevisionNotFoundError:
        raise UserError(f"{key.rsplit('.', 1)[0]}.revision: {model_id} has no revision {revision!r} on the hub") from None
    except GatedRepoError:
        raise UserError(f"{key}: {model_id} is gated: accept its terms on the hub and set HF_TOKEN") from None
    except RepositoryNotFoundError:
        raise UserError(f"{key}: {model_id} is not a model on the Hugging Face hub (check the id; private models "
                        "need HF_TOKEN)") from None
    except Exception as exc:  # connection errors come in many types (requests, httpx, OSError)
        raise UserError(f"{key}: {model_id} is not cached and the hub cannot be reached ({type(exc).__name__}): "
                        "check the network, or download it first") from None
    return "on the Hugging Face hub (downloaded by the task)"
