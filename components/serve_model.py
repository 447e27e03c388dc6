from kfp import dsl
from kfp.dsl import Artifact, Input, Output

from pugc.components import images


@dsl.component(base_image=images.BASE, install_kfp_package=False)
def serve_model(exported: Input[Artifact], config: dict, inference_service: Output[Artifact]):
    """A KServe InferenceService serving the exported model with vLLM (handoff.kserve): rendered as YAML,
    created on the cluster only with handoff.kserve.apply."""
    from pugc.cards import run_id_of
    from pugc.handoff import read_json, serve_model as serve

    result = serve(config["kserve"], read_json(exported.path)["export_uri"], run_id_of(inference_service.uri),
                   inference_service.path)
    inference_service.metadata.update({key: str(value) for key, value in result.items()})
