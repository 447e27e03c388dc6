from typing import List

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Output

from pugc.components import images


@dsl.component(base_image=images.BASE, install_kfp_package=False)
def merge_shards(parts: Input[List[Dataset]], dropped_parts: Input[List[Dataset]], recipe_digest: str,
                 merged: Output[Dataset], dropped: Output[Dataset], metrics: Output[Metrics]):
    """Join one stage's shard outputs in shard order (the same records as one unsharded task), counts summed."""
    from pugc.stage_runner import merge_shards as merge, publish

    report = merge(parts, dropped_parts, merged.path, dropped.path)
    publish(report, [merged, dropped], metrics, recipe_digest)
