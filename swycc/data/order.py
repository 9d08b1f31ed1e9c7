"""The order training sees examples in: a resumable, rank-aware infinite sampler and the batch
iterator over it. The position is part of every checkpoint, so a resumed run (any number of
processes) continues with exactly the batches an uninterrupted one would have seen.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence

import torch


class ResumableSampler:
    """Infinite stream of (epoch, index) for one rank of ``world_size``.

    Each epoch is a permutation seeded by (seed, epoch), wrapped to a multiple of world_size;
    rank r takes positions r, r + world, ... so the ranks together see the same examples, in the
    same global order, as one process. ``advance(n)`` records n examples *consumed* by the loop
    (prefetching does not count); ``state_dict`` is that position, and iteration starts there.
    """

    def __init__(self, dataset_len: int, seed: int, rank: int = 0, world_size: int = 1,
                 shuffle: bool = True):
        if dataset_len < 1:
            raise ValueError("empty dataset")
        self.n, self.seed, self.rank, self.world, self.shuffle = (dataset_len, seed, rank,
                                                                  world_size, shuffle)
        self.per_rank = -(-dataset_len // world_size)
        self.epoch, self.offset = 0, 0

    def epoch_indices(self, epoch: int) -> list[int]:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 7919 + epoch)
            perm = torch.randperm(self.n, generator=g).tolist()
        else:
            perm = list(range(self.n))
        total = self.per_rank * self.world
        perm = (perm * (-(-total // self.n)))[:total]
        return perm[self.rank::self.world]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch, offset = self.epoch, self.offset
        while True:
            for idx in self.epoch_indices(epoch)[offset:]:
                yield epoch, idx
            epoch, offset = epoch + 1, 0

    def advance(self, n: int) -> None:
        self.offset += n
        while self.offset >= self.per_rank:
            self.offset -= self.per_rank
            self.epoch += 1

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "offset": self.offset}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.offset = int(state["epoch"]), int(state["offset"])


def batch_size_choice(sizes: Sequence[int], seed: int, epoch: int, position: int) -> int:
    """The crop side of the batch that starts at ``position`` of ``epoch``: one of ``sizes``,
    drawn from (seed, epoch, position) alone, so that a resumed run draws the same."""
    return sizes[random.Random(f"{seed}:{epoch}:{position}").randrange(len(sizes))]


class _Chunks:
    """Keys in batches. With ``sizes``, every key of a batch carries that batch's crop side,
    (epoch, index, side): several resolutions in one run, one per batch."""

    def __init__(self, sampler: ResumableSampler, batch_size: int, sizes: Sequence[int] = ()):
        self.sampler, self.batch_size, self.sizes = sampler, batch_size, tuple(sizes)

    def __iter__(self):
        epoch, position = self.sampler.epoch, self.sampler.offset  # of the next key
        batch, side = [], None
        for key in self.sampler:
            if key[0] != epoch:
                epoch, position = key[0], 0
            if self.sizes and not batch:
                side = batch_size_choice(self.sizes, self.sampler.seed, epoch, position)
            batch.append(key if side is None else (*key, side))
            position += 1
            if len(batch) == self.batch_size:
                yield batch
                batch = []


def make_loader(dataset, batch_size: int, sampler: ResumableSampler,
                num_workers: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Infinite iterator of (images (B, 3, S, S), labels (B,)) from the sampler's position.
    A dataset with ``batch_crop_sizes`` (data.crop_sizes) gets one of them per batch."""
    batches = _Chunks(sampler, batch_size, getattr(dataset, "batch_crop_sizes", ()))
    if num_workers > 0:
        loader = torch.utils.data.DataLoader(dataset, batch_sampler=batches,
                                             num_workers=num_workers, persistent_workers=True)
        return iter(loader)

    def gen():
        for keys in batches:
            items = [dataset[k] for k in keys]
            yield (torch.stack([x for x, _ in items]),
                   torch.tensor([y for _, y in items], dtype=torch.long))
    return gen()
