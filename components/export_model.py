from kfp import dsl
from kfp.dsl import Artifact, Input, Markdown, Output

from pugc.components import images


@dsl.component(base_image=images.BASE, install_kfp_package=False)
def export_model(model_uri: str, evaluation: Input[Artifact], model_card: Input[Markdown], config: dict,
                 exported: Output[Artifact]):
    """Copy the checkpoint that passed the gate to `dpo_training.export_uri`, the model card as its README.md;
    the evaluation's figures go with it as lineage. Runs only when the gate passed. The model comes by URI, not as an input artifact (which
    the launcher would download whole into this CPU pod): gs:// to gs:// is copied within Cloud Storage."""
    import json
    from pathlib import Path

    from pugc.evaluation import run_export

    result = run_export(model_uri, config, model_card.path)
    figures = json.loads(Path(evaluation.path).read_text())
    Path(exported.path).write_text(json.dumps({**result, "evaluation": figures}, indent=2))
    exported.metadata.update({"export_uri": result["export_uri"], "source_uri": model_uri, "win_rate": figures["win_rate"],
                              "lc_win_rate": figures["lc_win_rate"]})
