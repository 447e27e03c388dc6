from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Markdown, Output

from pugc.components import images


@dsl.component(base_image=images.BASE, install_kfp_package=False)
def upload_to_hub(exported: Input[Artifact], model_card: Input[Markdown], preference_pairs: Input[Dataset],
                  dataset_card: Input[Markdown], config: dict, upload: Output[Artifact]):
    """Upload the exported model with its card to the Hugging Face Hub (handoff.hub), and the pairs with theirs
    when handoff.hub.dataset_repo_id is set; the token comes from a Kubernetes Secret as HF_TOKEN."""
    import json
    from pathlib import Path

    from pugc.handoff import read_json, upload_to_hub as upload_model

    result = upload_model(config["hub"], read_json(exported.path)["export_uri"], model_card.path,
                          preference_pairs.path, dataset_card.path)
    Path(upload.path).write_text(json.dumps(result, indent=2))
    upload.metadata.update(result)
