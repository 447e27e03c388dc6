from kfp import dsl
from kfp.dsl import Dataset, Metrics, Output

from pugc.components import images


@dsl.component(base_image=images.BASE, install_kfp_package=False)
def ingest_ugc(input_uri: str, config: dict, ugc: Output[Dataset], quarantine: Output[Dataset],
               dropped: Output[Dataset], metrics: Output[Metrics]):
    """Stage 0: raw UGC lines -> documents with stable ids; malformed lines quarantined, duplicates dropped."""
    from pugc.stage_runner import publish, run_ingest

    report = run_ingest(input_uri, config, ugc.path, quarantine.path, dropped.path)
    publish(report, [ugc, quarantine, dropped], metrics)
