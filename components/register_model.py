from kfp import dsl
from kfp.dsl import Artifact, Input, Output

from pugc.components import images


@dsl.component(base_image=images.BASE, install_kfp_package=False)
def register_model(exported: Input[Artifact], config: dict, registration: Output[Artifact]):
    """Register the exported model in Kubeflow Model Registry (handoff.model_registry): registered model,
    a version named by the run, a model artifact at the export URI, the evaluation as custom properties."""
    import json
    from pathlib import Path

    from pugc.cards import run_id_of
    from pugc.handoff import read_json, register_model as register

    export = read_json(exported.path)
    result = register(config["model_registry"], export["export_uri"], export["evaluation"],
                      run_id_of(registration.uri))
    Path(registration.path).write_text(json.dumps(result, indent=2))
    registration.metadata.update(result)
