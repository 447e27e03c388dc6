"""The `pugc` command: run the pipeline locally, compile it for a cluster, or run one stage by hand."""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

from pugc.checks import UserError
from pugc.config import LLM_STAGES, ConfigError, find_recipe, load_recipe, load_section

DEFAULT_RECIPE = "tiny"


def _recipe_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--recipe", default=DEFAULT_RECIPE, help="recipe name under recipes/ or a YAML path")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override a recipe value (repeatable), e.g. --set reward_scoring.n=4")
    parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show the full traceback of an error")


def _input_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--text-field", metavar="FIELD", help="the input field that holds the text (input.text_field)")
    parser.add_argument("--id-field", metavar="FIELD", help="the input field that holds a record id (input.id_field)")


def _overrides(args) -> list[str]:
    """--set values, plus the input flags as the overrides they stand for (quoted: a field named 1 is a string)."""
    flags = [f"input.{key}={json.dumps(value)}" for key, value in
             (("text_field", getattr(args, "text_field", None)), ("id_field", getattr(args, "id_field", None))) if value]
    return list(args.overrides) + flags


def _warn_default_registry() -> None:
    if not os.environ.get("PUGC_IMAGE_REGISTRY"):
        from pugc.components import images

        print(f"pugc: warning: PUGC_IMAGE_REGISTRY is not set, so tasks use {images.BASE} and its siblings, which "
              "no cluster can pull: export PUGC_IMAGE_REGISTRY=<registry that `make push` pushed to>", file=sys.stderr)


def _warn_gated_token(recipe, target: str) -> None:
    from pugc.preflight import token_warning

    warning = token_warning(recipe, target)
    if warning:
        print(f"pugc: warning: {warning}", file=sys.stderr)


def _target_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--target", choices=["kfp", "vertex"], default="kfp",
                        help="kfp: open-source Kubeflow Pipelines (with kfp-kubernetes settings); vertex: Vertex AI")
    parser.add_argument("--pipeline-root", help="gs://bucket/prefix for artifacts (default: the recipe's cluster.pipeline_root)")


def _estimate_args(parser: argparse.ArgumentParser, text: str) -> None:
    parser.add_argument("--estimate-documents", type=int, metavar="N", help=text)


def _print_estimate(recipe, documents: int) -> None:
    from pugc.cost import estimate_lines

    print("\n".join(f"# {line}" for line in estimate_lines(recipe, documents)))


def _input_lines(input_summary) -> int:
    """Lines of the local input files (what ingest reads; blank and malformed ones included: an upper bound)."""
    count = 0
    for path in input_summary.files:
        if str(path).endswith((".jsonl", ".json")):
            with open(path, "rb") as handle:
                count += sum(1 for line in handle if line.strip())
    return count


def _print_table(summary: dict) -> None:
    """The closing table: each stage's counts and, from the summary's cost block, its seconds (summed over
    shards), GPU-hours (a local run's: 0, what the recipe's resources would hold in brackets) and tokens."""
    from pugc.summary import cost_sentence, stage_table

    cost = (summary.get("cost") or {}).get("stages", {})
    local = (summary.get("cost") or {}).get("where") == "local"

    def figures(name: str) -> tuple[str, str, str]:
        entry = cost.get(name)
        if entry is None:
            return "-", "-", "-"
        hours = f"0 ({entry['would_be_gpu_hours']:.3g})" if local else f"{entry['gpu_hours']:.3g}"
        return f"{entry['task_seconds']:.1f}", hours, f"{entry['tokens_in'] + entry['tokens_out']:,}"

    header = ("stage", "in", "out", "seconds", "GPU-hours" + (" (would be)" if local else ""), "tokens", "dropped")
    rows = [header] + [(n, str(i), str(o), *figures(n), d) for n, i, o, d in stage_table(summary["stages"])]
    widths = [max(len(str(r[c])) for r in rows) for c in range(len(header))]
    for number, row in enumerate(rows):
        print("  ".join(str(cell).ljust(w) if c in (0, len(header) - 1) else str(cell).rjust(w)
                        for c, (cell, w) in enumerate(zip(row, widths))).rstrip())
        if number == 0:
            print("  ".join("-" * w for w in widths))
    if summary.get("cost"):
        print(cost_sentence(summary["cost"]))


def cmd_run(args) -> int:
    """Check everything a user can get wrong (input, fields, models, run folder) before any task starts."""
    import dataclasses

    from pugc.checks import check_benchmarks, check_input, check_models, check_screens, resolve_input

    started = time.monotonic()
    recipe_path = find_recipe(args.recipe)
    input_config = load_section(recipe_path, "input", _overrides(args))
    input_uri = resolve_input(args.input, input_config.uri, recipe_path)
    input_summary = check_input(input_uri, input_config)
    opt_out = check_screens(input_config, recipe_path)
    evaluation = load_section(recipe_path, "evaluation", _overrides(args))
    models = check_models(load_section(recipe_path, "engines", _overrides(args)), evaluation)
    check_benchmarks(evaluation)
    if args.run_id and (Path(args.output) / args.run_id).exists():
        raise UserError(f"run folder {Path(args.output) / args.run_id} already exists: pick another --run-id or remove it")
    recipe = load_recipe(recipe_path, _overrides(args))  # the whole recipe last: its TRL check takes seconds
    recipe = dataclasses.replace(recipe, input=dataclasses.replace(recipe.input, opt_out=opt_out))
    if args.dry_run:
        documents = args.estimate_documents if args.estimate_documents is not None else _input_lines(input_summary)
        return _print_plan(recipe, input_uri, input_summary, models, documents)
    return _run(args, recipe, input_uri, started)


def _print_plan(recipe, input_uri: str, input_summary, models: dict, documents: int) -> int:
    from pugc.config import dump_recipe
    from pugc.pipelines.local import task_plan, with_input

    recipe = with_input(recipe, input_uri)
    print(f"# recipe {recipe.name}, digest {recipe.digest()}, resolved:\n{dump_recipe(recipe)}")
    print(f"# input: {input_summary.describe()}")
    for role, where in models.items():
        print(f"# {role}: {where}")
    plan = task_plan(recipe)
    print(f"# task plan: {len(plan)} stages")
    for index, (stage, tasks) in enumerate(plan, start=1):
        name = stage.rpartition(".")[2]  # a round's stage: `round_2.response_sampling`
        shards = f" ({recipe.cluster.shards_for(name)} shard(s), then merged)" if name in LLM_STAGES else ""
        print(f"#   {index}/{len(plan)} {stage}{shards}: {', '.join(tasks)}")
    _print_estimate(recipe, documents)
    print("# dry run: nothing was started")
    return 0


def _run(args, recipe, input_uri: str, started: float) -> int:
    from pugc.logs import setup_logging
    from pugc.pipelines.local import PipelineFailed, new_run_id, run_local, with_input
    from pugc.summary import personal_data_line

    setup_logging()
    run_id = args.run_id or new_run_id(with_input(recipe, input_uri))
    run_dir = Path(args.output) / run_id
    try:
        summary = run_local(recipe, input_uri, args.output, run_id)
    except PipelineFailed as exc:
        raise UserError(f"{exc}; {run_dir} is marked FAILED", exit_code=1) from None
    except KeyboardInterrupt:
        raise KeyboardInterrupt(f"{run_dir} is marked FAILED") from None
    print()
    _print_table(summary)
    if found := personal_data_line(summary):
        print(found)
    print(f"{summary['input_lines']} input {summary.get('input_unit', 'lines')} ({summary['quarantined']} quarantined) -> "
          f"{summary['preference_pairs']} preference pairs in {time.monotonic() - started:.0f}s; run folder {run_dir} "
          f"(also {Path(args.output) / 'latest'})")
    print(f"reports: {(run_dir / 'reports' / 'index.html').resolve()}")
    return _report_gate(summary)


def _report_gate(summary: dict) -> int:
    """Print the evaluation and the gate; the exit code says whether the model may ship (0) or not (3)."""
    from pugc.evaluation import gate_exit_code, gate_line

    print(gate_line(summary))
    return gate_exit_code(summary)


def cmd_runs(args) -> int:
    """Past runs, newest first: status, recipe, input, pairs, the evaluation gate once a run has one, and why a
    run failed (cut to a line; `--full`: whole reasons and input paths)."""
    from pugc.summary import FAILED_MARKER

    root = Path(args.output)
    folders = sorted((p for p in root.iterdir() if p.is_dir() and not p.is_symlink() and not p.name.startswith(".")),
                     reverse=True) if root.is_dir() else []
    if not folders:
        print(f"no runs under {root}/")
        return 0
    header = ("run", "status", "recipe", "input", "pairs", "gate", "seconds", "reason")
    rows = [header] + [_run_row(folder, FAILED_MARKER, args.full) for folder in folders]
    widths = [max(len(row[c]) for row in rows) for c in range(len(header))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    return 0


REASON_CHARS = 60  # a failure reason in `pugc runs`, unless --full


def _run_row(folder: Path, failed_marker: str, full: bool = False) -> tuple[str, ...]:
    recipe, input_uri = _run_recipe_and_input(folder)
    shown_input = input_uri if full or input_uri == "-" else input_uri.rstrip("/").rsplit("/", 1)[-1]
    summary_path = folder / "summary.json"
    if (folder / failed_marker).is_file():
        reason = " ".join((folder / failed_marker).read_text(encoding="utf-8").split())
        if not full and len(reason) > REASON_CHARS:
            reason = reason[:REASON_CHARS - 1] + "…"
        return folder.name, "failed", recipe, shown_input, "-", "-", "-", reason
    if not summary_path.is_file():
        return folder.name, "incomplete", recipe, shown_input, "-", "-", "-", ""
    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    gate = ((summary.get("evaluation") or {}).get("gate") or {})
    verdict = "-" if "passed" not in gate else "passed" if gate["passed"] else "failed"
    reason = gate.get("reason", "") if verdict == "failed" else ""
    if reason and not full and len(reason) > REASON_CHARS:
        reason = reason[:REASON_CHARS - 1] + "…"
    return (folder.name, summary.get("status", "succeeded"), summary.get("recipe") or recipe, shown_input,
            str(summary.get("preference_pairs", "-")), verdict, str(round(summary.get("wall_seconds", 0))), reason)


def _run_recipe_and_input(folder: Path) -> tuple[str, str]:
    """The recipe's name and input as the run folder's recipe.yaml records them (written at launch, so a run
    that failed has them too); "-" where it cannot say."""
    import yaml

    try:
        recipe = yaml.safe_load((folder / "recipe.yaml").read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return "-", "-"
    if not isinstance(recipe, dict):
        return "-", "-"
    return str(recipe.get("name") or "-"), str((recipe.get("input") or {}).get("uri") or "-")


def cmd_compile(args) -> int:
    from pugc.pipelines.local import compile_pipeline

    from pugc.logs import setup_logging

    recipe = load_recipe(args.recipe, args.overrides)
    _warn_default_registry()
    _warn_gated_token(recipe, args.target)
    setup_logging()  # the compile says what an older backend's spec leaves out
    path = compile_pipeline(recipe, args.output, args.target, args.pipeline_root)
    backend = f", Kubeflow Pipelines {recipe.cluster.kfp_version}" if args.target == "kfp" else ""
    print(f"compiled {recipe.name} recipe (digest {recipe.digest()}) for {args.target}{backend} to {path}")
    if args.estimate_documents is not None:
        _print_estimate(recipe, args.estimate_documents)
    return 0


def cmd_submit(args) -> int:
    from pugc.pipelines import submit

    if args.input and "://" not in args.input:
        raise UserError(f"--input {args.input}: a cluster reads gs:// input; upload it first (gcloud storage cp "
                        f"{args.input} gs://BUCKET/ugc/) and pass that URI")
    host = args.host or os.environ.get("KFP_HOST")
    if args.target == "kfp" and host and not args.dry_run:
        _check_reachable(host)  # before compiling: loading the whole recipe takes seconds
    if args.target == "vertex" and not args.dry_run:
        _check_google_credentials()
    recipe = load_recipe(args.recipe, _overrides(args))
    _warn_default_registry()
    _warn_gated_token(recipe, args.target)
    from google.auth.exceptions import GoogleAuthError

    try:
        plan = submit.plan(recipe, args.target, args.output, input_uri=args.input, pipeline_root=args.pipeline_root,
                           run_name=args.run_name, experiment=args.experiment, schedule=args.schedule,
                           host=args.host, project=args.project, region=args.region,
                           service_account=args.service_account, namespace=args.namespace)
        if args.dry_run:
            print(json.dumps(submit.dry_run(plan), indent=2))
            return 0
    except GoogleAuthError as exc:  # Vertex AI's job object wants a project even offline
        raise UserError(f"Vertex AI needs a Google Cloud project and found none ({type(exc).__name__}): pass "
                        "--project PROJECT (and --region), or set one with `gcloud config set project PROJECT`") from None
    if args.wait and (plan.target != "kfp" or plan.schedule):
        raise UserError("--wait follows one run on Kubeflow Pipelines (--target kfp, no --schedule)")
    try:
        submitted = submit.submit(plan)
        print(json.dumps(submitted, indent=2))
        if args.wait:
            return _follow(lambda: submit.kfp_client(plan), submitted["run_id"], plan.pipeline_root,
                           args.poll_seconds, host=host)
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001  (client libraries raise many types; see _submission_error)
        message = _submission_error(exc, plan)
        if message is None:
            raise
        raise UserError(message) from exc
    return 0


def cmd_status(args) -> int:
    """One look at a KFP run: its state, its tasks, and once it succeeded its stage counts and gate. Exit 2 when
    the API could not be asked (unreachable, credentials refused, no such run): never one of the run's outcomes."""
    import kfp

    from pugc.pipelines.submit import token_source

    from pugc.pipelines.run_status import probe

    host = args.host or os.environ.get("KFP_HOST")
    probe(host, token_source()[0], args.run_id)

    def client():
        with warnings.catch_warnings():  # kfp's "only works with v2.0.0-beta.2 and later": preflight checks that
            warnings.simplefilter("ignore", FutureWarning)
            return kfp.Client(host=host, existing_token=token_source()[0])

    return _follow(client, args.run_id, args.pipeline_root, poll_seconds=None, host=host)


def _follow(new_client, run_id: str, pipeline_root: str | None, poll_seconds: float | None,
            host: str | None = None) -> int:
    """Report a run (`poll_seconds` None: as it is now; else until it ends) and exit as its gate says:
    0 passed, 1 the run failed, 3 the gate failed, 4 not ended yet, 2 the API could not be asked (a waiting
    poll first tries again, run_status.MISSED_POLLS times). `new_client` makes a KFP client with the token as it
    is now: each poll makes one, so a rotated in-cluster token is picked up on a long wait."""
    from pugc.pipelines import run_status

    if poll_seconds is None:
        status = run_status.run_status(run_status.ask(new_client, host, run_id), run_id, pipeline_root, host)
        print("\n".join(run_status.describe(status)))
    else:
        status = run_status.wait_for_run(new_client, run_id, pipeline_root, poll_seconds,
                                         report=lambda s: print("\n".join(run_status.describe(s)), flush=True),
                                         report_miss=lambda line: print(f"pugc: warning: {line}", file=sys.stderr,
                                                                        flush=True), host=host)
    if status.summary:
        _print_table(status.summary)
        _report_gate(status.summary)
    return status.exit_code


def _check_reachable(host: str, timeout: float = 3.0) -> None:
    import socket
    from urllib.parse import urlparse

    url = urlparse(host if "://" in host else f"http://{host}")
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), timeout=timeout).close()
    except OSError as exc:
        raise UserError(f"cannot reach Kubeflow Pipelines at {host} ({exc.strerror or exc}): check --host (or "
                        "$KFP_HOST) and the network, or port-forward the API (kubectl -n kubeflow port-forward "
                        "svc/ml-pipeline-ui 8080:80)") from None


def _check_google_credentials() -> None:
    import google.auth
    from google.auth.exceptions import DefaultCredentialsError

    try:
        google.auth.default()
    except DefaultCredentialsError as exc:
        raise UserError(f"no Google Cloud credentials ({str(exc).splitlines()[0]}): run `gcloud auth "
                        "application-default login` or set GOOGLE_APPLICATION_CREDENTIALS to a key file") from None


UNREACHABLE = ("MaxRetryError", "NewConnectionError", "ConnectTimeoutError", "NameResolutionError",
               "ConnectionError", "ConnectionRefusedError", "ReadTimeoutError", "Timeout")


def _submission_error(exc: BaseException, plan) -> str | None:
    """One line for what a user can fix when a submission fails: an unreachable API, missing credentials."""
    names = {type(e).__name__ for e in _chain(exc)}
    where = plan.host or ("Vertex AI" if plan.target == "vertex" else "the in-cluster KFP API")
    if "DefaultCredentialsError" in names:
        return ("no Google Cloud credentials: run `gcloud auth application-default login` or set "
                "GOOGLE_APPLICATION_CREDENTIALS")
    if names & set(UNREACHABLE) or isinstance(exc, OSError):
        return (f"cannot reach Kubeflow Pipelines at {where}: check --host (or $KFP_HOST), the network, or "
                "port-forward the API (kubectl -n kubeflow port-forward svc/ml-pipeline-ui 8080:80)")
    status = getattr(exc, "status", None)
    if status in (401, 403):
        return (f"{where} refused the request ({status}): set $KFP_TOKEN (an IAP or Dex bearer token), or run "
                "where the in-cluster service-account token is mounted")
    return None


def _chain(exc: BaseException):
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        for arg in getattr(exc, "args", ()):  # urllib3 keeps the cause as an argument (reason)
            if isinstance(arg, BaseException):
                yield arg
        if isinstance(getattr(exc, "reason", None), BaseException):
            yield exc.reason
        exc = exc.__cause__ or exc.__context__


def cmd_preflight(args) -> int:
    from pugc import preflight

    recipe = load_recipe(args.recipe, args.overrides)
    try:
        checks, namespace = preflight.preflight(recipe, args.namespace, args.kube_context, args.kubeconfig)
    except preflight.ClusterUnreachable as exc:
        print(f"pugc preflight: {exc}", file=sys.stderr)
        return 2
    print(f"pugc preflight: recipe {recipe.name}, namespace {namespace}")
    print(preflight.report(checks))
    return 1 if any(check.status == preflight.MISSING for check in checks) else 0


def cmd_stage(args) -> int:
    from pugc import stage_runner

    recipe = load_recipe(args.recipe, _overrides(args))
    sections = recipe.to_dict()
    dropped = args.dropped or str(Path(args.output).with_suffix("")) + ".dropped.jsonl"
    if args.name == "ingest_ugc":
        quarantine = str(Path(args.output).with_suffix("")) + ".quarantine.jsonl"
        report = stage_runner.run_ingest(args.input, sections["input"], args.output, quarantine, dropped)
    elif args.name == "dpo_training":
        report = stage_runner.run_training(args.input, args.output, sections["dpo_training"], sections["engines"])
    else:
        runtime = {"checkpoint_root": args.checkpoint_dir, "checkpoint_every": args.checkpoint_every}
        bad = [table for table in args.table if "=" not in table]
        if bad:
            raise UserError(f"--table {bad[0]}: give NAME=PATH, e.g. --table documents=ugc.jsonl")
        tables = dict(table.split("=", 1) for table in args.table)
        report = stage_runner.run_stage(args.name, args.input, args.output, dropped, sections[args.name],
                                        sections["engines"], runtime=runtime if args.checkpoint_dir else None,
                                        tables=tables)
    print(json.dumps(report, indent=2, default=str))
    return 0


def cmd_recipe(args) -> int:
    from pugc.config import dump_recipe

    recipe = load_recipe(args.recipe, args.overrides)
    print(f"# digest {recipe.digest()}\n{dump_recipe(recipe)}", end="")
    return 0


def cmd_schema(args) -> int:
    from pugc.schema import schema_text

    text = schema_text()
    if args.output == "-":
        print(text, end="")
    else:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"recipe schema written to {args.output}")
    return 0


def cmd_models(args) -> int:
    from pugc.models import resolve_model
    from pugc.models.tiny import TINY_MODELS

    for role in TINY_MODELS:
        print(f"pugc-tiny/{role}: {resolve_model(f'pugc-tiny/{role}')}")
    return 0


def cmd_serve(args) -> int:
    """An OpenAI-compatible endpoint over the transformers engine, for trying `backend: openai` locally."""
    from pugc.config import EngineConfig
    from pugc.engines.hf import HFEngine
    from pugc.engines.hf_server import ChatServer
    from pugc.logs import setup_logging

    setup_logging()
    server = ChatServer(HFEngine(EngineConfig(model=args.model)), host=args.host, port=args.port)
    print(f"serving {args.model} at {server.url} (Ctrl-C stops)", flush=True)
    try:
        server.httpd.serve_forever()
    except KeyboardInterrupt:
        server.stop()
    return 0


def cmd_judge_agreement(args) -> int:
    """The reward judge against labelled pairs, with the recipe's judge engine and reward_scoring settings."""
    from pugc import agreement
    from pugc.engines import make_engine
    from pugc.logs import setup_logging
    from pugc.secrets import load_hf_token

    recipe = load_recipe(args.recipe, args.overrides)
    pairs = agreement.read_pairs(args.pairs)
    with_plot = agreement.can_plot()
    if not with_plot:  # said before the judge runs, not after
        print("pugc: warning: matplotlib is not installed here, so no agreement.png (pip install matplotlib)",
              file=sys.stderr)
    setup_logging()
    load_hf_token()
    try:
        engine = make_engine(recipe.engines.judge)
    except ImportError as exc:  # the vllm backend outside the vllm image: a laptop
        raise UserError(f"engines.judge ({recipe.engines.judge.backend} backend) cannot load here: {exc}. On a "
                        "laptop: --recipe tiny, or --set engines.judge.backend=hf for the recipe's own judge") from None
    try:
        report = agreement.evaluate(pairs, recipe.reward_scoring, engine)
    finally:
        engine.close()
    paths = agreement.write(report, args.out, with_plot)
    print(agreement.format_table(report))
    print(f"wrote {', '.join(str(path) for path in paths.values())}")
    problem = agreement.unscored_warning(report)
    if problem:
        print(f"pugc: warning: {problem}", file=sys.stderr)
    return 1 if agreement.nothing_scored(report) else 0


def build_parser() -> argparse.ArgumentParser:
    from pugc import __version__

    parser = argparse.ArgumentParser(prog="pugc", description=__doc__)
    parser.add_argument("--version", action="version", version=f"pugc {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the whole pipeline locally (KFP SubprocessRunner)")
    _recipe_args(run)
    run.add_argument("--input", help="UGC JSONL or Parquet file or folder, read from the current folder (default: "
                     "the recipe's input.uri, read from the recipe's folder)")
    _input_args(run)
    run.add_argument("--output", default="runs", help="folder that receives runs/<run_id>/ (default: runs)")
    run.add_argument("--run-id", help="name of the run folder (default: time, recipe and digest)")
    run.add_argument("--dry-run", action="store_true", help="check everything and print the resolved recipe, the "
                     "input, the task plan and a cost estimate; start nothing")
    _estimate_args(run, "documents the dry run's estimate is for (default: the input's lines)")
    run.set_defaults(func=cmd_run)

    runs = sub.add_parser("runs", help="list past local runs: status, recipe, input, preference pairs, evaluation gate")
    runs.add_argument("--output", default="runs", help="the folder runs were written to (default: runs)")
    runs.add_argument("--full", action="store_true", help="whole failure reasons and input paths")
    runs.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    runs.set_defaults(func=cmd_runs)

    comp = sub.add_parser("compile", help="write the pipeline YAML for Kubeflow Pipelines")
    _recipe_args(comp)
    comp.add_argument("-o", "--output", default="pugc.yaml")
    _target_args(comp)
    _estimate_args(comp, "also print a cost estimate for this many input documents")
    comp.set_defaults(func=cmd_compile)

    sub_ = sub.add_parser("submit", help="compile and submit a run (or a recurring run) to Kubeflow or Vertex AI")
    _recipe_args(sub_)
    _target_args(sub_)
    sub_.add_argument("--input", help="UGC gs:// file or prefix (default: the recipe's input.uri)")
    _input_args(sub_)
    sub_.add_argument("--host", help="Kubeflow Pipelines API (default $KFP_HOST; in-cluster default otherwise)")
    sub_.add_argument("--experiment", help="experiment name (default: pugc)")
    sub_.add_argument("--run-name", help="run (or schedule) name (default: pugc-<recipe>-<time>)")
    sub_.add_argument("--schedule", metavar="CRON", help="create a recurring run on this cron schedule instead")
    sub_.add_argument("--project", help="Vertex: Google Cloud project (default $GOOGLE_CLOUD_PROJECT)")
    sub_.add_argument("--region", help="Vertex: region (default $GOOGLE_CLOUD_REGION or us-central1)")
    sub_.add_argument("--namespace", help="KFP: where runs execute (default: the recipe's cluster.namespace; "
                      "standalone KFP: kubeflow, multi-user: your profile namespace)")
    sub_.add_argument("--service-account", help="KFP: the Kubernetes service account runs use (default: the "
                      "recipe's cluster.service_account); Vertex: the Google service account the job runs as")
    sub_.add_argument("-o", "--output", default="pugc.yaml", help="where the compiled YAML is written")
    sub_.add_argument("--dry-run", action="store_true", help="print what would be submitted; send nothing")
    sub_.add_argument("--wait", action="store_true", help="follow the run to its end; exit 0 when its evaluation "
                      "gate passed, 1 when the run failed, 3 when the gate failed")
    sub_.add_argument("--poll-seconds", type=float, default=30.0, help="--wait: seconds between looks (default 30)")
    sub_.set_defaults(func=cmd_submit)

    status = sub.add_parser("status", help="a KFP run's state, stage counts and gate (exit 0 passed, 1 run "
                            "failed, 3 gate failed, 4 not ended)")
    status.add_argument("run_id")
    _recipe_args(status)
    status.add_argument("--host", help="Kubeflow Pipelines API (default $KFP_HOST)")
    status.add_argument("--pipeline-root", help="where the run wrote its artifacts, for a run that carries no root "
                        "of its own (the run's runtime config is read first: it is what the backend used)")
    status.set_defaults(func=cmd_status)

    pre = sub.add_parser("preflight", help="check the run namespace before a submission: service account, "
                         "Secrets, cache PVC, GPU nodes (exit 1 when something is missing)")
    _recipe_args(pre)
    pre.add_argument("--namespace", help="where runs execute (default: the recipe's cluster.namespace)")
    pre.add_argument("--kube-context", help="kube config context (default: the current one)")
    pre.add_argument("--kubeconfig", help="kube config file (default: $KUBECONFIG or ~/.kube/config; "
                     "in-cluster config inside a pod)")
    pre.set_defaults(func=cmd_preflight)

    stage = sub.add_parser("stage", help="run one stage on files, without KFP")
    stage.add_argument("name", choices=["ingest_ugc", "ugc_filter", "safety_screen", "instruction_gen",
                                        "relevance_filter", "response_sampling", "reward_scoring", "preference_pairs",
                                        "dpo_training"])
    _recipe_args(stage)
    stage.add_argument("--input", required=True, help="the stage's input JSONL (raw UGC for ingest_ugc)")
    stage.add_argument("--output", required=True, help="output JSONL (a model folder for dpo_training)")
    _input_args(stage)
    stage.add_argument("--dropped", help="where dropped records go (default: <output>.dropped.jsonl)")
    stage.add_argument("--checkpoint-dir", help="save progress here every --checkpoint-every records; rerun to resume")
    stage.add_argument("--checkpoint-every", type=int, default=512)
    stage.add_argument("--table", action="append", default=[], metavar="NAME=PATH",
                       help="a table the stage joins by id: documents=ugc.jsonl (relevance_filter, reward_scoring), "
                            "instructions=relevant.jsonl (reward_scoring, preference_pairs)")
    stage.set_defaults(func=cmd_stage)

    rec = sub.add_parser("recipe", help="validate a recipe and print it resolved, with its digest")
    _recipe_args(rec)
    rec.set_defaults(func=cmd_recipe)

    schema = sub.add_parser("schema", help="write the recipe format as a JSON Schema (for editors; the shipped "
                            "recipes name recipes/recipe.schema.json)")
    schema.add_argument("-o", "--output", default="-", help="file to write (default: standard output)")
    schema.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    schema.set_defaults(func=cmd_schema)

    serve = sub.add_parser("serve", help="serve a model over an OpenAI-compatible API (for the openai engine)")
    serve.add_argument("--model", default="pugc-tiny/judge")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    serve.set_defaults(func=cmd_serve)

    agree = sub.add_parser("judge-agreement", help="how often the reward judge agrees with labelled pairs, "
                           "N = 1/3/5/8 samples, with and without the reference (the paper's Fig. 3)")
    _recipe_args(agree)
    agree.add_argument("--pairs", required=True, help="JSONL: prompt, response_a, response_b, label (a|b|tie), "
                       "optional reference")
    agree.add_argument("--out", default="judge-agreement", help="folder for agreement.json/.txt/.png")
    agree.set_defaults(func=cmd_judge_agreement)

    models = sub.add_parser("models", help="build (once) and list the embedded tiny models")
    models.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    models.set_defaults(func=cmd_models)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Errors a user can fix print one line and exit non-zero (2: before launch, 1: a task failed, 130:
    interrupted); --debug shows the traceback instead. A run that finishes exits 0 when its evaluation gate
    passed and 3 when it failed (`run`, `submit --wait`, `status`)."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt as exc:
        if args.debug:
            raise
        print(f"pugc: interrupted{': ' + str(exc) if str(exc) else ''}", file=sys.stderr)
        return 130
    except ConfigError as exc:
        return _fail(args, exc, f"recipe error: {exc}", 2)
    except UserError as exc:
        return _fail(args, exc, str(exc), exc.exit_code)
    except (ValueError, FileNotFoundError, FileExistsError) as exc:
        return _fail(args, exc, str(exc), 2)


def _fail(args, exc: BaseException, message: str, code: int) -> int:
    if args.debug:
        raise exc
    print(f"pugc: {message}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
