"""Appearance of the synthetic benchmark: the part of the domain shift that is not geometry.

The source look imitates a game engine (flat, saturated class colours, aliased edges, no sensor).
The target looks are camera-like: a shifted palette for every stuff class, material textures
that -- not colour -- separate look-alike classes (road/sidewalk, building/wall,
vegetation/terrain), soft edges, blur, shadows, vignetting and sensor noise; `night` and `fog`
add the adverse conditions of Dark Zurich and ACDC. Things keep per-instance colours in every
look, so only shape and context transfer across domains.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from duda.data.synth_scene import Mat, Part, Scene, draw_shape

STYLES = ("day", "night", "fog")

_SOURCE_PALETTE = {
    Mat.SKY: ((112, 168, 236), (150, 190, 235)),
    Mat.ROAD: ((52, 50, 66), (60, 54, 70)),
    Mat.MARKING: ((245, 245, 240), (240, 205, 60)),
    Mat.SIDEWALK: ((172, 150, 126), (160, 146, 132)),
    Mat.CURB: ((215, 205, 188),),
    Mat.GROUND: ((150, 118, 86),),
    Mat.BUILDING: (
        (192, 140, 98),
        (118, 128, 165),
        (205, 186, 138),
        (150, 116, 150),
        (112, 112, 118),
        (172, 92, 80),
    ),
    Mat.WINDOW: ((52, 92, 150), (40, 66, 110)),
    Mat.WALL: ((168, 108, 82), (132, 136, 156)),
    Mat.FENCE: ((172, 140, 70), (150, 80, 56)),
    Mat.POLE: ((70, 76, 92),),
    Mat.BOX: ((30, 62, 30),),
    Mat.VEGETATION: ((60, 126, 46), (78, 140, 44)),
    Mat.TRUNK: ((110, 72, 36),),
    Mat.TERRAIN: ((150, 164, 70), (138, 170, 84)),
    Mat.EGO: ((30, 30, 40),),
}

_TARGET_PALETTE = {
    Mat.SKY: ((200, 212, 225), (178, 198, 222), (214, 217, 220)),
    Mat.ROAD: ((98, 99, 101), (108, 106, 102)),
    Mat.MARKING: ((196, 196, 190),),
    Mat.SIDEWALK: ((122, 117, 111), (136, 131, 124)),
    Mat.CURB: ((150, 148, 142),),
    Mat.GROUND: ((118, 109, 96),),
    Mat.BUILDING: (
        (146, 136, 120),
        (122, 120, 118),
        (165, 155, 136),
        (128, 98, 82),
        (98, 100, 100),
        (178, 172, 160),
    ),
    Mat.WINDOW: ((52, 58, 66), (70, 78, 86)),
    Mat.WALL: ((140, 128, 112), (118, 116, 112)),
    Mat.FENCE: ((112, 106, 96), (90, 96, 90)),
    Mat.POLE: ((102, 104, 106),),
    Mat.BOX: ((40, 42, 40),),
    Mat.VEGETATION: ((70, 94, 50), (84, 100, 56)),
    Mat.TRUNK: ((72, 62, 52),),
    Mat.TERRAIN: ((112, 118, 78), (126, 120, 84)),
    Mat.EGO: ((36, 38, 44),),
}


@dataclass(frozen=True)
class Look:
    """Knobs of one rendering style; source and target differ in every one of them."""

    palette: dict
    texture: float  # strength of material textures
    antialias: bool
    shade: float  # how strongly face orientation darkens
    shadow: float  # brightness inside cast shadows
    jitter: float  # per-part colour jitter, fraction
    exposure: tuple[float, float]
    contrast: tuple[float, float]
    saturation: tuple[float, float]
    vignette: tuple[float, float]
    blur: tuple[float, float]  # sigma in pixels at 256 px width
    noise: tuple[float, float]  # sensor noise sigma, grey levels


SOURCE_LOOK = Look(
    _SOURCE_PALETTE,
    texture=0.25,
    antialias=False,
    shade=1.3,
    shadow=0.7,
    jitter=0.08,
    exposure=(0.8, 1.2),
    contrast=(0.95, 1.15),
    saturation=(0.95, 1.3),
    vignette=(0.0, 0.0),
    blur=(0.0, 0.0),
    noise=(0.0, 0.0),
)
TARGET_LOOK = Look(
    _TARGET_PALETTE,
    texture=1.0,
    antialias=True,
    shade=0.6,
    shadow=0.55,
    jitter=0.1,
    exposure=(0.72, 1.15),
    contrast=(0.75, 1.05),
    saturation=(0.65, 0.95),
    vignette=(0.1, 0.4),
    blur=(0.45, 0.9),
    noise=(2.0, 6.0),
)


def render(
    scene: Scene,
    pid: np.ndarray,
    material: np.ndarray,
    depth: np.ndarray | None,
    rng: np.random.Generator,
    style: str,
) -> np.ndarray:
    """RGB uint8 image of a scene; `style` is 'source' or one of STYLES (target looks)."""
    look = SOURCE_LOOK if style == "source" else TARGET_LOOK
    night = style == "night"
    colors = _part_colors(scene, rng, look, night)
    ground = _ground_colors(rng, look, night)
    img = _base_image(scene, pid, material, colors, ground, look)
    img *= 1.0 + look.texture * _texture(scene, material, rng)[..., None]
    _apply_shadow(img, scene, pid, look, night)
    if night:
        img = _night(img, scene, pid, rng)
    elif style == "fog":
        img = _fog(img, depth, rng)
    img = _camera(img, rng, look, scene.cam.width / 256)
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------- colours


def _class_color(palette: dict, material: int, variant: float) -> np.ndarray:
    options = palette.get(material, ((128, 128, 128),))
    return np.asarray(options[min(int(variant * len(options)), len(options) - 1)], np.float32)


def _part_colors(scene: Scene, rng: np.random.Generator, look: Look, night: bool) -> np.ndarray:
    """One RGB per part: palette or instance paint, jittered, shaded by face orientation."""
    n = len(scene.parts)
    cols = np.empty((n + 1, 3), np.float32)
    cols[0] = 0
    jitter = 1.0 + rng.normal(0, look.jitter, (n, 1)).astype(np.float32)
    for i, part in enumerate(scene.parts):
        base = (
            np.asarray(part.color, np.float32)
            if part.color is not None
            else _class_color(look.palette, part.material, part.variant)
        )
        if night and part.material == Mat.WINDOW and _lit(part):
            base = np.array([250, 205, 130], np.float32)
        elif night and part.material == Mat.LAMP:
            base = base * 2.0
        shade = 1.0 + look.shade * (part.shade - 1.0)
        cols[i + 1] = base * jitter[i] * shade
    return cols


def _ground_colors(rng: np.random.Generator, look: Look, night: bool) -> np.ndarray:
    """Per-image ground/sky colours indexed by material (ground is drawn per pixel)."""
    lut = np.zeros((256, 3), np.float32)
    for mat in (Mat.SKY, Mat.ROAD, Mat.MARKING, Mat.SIDEWALK, Mat.CURB, Mat.GROUND, Mat.TERRAIN):
        lut[mat] = _class_color(look.palette, mat, float(rng.random()))
        lut[mat] *= 1.0 + rng.normal(0, look.jitter)
    lut[Mat.METAL] = (120, 118, 115)
    if night:
        lut[Mat.SKY] = (12, 17, 36)
    return lut


def _base_image(
    scene: Scene,
    pid: np.ndarray,
    material: np.ndarray,
    colors: np.ndarray,
    ground: np.ndarray,
    look: Look,
) -> np.ndarray:
    """Flat colours; the target redraws parts anti-aliased, the source stays aliased."""
    if not look.antialias:
        return np.where((pid == 0)[..., None], ground[material], colors[pid])
    img = np.clip(ground[scene.ground_material], 0, 255).astype(np.uint8)
    for part, color in zip(scene.parts, np.clip(colors[1:], 0, 255).tolist(), strict=True):
        for shape in part.shapes:
            draw_shape(img, shape, color, cv2.LINE_AA)
    return img.astype(np.float32)


# --------------------------------------------------------------------------- textures


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cell: float) -> np.ndarray:
    """Value noise with feature size `cell` pixels, roughly unit variance."""
    h, w = shape
    small = rng.standard_normal((max(int(h / cell), 1) + 2, max(int(w / cell), 1) + 2))
    big = cv2.resize(
        small.astype(np.float32),
        (w + 2 * int(cell), h + 2 * int(cell)),
        interpolation=cv2.INTER_CUBIC,
    )
    return big[int(cell) : int(cell) + h, int(cell) : int(cell) + w]


@lru_cache(maxsize=8)
def _grid(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    v, u = np.indices(shape, dtype=np.float32)
    return v, u


def _bricks(shape: tuple[int, int], k: float, rng: np.random.Generator) -> np.ndarray:
    v, u = _grid(shape)
    bh, bw = 2.2 * k, 5.5 * k
    row = np.floor(v / bh)
    col = np.floor((u + (row % 2) * bw / 2) / bw)
    mortar = (np.mod(v, bh) < 0.8 * k) | (np.mod(u + (row % 2) * bw / 2, bw) < 0.8 * k)
    tint = np.sin(row * 12.9898 + col * 78.233 + rng.random() * 6.28) * 0.35
    return np.where(mortar, -1.2, tint).astype(np.float32)


def _tiles(scene: Scene) -> np.ndarray:
    """Paving joints on the ground plane, so they shrink with distance like real tiles."""
    x, z = scene.ground_x, np.minimum(scene.ground_z, 1e4)
    t = 0.5
    joint = (np.mod(x, t) < 0.05) | (np.mod(z, t) < 0.05)
    fade = np.clip(6.0 / np.maximum(z, 1.0), 0, 1)
    return np.where(joint, -1.0 * fade, 0.15).astype(np.float32)


def _texture(scene: Scene, material: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Multiplicative brightness modulation per material (0 = untouched)."""
    shape = material.shape
    k = scene.cam.width / 256
    fine = rng.standard_normal(shape).astype(np.float32)
    present = np.bincount(material.ravel(), minlength=256) > 0
    mod = 0.03 * fine
    fields = {
        Mat.ROAD: lambda: 0.05 * fine + 0.07 * _smooth_noise(rng, shape, 10 * k),
        Mat.SIDEWALK: lambda: 0.18 * _tiles(scene) + 0.04 * fine,
        Mat.BUILDING: lambda: 0.07 * _smooth_noise(rng, shape, 6 * k) + 0.04 * fine,
        Mat.WALL: lambda: 0.16 * _bricks(shape, k, rng) + 0.03 * fine,
        Mat.VEGETATION: lambda: (
            0.2 * _smooth_noise(rng, shape, 1.6 * k)
            + 0.12 * fine
            + 0.12 * np.minimum(_smooth_noise(rng, shape, 5 * k), 0)
        ),
        Mat.TERRAIN: lambda: 0.1 * cv2.blur(fine, (1, 3)) + 0.1 * _smooth_noise(rng, shape, 8 * k),
        Mat.SKY: lambda: (
            0.08 * _smooth_noise(rng, shape, 24 * k)
            + 0.1 * (_grid(shape)[0] / max(scene.cam.horizon, 1.0) - 0.6)
        ),
    }
    for mat, make in fields.items():
        if present[mat]:
            where = material == mat
            mod = np.where(where, make(), mod)
    return mod


# --------------------------------------------------------------------------- lighting


def _apply_shadow(img: np.ndarray, scene: Scene, pid: np.ndarray, look: Look, night: bool) -> None:
    if night:
        return
    mask = (scene.shadow * (pid == 0)).astype(np.float32)
    if look.antialias:
        mask = cv2.GaussianBlur(mask, (0, 0), 1.0 * scene.cam.width / 256)
    img *= (1.0 - (1.0 - look.shadow) * mask)[..., None]


def _glow(
    img: np.ndarray, u: float, v: float, radius: float, color: np.ndarray, strength: float
) -> None:
    """Additive Gaussian glow, computed only in its bounding box."""
    h, w = img.shape[:2]
    r = max(radius, 1.0)
    u0, u1 = max(int(u - 3 * r), 0), min(int(u + 3 * r) + 1, w)
    v0, v1 = max(int(v - 3 * r), 0), min(int(v + 3 * r) + 1, h)
    if u0 >= u1 or v0 >= v1:
        return
    vv, uu = np.ogrid[v0:v1, u0:u1]
    fall = np.exp(-((uu - u) ** 2 + (vv - v) ** 2) / (2 * r * r)).astype(np.float32)
    img[v0:v1, u0:u1] += strength * fall[..., None] * color


def _lit(part: Part) -> bool:
    """Parts that emit light at night: lamps and a quarter of the windows."""
    return part.material == Mat.LAMP or (part.material == Mat.WINDOW and part.variant < 0.25)


def _night(img: np.ndarray, scene: Scene, pid: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Dark, blue, low contrast, lit only by lamps, headlights and windows (Dark Zurich)."""
    emissive = np.array([False] + [_lit(p) for p in scene.parts])[pid]
    dim = float(rng.uniform(0.08, 0.16))
    tint = np.array([0.8, 0.9, 1.25], np.float32)
    img = np.where(emissive[..., None], img * 0.7, img * dim * tint)
    cap = 0.025 * scene.cam.width
    for light in scene.lights:
        color = np.asarray(light.color, np.float32)
        radius = min(light.radius, cap)
        _glow(img, light.u, light.v, radius, color, float(rng.uniform(0.2, 0.45)))
        if light.color[2] > 150:  # white: headlight or lamp, lights the road below it
            _glow(img, light.u, light.v + 2 * radius, 2 * radius, color, 0.08)
    return img


def _fog(img: np.ndarray, depth: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Atmospheric scattering: transmission falls with distance (ACDC fog)."""
    visibility = float(rng.uniform(25, 70))
    t = np.exp(-np.minimum(depth, 1e4) / visibility)[..., None]
    air = np.float32(rng.uniform(180, 215)) * np.array([0.98, 1.0, 1.03], np.float32)
    return img * t + air * (1 - t)


def _camera(img: np.ndarray, rng: np.random.Generator, look: Look, k: float) -> np.ndarray:
    """Exposure, contrast, saturation, white balance, vignetting, blur, sensor noise."""
    img = img * float(rng.uniform(*look.exposure))
    mean = img.mean()
    img = mean + (img - mean) * float(rng.uniform(*look.contrast))
    grey = img.mean(axis=2, keepdims=True)
    img = grey + (img - grey) * float(rng.uniform(*look.saturation))
    img *= rng.uniform(0.93, 1.07, 3).astype(np.float32)  # white balance / colour grading
    strength = float(rng.uniform(*look.vignette))
    if strength > 0:
        v, u = _grid(img.shape[:2])
        h, w = img.shape[:2]
        r2 = ((u - w / 2) / (w / 2)) ** 2 + ((v - h / 2) / (h / 2)) ** 2
        img *= (1 - strength * r2 / 2)[..., None]
    sigma = float(rng.uniform(*look.blur)) * k
    if sigma > 0.05:
        img = cv2.GaussianBlur(img, (0, 0), sigma)
    noise = float(rng.uniform(*look.noise))
    if noise > 0:
        img = img + rng.normal(0, noise, img.shape).astype(np.float32)
    return img
