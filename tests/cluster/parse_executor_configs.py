"""Parse Kubernetes executor configs strictly with one backend's own protobuf definitions.

    python -S parse_executor_configs.py FOLDER CONFIGS.json    (prints {executor: "ok" or the parse error})

FOLDER is a `pip install --target` folder of that backend's kfp-kubernetes (tests/cluster/backend_models.py).
`-S`: only the standard library and FOLDER, never the test environment's own protobuf or kfp. The generated
module is loaded from its file, since `kfp.kubernetes`'s package imports the whole SDK. Strict as the backend:
`json_format.ParseDict` without ignore_unknown_fields, as the API server's `protojson.Unmarshal` (2.14+).
"""
import importlib.util
import json
import sys
import types
from pathlib import Path

folder, configs = Path(sys.argv[1]), json.loads(Path(sys.argv[2]).read_text())
sys.path.insert(0, str(folder))
package = types.ModuleType("kfp.kubernetes")
package.__path__ = [str(folder / "kfp" / "kubernetes")]
sys.modules["kfp.kubernetes"] = package
name = "kfp.kubernetes.kubernetes_executor_config_pb2"
spec = importlib.util.spec_from_file_location(name, folder / "kfp" / "kubernetes" / "kubernetes_executor_config_pb2.py")
module = importlib.util.module_from_spec(spec)
sys.modules[name] = module
spec.loader.exec_module(module)

from google.protobuf import json_format  # noqa: E402  (from FOLDER)

results = {}
for executor, config in configs.items():
    try:
        json_format.ParseDict(config, module.KubernetesExecutorConfig())
        results[executor] = "ok"
    except json_format.ParseError as error:
        results[executor] = str(error)
print(json.dumps(results))
