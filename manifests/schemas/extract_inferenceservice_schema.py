"""Write the JSON Schema serve_model's InferenceService is checked against, from KServe's CRD.

Usage: python extract_inferenceservice_schema.py serving.kserve.io_inferenceservices.yaml > inferenceservice-v1beta1.json
(the CRD: kserve/kserve config/crd/full/serving.kserve.io_inferenceservices.yaml). The v1beta1 openAPIV3Schema,
with the predictor cut to the fields pugc.handoff may write (the full CRD is 2 MB) and, as
`kubernetes-validate --strict` does, every object closed to unknown fields, so a misspelt field fails here
instead of being pruned by the API server.
"""
import json
import sys

import yaml

PREDICTOR_FIELDS = ("model", "containers", "serviceAccountName", "canaryTrafficPercent", "minReplicas",
                    "maxReplicas")


def strict(schema):
    if isinstance(schema, dict):
        schema = {key: strict(value) for key, value in schema.items()}
        if "properties" in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
            schema.setdefault("additionalProperties", False)
        return schema
    if isinstance(schema, list):
        return [strict(value) for value in schema]
    return schema


def main(path: str) -> None:
    crd = yaml.safe_load(open(path))
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1beta1")
    root = version["schema"]["openAPIV3Schema"]
    predictor = root["properties"]["spec"]["properties"]["predictor"]
    predictor["properties"] = {k: v for k, v in predictor["properties"].items() if k in PREDICTOR_FIELDS}
    root["properties"]["spec"]["properties"] = {"predictor": predictor}
    root["properties"]["metadata"] = {"type": "object", "required": ["name", "namespace"], "properties": {
        "name": {"type": "string", "pattern": "^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$"}, "namespace": {"type": "string"},
        "labels": {"type": "object", "additionalProperties": {"type": "string", "maxLength": 63}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}}}}
    root["properties"]["apiVersion"] = {"const": "serving.kserve.io/v1beta1"}
    root["properties"]["kind"] = {"const": "InferenceService"}
    root["required"] = ["apiVersion", "kind", "metadata", "spec"]
    schema = {"$schema": "http://json-schema.org/draft-07/schema#",
              "$comment": "from kserve/kserve config/crd/full/serving.kserve.io_inferenceservices.yaml (commit "
                          "aaac4e294dae, v0.20.0-rc0-104), v1beta1, cut by extract_inferenceservice_schema.py",
              **strict(root)}
    json.dump(schema, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv[1])
