"""The fusion model's image positions (cell index, or row + column) and its grid sampling."""

from __future__ import annotations

import pytest
import torch

from vqa_ve.models.fusion import (
    GRID_POSITIONS,
    INDEX_POSITIONS,
    QABatch,
    QAFusionModel,
    QAModelConfig,
)

BASE = dict(
    task="snli-ve",
    vocab_size=20,
    feature_dim=6,
    num_regions=12,
    hidden_size=16,
    num_layers=1,
    num_heads=2,
    dropout=0.0,
)


def batch(size: int = 3, regions: int = 12) -> QABatch:
    torch.manual_seed(0)
    tokens = torch.randint(4, 20, (size, 5))
    return QABatch(tokens, torch.zeros_like(tokens), torch.randn(size, regions, 6))


def test_2d_positions_are_a_row_plus_a_column_embedding():
    model = QAFusionModel(QAModelConfig(**BASE, image_positions=GRID_POSITIONS, grid_height=3))
    assert model.image_row.num_embeddings == 3 and model.image_column.num_embeddings == 4
    cells = torch.tensor([0, 5, 11])  # (0, 0), (1, 1), (2, 3) on a 3 x 4 grid
    expected = model.image_row(torch.tensor([0, 1, 2])) + model.image_column(
        torch.tensor([0, 1, 3])
    )
    assert torch.equal(model.cell_positions(cells), expected)
    assert not hasattr(model, "image_position")


def test_index_positions_stay_the_default_with_the_former_parameters():
    model = QAFusionModel(QAModelConfig(**BASE))
    assert model.config.image_positions == INDEX_POSITIONS
    assert model.image_position.num_embeddings == 12


def test_a_grid_that_does_not_tile_is_refused():
    with pytest.raises(ValueError, match="2d positions"):
        QAFusionModel(QAModelConfig(**BASE, image_positions=GRID_POSITIONS, grid_height=5))
    with pytest.raises(ValueError, match="image_positions"):
        QAModelConfig(**BASE, image_positions="3d")


def test_all_cells_given_explicitly_equal_no_cells():
    model = QAFusionModel(QAModelConfig(**BASE, image_positions=GRID_POSITIONS, grid_height=3))
    model.eval()
    data = batch()
    everything = torch.arange(12).expand(3, 12)
    a = model.encode(data.tokens, data.segments, data.image)
    b = model.encode(data.tokens, data.segments, data.image, everything)
    assert torch.allclose(a, b, atol=1e-6)


def test_grid_sampling_only_in_training_and_a_vcr_question_shares_its_cells():
    model = QAFusionModel(QAModelConfig(**{**BASE, "task": "vcr"}, grid_sample=4))
    data = batch()
    model.train()
    image, cells = model.sample_cells(data.image)
    assert image.shape == (3, 4, 6) and cells.shape == (3, 4)
    assert (cells.diff(dim=1) > 0).all()  # distinct cells, in grid order
    model.eval()
    assert model.sample_cells(data.image)[1] is None
    seen = []
    model.train()
    hook = model.encoder.register_forward_pre_hook(
        lambda m, args, kw: seen.append(args[0]), with_kwargs=True
    )
    tokens = torch.randint(4, 20, (3, 4, 5))
    torch.manual_seed(1)
    model(QABatch(tokens, torch.zeros_like(tokens), data.image))
    hook.remove()
    hidden = seen[0]  # [3*4, L+4, d]: the 4 choices of a question see the same image tokens
    images = hidden[:, 5:].reshape(3, 4, 4, -1)
    assert torch.allclose(images[:, 0], images[:, 3])
