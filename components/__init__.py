"""KFP components, one per PUGC stage. Each is thin: its body imports `pugc` and calls the stage runner.

Bodies run inside our images (explicit `base_image`, `install_kfp_package=False`: the images carry kfp and
this package), and equally under the local SubprocessRunner, which runs them in the current environment.
"""
