from typing import Optional

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Output

from pugc.components import images


@dsl.component(base_image=images.BASE, install_kfp_package=False)
def ingest_ugc(input_uri: str, config: dict, input_fingerprint: str, ugc: Output[Dataset],
               quarantine: Output[Dataset], dropped: Output[Dataset], metrics: Output[Metrics],
               source: Optional[Input[Dataset]] = None):
    """Stage 0: raw UGC lines -> documents with stable ids; malformed lines quarantined, duplicates dropped.

    On a cluster the input arrives as an imported Dataset (`source`, so lineage starts at the data) and is
    read from its gs:// URI; locally `input_uri` is read directly. `input_fingerprint` (what the URI held
    when the run started) keys the cache and is kept in the lineage.
    """
    from pugc.stage_runner import publish, run_ingest

    report = run_ingest(source.uri if source is not None else input_uri, config, ugc.path, quarantine.path, dropped.path)
    report["input_fingerprint"] = input_fingerprint
    publish(report, [ugc, quarantine, dropped], metrics)
