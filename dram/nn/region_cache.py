"""Frozen-CNN region features computed once per photo and kept on disk.

On a CPU the image encoder is frozen, so its features never change: caching them turns
the image side of every training epoch into a lookup.
"""
from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import torch
from tqdm import tqdm

from dram.data.images import load_image
from dram.data.photo_sources import photo_label
from dram.errors import ImageError
from dram.files import write_atomically
from dram.nn.encoders import ImageRegionEncoder

log = logging.getLogger(__name__)


# The cache keeps a frozen CNN's features in 16 bits; the model learns from those.
CACHED_DTYPE = torch.float16


def as_cached(regions: torch.Tensor) -> torch.Tensor:
    """Region features rounded as the cache stores them, so a photo read live (the app) gives the
    model the same numbers as the cached one (training, `predict`)."""
    return regions.to(CACHED_DTYPE).to(regions.dtype)


def _key(photo: Path | bytes) -> str:
    """A file by its path, size and time (not read again while unchanged); a photo's bytes by their content."""
    if isinstance(photo, bytes):
        return hashlib.sha1(photo).hexdigest()
    stat = photo.stat()
    return hashlib.sha1(f"{photo.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()


@torch.no_grad()
def region_features(encoder: ImageRegionEncoder, encoder_name: str, image_size: int,
                    paths: list[Path | bytes | None], cache_dir: Path | None = None, batch_size: int = 64,
                    device: torch.device | str = "cpu") -> tuple[torch.Tensor, list[bool]]:
    """(N, R, C) float16 features and a has-image flag per photo (a file or its bytes); unreadable photos are
    logged and skipped."""
    store: dict[str, torch.Tensor] = {}
    cache_file = None
    if cache_dir is not None:
        cache_dir.mkdir(parents=True, exist_ok=True)
        cache_file = cache_dir / f"{encoder_name.replace('/', '_').replace(':', '_')}-{image_size}.pt"
        if cache_file.exists():
            store = torch.load(cache_file)
    keys = [(_key(p) if isinstance(p, bytes) or (p is not None and p.exists()) else None) for p in paths]
    todo = sorted({k: p for k, p in zip(keys, paths) if k is not None and k not in store}.items(),
                  key=lambda kp: kp[0] if isinstance(kp[1], bytes) else str(kp[1]))  # files in path order
    encoder = encoder.to(device).eval()
    bad: set[str] = set()
    for start in tqdm(range(0, len(todo), batch_size), desc="image features", unit="batch", disable=not todo):
        chunk = todo[start : start + batch_size]
        pixels, chunk_keys = [], []
        for key, path in chunk:
            try:
                pixels.append(encoder.preprocess(load_image(path), image_size))
                chunk_keys.append(key)
            except ImageError as err:
                log.warning("skipping photo %s: %s", photo_label(path), err)
                bad.add(key)
        if pixels:
            feats = encoder(torch.stack(pixels).to(device)).to(CACHED_DTYPE).cpu()
            store.update(zip(chunk_keys, feats))
    if todo and cache_file is not None:
        write_atomically(cache_file, lambda partial: torch.save(store, partial))
    missing = [p for p, k in zip(paths, keys) if p is not None and k is None]
    if missing:
        log.warning("%d photos not found (first: %s); those listings are used as text-only", len(missing), missing[0])
    grid = encoder.grid ** 2
    zeros = torch.zeros(grid, encoder.channels, dtype=torch.float16)
    has = [k is not None and k in store for k in keys]
    feats = torch.stack([store[k] if h else zeros for k, h in zip(keys, has)]) if paths else torch.zeros(0, grid, encoder.channels)
    return feats, has
