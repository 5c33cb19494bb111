"""Where the repository keeps what it ships: the bundled listings, the app's examples, the default model's folder."""
from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUNDLE = ROOT / "assets" / "myntra-small"  # real Myntra listings with train/valid/test.jsonl and photos
EXAMPLES = ROOT / "assets" / "examples"
DEFAULT_CHECKPOINT = ROOT / "models" / "default"
