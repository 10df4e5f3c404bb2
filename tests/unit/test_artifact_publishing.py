"""Folder artifacts are published all or nothing, and caches are filled all or nothing.

A task killed mid-upload must leave no version that a reader accepts, and its retry must complete
the version; two tasks filling the same model cache must never see half a model.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest

from ragops.artifacts import ArtifactStore, IncompleteArtifact
from ragops.models import artifact_model_path, model_dir_hash

INCLUDE = Path(__file__).resolve().parents[2] / "include"
# A DatasetDict as save_to_disk lays it out: the marker sorts first, the data after it.
DATASET = {
    "dataset_dict.json": b'{"splits": ["test", "train"]}',
    "test/data-00000-of-00001.arrow": b"T" * 5000,
    "test/dataset_info.json": b"{}",
    "test/state.json": b'{"_data_files": []}',
    "train/data-00000-of-00001.arrow": b"D" * 20000,
    "train/dataset_info.json": b"{}",
    "train/state.json": b'{"_data_files": []}',
}


def make_dir(base: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        (base / rel).parent.mkdir(parents=True, exist_ok=True)
        (base / rel).write_bytes(data)
    return base


def tree(path: Path) -> dict[str, bytes]:
    return {p.relative_to(path).as_posix(): p.read_bytes() for p in sorted(path.rglob("*"))
            if p.is_file() and not p.name.startswith(".")}


def assert_no_reader_accepts(store: ArtifactStore, rel: str, scratch: Path) -> None:
    assert not store.dir_complete(rel)
    # What save_dataset checks before skipping an upload: the marker must not be there on its own.
    if store.is_local:
        assert not store.exists(f"{rel}/dataset_dict.json")
    with pytest.raises(FileNotFoundError):  # IncompleteArtifact is a FileNotFoundError
        store.download_dir(rel, scratch / f"read-{uuid.uuid4().hex}")


# -- a SIGKILL mid-upload ---------------------------------------------------------------------------

KILLER = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, sys.argv[1])
    from ragops.artifacts import ArtifactStore

    root, kill_after = os.path.realpath(sys.argv[2]), int(sys.argv[5])
    written = []

    def hook(event, args):
        # The worker dies, as under SIGKILL, when it opens the (k+1)-th file for writing in the store.
        if event == "open" and len(args) == 3 and isinstance(args[0], str) and args[0].startswith(root) \\
                and args[2] is not None and args[2] & (os.O_WRONLY | os.O_RDWR):
            written.append(args[0])
            if len(written) > kill_after:
                os.kill(os.getpid(), signal.SIGKILL)

    sys.addaudithook(hook)
    ArtifactStore(sys.argv[2]).upload_dir(sys.argv[3], sys.argv[4])
""")


@pytest.mark.parametrize("kill_after", [1, 3, 6])  # files written before the kill
def test_sigkill_mid_upload_leaves_nothing_a_reader_accepts_and_the_retry_completes(tmp_path, kill_after):
    source = make_dir(tmp_path / "ds", DATASET)
    root = tmp_path / "artifacts"
    rel = "datasets/abc123"
    proc = subprocess.run([sys.executable, "-c", KILLER, str(INCLUDE), str(root), str(source), rel, str(kill_after)],
                          capture_output=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()

    store = ArtifactStore(root)
    assert_no_reader_accepts(store, rel, tmp_path)
    (left,) = store.local_path("datasets").glob(".abc123.publishing-*")  # the killed publisher's staging
    os.utime(left, (0, 0))  # a day old: the retry clears it
    store.upload_dir(source, rel)  # the retry
    assert store.dir_complete(rel)
    assert tree(store.download_dir(rel, tmp_path / "copy")) == DATASET
    assert [p.name for p in store.local_path("datasets").iterdir()] == ["abc123"]


# -- a crash mid-upload (in-process), local and object storage ------------------------------------------


class Crash(Exception):
    pass


def crash_after(source: Path, k: int):
    """An audit hook that raises when the (k+1)-th file of ``source`` is opened: a crash anywhere in
    the upload (the source is read to hash it, then again to copy it)."""
    state = {"armed": True, "opened": 0}

    def hook(event, args):
        if state["armed"] and event == "open" and args and isinstance(args[0], str) \
                and args[0].startswith(str(source)) and os.path.isfile(args[0]):
            state["opened"] += 1
            if state["opened"] > k:
                state["armed"] = False
                raise Crash(f"crashed after {k} files")

    sys.addaudithook(hook)  # hooks cannot be removed; this one disarms itself after firing
    return state


@pytest.fixture(params=["local", "object-storage"])
def store(request, tmp_path):
    if request.param == "local":
        return ArtifactStore(tmp_path / "artifacts")
    # fsspec's in-memory filesystem through ObjectStoragePath: the remote code path, no server needed.
    return ArtifactStore(f"memory://bucket-{uuid.uuid4().hex[:8]}/ragops")


@pytest.mark.parametrize("k", [1, 8, 11])
def test_crash_mid_upload_is_never_trusted_and_the_retry_completes(store, tmp_path, k):
    source = make_dir(tmp_path / "ds", DATASET)
    rel = "datasets/v1"
    crash_after(source, k)
    with pytest.raises(Crash):
        store.upload_dir(source, rel)
    assert_no_reader_accepts(store, rel, tmp_path)
    assert store.upload_dir(source, rel) == store.uri(rel)
    assert store.dir_complete(rel)
    assert tree(store.download_dir(rel, tmp_path / "copy")) == DATASET


def test_a_version_published_before_this_fix_without_manifest_is_republished(tmp_path):
    store = ArtifactStore(tmp_path / "artifacts")
    half = make_dir(store.local_path("datasets/old"), {"dataset_dict.json": DATASET["dataset_dict.json"]})
    assert half.exists() and not store.dir_complete("datasets/old")
    store.upload_dir(make_dir(tmp_path / "ds", DATASET), "datasets/old")
    assert store.dir_complete("datasets/old") and tree(half) == DATASET


def test_a_changed_or_truncated_file_is_refused_on_download(store, tmp_path):
    store.upload_dir(make_dir(tmp_path / "ds", DATASET), "datasets/v2")
    store.write_bytes("datasets/v2/train/data-00000-of-00001.arrow", b"D" * 100)  # truncated behind our back
    assert not store.dir_complete("datasets/v2")
    with pytest.raises(IncompleteArtifact, match="train/data-00000-of-00001.arrow"):
        store.download_dir("datasets/v2", tmp_path / "copy")
    assert not (tmp_path / "copy").exists()  # nothing half-copied left for a later reader


def test_concurrent_publishers_of_one_version_both_succeed(tmp_path):
    store = ArtifactStore(tmp_path / "artifacts")
    source = make_dir(tmp_path / "ds", DATASET)
    errors: list[BaseException] = []

    def publish():
        try:
            store.upload_dir(source, "datasets/same")
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=publish) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and store.dir_complete("datasets/same")
    assert tree(store.local_path("datasets/same")) == DATASET
    leftovers = [p.name for p in store.local_path("datasets").iterdir() if p.name != "same"]
    assert leftovers == []


# -- the model cache ------------------------------------------------------------------------------

MODEL = {"config.json": b'{"hidden_size": 8}', "model.safetensors": b"W" * 40000, "tokenizer.json": b"{}",
         "1_Pooling/config.json": b"{}", "modules.json": b"[]"}


class SlowRemote:
    """A remote artifact store whose downloads write file by file, slowly, into the target folder
    (as a plain download does), so a half-filled cache would be visible to anyone who looks."""

    is_local = False
    root_uri = "s3://conn@bucket/ragops"

    def __init__(self, source: Path, delay: float = 0.01):
        self.source, self.delay = source, delay
        self.downloads = 0

    def download_dir(self, rel: str, local_dir: Path) -> Path:
        self.downloads += 1
        local_dir = Path(local_dir)
        for path in sorted(self.source.rglob("*")):
            if path.is_file():
                dest = local_dir / path.relative_to(self.source)
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(path.read_bytes())
                time.sleep(self.delay)
        return local_dir


def model_artifact(source: Path) -> SimpleNamespace:
    return SimpleNamespace(uri="s3://conn@bucket/ragops/models/embeddings/runs/x/model", name="embeddings",
                           version=3, content_hash=model_dir_hash(source))


def _fill_in_process(source: str, cache: str, queue) -> None:
    try:
        queue.put(artifact_model_path(model_artifact(Path(source)), SlowRemote(Path(source)), cache))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        queue.put(repr(exc))


def watch_for_half_models(cache: Path, stop: threading.Event, seen: list[str]) -> None:
    """Polls the cache: any visible model folder must be whole."""
    while not stop.is_set():
        for folder in list(cache.glob("embeddings-*")) if cache.exists() else []:
            try:
                files = tree(folder)
            except FileNotFoundError:
                continue
            if files != MODEL:
                seen.append(f"{folder.name}: {sorted(files)}")
        time.sleep(0.002)


@pytest.mark.parametrize("how", ["threads", "processes"])
def test_two_fills_of_one_cache_never_show_half_a_model(tmp_path, how):
    source = make_dir(tmp_path / "remote-model", MODEL)
    cache = tmp_path / "cache"
    stop, half_seen = threading.Event(), []
    watcher = threading.Thread(target=watch_for_half_models, args=(cache, stop, half_seen))
    watcher.start()
    try:
        if how == "threads":
            results: list[str] = []
            fills = [threading.Thread(target=lambda: results.append(
                artifact_model_path(model_artifact(source), SlowRemote(source), cache))) for _ in range(3)]
            for t in fills:
                t.start()
            for t in fills:
                t.join()
        else:
            ctx = multiprocessing.get_context("fork")
            queue = ctx.Queue()
            procs = [ctx.Process(target=_fill_in_process, args=(str(source), str(cache), queue)) for _ in range(3)]
            for p in procs:
                p.start()
            results = [queue.get(timeout=60) for _ in procs]
            for p in procs:
                p.join(timeout=60)
    finally:
        stop.set()
        watcher.join()
    assert half_seen == []
    assert len(set(results)) == 1, results
    assert tree(Path(results[0])) == MODEL
    assert [p.name for p in cache.iterdir()] == [Path(results[0]).name]  # no temp folders left


def test_a_filled_cache_is_reused_and_a_half_filled_one_from_before_is_replaced(tmp_path):
    source = make_dir(tmp_path / "remote-model", MODEL)
    cache = tmp_path / "cache"
    art = model_artifact(source)
    remote = SlowRemote(source, delay=0)
    first = Path(artifact_model_path(art, remote, cache))
    assert artifact_model_path(art, remote, cache) == str(first) and remote.downloads == 1

    # A cache folder as the old code could leave it: config.json first, the weights never came.
    shutil.rmtree(first)
    make_dir(first, {"config.json": MODEL["config.json"]})
    assert tree(Path(artifact_model_path(art, remote, cache))) == MODEL and remote.downloads == 2


def test_a_download_that_does_not_match_the_registered_hash_is_refused(tmp_path):
    source = make_dir(tmp_path / "remote-model", MODEL)
    art = model_artifact(source)
    (source / "model.safetensors").write_bytes(b"W" * 10)  # the stored copy is not what was registered
    with pytest.raises(IncompleteArtifact, match="embeddings v3"):
        artifact_model_path(art, SlowRemote(source, delay=0), tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == []  # nothing a later task could mistake for the model


def test_a_model_published_to_object_storage_fills_the_cache_verified(tmp_path):
    store = ArtifactStore(f"memory://bucket-{uuid.uuid4().hex[:8]}/ragops")
    source = make_dir(tmp_path / "trained", MODEL)
    uri = store.upload_dir(source, "models/embeddings/runs/r1/model")
    art = SimpleNamespace(uri=uri, name="embeddings", version=1, content_hash=model_dir_hash(source))
    assert tree(Path(artifact_model_path(art, store, tmp_path / "cache"))) == MODEL


def test_manifest_lists_every_file_with_size_and_hash(tmp_path):
    store = ArtifactStore(tmp_path / "artifacts")
    store.upload_dir(make_dir(tmp_path / "ds", DATASET), "datasets/m")
    manifest = json.loads((store.local_path("datasets/m") / ".ragops-manifest.json").read_text())
    assert manifest["complete"] is True
    assert {name: meta["size"] for name, meta in manifest["files"].items()} == {k: len(v) for k, v in DATASET.items()}


def test_fsspec_uris_drop_the_airflow_connection_name():
    from ragops.artifacts import fsspec_uri

    assert fsspec_uri("s3://ragops_minio@bucket/models/m") == "s3://bucket/models/m"
    assert fsspec_uri("s3://bucket/models/m") == "s3://bucket/models/m"
    assert fsspec_uri("/local/path") == "/local/path" and fsspec_uri("file:///x/y") == "file:///x/y"
