from kfp import dsl

from pugc.components import images


@dsl.component(base_image=images.BASE, install_kfp_package=False)
def input_fingerprint(input_uri: str, opt_out_uri: str = "") -> str:
    """What the input URI (and the opt-out list, input.opt_out) hold right now (file names, sizes, versions), as
    a short digest.

    Never cached: ingest takes the digest as a parameter, so new or changed files under the same URI (a
    recurring run over a gs:// prefix), or a person added to the opt-out list, miss the cache from ingest on,
    while unchanged data may hit it.
    """
    from pugc.io import input_fingerprint as fingerprint

    digest = fingerprint(input_uri)
    return f"{digest}-{fingerprint(opt_out_uri)}" if opt_out_uri else digest
