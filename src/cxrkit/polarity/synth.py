"""Generated non-chest-film images (photos, documents, screens, CT slices, film crops).

Two families: `train` generators feed the guard's training; `test` generators are
different programs (other photos, fonts, layouts, anatomy) used only to measure it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy.ndimage import gaussian_filter

Generator = Callable[[np.random.Generator, int], np.ndarray]
GENERATORS_VERSION = 3  # bump when a generator changes (cached example banks)

TRAIN_PHOTOS = (
    "astronaut", "brick", "cat", "cell", "checkerboard", "chelsea", "clock", "colorwheel",
    "grass", "gravel", "hubble_deep_field", "immunohistochemistry", "logo", "microaneurysms",
    "page",
)  # fmt: skip
TEST_PHOTOS = ("camera", "coffee", "coins", "horse", "moon", "retina", "rocket", "text")
_WORDS_TEXT = (
    "patient report clinical findings impression history the of and with no acute chest "
    "lungs clear heart size normal exam date signed results table figure invoice total "
    "account settings file edit view help window search home profile welcome data model "
    "summary page section method analysis value sample error status open close save"
)
_WORDS = tuple(_WORDS_TEXT.split())
_TRAIN_FONTS = (
    "DejaVuSans.ttf", "DejaVuSerif.ttf", "DejaVuSans-Bold.ttf", "DejaVuSansCondensed.ttf",
)  # fmt: skip
_photo_cache: dict[str, np.ndarray] = {}


def _font(rng: np.random.Generator, size: int, family: str) -> ImageFont.FreeTypeFont:
    """A training font (DejaVu when present) or, for the test family, Pillow's own font."""
    if family == "train":
        try:
            return ImageFont.truetype(str(rng.choice(_TRAIN_FONTS)), size)
        except OSError:
            pass
    elif rng.random() < 0.5:
        try:
            return ImageFont.truetype("DejaVuSansMono.ttf", size)
        except OSError:
            pass
    return ImageFont.load_default(size=size)


def _to_unit(img: Image.Image | np.ndarray, size: int) -> np.ndarray:
    """Gray float32 (size, size) in [0, 1], squashed like a film."""
    if isinstance(img, np.ndarray):
        arr = img.astype(np.float32)
        if arr.max() > 1.0:
            arr = arr / 255.0
        img = Image.fromarray(np.clip(arr, 0, 1).astype(np.float32), mode="F")
    out = img.convert("F") if img.mode != "F" else img
    arr = np.asarray(out.resize((size, size), Image.Resampling.BILINEAR), np.float32)
    return np.clip(arr / 255.0 if arr.max() > 1.5 else arr, 0.0, 1.0)


def _photo_array(name: str) -> np.ndarray:
    """A skimage sample image as gray float (random channel mix applied later)."""
    if name not in _photo_cache:
        import skimage.data

        img = getattr(skimage.data, name)()
        arr = np.asarray(img, np.float32)
        if arr.dtype == bool or arr.max() <= 1.0:
            arr = arr * 255.0
        _photo_cache[name] = arr
    return _photo_cache[name]


def photo(rng: np.random.Generator, size: int, names: tuple[str, ...]) -> np.ndarray:
    """A random crop of a random sample photo, grayscaled with random channel weights."""
    arr = _photo_array(str(rng.choice(names)))
    if arr.ndim == 3:
        w = rng.dirichlet(np.ones(3))
        arr = arr[..., :3] @ w
    h, wd = arr.shape
    side = rng.uniform(0.4, 1.0) if rng.random() < 0.7 else rng.uniform(0.1, 0.4)
    ch, cw = max(8, int(h * side)), max(8, int(wd * side * rng.uniform(0.7, 1.4)))
    ch, cw = min(ch, h), min(cw, wd)
    top, left = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, wd - cw + 1))
    crop = arr[top : top + ch, left : left + cw]
    crop = np.rot90(crop, int(rng.integers(0, 4))) if rng.random() < 0.3 else crop
    return _to_unit(crop / 255.0, size)


def faces(rng: np.random.Generator, size: int, half: str) -> np.ndarray:
    """From skimage's LFW subset: a face (first hundred, train) or a non-face patch (test)."""
    import skimage.data

    if "lfw" not in _photo_cache:
        _photo_cache["lfw"] = np.asarray(skimage.data.lfw_subset(), np.float32)
    stack = _photo_cache["lfw"]
    pool = stack[:100] if half == "train" else stack[100:]
    return _to_unit(pool[int(rng.integers(len(pool)))], size)


def document(rng: np.random.Generator, size: int, family: str = "train") -> np.ndarray:
    """A rendered text page: headings, paragraphs, sometimes a table or two columns."""
    w = 320
    h = int(w * rng.uniform(1.0, 1.5))
    paper, ink = int(rng.integers(215, 256)), int(rng.integers(0, 90))
    if family == "train" and rng.random() < 0.3:  # dark theme: light text on dark
        paper, ink = 255 - paper, 255 - ink
    img = Image.new("L", (w, h), paper)
    draw = ImageDraw.Draw(img)
    margin = int(rng.integers(10, 40))
    columns = 2 if family == "test" and rng.random() < 0.5 else 1
    col_w = (w - 2 * margin) // columns
    for col in range(columns):
        y = margin
        x0 = margin + col * col_w
        while y < h - margin:
            r = rng.random()
            fs = int(rng.integers(14, 24)) if r < 0.12 else int(rng.integers(7, 13))
            font = _font(rng, fs, family)
            if r > 0.93 and family == "train":
                rows, cols = int(rng.integers(2, 6)), int(rng.integers(2, 5))
                cw, rh = (col_w - 10) // cols, fs + 6
                for i in range(rows + 1):
                    draw.line([x0, y + i * rh, x0 + cols * cw, y + i * rh], fill=ink)
                for j in range(cols + 1):
                    draw.line([x0 + j * cw, y, x0 + j * cw, y + rows * rh], fill=ink)
                y += rows * rh + 8
                continue
            words = " ".join(rng.choice(_WORDS, int(rng.integers(3, 12))))
            draw.text((x0, y), words[: max(4, col_w // max(4, fs // 2))], fill=ink, font=font)
            y += int(fs * rng.uniform(1.2, 1.8))
    if family == "test":
        img = img.rotate(float(rng.uniform(-4, 4)), fillcolor=int(rng.integers(0, 255)))
        noise = rng.normal(0, rng.uniform(2, 12), (h, w))
        img = Image.fromarray(np.clip(np.asarray(img, np.float32) + noise, 0, 255).astype(np.uint8))
    return _to_unit(img, size)


def screenshot(rng: np.random.Generator, size: int, family: str = "train") -> np.ndarray:
    """A rendered application window: title bar, side bar, text, buttons, panels."""
    w, h = 400, int(400 * rng.uniform(0.55, 0.85))
    dark = rng.random() < 0.4
    bg = int(rng.integers(20, 60)) if dark else int(rng.integers(220, 256))
    fg = 255 - bg + int(rng.integers(-30, 30))
    img = Image.new("L", (w, h), bg)
    draw = ImageDraw.Draw(img)
    bar = int(rng.integers(14, 30))
    draw.rectangle([0, 0, w, bar], fill=int(rng.integers(60, 200)))
    for i in range(3):
        draw.ellipse([6 + i * 14, 4, 14 + i * 14, 12], fill=int(rng.integers(0, 255)))
    if family == "train":
        side = int(rng.integers(50, 130))
        draw.rectangle([0, bar, side, h], fill=int(np.clip(bg + rng.integers(-40, 40), 0, 255)))
        for y in range(bar + 8, h - 10, int(rng.integers(14, 24))):
            draw.text((8, y), str(rng.choice(_WORDS)), fill=fg, font=_font(rng, 10, family))
        for _ in range(int(rng.integers(0, 4))):  # cards / panels
            px, py = int(rng.integers(side, w - 60)), int(rng.integers(bar, h - 40))
            pw, ph = int(rng.integers(40, 200)), int(rng.integers(30, 120))
            shade = int(np.clip(bg + rng.integers(-60, 60), 0, 255))
            draw.rectangle([px, py, px + pw, py + ph], fill=shade, outline=fg)
        y = bar + 10
        while y < h - 20:
            if rng.random() < 0.3:
                bw = int(rng.integers(40, 120))
                x = int(rng.integers(side + 10, max(side + 11, w - bw)))
                draw.rounded_rectangle([x, y, x + bw, y + 18], 4, fill=int(rng.integers(0, 255)))
                y += 26
            else:
                words = " ".join(rng.choice(_WORDS, int(rng.integers(2, 9))))
                draw.text((side + 10, y), words, fill=fg, font=_font(rng, 11, family))
                y += int(rng.integers(14, 22))
    else:  # test: dashboards with charts, or a terminal
        if rng.random() < 0.5:
            n = int(rng.integers(4, 12))
            base = h - 20
            for i in range(n):
                bh = int(rng.integers(10, h - bar - 40))
                x = 20 + i * (w - 40) // n
                draw.rectangle([x, base - bh, x + (w - 40) // n - 6, base], fill=fg)
            pts = [(20 + i * 30, int(rng.integers(bar + 10, base))) for i in range(12)]
            draw.line(pts, fill=int(rng.integers(0, 255)), width=2)
        else:
            font = _font(rng, 10, family)
            for y in range(bar + 4, h - 10, 12):
                draw.text((6, y), "$ " + " ".join(rng.choice(_WORDS, 5)), fill=fg, font=font)
    return _to_unit(img, size)


def ct_slice(rng: np.random.Generator, size: int, family: str = "train") -> np.ndarray:
    """A synthetic axial CT-like slice: body ellipse on black, with lungs, spine and table."""
    n = 256
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32) / n - 0.5
    img = np.zeros((n, n), np.float32)
    a, b = rng.uniform(0.35, 0.47), rng.uniform(0.25, 0.38)
    cy = rng.uniform(-0.05, 0.05)
    body = (xx / a) ** 2 + ((yy - cy) / b) ** 2 <= 1
    img[body] = rng.uniform(0.45, 0.65)
    inner = (xx / (a - 0.03)) ** 2 + ((yy - cy) / (b - 0.03)) ** 2 <= 1
    img[body & ~inner] = rng.uniform(0.35, 0.5)  # fat / skin ring
    kind = "chest" if family == "train" else str(rng.choice(["chest", "abdomen", "head"]))
    if kind == "chest":
        for side in (-1, 1):
            lx, ly = side * rng.uniform(0.14, 0.2), cy - rng.uniform(0.0, 0.05)
            la, lb = rng.uniform(0.1, 0.16), rng.uniform(0.14, 0.22)
            lung = ((xx - lx) / la) ** 2 + ((yy - ly) / lb) ** 2 <= 1
            img[lung & inner] = rng.uniform(0.02, 0.2)
        for _ in range(int(rng.integers(10, 40))):  # vessels
            vx, vy = rng.uniform(-0.3, 0.3), rng.uniform(-0.2, 0.2)
            r = rng.uniform(0.004, 0.012)
            img[((xx - vx) ** 2 + (yy - vy) ** 2 < r**2) & inner] = rng.uniform(0.4, 0.7)
    elif kind == "abdomen":
        for _ in range(int(rng.integers(3, 7))):
            ox, oy = rng.uniform(-0.25, 0.25), rng.uniform(-0.15, 0.15)
            oa, ob = rng.uniform(0.04, 0.14), rng.uniform(0.04, 0.12)
            organ = ((xx - ox) / oa) ** 2 + ((yy - oy) / ob) ** 2 <= 1
            img[organ & inner] = rng.uniform(0.5, 0.75)
    else:
        img[:] = 0
        ra, rb = rng.uniform(0.3, 0.4), rng.uniform(0.36, 0.46)
        skull = (xx / ra) ** 2 + (yy / rb) ** 2 <= 1
        brain = (xx / (ra - 0.03)) ** 2 + (yy / (rb - 0.03)) ** 2 <= 1
        img[skull] = 0.95
        img[brain] = rng.uniform(0.45, 0.6)
    if kind != "head":
        sy = cy + b * rng.uniform(0.45, 0.7)
        spine = xx**2 + (yy - sy) ** 2 <= rng.uniform(0.03, 0.05) ** 2
        img[spine] = rng.uniform(0.85, 1.0)
        table = (np.abs(yy - (cy + b + 0.04)) < 0.012) & (np.abs(xx) < 0.45)
        img[table] = rng.uniform(0.3, 0.6)
    img = img + rng.normal(0, rng.uniform(0.005, 0.04), img.shape).astype(np.float32)
    img = gaussian_filter(np.clip(img, 0, 1), float(rng.uniform(0.3, 1.5)))
    return _to_unit(img, size)


def phantom(rng: np.random.Generator, size: int) -> np.ndarray:
    """The Shepp-Logan head phantom (skimage), scaled and shifted at random."""
    arr = _photo_array("shepp_logan_phantom")
    pad = int(rng.integers(0, 120))
    arr = np.pad(arr, pad) * rng.uniform(0.7, 1.0)
    return _to_unit(arr / 255.0 if arr.max() > 1.5 else arr, size)


def texture(rng: np.random.Generator, size: int) -> np.ndarray:
    """Smooth random fields, gradients and stripes (no chest anatomy)."""
    n = 64
    field = np.zeros((n, n), np.float32)
    for octave in range(1, 5):
        k = 2**octave
        coarse = rng.normal(0, 1.0 / octave, (k + 1, k + 1)).astype(np.float32)
        field += np.asarray(
            Image.fromarray(coarse, mode="F").resize((n, n), Image.Resampling.BICUBIC)
        )
    yy, xx = np.mgrid[0:n, 0:n] / n
    if rng.random() < 0.4:
        field += rng.uniform(-3, 3) * xx + rng.uniform(-3, 3) * yy
    if rng.random() < 0.3:
        field += np.sin(2 * np.pi * rng.uniform(2, 12) * (xx * rng.random() + yy * rng.random()))
    field = (field - field.min()) / (np.ptp(field) + 1e-6)
    return _to_unit(field, size)


def shapes(rng: np.random.Generator, size: int) -> np.ndarray:
    """Random filled ellipses, rectangles and polygons on a random background."""
    img = Image.new("L", (256, 256), int(rng.integers(0, 256)))
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(2, 14))):
        x0, y0 = rng.integers(-40, 256, 2)
        x1, y1 = x0 + rng.integers(10, 160), y0 + rng.integers(10, 160)
        fill = int(rng.integers(0, 256))
        r = rng.random()
        if r < 0.4:
            draw.ellipse([int(x0), int(y0), int(x1), int(y1)], fill=fill)
        elif r < 0.7:
            draw.rectangle([int(x0), int(y0), int(x1), int(y1)], fill=fill)
        else:
            pts = [
                tuple(int(v) for v in rng.integers(0, 256, 2))
                for _ in range(int(rng.integers(3, 7)))
            ]
            draw.polygon(pts, fill=fill)
    return _to_unit(img, size)


def collage(rng: np.random.Generator, size: int, parts: list[Generator]) -> np.ndarray:
    """Panels from other generators tiled on a plain background (slides, web pages, figures)."""
    canvas = np.full((size, size), rng.uniform(0, 1), np.float32)
    for _ in range(int(rng.integers(2, 5))):
        ph, pw = (int(v) for v in rng.integers(size // 4, size * 3 // 4 + 1, 2))
        top, left = int(rng.integers(0, size - ph + 1)), int(rng.integers(0, size - pw + 1))
        panel = parts[int(rng.integers(len(parts)))](rng, max(ph, pw))
        canvas[top : top + ph, left : left + pw] = panel[:ph, :pw]
    return canvas


def diagram(rng: np.random.Generator, size: int) -> np.ndarray:
    """A figure: axes with line or scatter plots, a pie, or boxes joined by arrows."""
    n = 256
    bg, fg = (int(rng.integers(225, 256)), int(rng.integers(0, 80)))
    if rng.random() < 0.3:
        bg, fg = 255 - bg, 255 - fg
    img = Image.new("L", (n, n), bg)
    draw = ImageDraw.Draw(img)
    kind = rng.random()
    if kind < 0.5:  # axes with curves or points
        x0, y0, x1, y1 = 30, 20, n - 15, n - 30
        draw.line([x0, y0, x0, y1, x1, y1], fill=fg, width=2)
        for _ in range(int(rng.integers(1, 4))):
            colour = int(rng.integers(0, 256))
            xs = np.sort(rng.uniform(x0, x1, int(rng.integers(5, 40))))
            ys = np.clip(np.cumsum(rng.normal(0, 12, len(xs))) + rng.uniform(y0, y1), y0, y1)
            pts = [(float(a), float(b)) for a, b in zip(xs, ys, strict=True)]
            if rng.random() < 0.5:
                draw.line(pts, fill=colour, width=int(rng.integers(1, 4)))
            else:
                for a, b in pts:
                    draw.ellipse([a - 3, b - 3, a + 3, b + 3], fill=colour)
        for t in range(int(rng.integers(3, 8))):
            draw.text((x0 + t * 30, y1 + 6), str(t), fill=fg, font=_font(rng, 10, "train"))
    elif kind < 0.7:  # pie chart
        start = 0.0
        for frac in rng.dirichlet(np.ones(int(rng.integers(2, 7)))):
            end = start + 360 * float(frac)
            draw.pieslice([30, 30, n - 30, n - 30], start, end, fill=int(rng.integers(0, 256)))
            start = end
    else:  # flow chart
        boxes = []
        for _ in range(int(rng.integers(3, 8))):
            x, y = (int(v) for v in rng.integers(5, n - 70, 2))
            boxes.append((x, y))
            draw.rectangle([x, y, x + 60, y + 28], outline=fg, width=2)
            draw.text(
                (x + 5, y + 8), str(rng.choice(_WORDS)), fill=fg, font=_font(rng, 10, "train")
            )
        for (ax, ay), (bx, by) in zip(boxes, boxes[1:], strict=False):
            draw.line([ax + 30, ay + 28, bx + 30, by], fill=fg, width=2)
    return _to_unit(img, size)


def film_crop(
    rng: np.random.Generator, size: int, films: np.ndarray, corner: bool = False
) -> np.ndarray:
    """A small crop (8-35% of the side) of a real film: a film fragment is no chest film."""
    film = films[int(rng.integers(len(films)))]
    film = film.astype(np.float32) / (255.0 if film.dtype == np.uint8 else 1.0)
    n = film.shape[0]
    side = max(4, int(n * (rng.uniform(0.1, 0.3) if corner else rng.uniform(0.08, 0.35))))
    if corner:
        top = 0 if rng.random() < 0.5 else n - side
        left = 0 if rng.random() < 0.5 else n - side
    else:
        top, left = (int(v) for v in rng.integers(0, n - side + 1, 2))
    return _to_unit(film[top : top + side, left : left + side], size)


def generators(family: str, films: np.ndarray | None = None) -> dict[str, Generator]:
    """Named generators of one family ('train' or 'test'); `films` enables film crops."""
    if family not in ("train", "test"):
        raise ValueError(f"family must be 'train' or 'test', not {family!r}")
    photos = TRAIN_PHOTOS if family == "train" else TEST_PHOTOS
    out: dict[str, Generator] = {
        "photo": lambda rng, s: photo(rng, s, photos),
        "face" if family == "train" else "photo_patch": lambda rng, s: faces(rng, s, family),
        "document": lambda rng, s: document(rng, s, family),
        "screenshot": lambda rng, s: screenshot(rng, s, family),
        "ct_slice": lambda rng, s: ct_slice(rng, s, family),
    }
    if family == "train":
        out["texture"] = texture
        out["shapes"] = shapes
        out["diagram"] = diagram
        parts = [out["photo"], out["document"], out["screenshot"], texture, shapes, diagram]
        out["collage"] = lambda rng, s: collage(rng, s, parts)
    else:
        out["phantom"] = phantom
    if films is not None and len(films):
        out["film_crop"] = lambda rng, s: film_crop(rng, s, films, corner=family == "test")
    return out


def make_examples(
    family: str, n_per_kind: int, seed: int, size: int = 128, films: np.ndarray | None = None
) -> tuple[np.ndarray, list[str]]:
    """`n_per_kind` images of every generator of `family`: ((N, size, size) uint8, kinds)."""
    rng = np.random.default_rng(seed)
    images, kinds = [], []
    for kind, gen in generators(family, films).items():
        for _ in range(n_per_kind):
            images.append(np.round(gen(rng, size) * 255).astype(np.uint8))
            kinds.append(kind)
    return np.stack(images), kinds
