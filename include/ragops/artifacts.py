"""The artifact store: local files by default, object storage through Airflow's ObjectStoragePath.

Paths are content-addressed by the callers (``documents/<hash>.parquet``), so a retried task
writes the same bytes to the same place and nothing is ever overwritten with different content.
Local writes go through a temporary file and an atomic rename: a crash never leaves half a file.
Folders (models, datasets) are published all or nothing with a manifest (see ``upload_dir``), and
readers verify it (``dir_complete``, ``download_dir``).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

# The completeness record of a published folder: every file's size and SHA-256, and whether the
# publication finished. A dot file, so model hashes (models.model_dir_hash) ignore it.
MANIFEST = ".ragops-manifest.json"
# A staging folder this old belongs to a publisher that was killed: the next publisher removes it.
STALE_STAGING_S = 24 * 3600


class IncompleteArtifact(FileNotFoundError):
    """A folder artifact whose publication never finished, or whose files differ from its manifest."""


def fsspec_uri(uri: str) -> str:
    """An artifact URI as plain fsspec reads it: Airflow's ``s3://conn_id@bucket/key`` names the
    connection in the userinfo, which a trainer process (no Airflow) must not see as the bucket."""
    scheme, sep, rest = uri.partition("://")
    if not sep or scheme == "file":
        return uri
    netloc, slash, path = rest.partition("/")
    return f"{scheme}://{netloc.rpartition('@')[2]}{slash}{path}"


class ArtifactStore:
    def __init__(self, root: str | os.PathLike[str], *, root_path: Any = None):
        """``root``: a local folder or an object-storage URI. A remote root needs ``root_path``, a
        ready path object for it: the task runtime passes Airflow's ObjectStoragePath (which reads
        the connection named in ``s3://conn_id@bucket/prefix``); elsewhere, fsspec's UPath."""
        root = str(root)
        if not root:
            raise ValueError("artifact root is empty: set RAGOPS_ARTIFACT_ROOT or the Variable ragops_artifact_root")
        self.root_uri = root
        self.is_local = "://" not in root or root.startswith("file://")
        if self.is_local:
            self._root: Any = Path(root.removeprefix("file://")).resolve()
            self._root.mkdir(parents=True, exist_ok=True)
        elif root_path is not None:
            self._root = root_path
        else:
            from upath import UPath

            self._root = UPath(root)

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

    def rel_of(self, uri: str) -> str:
        """The store-relative path of an artifact URI this store made (the one way to resolve one)."""
        for prefix in (self.uri("x")[:-1], self.root_uri.rstrip("/") + "/"):
            if uri.startswith(prefix):
                return self._safe_rel(uri[len(prefix):])
        raise ValueError(f"artifact {uri!r} is not inside the artifact store {self.root_uri!r}")

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

    # -- folder artifacts (a model, a dataset): published and read all or nothing ------------------
    def upload_dir(self, local_dir: str | os.PathLike[str], rel: str) -> str:
        """Publishes a local folder as one version, all or nothing; idempotent.

        A reader never sees part of a version: locally the files go to a hidden staging folder that
        is renamed into place whole; on object storage (no rename) a manifest saying "incomplete"
        goes first and the one saying "complete" goes last. Either way the manifest lists every
        file's size and SHA-256. A complete version already there is kept (paths are
        content-addressed: same path, same bytes); anything else there is replaced.
        """
        rel = self._safe_rel(rel)
        if self.dir_complete(rel):
            return self.uri(rel)
        manifest = build_manifest(Path(local_dir))
        if self.is_local:
            self._publish_local(Path(local_dir), rel, manifest)
        else:
            self._publish_remote(Path(local_dir), rel, manifest)
        return self.uri(rel)

    def _publish_local(self, local_dir: Path, rel: str, manifest: dict[str, Any]) -> None:
        target = self.path(rel)
        target.parent.mkdir(parents=True, exist_ok=True)
        for stale in target.parent.glob(f".{target.name}.publishing-*"):  # left by a killed publisher
            with contextlib.suppress(FileNotFoundError):  # or a live one that just finished
                if time.time() - stale.stat().st_mtime > STALE_STAGING_S:
                    shutil.rmtree(stale, ignore_errors=True)
        staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.publishing-"))
        try:
            for name in manifest["files"]:
                (staging / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(local_dir / name, staging / name)
            (staging / MANIFEST).write_text(json.dumps({**manifest, "complete": True}, indent=1, sort_keys=True))
            _swap_in(staging, target, keep_existing=lambda: self.dir_complete(rel))
        finally:
            shutil.rmtree(staging, ignore_errors=True)  # gone already when the rename happened

    def _publish_remote(self, local_dir: Path, rel: str, manifest: dict[str, Any]) -> None:
        self.write_json(f"{rel}/{MANIFEST}", {**manifest, "complete": False})  # readers refuse from here on
        for name in manifest["files"]:
            with (local_dir / name).open("rb") as src, self.path(f"{rel}/{name}").open("wb") as dst:
                shutil.copyfileobj(src, dst, 1024 * 1024)
        self.write_json(f"{rel}/{MANIFEST}", {**manifest, "complete": True})

    def read_manifest(self, rel: str) -> dict[str, Any] | None:
        """The manifest of a published folder; None for a folder without one (written by other code,
        such as the trainer, or published before manifests existed)."""
        try:
            manifest = self.read_json(f"{self._safe_rel(rel)}/{MANIFEST}")
        except FileNotFoundError:
            return None
        except ValueError:  # a manifest cut short: as good as an incomplete one
            return {"complete": False, "files": {}}
        return manifest if isinstance(manifest, dict) else {"complete": False, "files": {}}

    def dir_complete(self, rel: str) -> bool:
        """Whether ``rel`` is a fully published folder: its final manifest is there and every file it
        lists is there with its size. What a task checks before skipping a re-upload."""
        manifest = self.read_manifest(rel)
        if not manifest or not manifest.get("complete"):
            return False
        for name, meta in manifest["files"].items():
            try:
                if self.path(f"{rel}/{name}").stat().st_size != meta["size"]:
                    return False
            except FileNotFoundError:
                return False
        return True

    def download_dir(self, rel: str, local_dir: str | os.PathLike[str]) -> Path:
        """A local copy of a folder of the store at ``local_dir`` (replaced whole, never half-written).

        A folder with a manifest is verified file by file (size and SHA-256) and refused with
        IncompleteArtifact when its publication never finished or a file differs.
        """
        rel = self._safe_rel(rel)
        local_dir = Path(local_dir)
        src = self.path(rel)
        if not src.exists():
            raise FileNotFoundError(f"artifact folder {self.uri(rel)} does not exist")
        manifest = self.read_manifest(rel)
        if manifest is not None and not manifest.get("complete"):
            raise IncompleteArtifact(f"artifact folder {self.uri(rel)} was never completely published (its "
                                     "upload was interrupted); re-run the task that produces it")
        local_dir.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=local_dir.parent, prefix=f".{local_dir.name}.downloading-"))
        try:
            if self.is_local:
                shutil.copytree(src, staging, dirs_exist_ok=True)
            else:
                for item in src.rglob("*"):
                    if item.is_file():
                        dest = staging / str(item).removeprefix(str(src)).lstrip("/")
                        dest.parent.mkdir(parents=True, exist_ok=True)
                        with item.open("rb") as fh, dest.open("wb") as out:
                            shutil.copyfileobj(fh, out, 1024 * 1024)
            if manifest is not None:
                verify_manifest(staging, manifest, self.uri(rel))
            _swap_in(staging, local_dir, keep_existing=lambda: False)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return local_dir

    def local_path(self, rel: str) -> Path:
        """The local path of an artifact (local store only): for readers that need a filename."""
        if not self.is_local:
            raise ValueError(f"{self.root_uri} is remote; use download_dir() for {rel}")
        return self.path(rel)


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest()


def build_manifest(folder: Path) -> dict[str, Any]:
    """Every file under ``folder`` (relative POSIX path -> size and SHA-256)."""
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder to publish")
    files = {path.relative_to(folder).as_posix(): {"size": path.stat().st_size, "sha256": _sha256_file(path)}
             for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST)}
    return {"version": 1, "files": files}


def verify_manifest(folder: Path, manifest: dict[str, Any], uri: str) -> None:
    """Raises IncompleteArtifact naming the first file of the manifest that is missing or differs."""
    for name, meta in manifest.get("files", {}).items():
        path = folder / name
        if not path.is_file():
            raise IncompleteArtifact(f"artifact folder {uri}: {name} is missing")
        size = path.stat().st_size
        if size != meta["size"] or _sha256_file(path) != meta["sha256"]:
            raise IncompleteArtifact(f"artifact folder {uri}: {name} differs from its manifest "
                                     f"({size} bytes, expected {meta['size']})")


def _swap_in(staging: Path, target: Path, keep_existing: Callable[[], bool]) -> None:
    """Renames the whole ``staging`` folder to ``target`` (atomic on one filesystem).

    When ``target`` exists, ``keep_existing()`` decides: True keeps it (a concurrent writer already
    put a complete copy there) and ``staging`` is dropped; False moves it aside first and replaces
    it. A reader of ``target`` sees the old folder or the new one, never a mix.
    """
    for _ in range(3):  # a concurrent writer may win each race; one of three tries settles it
        try:
            os.rename(staging, target)
            return
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR):
                raise
        if keep_existing():
            return
        aside = target.with_name(f".{target.name}.replaced-{uuid.uuid4().hex}")
        try:
            os.rename(target, aside)
        except FileNotFoundError:
            continue  # someone else moved it: try again
        shutil.rmtree(aside, ignore_errors=True)
    raise OSError(f"could not publish {target}: concurrent writers kept replacing it")
