from kfp import dsl

from pugc.components import images


@dsl.component(base_image=images.BASE, install_kfp_package=False)
def input_fingerprint(input_uri: str) -> str:
    """What the input URI holds right now (file names, sizes, versions), as a short digest.

    Never cached: ingest takes the digest as a parameter, so new or changed files under the same URI (a
    recurring run over a gs:// prefix) miss the cache from ingest on, while unchanged data may hit it.
    """
    from pugc.io import input_fingerprint as fingerprint

    return fingerprint(input_uri)
