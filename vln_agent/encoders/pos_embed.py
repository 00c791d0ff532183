"""Resizing the 2-D position embeddings of CLIP image towers to a new input resolution.

A ViT's ``visual.positional_embedding`` is ``[1 + gh * gw, width]``: one class-token row,
then one row per patch of a ``gh x gw`` grid in row-major order. The ResNet's attention
pool (``visual.attnpool.positional_embedding``) has the same layout, with the mean-pooled
token in front. To change the input size the grid part is resampled bicubically on its
2-D grid and the leading token is kept as is (open_clip's ``resize_pos_embed`` does the
same when loading a checkpoint at another size).

CLIP-ViL's ``resize_pos_embed`` assigned the result to ``.weight`` of the parameter, which
the model never reads: the real embedding kept its old data, so its ViT grid features at
other resolutions were wrong. Here the parameter itself is replaced (see
:meth:`~vln_agent.encoders.encoder.CLIPEncoder.set_image_size`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

#: Rows before the grid rows: the class token (ViT) or the mean-pooled token (ResNet).
NUM_PREFIX_TOKENS = 1
#: How the grid is resampled (as open_clip does when loading at another size).
POS_EMBED_INTERPOLATION = "bicubic"


def interpolate_pos_embed(
    pos_embed: torch.Tensor,
    old_grid: tuple[int, int],
    new_grid: tuple[int, int],
    num_prefix_tokens: int = NUM_PREFIX_TOKENS,
) -> torch.Tensor:
    """Resample ``[prefix + gh*gw, C]`` position embeddings from ``old_grid`` to ``new_grid``.

    The prefix rows are copied unchanged. The same grid returns an unchanged copy (no
    interpolation at all, so it is exactly the identity).
    """
    old_grid, new_grid = tuple(old_grid), tuple(new_grid)
    expected = num_prefix_tokens + old_grid[0] * old_grid[1]
    if pos_embed.ndim != 2 or pos_embed.shape[0] != expected:
        raise ValueError(
            f"position embedding of shape {tuple(pos_embed.shape)} does not fit a "
            f"{old_grid[0]}x{old_grid[1]} grid with {num_prefix_tokens} prefix token(s)"
        )
    if old_grid == new_grid:
        return pos_embed.detach().clone()
    prefix = pos_embed[:num_prefix_tokens]  # [P, C]
    grid = pos_embed[num_prefix_tokens:]  # [gh*gw, C]
    channels = grid.shape[1]
    grid = grid.reshape(1, old_grid[0], old_grid[1], channels).permute(0, 3, 1, 2)  # [1, C, gh, gw]
    grid = F.interpolate(
        grid.float(),
        size=new_grid,
        mode=POS_EMBED_INTERPOLATION,
        align_corners=False,
        antialias=True,
    ).to(pos_embed.dtype)  # [1, C, nh, nw]
    grid = grid.permute(0, 2, 3, 1).reshape(new_grid[0] * new_grid[1], channels)  # [nh*nw, C]
    return torch.cat([prefix, grid], dim=0).detach()  # [P + nh*nw, C]


def grid_shape(image_size: tuple[int, int], stride: tuple[int, int]) -> tuple[int, int]:
    """The feature grid of an input: ``image_size // stride``; the size must be a multiple."""
    height, width = image_size
    if height % stride[0] or width % stride[1] or height <= 0 or width <= 0:
        raise ValueError(
            f"image size {height}x{width} is not a positive multiple of the "
            f"{stride[0]}x{stride[1]} patch/stride of this model"
        )
    return height // stride[0], width // stride[1]


def as_size(size: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    """``224`` -> ``(224, 224)``; ``(h, w)`` stays ``(h, w)``."""
    if isinstance(size, int):
        return size, size
    height, width = size
    return int(height), int(width)
