"""Merge LoRA adapters into their base model: one adapter, or a weighted combination of several.

Self-contained like ``train_llm.py`` (it imports nothing from ragops), so the trainer image runs it
alone::

    python merge_adapters.py --base-model /models/base --adapter /runs/a/adapter --output-dir /models/merged
    python merge_adapters.py --base-model /models/base --adapter /runs/a/adapter --adapter /runs/b/adapter \\
        --weights 0.7,0.3 --combination-type cat --output-dir /models/merged

One adapter with weight 1 is merged as it is (peft's ``merge_and_unload``): every target module's
weight becomes ``W + scaling * B @ A`` with ``scaling = lora_alpha / r`` (``/ sqrt(r)`` with rsLoRA).
Several adapters are first combined with peft's ``add_weighted_adapter`` into one adapter, which
is then merged. What the combination types compute, per target module (w_i the weights, s_i the
adapters' scalings):

- ``cat``: A and B stacked (rank = the sum of the ranks): ``delta = sum_i w_i * s_i * B_i @ A_i``, the
  exact weighted sum of the adapters' updates. Any ranks.
- ``linear``: ``delta = (sum_i sqrt(w_i s_i) B_i) @ (sum_i sqrt(w_i s_i) A_i)`` (signs kept on A): the
  adapters' factors are averaged, so cross terms B_i @ A_j appear; not the sum of the updates. Same
  rank required. Cheap, and a rough approximation (peft's words).
- ``svd`` (and ``ties``, ``dare_linear``, ``dare_ties``, ``magnitude_prune``, with ``density``): peft's
  task-arithmetic variants, passed through.

Output folder, written under a temporary name and renamed into place at the end::

    config.json, model.safetensors...   the merged model (save_pretrained), and the tokenizer
    merge_manifest.json                 written last: the base and every adapter (path, sha256 of
                                        the folder, weight, r, alpha, target modules), the
                                        combination type, the merged model's sha256, versions
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shutil
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger("merge_adapters")

MANIFEST = "merge_manifest.json"
ADAPTER_INFO = "ragops_adapter.json"  # written by train_llm.py into each adapter: the base model's hash
COMBINATION_TYPES = ("linear", "cat", "svd", "ties", "ties_svd", "dare_linear", "dare_ties", "dare_linear_svd",
                     "dare_ties_svd", "magnitude_prune", "magnitude_prune_svd")


def dir_hash(path: Path) -> str:
    """Identity of a folder: names and bytes of its files (model cards and hidden files excluded)."""
    digest = hashlib.sha256()
    for file in sorted(p for p in Path(path).rglob("*") if p.is_file() and not p.name.startswith(".")):
        if file.suffix == ".md" or file.name == MANIFEST:
            continue
        digest.update(file.relative_to(path).as_posix().encode())
        with file.open("rb") as fh:
            for block in iter(lambda fh=fh: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def hash_of(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def adapter_info(adapter: Path | str) -> dict[str, Any]:
    """An adapter's LoRA settings (adapter_config.json) and, when train_llm.py made it, its base's hash."""
    path = Path(adapter)
    config_file = path / "adapter_config.json"
    if not config_file.exists():
        raise ValueError(f"{path} is not a peft adapter folder (no adapter_config.json)")
    config = json.loads(config_file.read_text())
    if config.get("peft_type", "LORA") != "LORA":
        raise ValueError(f"{path} is a {config.get('peft_type')} adapter; only LoRA adapters are merged here")
    r, alpha = int(config["r"]), float(config["lora_alpha"])
    targets = config.get("target_modules")
    info = {"path": str(path), "sha256": dir_hash(path), "r": r, "lora_alpha": alpha,
            "use_rslora": bool(config.get("use_rslora")),
            "scaling": alpha / (r ** 0.5) if config.get("use_rslora") else alpha / r,
            "target_modules": sorted(targets) if isinstance(targets, list) else targets}
    if (path / ADAPTER_INFO).exists():
        trained = json.loads((path / ADAPTER_INFO).read_text())
        info["base_model_sha256"] = trained.get("base_model", {}).get("sha256")
        info["trained"] = {k: trained.get(k) for k in ("inputs_hash", "global_step", "load_in_4bit")}
    return info


def merge_adapters(base_model: Path | str, adapters: Sequence[Path | str], output_dir: Path | str, *,
                   weights: Sequence[float] | None = None, combination_type: str = "linear",
                   density: float | None = None, dtype: str = "float32", device: str = "cpu",
                   check_base: bool = True) -> dict[str, Any]:
    """Merges ``adapters`` (weighted, combined with peft) into ``base_model``; saves the merged model,
    the tokenizer and merge_manifest.json in ``output_dir``; returns the manifest.

    ``weights`` default to 1.0 for one adapter and 1/n each for several. With ``check_base``, an adapter
    that train_llm.py trained on another base (its ragops_adapter.json names another hash) is refused.
    Idempotent: an ``output_dir`` whose manifest names the same inputs is left as it is."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not adapters:
        raise ValueError("no adapter to merge")
    weights = [float(w) for w in weights] if weights is not None else (
        [1.0] if len(adapters) == 1 else [1.0 / len(adapters)] * len(adapters))
    if len(weights) != len(adapters):
        raise ValueError(f"{len(adapters)} adapters but {len(weights)} weights")
    if combination_type not in COMBINATION_TYPES:
        raise ValueError(f"combination_type {combination_type!r} is not one of {COMBINATION_TYPES}")
    base, out = Path(base_model), Path(output_dir)
    if not (base / "config.json").exists():
        raise ValueError(f"{base} is not a transformers model folder (no config.json)")
    base_hash = dir_hash(base)
    infos = [adapter_info(a) | {"weight": w} for a, w in zip(adapters, weights)]
    if check_base:
        wrong = [i["path"] for i in infos if i.get("base_model_sha256") not in (None, base_hash)]
        if wrong:
            raise ValueError(f"adapters {wrong} were trained on another base model than {base} (sha256 {base_hash[:12]})")
    single = len(adapters) == 1 and weights[0] == 1.0
    method = "merge_and_unload" if single else combination_type
    inputs = {"base": base_hash, "adapters": [[i["sha256"], i["weight"]] for i in infos], "method": method,
              "density": density, "dtype": dtype}
    inputs_hash = hash_of(inputs)
    if (out / MANIFEST).exists():
        done = json.loads((out / MANIFEST).read_text())
        if done.get("inputs_hash") == inputs_hash:
            log.info("%s already holds this merge (%s): nothing to do", out, inputs_hash[:12])
            return {**done, "skipped": True}

    started = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=getattr(torch, dtype), local_files_only=True)
    model.to(device)
    names = [f"adapter_{i}" for i in range(len(adapters))]
    peft_model = PeftModel.from_pretrained(model, str(adapters[0]), adapter_name=names[0])
    for name, path in zip(names[1:], adapters[1:]):
        peft_model.load_adapter(str(path), adapter_name=name)
    if single:
        active = names[0]
    else:
        active = "combined"
        kwargs = {"density": density} if density is not None else {}
        peft_model.add_weighted_adapter(names, weights, adapter_name=active, combination_type=combination_type,
                                        **kwargs)
        if peft_model.peft_config[active].use_rslora:
            # The combined adapter's factors already carry every scaling (its alpha is set to its rank so that
            # alpha / r = 1), but an rsLoRA config copied from the first adapter would scale it by sqrt(r).
            from peft.tuners.lora import LoraLayer

            peft_model.peft_config[active].use_rslora = False
            for module in peft_model.modules():
                if isinstance(module, LoraLayer) and active in module.scaling:
                    module.scaling[active] = 1.0
    peft_model.set_adapter(active)
    merged = peft_model.merge_and_unload(adapter_names=[active])

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
    merged.save_pretrained(str(tmp))
    tokenizer_src = next((Path(a) for a in adapters if (Path(a) / "tokenizer_config.json").exists()), base)
    AutoTokenizer.from_pretrained(str(tokenizer_src), local_files_only=True).save_pretrained(str(tmp))
    manifest = {
        "inputs_hash": inputs_hash,
        "base_model": {"path": str(base), "sha256": base_hash},
        "adapters": infos,
        "weights": weights,
        "method": method,
        "combination_type": None if single else combination_type,
        "density": density,
        "dtype": dtype,
        "merged": {"path": str(out), "sha256": dir_hash(tmp)},
        "seconds": round(time.perf_counter() - started, 3),
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "versions": {m: _version(m) for m in ("torch", "transformers", "peft")},
    }
    manifest_tmp = tmp / f".{MANIFEST}.tmp"
    manifest_tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True))
    os.replace(manifest_tmp, tmp / MANIFEST)  # last inside the folder
    if out.exists():
        shutil.rmtree(out)
    os.rename(tmp, out)
    return manifest


def merge_adapter(base_model: Path | str, adapter: Path | str, output_dir: Path | str, *, weight: float = 1.0,
                  dtype: str = "float32", device: str = "cpu", check_base: bool = True) -> dict[str, Any]:
    """Merges one adapter into ``base_model`` (``merge_and_unload``); see ``merge_adapters``."""
    return merge_adapters(base_model, [adapter], output_dir, weights=[weight], dtype=dtype, device=device,
                          check_base=check_base)


def _version(module: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(module)
    except PackageNotFoundError:
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base-model", required=True, help="the base model folder the adapters were trained on")
    p.add_argument("--adapter", action="append", required=True, help="an adapter folder; repeat for several")
    p.add_argument("--weights", default="", help="comma-separated, one per adapter (default 1 for one, 1/n for several)")
    p.add_argument("--combination-type", choices=COMBINATION_TYPES, default="linear")
    p.add_argument("--density", type=float, default=None, help="for ties / dare_* / magnitude_prune")
    p.add_argument("--output-dir", required=True)
    p.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), default="float32")
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-check-base", action="store_true", help="merge even if an adapter names another base's hash")
    return p


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stdout)
    args = build_parser().parse_args(argv)
    weights = [float(w) for w in args.weights.split(",") if w.strip()] if args.weights else None
    try:
        manifest = merge_adapters(args.base_model, args.adapter, args.output_dir, weights=weights,
                                  combination_type=args.combination_type, density=args.density, dtype=args.dtype,
                                  device=args.device, check_base=not args.no_check_base)
    except ValueError as exc:
        raise SystemExit(str(exc)) from exc
    sys.stdout.write(json.dumps({"merge_adapters": manifest}, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
