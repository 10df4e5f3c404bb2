"""Makes Airflow unimportable when RAGOPS_BLOCK_AIRFLOW=1 (this folder first on PYTHONPATH).

The unit tier runs this way (scripts/test.sh): it proves that the logic package imports and
works without Airflow, as the trainer image and the CLI use it."""

import os
import sys

if os.environ.get("RAGOPS_BLOCK_AIRFLOW") == "1":
    class _BlockAirflow:
        def find_spec(self, name, path=None, target=None):
            if name == "airflow" or name.startswith("airflow."):
                raise ModuleNotFoundError(f"No module named {name!r} (blocked: the logic package must not need it)",
                                          name=name)
            return None

    sys.meta_path.insert(0, _BlockAirflow())
