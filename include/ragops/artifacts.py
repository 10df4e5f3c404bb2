"""The artifact store: local files by default, object storage through Airflow's ObjectStoragePath.

Paths are content-addressed by the callers (``documents/<hash>.parquet``), so a retried task
writes the same bytes to the same place and nothing is ever overwritten with different content.
Local writes go through a temporary file and an atomic rename: a crash never leaves half a file.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any


class ArtifactStore:
    def __init__(self, root: str | os.PathLike[str]):
        root = str(root)
        if not root:
            raise ValueError("artifact root is empty: set RAGOPS_ARTIFACT_ROOT or the Variable ragops_artifact_root")
        self.root_uri = root
        self.is_local = "://" not in root or root.startswith("file://")
        if self.is_local:
            self._root: Any = Path(root.removeprefix("file://")).resolve()
            self._root.mkdir(parents=True, exist_ok=True)
        else:
            # Remote: s3://, gs://, abfs://... through the conn_id in the URI's userinfo, as
            # ObjectStoragePath does (``s3://aws_default@bucket/prefix``).
            from airflow.sdk import ObjectStoragePath

            self._root = ObjectStoragePath(root)

    def _safe_rel(self, rel: str) -> str:
        rel = rel.strip("/")
        parts = Path(rel).parts
        if not rel or ".." in parts:
            raise ValueError(f"artifact path {rel!r} must be relative and stay inside the store")
        return rel

    def path(self, rel: str) -> Any:
        return self._root / self._safe_rel(rel)

    def uri(self, rel: str) -> str:
        rel = self._safe_rel(rel)
        if self.is_local:
            return str(self._root / rel)
        return f"{self.root_uri.rstrip('/')}/{rel}"

    def exists(self, rel: str) -> bool:
        return self.path(rel).exists()

    def write_bytes(self, rel: str, data: bytes) -> str:
        target = self.path(rel)
        if self.is_local:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, target)
        else:
            with target.open("wb") as fh:
                fh.write(data)
        return self.uri(rel)

    def read_bytes(self, rel: str) -> bytes:
        path = self.path(rel)
        if not path.exists():
            raise FileNotFoundError(f"artifact {self.uri(rel)} does not exist")
        with path.open("rb") as fh:
            return fh.read()

    def write_json(self, rel: str, obj: Any) -> str:
        return self.write_bytes(rel, json.dumps(obj, indent=2, sort_keys=True, default=str).encode())

    def read_json(self, rel: str) -> Any:
        return json.loads(self.read_bytes(rel))

    def write_table(self, rel: str, table: Any) -> str:
        """Writes a pyarrow Table or pandas DataFrame as Parquet."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not isinstance(table, pa.Table):
            table = pa.Table.from_pandas(table, preserve_index=False)
        buf = io.BytesIO()
        pq.write_table(table, buf, compression="zstd")
        return self.write_bytes(rel, buf.getvalue())

    def read_table(self, rel: str) -> Any:
        import pyarrow.parquet as pq

        return pq.read_table(io.BytesIO(self.read_bytes(rel)))

    def upload_dir(self, local_dir: str | os.PathLike[str], rel: str) -> str:
        """Copies a local folder (a model, a dataset) into the store, file by file."""
        local_dir = Path(local_dir)
        for file in sorted(p for p in local_dir.rglob("*") if p.is_file()):
            self.write_bytes(f"{self._safe_rel(rel)}/{file.relative_to(local_dir).as_posix()}", file.read_bytes())
        return self.uri(rel)

    def download_dir(self, rel: str, local_dir: str | os.PathLike[str]) -> Path:
        """Makes a folder of the store available locally (a no-op copy for a local store)."""
        local_dir = Path(local_dir)
        src = self.path(rel)
        if self.is_local:
            if not src.exists():
                raise FileNotFoundError(f"artifact folder {self.uri(rel)} does not exist")
            if local_dir.exists():
                shutil.rmtree(local_dir)
            shutil.copytree(src, local_dir)
            return local_dir
        for item in src.rglob("*"):
            if item.is_file():
                dest = local_dir / str(item).removeprefix(str(src)).lstrip("/")
                dest.parent.mkdir(parents=True, exist_ok=True)
                with item.open("rb") as fh:
                    dest.write_bytes(fh.read())
        return local_dir

    def local_path(self, rel: str) -> Path:
        """The local path of an artifact (local store only): for readers that need a filename."""
        if not self.is_local:
            raise ValueError(f"{self.root_uri} is remote; use download_dir() for {rel}")
        return self.path(rel)
