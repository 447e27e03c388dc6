"""Check a TrainJob against one Kubeflow Trainer release's API models (kubeflow-trainer-api), strictly.

    python check_trainjob.py FOLDER JOB.json    (prints {"error": ..., "unknown": [paths of unknown keys]})

FOLDER is a `pip install --target` folder of that release's models (tests/cluster/backend_models.py), put before
the test environment's own copy. The generated models ignore unknown keys (pydantic's default), as the API
server drops a field its CRD lacks with only a warning: so every key is also looked up in the model it belongs
to, and the ones no model declares are listed.
"""
import json
import sys
import typing
from pathlib import Path

sys.path.insert(0, sys.argv[1])
from kubeflow_trainer_api.models import TrainerV1alpha1TrainJob  # noqa: E402
from pydantic import BaseModel  # noqa: E402

FREE_FORM = {"metadata", "labels", "annotations", "nodeSelector", "limits", "requests"}  # maps of any keys


def model_of(annotation):
    """The pydantic model inside an annotation (Optional[X], List[X], Dict[str, X]), or None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = model_of(arg)
        if found is not None:
            return found
    return None


def unknown_keys(value, model, path="$"):
    if isinstance(value, list):
        return [key for i, item in enumerate(value) for key in unknown_keys(item, model, f"{path}[{i}]")]
    if not isinstance(value, dict) or model is None:
        return []
    fields = {(field.alias or name): field for name, field in model.model_fields.items()}
    found = []
    for key, item in value.items():
        if key not in fields:
            found.append(f"{path}.{key}")
        elif key not in FREE_FORM:
            found += unknown_keys(item, model_of(fields[key].annotation), f"{path}.{key}")
    return found


job = json.loads(Path(sys.argv[2]).read_text())
result = {"error": None, "unknown": unknown_keys(job, TrainerV1alpha1TrainJob)}
try:
    TrainerV1alpha1TrainJob.from_dict(job)
except Exception as error:  # pydantic's ValidationError: a required field missing, a wrong type
    result["error"] = str(error)[:2000]
print(json.dumps(result))
