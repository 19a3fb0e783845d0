"""Greedy k-center coreset: a small, spread-out subset of the patch features."""

from __future__ import annotations

import pytest
import torch

from trainer.detectors.components.coreset import greedy_coreset


def blobs(
    count: int, dim: int, per_blob: int = 200, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """`count` tight Gaussian blobs far apart; returns features and each row's blob label."""
    generator = torch.Generator().manual_seed(seed)
    centres = torch.randn(count, dim, generator=generator) * 50
    labels = torch.arange(count).repeat_interleave(per_blob)
    features = centres[labels] + torch.randn(len(labels), dim, generator=generator)
    order = torch.randperm(len(labels), generator=generator)  # blobs interleaved in the rows
    return features[order], labels[order]


@pytest.mark.parametrize("dim", [16, 512], ids=["no-projection", "projected"])
def test_one_point_per_blob_covers_every_blob(dim: int) -> None:
    features, labels = blobs(5, dim)

    selected = greedy_coreset(features, 5, projection_dim=64)

    assert sorted(labels[selected].tolist()) == [0, 1, 2, 3, 4]


def test_returns_count_unique_indices() -> None:
    features = torch.randn(1000, 300, generator=torch.Generator().manual_seed(1))

    selected = greedy_coreset(features, 64, projection_dim=32)

    assert selected.dtype == torch.long and selected.shape == (64,)
    assert len(set(selected.tolist())) == 64
    assert int(selected.min()) >= 0 and int(selected.max()) < 1000


def test_coreset_covers_the_data_better_than_a_random_subset() -> None:
    features, _ = blobs(20, 32, per_blob=50)
    generator = torch.Generator().manual_seed(5)

    def coverage_radius(indices: torch.Tensor) -> float:
        return float(torch.cdist(features, features[indices]).min(dim=1).values.max())

    greedy = coverage_radius(greedy_coreset(features, 20))
    random = coverage_radius(torch.randperm(len(features), generator=generator)[:20])

    assert greedy < random / 5


@pytest.mark.parametrize("count", [300, 301, 1000])
def test_count_at_or_above_the_size_returns_everything(count: int) -> None:
    features = torch.randn(300, 8)

    selected = greedy_coreset(features, count)

    assert selected.tolist() == list(range(300))


def test_same_seed_same_coreset() -> None:
    features = torch.randn(800, 256, generator=torch.Generator().manual_seed(2))

    first = greedy_coreset(features, 40, projection_dim=32, seed=7)
    again = greedy_coreset(features, 40, projection_dim=32, seed=7)
    others = [greedy_coreset(features, 40, projection_dim=32, seed=s) for s in (8, 9, 10)]

    assert torch.equal(first, again)
    assert any(not torch.equal(first, other) for other in others)


def test_the_bank_stops_growing_once_rows_are_covered_to_a_share_of_their_spread() -> None:
    """Rows on a plane (little variation: the coverage radius halves every 4x the picks) are
    covered to 0.4 of their spread by a few hundred picks; rows that vary in every direction
    (a texture) are not, and get the whole `count`."""
    generator = torch.Generator().manual_seed(3)
    plane = torch.rand(3000, 2, generator=generator) @ torch.randn(2, 64, generator=generator)
    texture = torch.randn(3000, 64, generator=generator)

    def coverage_radius(features: torch.Tensor, indices: torch.Tensor) -> float:
        return float(torch.cdist(features, features[indices]).min(dim=1).values.max())

    plain = greedy_coreset(plane, 1000, radius_share=0.4)
    scale = coverage_radius(plane, greedy_coreset(plane, 50))

    assert 50 < len(plain) < 1000
    assert coverage_radius(plane, plain) <= 0.4 * scale
    assert coverage_radius(plane, plain[:-1]) > 0.4 * scale  # the first selection that does
    assert len(greedy_coreset(texture, 1000, radius_share=0.4)) == 1000
