"""Submit the compiled pipeline: a run or a recurring run on Kubeflow Pipelines, or a Vertex AI PipelineJob.

`plan` compiles and says what would be sent; `submit` sends it. A dry run (`pugc submit --dry-run`) prints
the plan without touching the network (for Vertex it still builds the PipelineJob offline, which checks the
parameter names against the compiled YAML).

On KFP a run's namespace is its experiment's: the client, the experiment and the run all get
`cluster.namespace` (or --namespace). Multi-user KFP runs the pods in that profile namespace; standalone KFP
ignores it and runs them in its own namespace (usually `kubeflow`). Runs and recurring runs use
`cluster.service_account` (or --service-account), a Kubernetes service account in that namespace. On Vertex
the service account is a Google one, from --service-account only.
"""
from __future__ import annotations

import hashlib
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pugc.config import Recipe
from pugc.pipelines.local import compile_pipeline

IN_CLUSTER_TOKEN_PATHS = ("/var/run/secrets/kubeflow/pipelines/token",
                          "/var/run/secrets/kubernetes.io/serviceaccount/token")


@dataclass
class Plan:
    target: str
    recipe: str
    recipe_digest: str
    pipeline_file: str
    pipeline_sha256: str
    run_name: str
    parameters: dict
    pipeline_root: str | None = None
    experiment: str | None = None
    schedule: str | None = None  # cron, e.g. "0 3 * * 1"
    host: str | None = None  # kfp
    token_source: str | None = None  # where the token comes from (never the token itself)
    project: str | None = None  # vertex
    region: str | None = None
    service_account: str | None = None  # kfp: Kubernetes service account; vertex: Google service account
    namespace: str | None = None  # kfp: where runs execute (multi-user: the profile namespace)
    kfp_version: str | None = None  # kfp: the backend release the spec is compiled for (cluster.kfp_version)
    extra: dict = field(default_factory=dict)


def token_source(explicit: str | None = None) -> tuple[str | None, str | None]:
    """(token, where it came from): --token, $KFP_TOKEN, or the in-cluster service-account token."""
    if explicit:
        return explicit, "--token"
    if os.environ.get("KFP_TOKEN"):
        return os.environ["KFP_TOKEN"], "$KFP_TOKEN"
    for path in [os.environ.get("KF_PIPELINES_SA_TOKEN_PATH"), *IN_CLUSTER_TOKEN_PATHS]:
        if path and Path(path).is_file():
            return Path(path).read_text().strip(), path
    return None, None


def plan(recipe: Recipe, target: str, output: str | os.PathLike, input_uri: str | None = None,
         pipeline_root: str | None = None, run_name: str | None = None, experiment: str | None = None,
         schedule: str | None = None, host: str | None = None, project: str | None = None,
         region: str | None = None, service_account: str | None = None, token: str | None = None,
         namespace: str | None = None) -> Plan:
    root = pipeline_root or recipe.cluster.pipeline_root
    if not (root or "").startswith("gs://"):
        # KFP's API server takes the root from the run, never from the compiled spec; without one the launcher
        # writes to the kfp-launcher ConfigMap's default (minio://mlpipeline/v2/artifacts), which the TrainJob,
        # `pugc status` and the project's Role are not made for.
        where = "Vertex AI" if target == "vertex" else "A Kubeflow Pipelines run"
        raise ValueError(f"{where} needs a gs:// pipeline root, sent with the run: --pipeline-root gs://BUCKET/pugc "
                         f"or cluster.pipeline_root (got {root!r})")
    uri = input_uri or recipe.input.uri
    if not uri:
        raise ValueError("no input: pass --input gs://... or set input.uri in the recipe")
    path = compile_pipeline(recipe, output, target, root)
    return Plan(
        target=target, recipe=recipe.name, recipe_digest=recipe.digest(), pipeline_file=str(path),
        pipeline_sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
        run_name=run_name or f"pugc-{recipe.name}-{time.strftime('%Y%m%d-%H%M%S')}",
        parameters={"input_uri": uri, **({"vertex_service_account": service_account}
                                         if target == "vertex" and service_account else {})}, pipeline_root=root, experiment=experiment, schedule=schedule,
        host=host or os.environ.get("KFP_HOST") if target == "kfp" else None,
        token_source=token_source(token)[1] if target == "kfp" else None,
        project=project or os.environ.get("GOOGLE_CLOUD_PROJECT") if target == "vertex" else None,
        region=region or os.environ.get("GOOGLE_CLOUD_REGION", "us-central1") if target == "vertex" else None,
        service_account=service_account or (recipe.cluster.service_account if target == "kfp" else None),
        namespace=namespace or recipe.cluster.namespace if target == "kfp" else None,
        kfp_version=recipe.cluster.kfp_version if target == "kfp" else None,
    )


def vertex_job(p: Plan, credentials=None):
    """enable_caching=None keeps each task's compiled setting: the recipe's `cluster.caching`, and never for
    `input_fingerprint` (a job-wide True would cache it and hide new data under the input URI)."""
    from google.cloud import aiplatform

    return aiplatform.PipelineJob(
        display_name=p.run_name, template_path=p.pipeline_file, pipeline_root=p.pipeline_root,
        parameter_values=p.parameters, project=p.project, location=p.region, credentials=credentials,
        enable_caching=None, labels={"pipeline": "pugc", "recipe": p.recipe[:63]},
    )


def dry_run(p: Plan) -> dict:
    """What would be submitted; for Vertex the job is built offline (anonymous credentials) as a check."""
    described = asdict(p)
    if p.target == "vertex":
        from google.auth.credentials import AnonymousCredentials

        job = vertex_job(p, credentials=AnonymousCredentials())
        described["extra"]["vertex_runtime_config"] = job.to_dict()["runtimeConfig"]
    return described


def submit(p: Plan, token: str | None = None) -> dict:
    if p.target == "vertex":
        job = vertex_job(p)
        if p.schedule:
            schedule = job.create_schedule(cron=p.schedule, display_name=p.run_name, service_account=p.service_account)
            return {"schedule": schedule.resource_name}
        job.submit(service_account=p.service_account, experiment=p.experiment)
        return {"job": job.resource_name}
    client = kfp_client(p, token)
    from pugc.pipelines.backends import check_server

    check_server(client, p.kfp_version or "2.16")  # an older server would refuse the run: say so first
    if p.schedule:
        experiment = client.create_experiment(p.experiment or "pugc", namespace=p.namespace)
        run = client.create_recurring_run(experiment_id=experiment.experiment_id, job_name=p.run_name,
                                          cron_expression=p.schedule, pipeline_package_path=p.pipeline_file,
                                          params=p.parameters, service_account=p.service_account,
                                          pipeline_root=p.pipeline_root)
        return {"recurring_run_id": run.recurring_run_id, "namespace": p.namespace}
    run = client.create_run_from_pipeline_package(p.pipeline_file, arguments=p.parameters, run_name=p.run_name,
                                                  experiment_name=p.experiment or "pugc", namespace=p.namespace,
                                                  service_account=p.service_account, pipeline_root=p.pipeline_root)
    return {"run_id": run.run_id, "namespace": p.namespace}


def kfp_client(p: Plan, token: str | None = None):
    """The KFP client, in the plan's namespace.

    kfp.Client also uses its `namespace` argument to find the API when no host is given (in-cluster DNS name
    or kube proxy path, both in the namespace KFP is installed in), so a profile namespace goes to the client
    only with an explicit host; the experiment and run calls name it in every case.
    """
    import kfp

    in_namespace = {"namespace": p.namespace} if p.namespace and p.host else {}
    return kfp.Client(host=p.host, existing_token=token_source(token)[0], **in_namespace)
