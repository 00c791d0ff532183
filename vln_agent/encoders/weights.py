"""Where CLIP weights come from: a pretrained tag found in the local cache, or a local file.

Offline first. open_clip's own ``create_model(name, pretrained=tag)`` asks the Hugging Face
hub (or a URL) for the file every time, and with the network unreachable it spends ~45 s in
retries before failing. Here a tag is resolved by looking in the caches open_clip downloads
into, with file-system checks only:

* the Hugging Face hub cache (``cache_dir`` or ``$HF_HUB_CACHE`` / ``$HF_HOME/hub``), for
  tags whose registry entry has an ``hf_hub`` id (all of open_clip's current tags), trying
  the ``.safetensors`` alternative first, as open_clip does;
* open_clip's URL cache (``cache_dir`` or ``~/.cache/clip``), where ``url`` entries land
  (OpenAI's original TorchScript ``.pt`` files, for instance).

Nothing is fetched unless ``allow_download=True``; a missing tag then fails at once with a
:class:`WeightsUnavailableError` that says how to supply the weights.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import open_clip
from open_clip.constants import HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME

from envs.errors import DataError
from vln_agent.encoders.checkpoint import is_torchscript_archive, read_checkpoint_metadata

#: Where open_clip's URL downloads go when no ``cache_dir`` is given.
OPENCLIP_URL_CACHE = Path("~/.cache/clip")
#: Entries of a pretrained tag's registry config that set the image preprocessing.
PREPROCESS_KEYS = ("mean", "std", "interpolation", "resize_mode")
#: File suffixes that mark a ``pretrained`` value as a path rather than a tag.
WEIGHT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".ckpt", ".npz")


class WeightsUnavailableError(DataError):
    """The weights of a pretrained tag are not on this machine (and were not downloaded)."""


@dataclass(frozen=True)
class WeightsSource:
    """Resolved ``pretrained`` argument: the weight file and what it implies.

    Attributes:
        path: The local weight file, or None for a random init.
        tag: The pretrained tag it was resolved from (None for a file given directly).
        preprocess: Preprocessing overrides (mean, std, interpolation, resize_mode).
        quick_gelu: The activation the weights were trained with, when the source says so.
        torchscript: The file is a TorchScript archive (read with ``torch.jit.load``).
        metadata: The clipvil checkpoint metadata (see :mod:`.checkpoint`), or None.
    """

    path: str | None = None
    tag: str | None = None
    preprocess: dict[str, Any] = field(default_factory=dict)
    quick_gelu: bool | None = None
    torchscript: bool = False
    metadata: dict[str, Any] | None = None


def resolve_pretrained(
    model_name: str,
    pretrained: str | os.PathLike[str] | None,
    cache_dir: str | os.PathLike[str] | None = None,
    allow_download: bool = False,
) -> WeightsSource:
    """Turn a ``pretrained`` tag or file path into a local :class:`WeightsSource`.

    Raises :class:`WeightsUnavailableError` for a known tag whose weights are not cached,
    and :class:`DataError` for an unknown tag, a missing file or an unreadable one.
    """
    if pretrained is None or pretrained == "":
        return WeightsSource()
    text = os.fspath(pretrained)
    tag_cfg = open_clip.get_pretrained_cfg(model_name, text)
    if tag_cfg:  # a tag wins over a file of the same name, as in open_clip
        return _resolve_tag(model_name, text, tag_cfg, cache_dir, allow_download)
    if os.path.isfile(text):
        return _resolve_file(text)
    if os.sep in text or text.endswith(WEIGHT_SUFFIXES):
        raise DataError(text, "file not found (expected a CLIP weight file)")
    tags = open_clip.list_pretrained_tags_by_model(model_name)
    known = f"known tags: {', '.join(tags)}" if tags else "it has no pretrained tags"
    raise DataError(
        f"{model_name}/{text}",
        f"not a local file and not a pretrained tag of {model_name} ({known})",
    )


def _resolve_file(path: str) -> WeightsSource:
    torchscript = is_torchscript_archive(path)
    metadata = read_checkpoint_metadata(path)
    if torchscript:
        # OpenAI's released TorchScript CLIP models were all trained with QuickGELU.
        return WeightsSource(path=path, quick_gelu=True, torchscript=True)
    if metadata is not None:
        quick_gelu = bool(metadata["model_config"].get("quick_gelu", False))
        preprocess = {
            k: metadata["preprocess_cfg"][k]
            for k in PREPROCESS_KEYS
            if k in metadata["preprocess_cfg"]
        }
        return WeightsSource(
            path=path, preprocess=preprocess, quick_gelu=quick_gelu, metadata=metadata
        )
    return WeightsSource(path=path)


def _resolve_tag(
    model_name: str,
    tag: str,
    tag_cfg: dict[str, Any],
    cache_dir: str | os.PathLike[str] | None,
    allow_download: bool,
) -> WeightsSource:
    preprocess = {key: tag_cfg[key] for key in PREPROCESS_KEYS if key in tag_cfg}
    quick_gelu = bool(tag_cfg.get("quick_gelu", False))
    path = cached_weights(tag_cfg, cache_dir)
    if path is None and allow_download and not _hf_offline():
        path = _download(model_name, tag, tag_cfg, cache_dir)
    if path is None:
        raise _unavailable(model_name, tag, tag_cfg, cache_dir, allow_download)
    return WeightsSource(
        path=path,
        tag=tag,
        preprocess=preprocess,
        quick_gelu=quick_gelu,
        torchscript=is_torchscript_archive(path),
    )


def cached_weights(
    tag_cfg: dict[str, Any], cache_dir: str | os.PathLike[str] | None = None
) -> str | None:
    """The cached weight file of a pretrained tag's registry config, or None (no network)."""
    if tag_cfg.get("file"):
        return tag_cfg["file"] if os.path.isfile(tag_cfg["file"]) else None
    repo_id, filenames = _hf_files(tag_cfg)
    if repo_id:
        from huggingface_hub import try_to_load_from_cache

        for filename in filenames:
            found = try_to_load_from_cache(repo_id, filename, cache_dir=_str(cache_dir))
            if isinstance(found, str) and os.path.isfile(found):
                return found
    url_file = _url_cache_file(tag_cfg, cache_dir)
    if url_file is not None and url_file.is_file():
        return str(url_file)
    return None


def _hf_files(tag_cfg: dict[str, Any]) -> tuple[str, list[str]]:
    """The hub repo id and the file names open_clip would download, safetensors first."""
    hf_hub = tag_cfg.get("hf_hub", "")
    if not hf_hub:
        return "", []
    repo_id, filename = os.path.split(hf_hub)
    filename = filename or HF_WEIGHTS_NAME
    if filename == HF_WEIGHTS_NAME:
        return repo_id, [HF_SAFE_WEIGHTS_NAME, filename]
    if filename.endswith((".bin", ".pth")):
        return repo_id, [filename[:-4] + ".safetensors", filename]
    return repo_id, [filename]


def _url_cache_file(
    tag_cfg: dict[str, Any], cache_dir: str | os.PathLike[str] | None
) -> Path | None:
    url = tag_cfg.get("url", "")
    if not url:
        return None
    root = Path(cache_dir) if cache_dir else OPENCLIP_URL_CACHE.expanduser()
    return root / os.path.basename(url)


def _cache_locations(
    tag_cfg: dict[str, Any], cache_dir: str | os.PathLike[str] | None
) -> list[str]:
    locations = []
    repo_id, _ = _hf_files(tag_cfg)
    if repo_id:
        from huggingface_hub import constants

        hub_cache = _str(cache_dir) or constants.HF_HUB_CACHE
        locations.append(os.path.join(hub_cache, "models--" + repo_id.replace("/", "--")))
    url_file = _url_cache_file(tag_cfg, cache_dir)
    if url_file is not None:
        locations.append(str(url_file))
    return locations


def _hf_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def _download(
    model_name: str, tag: str, tag_cfg: dict[str, Any], cache_dir: str | os.PathLike[str] | None
) -> str:
    from open_clip.pretrained import download_pretrained

    try:
        path = download_pretrained(tag_cfg, cache_dir=_str(cache_dir))
    except Exception as err:  # noqa: BLE001 - any download failure becomes one line
        raise WeightsUnavailableError(
            f"{model_name}/{tag}", f"downloading the CLIP weights failed: {err}"
        ) from err
    return path


def _unavailable(
    model_name: str,
    tag: str,
    tag_cfg: dict[str, Any],
    cache_dir: str | os.PathLike[str] | None,
    allow_download: bool,
) -> WeightsUnavailableError:
    where = ", ".join(_cache_locations(tag_cfg, cache_dir)) or "no cache location"
    if not allow_download:
        why = "downloads are off (allow_download=False), so nothing is fetched"
    else:
        why = "HF_HUB_OFFLINE=1 is set, so nothing is fetched"
    fetch = (
        f"python -c 'import open_clip; open_clip.create_model_and_transforms("
        f'"{model_name}", pretrained="{tag}")\''
    )
    return WeightsUnavailableError(
        f"{model_name}/{tag}",
        f"CLIP weights are not in the local cache ({where}); download them once with network "
        f"access ({fetch}) or pass a local weight file (pretrained=PATH, or --pretrained "
        f"PATH on the command line); {why}",
    )


def _str(path: str | os.PathLike[str] | None) -> str | None:
    return os.fspath(path) if path is not None else None
