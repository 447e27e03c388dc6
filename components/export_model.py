from kfp import dsl
from kfp.dsl import Artifact, Input, Model, Output

from pugc.components import images


@dsl.component(base_image=images.BASE, install_kfp_package=False)
def export_model(dpo_model: Input[Model], evaluation: Input[Artifact], config: dict, exported: Output[Artifact]):
    """Upload the checkpoint that passed the gate to `dpo_training.export_uri`; the evaluation's figures go
    with it as lineage. Runs only when the gate passed."""
    import json
    from pathlib import Path

    from pugc.evaluation import run_export

    result = run_export(dpo_model.path, config)
    figures = json.loads(Path(evaluation.path).read_text())
    Path(exported.path).write_text(json.dumps({**result, "evaluation": figures}, indent=2))
    exported.metadata.update({"export_uri": result["export_uri"], "win_rate": figures["win_rate"],
                              "lc_win_rate": figures["lc_win_rate"]})
