"""Small trained checkpoints that ship with clipvil, each described by a card (``NAME.md``).

- ``clipvil-small-synthetic.pt``: the small CLIP (``clipvil-small``) pretrained
  contrastively on the ``small`` synthetic world's image-caption pairs;
- ``follower-small-clip.pt``: the EnvDrop follower trained on that world with its features;
- ``qa-vqa-small-clip.pt``, ``qa-snli-ve-small-clip.pt``, ``qa-vcr-small-clip.pt``: the QA
  fusion model of each task, trained on that world's ``qa/`` with the small CLIP's grid
  features (``clipvil demo`` evaluates them);
- ``vl-pretrain-small-clip.pt``: the single-stream transformer pretrained with
  ``clipvil pretrain-vl`` (MLM + image-text matching, then + VQA) on that world's captions
  and questions over the small CLIP's grid features (``train-qa --init`` fine-tunes it).

Use :func:`checkpoint_path` to find one (it works for a checkout and for an installed wheel).
"""

from __future__ import annotations

from pathlib import Path

from envs.errors import DataError

CHECKPOINT_DIR = Path(__file__).resolve().parent


def checkpoint_path(name: str) -> Path:
    """The path of a shipped checkpoint; a one-line DataError when it is not there."""
    path = CHECKPOINT_DIR / name
    if not path.is_file():
        shipped = sorted(p.name for p in CHECKPOINT_DIR.glob("*.pt"))
        raise DataError(
            path, f"no such shipped checkpoint (shipped: {', '.join(shipped) or 'none'})"
        )
    return path


def list_checkpoints() -> list[str]:
    """Names of the shipped checkpoints."""
    return sorted(p.name for p in CHECKPOINT_DIR.glob("*.pt"))
