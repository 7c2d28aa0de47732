"""A synthetic fruit-like image set in the Kaggle layout, deterministic by seed.

Used when no real photos are at hand (the embedded demo, fast tests). Each class is visibly
its own: a shape, a hue and a surface texture; images vary in pose, scale, position,
lighting and background so a model has something to learn.
"""

from __future__ import annotations

import colorsys
import csv
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from pydantic import BaseModel, Field

#: Class names in the style of the Kaggle "Fruit Classification Dataset" (100 classes).
FRUIT_NAMES: tuple[str, ...] = (
    "apple",
    "banana",
    "orange",
    "strawberry",
    "grape",
    "watermelon",
    "pineapple",
    "mango",
    "kiwi",
    "lemon",
    "lime",
    "cherry",
    "peach",
    "pear",
    "plum",
    "apricot",
    "avocado",
    "blueberry",
    "blackberry",
    "raspberry",
    "coconut",
    "papaya",
    "pomegranate",
    "fig",
    "guava",
    "lychee",
    "passion_fruit",
    "dragon_fruit",
    "durian",
    "jackfruit",
    "persimmon",
    "quince",
    "cantaloupe",
    "honeydew",
    "grapefruit",
    "tangerine",
    "clementine",
    "kumquat",
    "nectarine",
    "gooseberry",
    "cranberry",
    "mulberry",
    "elderberry",
    "boysenberry",
    "cloudberry",
    "date",
    "olive",
    "starfruit",
    "rambutan",
    "mangosteen",
    "longan",
    "salak",
    "soursop",
    "cherimoya",
    "feijoa",
    "tamarind",
    "jabuticaba",
    "acerola",
    "ackee",
    "bilberry",
    "breadfruit",
    "buddha_hand",
    "calamansi",
    "cupuacu",
    "damson",
    "finger_lime",
    "goji",
    "grenadilla",
    "hala_fruit",
    "horned_melon",
    "jujube",
    "kaffir_lime",
    "langsat",
    "loquat",
    "lucuma",
    "mamey",
    "medlar",
    "miracle_fruit",
    "monstera",
    "nance",
    "naranjilla",
    "pawpaw",
    "pepino",
    "physalis",
    "pitanga",
    "pomelo",
    "pulasan",
    "redcurrant",
    "blackcurrant",
    "sapodilla",
    "santol",
    "sugar_apple",
    "ugli_fruit",
    "white_currant",
    "yuzu",
    "barberry",
    "bignay",
    "cempedak",
    "chayote",
    "emblic",
)
assert len(FRUIT_NAMES) == 100 and len(set(FRUIT_NAMES)) == 100

SPLIT_FOLDERS = {"train": "train1", "val": "val1", "test": "test1"}
SHAPES = ("circle", "ellipse", "crescent", "rounded_square", "teardrop", "star")
TEXTURES = ("plain", "stripes", "dots", "speckles")


class SyntheticSpec(BaseModel):
    """``synthetic:classes=N,per_class=M,size=S,seed=K`` as a typed object."""

    classes: int = Field(6, ge=2, le=len(FRUIT_NAMES), description="fruit classes drawn")
    per_class: int = Field(40, ge=3, description="images per class over all splits")
    size: int = Field(64, ge=16, le=1024, description="side of the square images")
    seed: int = Field(0, description="the same seed draws the same images")

    @classmethod
    def parse(cls, text: str) -> SyntheticSpec:
        """Parse the part after ``synthetic:``; a wrong key or value names it."""
        values: dict[str, str] = {}
        for item in filter(None, (p.strip() for p in text.split(","))):
            key, sep, value = item.partition("=")
            if not sep:
                raise ValueError(
                    f"synthetic source: {item!r} is not KEY=VALUE "
                    "(e.g. synthetic:classes=6,per_class=40,size=64,seed=0)"
                )
            if key not in cls.model_fields:
                raise ValueError(
                    f"synthetic source: unknown key {key!r}; use {', '.join(cls.model_fields)}"
                )
            values[key] = value
        return cls.model_validate(values)

    @property
    def slug(self) -> str:
        return f"synthetic-c{self.classes}-n{self.per_class}-s{self.size}-seed{self.seed}"

    def split_counts(self) -> dict[str, int]:
        val = max(1, round(self.per_class * 0.15))
        test = max(1, round(self.per_class * 0.15))
        return {"train": self.per_class - val - test, "val": val, "test": test}


def _class_style(index: int) -> tuple[str, float, str]:
    hue = (index * 0.6180339887) % 1.0  # golden-ratio steps keep neighbouring hues apart
    return SHAPES[index % len(SHAPES)], hue, TEXTURES[(index // len(SHAPES)) % len(TEXTURES)]


def _rgb(hue: float, sat: float, val: float) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(hue % 1.0, min(max(sat, 0), 1), min(max(val, 0), 1))
    return int(r * 255), int(g * 255), int(b * 255)


def _shape_mask(shape: str, canvas: int, rng: np.random.Generator) -> Image.Image:
    mask = Image.new("L", (canvas, canvas), 0)
    draw = ImageDraw.Draw(mask)
    c = canvas / 2
    r = canvas * rng.uniform(0.22, 0.36)
    if shape == "circle":
        draw.ellipse((c - r, c - r, c + r, c + r), fill=255)
    elif shape == "ellipse":
        draw.ellipse((c - r * 1.25, c - r * 0.7, c + r * 1.25, c + r * 0.7), fill=255)
    elif shape == "crescent":
        draw.ellipse((c - r * 1.3, c - r * 0.9, c + r * 1.3, c + r * 0.9), fill=255)
        draw.ellipse((c - r * 1.3, c - r * 1.5, c + r * 1.3, c + r * 0.3), fill=0)
    elif shape == "rounded_square":
        draw.rounded_rectangle((c - r, c - r, c + r, c + r), radius=r * 0.35, fill=255)
    elif shape == "teardrop":
        draw.ellipse((c - r, c - r * 0.4, c + r, c + r * 1.3), fill=255)
        draw.polygon(
            [(c, c - r * 1.4), (c - r * 0.85, c + r * 0.2), (c + r * 0.85, c + r * 0.2)], fill=255
        )
    else:  # star
        points = []
        for k in range(10):
            radius = r * (1.15 if k % 2 == 0 else 0.55)
            angle = math.pi / 5 * k - math.pi / 2
            points.append((c + radius * math.cos(angle), c + radius * math.sin(angle)))
        draw.polygon(points, fill=255)
    angle = rng.uniform(0, 360)
    dx, dy = rng.uniform(-0.12, 0.12, size=2) * canvas
    return mask.rotate(angle, resample=Image.BILINEAR, translate=(dx, dy))


def _texture(texture: str, canvas: int, hue: float, rng: np.random.Generator) -> Image.Image:
    base = np.empty((canvas, canvas, 3), dtype=np.float32)
    base[:] = _rgb(hue + rng.uniform(-0.02, 0.02), rng.uniform(0.65, 0.95), rng.uniform(0.7, 0.95))
    accent = np.array(_rgb(hue + 0.08, 0.9, 0.45), dtype=np.float32)
    yy, xx = np.mgrid[0:canvas, 0:canvas].astype(np.float32)
    if texture == "stripes":
        period = canvas / rng.uniform(5, 8)
        theta = rng.uniform(0, math.pi)
        band = np.sin((xx * math.cos(theta) + yy * math.sin(theta)) / period * 2 * math.pi) > 0.3
        base[band] = accent
    elif texture == "dots":
        for _ in range(int(rng.integers(10, 18))):
            cx, cy = rng.uniform(0, canvas, size=2)
            rad = canvas * rng.uniform(0.03, 0.05)
            base[(xx - cx) ** 2 + (yy - cy) ** 2 < rad**2] = accent
    elif texture == "speckles":
        speck = rng.random((canvas, canvas)) < 0.08
        base[speck] = accent * 1.3
    shade = 1.0 - 0.35 * ((xx / canvas - 0.35) ** 2 + (yy / canvas - 0.35) ** 2)
    base *= shade[..., None]
    return Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))


def _background(canvas: int, rng: np.random.Generator) -> Image.Image:
    top = np.array(_rgb(rng.random(), rng.uniform(0, 0.35), rng.uniform(0.35, 0.95)), np.float32)
    bottom = np.array(_rgb(rng.random(), rng.uniform(0, 0.35), rng.uniform(0.25, 0.9)), np.float32)
    t = np.linspace(0, 1, canvas, dtype=np.float32)[:, None, None]
    grad = top * (1 - t) + bottom * t
    grad = np.broadcast_to(grad, (canvas, canvas, 3)) + rng.normal(0, 6, (canvas, canvas, 3))
    return Image.fromarray(np.clip(grad, 0, 255).astype(np.uint8))


def draw_image(class_index: int, size: int, rng: np.random.Generator) -> Image.Image:
    """One image of class ``class_index``: its shape, hue and texture, on a random scene."""
    shape, hue, texture = _class_style(class_index)
    canvas = size * 2  # draw large, downsample for smooth edges
    scene = _background(canvas, rng)
    scene.paste(_texture(texture, canvas, hue, rng), (0, 0), _shape_mask(shape, canvas, rng))
    light = rng.uniform(0.75, 1.2)
    arr = np.asarray(scene, dtype=np.float32) * light
    image = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    return image.filter(ImageFilter.GaussianBlur(rng.uniform(0, 0.8))).resize(
        (size, size), Image.LANCZOS
    )


def generate(spec: SyntheticSpec, root: Path) -> Path:
    """Write the set under ``root/Fruit_dataset`` (idempotent); return that folder."""
    dataset = root / "Fruit_dataset"
    done = root / ".complete"
    if done.exists() and done.read_text() == spec.model_dump_json():
        return dataset
    classes = FRUIT_NAMES[: spec.classes]
    rows: dict[str, list[tuple[str, int]]] = {split: [] for split in SPLIT_FOLDERS}
    for class_index, name in enumerate(classes):
        for split_index, (split, count) in enumerate(spec.split_counts().items()):
            folder = dataset / SPLIT_FOLDERS[split] / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                rng = np.random.default_rng([spec.seed, class_index, split_index, i])
                filename = f"{name}_{split}_{i:04d}.jpg"
                draw_image(class_index, spec.size, rng).save(folder / filename, quality=90)
                rows[split].append((f"{split}/{name}/{filename}", class_index))
    for split, entries in rows.items():
        with open(dataset / f"{split}.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["image:FILE", "category"])
            writer.writerows(entries)
    (dataset / "classname.txt").write_text("\n".join(classes) + "\n")
    done.write_text(spec.model_dump_json())
    return dataset
