"""The `pugc` command: run the pipeline locally, compile it for a cluster, or run one stage by hand."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pugc.config import ConfigError, load_recipe

DEFAULT_RECIPE = "tiny"
DEFAULT_INPUT = "data/sample_ugc.jsonl"


def _recipe_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--recipe", default=DEFAULT_RECIPE, help="recipe name under recipes/ or a YAML path")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override a recipe value (repeatable), e.g. --set reward_scoring.n=4")


def _target_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--target", choices=["kfp", "vertex"], default="kfp",
                        help="kfp: open-source Kubeflow Pipelines (with kfp-kubernetes settings); vertex: Vertex AI")
    parser.add_argument("--pipeline-root", help="gs://bucket/prefix for artifacts (default: the recipe's cluster.pipeline_root)")


def _print_table(summary: dict) -> None:
    from pugc.summary import stage_table

    rows = [("stage", "in", "out", "dropped")] + [(n, str(i), str(o), d) for n, i, o, d in stage_table(summary["stages"])]
    widths = [max(len(str(r[c])) for r in rows) for c in range(4)]
    for number, row in enumerate(rows):
        print("  ".join(str(cell).ljust(w) if c in (0, 3) else str(cell).rjust(w) for c, (cell, w) in enumerate(zip(row, widths))))
        if number == 0:
            print("  ".join("-" * w for w in widths))


def cmd_run(args) -> int:
    from pugc.logs import setup_logging
    from pugc.pipelines.local import PipelineFailed, run_local

    setup_logging()
    recipe = load_recipe(args.recipe, args.overrides)
    input_uri = args.input or recipe.input.uri or DEFAULT_INPUT
    try:
        summary = run_local(recipe, input_uri, args.output, args.run_id)
    except PipelineFailed as exc:
        print(f"pugc: {exc}", file=sys.stderr)
        return 1
    print()
    _print_table(summary)
    print(f"\ninput lines {summary['input_lines']} (quarantined {summary['quarantined']}), "
          f"preference pairs {summary['preference_pairs']}, {summary['wall_seconds']}s")
    print(f"run: {Path(args.output) / summary['run_id']}  (also {Path(args.output) / 'latest'})")
    return 0


def cmd_compile(args) -> int:
    from pugc.pipelines.local import compile_pipeline

    recipe = load_recipe(args.recipe, args.overrides)
    path = compile_pipeline(recipe, args.output, args.target, args.pipeline_root)
    print(f"compiled {recipe.name} recipe (digest {recipe.digest()}) for {args.target} to {path}")
    return 0


def cmd_submit(args) -> int:
    from pugc.pipelines import submit

    recipe = load_recipe(args.recipe, args.overrides)
    plan = submit.plan(recipe, args.target, args.output, input_uri=args.input, pipeline_root=args.pipeline_root,
                       run_name=args.run_name, experiment=args.experiment, schedule=args.schedule, host=args.host,
                       project=args.project, region=args.region, service_account=args.service_account,
                       namespace=args.namespace)
    if args.dry_run:
        print(json.dumps(submit.dry_run(plan), indent=2))
        return 0
    print(json.dumps(submit.submit(plan), indent=2))
    return 0


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

    recipe = load_recipe(args.recipe, args.overrides)
    sections = recipe.to_dict()
    dropped = args.dropped or str(Path(args.output).with_suffix("")) + ".dropped.jsonl"
    if args.name == "ingest_ugc":
        quarantine = str(Path(args.output).with_suffix("")) + ".quarantine.jsonl"
        report = stage_runner.run_ingest(args.input, sections["input"], args.output, quarantine, dropped)
    elif args.name == "dpo_training":
        report = stage_runner.run_training(args.input, args.output, sections["dpo_training"], sections["engines"])
    else:
        runtime = {"checkpoint_root": args.checkpoint_dir, "checkpoint_every": args.checkpoint_every}
        report = stage_runner.run_stage(args.name, args.input, args.output, dropped, sections[args.name],
                                        sections["engines"], runtime=runtime if args.checkpoint_dir else None)
    print(json.dumps(report, indent=2, default=str))
    return 0


def cmd_recipe(args) -> int:
    from pugc.config import dump_recipe

    recipe = load_recipe(args.recipe, args.overrides)
    print(f"# digest {recipe.digest()}\n{dump_recipe(recipe)}", end="")
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


def build_parser() -> argparse.ArgumentParser:
    from pugc import __version__

    parser = argparse.ArgumentParser(prog="pugc", description=__doc__)
    parser.add_argument("--version", action="version", version=f"pugc {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the whole pipeline locally (KFP SubprocessRunner)")
    _recipe_args(run)
    run.add_argument("--input", help=f"UGC JSONL or Parquet (default: the recipe's input.uri, else {DEFAULT_INPUT})")
    run.add_argument("--output", default="runs", help="folder that receives runs/<run_id>/ (default: runs)")
    run.add_argument("--run-id", help="name of the run folder (default: time, recipe and digest)")
    run.set_defaults(func=cmd_run)

    comp = sub.add_parser("compile", help="write the pipeline YAML for Kubeflow Pipelines")
    _recipe_args(comp)
    comp.add_argument("-o", "--output", default="pugc.yaml")
    _target_args(comp)
    comp.set_defaults(func=cmd_compile)

    sub_ = sub.add_parser("submit", help="compile and submit a run (or a recurring run) to Kubeflow or Vertex AI")
    _recipe_args(sub_)
    _target_args(sub_)
    sub_.add_argument("--input", help="UGC gs:// file or prefix (default: the recipe's input.uri)")
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
    sub_.set_defaults(func=cmd_submit)

    pre = sub.add_parser("preflight", help="check the run namespace before a submission: service account, "
                         "Secrets, cache PVC, GPU nodes (exit 1 when something is missing)")
    _recipe_args(pre)
    pre.add_argument("--namespace", help="where runs execute (default: the recipe's cluster.namespace)")
    pre.add_argument("--kube-context", help="kube config context (default: the current one)")
    pre.add_argument("--kubeconfig", help="kube config file (default: $KUBECONFIG or ~/.kube/config; "
                     "in-cluster config inside a pod)")
    pre.set_defaults(func=cmd_preflight)

    stage = sub.add_parser("stage", help="run one stage on files, without KFP")
    stage.add_argument("name", choices=["ingest_ugc", "ugc_filter", "instruction_gen", "relevance_filter",
                                        "response_sampling", "reward_scoring", "preference_pairs", "dpo_training"])
    _recipe_args(stage)
    stage.add_argument("--input", required=True, help="the stage's input JSONL (raw UGC for ingest_ugc)")
    stage.add_argument("--output", required=True, help="output JSONL (a model folder for dpo_training)")
    stage.add_argument("--dropped", help="where dropped records go (default: <output>.dropped.jsonl)")
    stage.add_argument("--checkpoint-dir", help="save progress here every --checkpoint-every records; rerun to resume")
    stage.add_argument("--checkpoint-every", type=int, default=512)
    stage.set_defaults(func=cmd_stage)

    rec = sub.add_parser("recipe", help="validate a recipe and print it resolved, with its digest")
    _recipe_args(rec)
    rec.set_defaults(func=cmd_recipe)

    serve = sub.add_parser("serve", help="serve a model over an OpenAI-compatible API (for the openai engine)")
    serve.add_argument("--model", default="pugc-tiny/judge")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.set_defaults(func=cmd_serve)

    models = sub.add_parser("models", help="build (once) and list the embedded tiny models")
    models.set_defaults(func=cmd_models)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"pugc: recipe error: {exc}", file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError) as exc:
        print(f"pugc: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
