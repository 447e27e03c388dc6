"""The PUGC pipeline (the DAG) and its compile / local-run entry points."""
