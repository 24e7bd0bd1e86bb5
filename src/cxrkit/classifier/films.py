"""Films for a batch job: read (or taken as arrays) and prepared, one item per film.

No torch here: `FilmFiles.item` (numpy) feeds `cxrkit.classifier.pipeline` (the graph
runtimes never import torch); indexing a `FilmFiles` gives the same item with a torch
tensor, for DataLoader users.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cxrkit.card import ModelCard
from cxrkit.errors import ImageReadError
from cxrkit.io import read_image
from cxrkit.io.film import as_film
from cxrkit.io.resize import resize_film
from cxrkit.segment.crop import Box, FilmCrop


@dataclass(frozen=True)
class FilmPrep:
    """A model card's preprocessing: film -> network input (S, S) float32 in [0, 1].

    Array to film (`as_film`: integers scaled, RGB averaged, the film contract checked),
    then the card's crop (`FilmCrop`), then its resize. `Classifier.prepare` is this.
    """

    size: int
    resize_mode: str = "squash"
    crop: FilmCrop = FilmCrop()

    @classmethod
    def from_card(cls, card: ModelCard) -> FilmPrep:
        """The preparation a model card's `preprocessing` describes."""
        pre = card.preprocessing
        return cls(pre.size, pre.resize_mode, FilmCrop(pre.crop))

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """The network input for a film."""
        return resize_film(self.crop(as_film(image)), self.size, self.resize_mode)

    @property
    def draft_side(self) -> int:
        """The smallest side a JPEG may be decoded at (Pillow `draft`) without losing
        pixels this preparation needs: the input size, twice it when a crop comes first."""
        return self.size if self.crop.name is None else 2 * self.size

    def with_box(self, image: np.ndarray) -> tuple[np.ndarray, Box]:
        """(network input, the crop's box in the film's pixels)."""
        cropped, box = self.crop.box(as_film(image))
        return resize_film(cropped, self.size, self.resize_mode), box


def film_name(films: Sequence[Path | np.ndarray], i: int) -> str:
    """A film's name in output rows: its path, or `array[i]` for an in-memory image."""
    film = films[i]
    return f"array[{i}]" if isinstance(film, np.ndarray) else str(film)


class FilmFiles:
    """Films prepared by `prepare` (a `Classifier.prepare`); a bad file yields its error.

    Items are paths or image arrays. With `screen`, items also carry the screening
    model's input and the guard's rule verdict (`cxrkit.classifier.screen.screen_input`;
    `graph`: for the screening net's ONNX graph).
    `draft=N` decodes JPEG files at the smallest DCT scale that keeps N pixels a side.
    """

    def __init__(
        self,
        films: Sequence[Path | np.ndarray],
        prepare: Callable[[np.ndarray], np.ndarray],
        *,
        screen: bool = False,
        draft: int | None = None,
        graph: bool = False,
    ) -> None:
        self.films, self.prepare, self.screen = list(films), prepare, screen
        self.draft, self.graph = draft, graph

    def __len__(self) -> int:
        return len(self.films)

    def __getitem__(self, i: int) -> dict[str, Any]:
        """`item(i)` with the image as a torch tensor (1, S, S) (a DataLoader dataset)."""
        import torch

        out = self.item(i)
        if "image" in out:
            out["image"] = torch.from_numpy(out["image"])[None]
        return out

    def item(self, i: int) -> dict[str, Any]:
        """`{"index", "image"}` (the prepared film, (S, S) float32) plus `screen` and `rule`
        when screening; `{"index", "error"}` for a film that cannot be read."""
        from cxrkit.classifier.screen import screen_input

        try:
            item = self.films[i]
            if isinstance(item, np.ndarray):
                image = as_film(item, film_name(self.films, i))
            else:
                image, _ = read_image(item, draft=self.draft)
            film = self.prepare(image)
        except ImageReadError as exc:
            return {"index": i, "error": exc.reason}
        except Exception as exc:  # one odd file must not stop a batch job
            return {"index": i, "error": f"unexpected {type(exc).__name__}: {exc}"}
        out = {"index": i, "image": np.ascontiguousarray(film, dtype=np.float32)}
        screened = screen_input(image, graph=self.graph) if self.screen else None
        if screened is not None:
            out["screen"], out["rule"] = screened
        return out


def collate_films(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack the good films; keep the bad ones' (index, error) aside; `order` is all indices.
    Images stay what the items hold: torch tensors from `FilmFiles[i]`, arrays from `item`."""
    good = [it for it in items if "image" in it]
    images = [it["image"] for it in good]
    if images and isinstance(images[0], np.ndarray):
        stacked: Any = np.stack(images)
    elif images:
        import torch

        stacked = torch.stack(images)
    else:
        stacked = None
    return {
        "image": stacked,
        "index": [it["index"] for it in good],
        "errors": [(it["index"], it["error"]) for it in items if "error" in it],
        "order": [it["index"] for it in items],
        "screen": np.stack([it["screen"] for it in good]) if good and "screen" in good[0] else None,
        "rule": [it.get("rule", "") for it in good],
    }
