"""Class-conditional images from a latent DiT and the autoencoder its latents came from.

    gen = Generator.load("runs/dit/export", "runs/ae/export")
    for labels, images in gen.batches(gen.labels("3,7", per_class=8), seed=0):
        ...  # images: (B, 3, H, W) in [-1, 1]

The DiT samples normalised latents (DDIM with classifier-free guidance over the class label);
they are de-normalised with the latent dataset's per-channel mean and std and decoded by the
autoencoder (sampling decoders with their own steps and guidance). ``Generator.load`` refuses
an autoencoder whose config or weights differ from the one the DiT export records.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch


class GenerateError(ValueError):
    """A class that the DiT does not know, or an autoencoder it was not trained with."""


def parse_classes(text: str, class_names: list[str]) -> list[int]:
    """'3,goldfish' -> class indices; an index >= num_classes or an unknown name is an error."""
    out = []
    for item in (t.strip() for t in text.split(",")):
        if not item:
            continue
        if item in class_names:
            out.append(class_names.index(item))
        elif item.lstrip("-").isdigit():
            k = int(item)
            if not 0 <= k < len(class_names):
                raise GenerateError(f"--classes: class index {k} outside [0, "
                                    f"{len(class_names)}) of this DiT")
            out.append(k)
        else:
            shown = ", ".join(class_names[:10]) + (", ..." if len(class_names) > 10 else "")
            raise GenerateError(f"--classes: unknown class {item!r} (this DiT knows "
                                f"{len(class_names)}: {shown})")
    if not out:
        raise GenerateError("--classes: no class given")
    return list(dict.fromkeys(out))  # each class once, in the order given


def check_autoencoder(dit_meta: dict, ae_checkpoint: str | os.PathLike | None) -> dict:
    """The autoencoder's identity, refused unless it is the one the DiT's latents came from."""
    from swycc.generation.latents import autoencoder_identity

    want = dit_meta["latents"]["identity"]
    if not ae_checkpoint:
        raise GenerateError("--ae-checkpoint is required: the DiT export records which "
                            "autoencoder its latents came from, not its weights; pass the "
                            "checkpoint given to encode-dataset")
    have = json.loads(json.dumps(autoencoder_identity(ae_checkpoint)))
    if have["weights_sha256"] != want.get("weights_sha256"):
        raise GenerateError(f"--ae-checkpoint {ae_checkpoint}: not the autoencoder this DiT was "
                            f"trained on (its weights differ: expected sha256 "
                            f"{str(want.get('weights_sha256'))[:12]}..., got "
                            f"{have['weights_sha256'][:12]}...)")
    differ = config_differences(want.get("config") or {}, have["config"])
    if differ:
        raise GenerateError(f"--ae-checkpoint {ae_checkpoint}: not the autoencoder this DiT was "
                            f"trained on (its config differs in {', '.join(differ[:5])})")
    return have


def config_differences(recorded: dict, current: dict) -> list[str]:
    """Dotted options whose values differ between a recorded autoencoder config and the
    checkpoint's. Both are read through today's Config first, so an option added to swycc after
    the record was made (present in one, defaulted in the other) is not a difference."""
    from swycc.config import Config

    try:
        recorded = json.loads(json.dumps(Config.from_dict(recorded).to_dict()))
    except (ValueError, TypeError):
        pass  # an option since removed: compare as recorded

    def walk(a, b, prefix=""):
        if isinstance(a, dict) and isinstance(b, dict):
            for k in sorted(set(a) | set(b)):
                yield from walk(a.get(k), b.get(k), f"{prefix}{k}.")
        elif a != b:
            yield prefix.rstrip(".")

    return list(walk(recorded, current))


def balanced_labels(n: int, num_classes: int) -> torch.Tensor:
    """n labels cycling through every class (0, 1, ..., K-1, 0, ...): as many per class as n
    allows, the first n mod K classes one more."""
    if n < 1:
        raise GenerateError(f"need at least one image, got {n}")
    return torch.arange(n) % num_classes


@dataclass
class Generator:
    """A DiT, its export's record of the latents, and the autoencoder that decodes them."""

    dit: torch.nn.Module
    meta: dict
    autoencoder: torch.nn.Module
    device: str = "cpu"

    @classmethod
    def load(cls, dit_path: str | os.PathLike, ae_checkpoint: str | os.PathLike | None,
             device: str = "cpu") -> Generator:
        from swycc.autoencoders.base import Autoencoder
        from swycc.generation.task import load_dit

        dit, meta = load_dit(dit_path)
        check_autoencoder(meta, ae_checkpoint)
        ae = Autoencoder.from_pretrained(ae_checkpoint).to(device)
        return cls(dit.to(device), meta, ae, device)

    @property
    def class_names(self) -> list[str]:
        return list(self.meta["latents"]["class_names"])

    @property
    def image_size(self) -> int:
        return self.autoencoder.config.model.image_size

    def labels(self, classes: str, per_class: int) -> torch.Tensor:
        """``classes`` as parse_classes reads them, each repeated ``per_class`` times."""
        ks = parse_classes(classes, self.class_names)
        return torch.tensor(ks).repeat_interleave(per_class)

    def denormalize(self, z: torch.Tensor) -> torch.Tensor:
        """Undo the latent dataset's per-channel normalisation: z * std + mean."""
        from swycc.generation.latents import denormalize

        lat = self.meta["latents"]
        return denormalize(z, lat["mean"], lat["std"])

    def check_decoder(self, decoder: str) -> None:
        """"sample", or "initial" where the autoencoder has a deterministic decoder."""
        from swycc.autoencoders.kinds import kind_of

        if decoder not in ("sample", "initial"):
            raise GenerateError(f"decoder must be 'sample' or 'initial', got {decoder!r}")
        if decoder == "initial" and kind_of(self.autoencoder).initial_label is None:
            raise GenerateError(f"a {self.autoencoder.kind} autoencoder has no deterministic "
                                "decoder (--decoder initial)")

    @torch.no_grad()
    def batches(self, labels: torch.Tensor, *, steps: int | None = None,
                guidance: float | None = None, decoder_steps: int = 20,
                decoder_guidance: float = 0.5, seed: int = 0, batch_size: int = 16,
                decoder: str = "sample") -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(labels, images) batch by batch, images (B, 3, H, W) in [-1, 1] on the CPU. One
        generator seeded by ``seed`` draws the DiT's and the decoder's noise in order, so the
        same labels, settings and seed give the same images. ``decoder="initial"`` decodes with
        the autoencoder's deterministic decoder (SWYCC's D_Initial) instead: the same latents
        without D_Refine's sampling."""
        from swycc.generation.objective import dit_sample

        self.check_decoder(decoder)
        sampling = self.meta["config"].sampling
        steps = steps or sampling.steps
        guidance = sampling.guidance if guidance is None else guidance
        shape = tuple(self.meta["latents"]["latent_shape"])
        g = torch.Generator(device=self.device).manual_seed(seed)
        for i in range(0, len(labels), batch_size):
            y = labels[i:i + batch_size].to(self.device)
            z = self.denormalize(dit_sample(self.dit, y, shape, steps, guidance, g))
            if decoder == "initial":
                x = self.autoencoder.decode_initial(z).clamp(-1, 1)
            else:
                x = self.autoencoder.decode(z, steps=decoder_steps, guidance=decoder_guidance,
                                            generator=g)
            yield y.cpu(), x.float().cpu()


__all__ = ["GenerateError", "Generator", "balanced_labels", "check_autoencoder",
           "parse_classes"]
