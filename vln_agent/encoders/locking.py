"""Freezing CLIP towers for fine-tuning (LiT-style locking, with partial unlocking).

Locking sets ``requires_grad = False``; :func:`frozen_to_eval` then puts every fully
frozen submodule in eval mode, so that frozen parts never update BatchNorm statistics or
apply dropout while the rest of the model trains.
"""

from __future__ import annotations

from open_clip.modified_resnet import ModifiedResNet
from torch import nn


def lock_image_tower(model: nn.Module, unlocked_groups: int = 0) -> None:
    """Freeze the image tower except its last ``unlocked_groups`` layer groups.

    ViT groups (open_clip's): embeddings, each block but the last, last block + ``ln_post``,
    ``proj``. ModifiedResNet groups: stem, ``layer1`` ... ``layer4``, ``attnpool``.
    """
    if unlocked_groups < 0:
        raise ValueError(f"unlocked_groups must be >= 0, got {unlocked_groups}")
    visual = model.visual
    if isinstance(visual, ModifiedResNet):
        _lock_resnet(visual, unlocked_groups)
    else:
        model.lock_image_tower(unlocked_groups=unlocked_groups, freeze_bn_stats=False)


def lock_text_tower(model: nn.Module, unlocked_layers: int = 0) -> None:
    """Freeze the text tower except its last ``unlocked_layers`` groups (open_clip's groups:
    embeddings, each block but the last, last block + ``ln_final``, ``text_projection``)."""
    if unlocked_layers < 0:
        raise ValueError(f"unlocked_layers must be >= 0, got {unlocked_layers}")
    model.lock_text_tower(unlocked_layers=unlocked_layers, freeze_layer_norm=True)


def frozen_to_eval(module: nn.Module) -> None:
    """Put every submodule whose parameters are all frozen in eval mode (recursively)."""
    for child in module.children():
        params = list(child.parameters())
        if params and not any(p.requires_grad for p in params):
            child.eval()
        else:
            frozen_to_eval(child)


def _lock_resnet(visual: ModifiedResNet, unlocked_groups: int) -> None:
    for param in visual.parameters():
        param.requires_grad = False
    stem = nn.ModuleList(
        [visual.conv1, visual.bn1, visual.conv2, visual.bn2, visual.conv3, visual.bn3]
    )
    groups = [stem, visual.layer1, visual.layer2, visual.layer3, visual.layer4, visual.attnpool]
    if unlocked_groups == 0:
        return
    for group in groups[-unlocked_groups:]:
        for param in group.parameters():
            param.requires_grad = True


def count_trainable(module: nn.Module) -> int:
    """Number of parameter elements with ``requires_grad``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
