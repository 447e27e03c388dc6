from typing import Optional

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Output

from pugc.components import images


@dsl.component(base_image=images.BASE, install_kfp_package=False)
def ingest_ugc(input_uri: str, config: dict, input_fingerprint: str, ugc: Output[Dataset],
               quarantine: Output[Dataset], dropped: Output[Dataset], metrics: Output[Metrics],
               source: Optional[Input[Dataset]] = None):
    """Stage 0: raw UGC lines -> documents with stable ids; malformed lines quarantined, duplicates dropped.

    On a cluster the input arrives as an imported Dataset (`source`, so lineage starts at the data), which KFP's
    launcher has already copied to this pod's disk (launcher_v2.go downloadArtifacts): it is read from there,
    not fetched a second time, and named by its gs:// URI in the records. Locally `input_uri` is read directly.
    `input_fingerprint` (what the URI held when the run started) keys the cache and is kept in the lineage.
    """
    from pugc.stage_runner import publish, run_ingest

    if source is not None:
        report = run_ingest(source.path, config, ugc.path, quarantine.path, dropped.path,
                            named_as=(source.path, source.uri))
    else:
        report = run_ingest(input_uri, config, ugc.path, quarantine.path, dropped.path)
    report["input_fingerprint"] = input_fingerprint
    publish(report, [ugc, quarantine, dropped], metrics)
