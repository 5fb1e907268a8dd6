"""Street-scene geometry for the synthetic GTA5 -> Cityscapes stand-in.

A scene is a ground layout (classified per pixel from exact ground-plane coordinates) plus a list
of drawable parts in painter's order. The parts are rasterised twice from the same fixed-point
shapes -- into a part-id map that yields labels, materials and depth, and into the picture -- so
image and label can never drift apart. Layout statistics differ per domain on purpose (camera
height, horizon, focal length, densities, building heights): a real synthetic-to-real gap is not
only a colour gap. Nothing here decides colours of stuff classes; that is `synth_style`'s job.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass, field
from enum import IntEnum

import cv2
import numpy as np

from duda.data.classes import CLASS_NAMES, TRAIN_TO_LABEL

SHIFT = 4  # fixed-point bits for cv2 drawing: sub-pixel geometry for thin, distant objects
_ONE = 1 << SHIFT
Z_CLIP = 1.0  # metres; nearer geometry is clipped to this plane


_ID = {name: TRAIN_TO_LABEL[t] for t, name in enumerate(CLASS_NAMES)}


class Lab(IntEnum):
    """Cityscapes label IDs: the on-disk encoding of both GTA5 and Cityscapes labels."""

    UNLABELED = 0  # ignored IDs that real annotations also contain
    EGO = 1
    STATIC = 4
    GROUND = 6
    ROAD = _ID["road"]
    SIDEWALK = _ID["sidewalk"]
    BUILDING = _ID["building"]
    WALL = _ID["wall"]
    FENCE = _ID["fence"]
    POLE = _ID["pole"]
    LIGHT = _ID["traffic light"]
    SIGN = _ID["traffic sign"]
    VEGETATION = _ID["vegetation"]
    TERRAIN = _ID["terrain"]
    SKY = _ID["sky"]
    PERSON = _ID["person"]
    RIDER = _ID["rider"]
    CAR = _ID["car"]
    TRUCK = _ID["truck"]
    BUS = _ID["bus"]
    TRAIN = _ID["train"]
    MOTORCYCLE = _ID["motorcycle"]
    BICYCLE = _ID["bicycle"]


class Mat(IntEnum):
    """Surface materials: finer than labels, so windows or lane marks look unlike their class."""

    SKY = 0
    ROAD = 1
    MARKING = 2
    SIDEWALK = 3
    CURB = 4
    GROUND = 5
    BUILDING = 6
    WINDOW = 7
    WALL = 8
    FENCE = 9
    POLE = 10
    BOX = 11
    LAMP = 12
    SIGN = 13
    VEGETATION = 14
    TRUNK = 15
    TERRAIN = 16
    SKIN = 17
    HAIR = 18
    CLOTH = 19
    PAINT = 20
    GLASS = 21
    TYRE = 22
    METAL = 23
    PROP = 24
    EGO = 25


# --------------------------------------------------------------------------- primitives


def fx(pts: object) -> np.ndarray:
    """Pixel coordinates -> cv2 fixed point; every shape is stored this way once."""
    return np.round(np.asarray(pts, np.float64) * _ONE).astype(np.int32).reshape(-1, 2)


def _fx_scalar(value: float) -> int:
    return max(int(round(value * _ONE)), 1)


def ellipse(center: np.ndarray, ax: float, ay: float, thickness: int = -1) -> tuple:
    c = fx(center)[0]
    return ("ellipse", (int(c[0]), int(c[1])), (_fx_scalar(ax), _fx_scalar(ay)), thickness)


def draw_shape(canvas: np.ndarray, shape: tuple, value: object, line_type: int) -> None:
    """The single rasteriser for labels and images: same call, different line type."""
    if shape[0] == "poly":
        cv2.fillPoly(canvas, shape[1], value, line_type, SHIFT)
    else:
        _, center, axes, thickness = shape
        cv2.ellipse(canvas, center, axes, 0, 0, 360, value, thickness, line_type, SHIFT)


@dataclass(frozen=True)
class Camera:
    """Pinhole camera at x = 0, height `eye`, looking along +z over a flat ground plane."""

    width: int
    height: int
    focal: float
    cx: float
    horizon: float
    eye: float

    def project(self, x: object, y: object, z: object) -> np.ndarray:
        x, y, z = np.broadcast_arrays(*(np.asarray(a, np.float64) for a in (x, y, z)))
        z = np.maximum(z, Z_CLIP)
        return np.stack(
            [self.cx + self.focal * x / z, self.horizon + self.focal * (self.eye - y) / z], -1
        ).reshape(-1, 2)

    def scale(self, z: float) -> float:
        """Pixels per metre at depth z: what makes distant objects small."""
        return self.focal / max(z, Z_CLIP)


@dataclass(slots=True)
class Part:
    """One drawable piece with one label and one material; color=None means class palette."""

    label: int
    material: int
    shapes: list
    depth: float
    color: tuple[float, float, float] | None = None
    shade: float = 1.0
    variant: float = 0.0


@dataclass(slots=True)
class Light:
    """An emitter the night style turns into a glow."""

    u: float
    v: float
    radius: float
    color: tuple[float, float, float]


@dataclass
class Obj:
    """A group of parts sorted as one unit (painter's order by layer, then distance)."""

    layer: int
    dist: float
    parts: list[Part] = field(default_factory=list)
    lights: list[Light] = field(default_factory=list)
    shadows: list[np.ndarray] = field(default_factory=list)

    def add(
        self,
        label: int,
        material: int,
        shapes: list,
        depth: float,
        color: tuple[float, float, float] | None = None,
        shade: float = 1.0,
        variant: float = 0.0,
    ) -> None:
        self.parts.append(Part(int(label), int(material), shapes, depth, color, shade, variant))


def poly(*quads: np.ndarray) -> tuple:
    return ("poly", [fx(q) for q in quads])


def box_faces(
    cam: Camera, x0: float, x1: float, y0: float, y1: float, z0: float, z1: float
) -> list[tuple[str, np.ndarray]]:
    """Visible faces of an axis-aligned box; convex, so they never overlap each other."""
    if z1 <= Z_CLIP:
        return []
    za = max(z0, Z_CLIP)
    faces = []
    flank = x0 if x0 > 0 else (x1 if x1 < 0 else None)  # the side facing the camera
    if flank is not None:
        faces.append(("side", cam.project(flank, [y0, y1, y1, y0], [za, za, z1, z1])))
    if y1 < cam.eye:
        faces.append(("top", cam.project([x0, x1, x1, x0], y1, [za, za, z1, z1])))
    if z0 >= Z_CLIP:
        faces.append(("front", cam.project([x0, x0, x1, x1], [y0, y1, y1, y0], z0)))
    return faces


def vquad(cam: Camera, x: float, z: float, y0: float, y1: float, half: float) -> np.ndarray:
    """A camera-facing vertical strip: poles, trunks, posts."""
    return cam.project([x - half, x - half, x + half, x + half], [y0, y1, y1, y0], z)


def limb(p0: np.ndarray, p1: np.ndarray, w0: float, w1: float | None = None) -> np.ndarray:
    """A tapered quad between two pixel points; sub-pixel widths still rasterise to 1 px."""
    p0, p1 = np.asarray(p0, float).ravel(), np.asarray(p1, float).ravel()
    d = p1 - p0
    n = np.array([-d[1], d[0]]) / max(float(np.hypot(*d)), 1e-6)
    w1 = w0 if w1 is None else w1
    return np.stack([p0 + n * w0 / 2, p1 + n * w1 / 2, p1 - n * w1 / 2, p0 - n * w0 / 2])


def facade_windows(
    cam: Camera,
    face: str,
    plane: float,
    xs: tuple[float, float],
    zs: tuple[float, float],
    height: float,
    floor: float,
    col: float,
) -> list[np.ndarray]:
    """Window grid of one building face; windows below ~1 px are left to texture."""
    lo, hi = xs if face == "front" else zs
    along = np.arange(lo + col * 0.5, hi - col * 0.4, col)
    ups = np.arange(floor * 0.55, height - floor * 0.4, floor)
    if face == "top" or along.size == 0 or ups.size == 0:
        return []
    a, y = np.meshgrid(along, ups)
    a, y = a.ravel()[:, None], y.ravel()[:, None]
    da = np.array([-1, -1, 1, 1]) * col * 0.22
    dy = np.array([-1, 1, 1, -1]) * floor * 0.24
    if face == "front":
        pts = cam.project(a + da, y + dy, plane)
    else:
        pts = cam.project(plane, y + dy, np.maximum(a + da, Z_CLIP))
    pts = pts.reshape(-1, 4, 2)
    size = np.ptp(pts, axis=1)
    keep = (size[:, 0] > 0.9) & (size[:, 1] > 0.9)
    return [fx(q) for q in pts[keep]]


# --------------------------------------------------------------------------- instance colours

CAR_PAINTS = (
    (235, 235, 235),
    (28, 28, 30),
    (150, 152, 156),
    (90, 92, 96),
    (165, 25, 30),
    (30, 55, 135),
    (22, 35, 70),
    (45, 95, 55),
    (205, 170, 45),
    (120, 75, 45),
    (200, 198, 185),
)
BUS_PAINTS = ((200, 35, 35), (230, 200, 45), (240, 240, 238), (40, 90, 170), (40, 140, 65))
TRAIN_PAINTS = ((240, 240, 240), (225, 205, 45), (205, 45, 45), (60, 120, 205))
BIKE_PAINTS = ((22, 22, 22), (200, 35, 35), (35, 65, 165), (225, 225, 225), (45, 125, 65))
SKINS = ((232, 192, 162), (200, 150, 118), (150, 102, 72), (92, 62, 42))
HAIRS = ((22, 16, 12), (82, 52, 22), (162, 122, 62), (200, 200, 190), (62, 42, 32))
SIGN_COLORS = ((205, 35, 35), (25, 75, 175), (238, 238, 238), (242, 202, 35), (30, 130, 60))


def _pick(rng: np.random.Generator, table: tuple, jitter: float = 12.0) -> tuple:
    base = np.asarray(table[int(rng.integers(len(table)))], float)
    return tuple(np.clip(base + rng.normal(0, jitter, 3), 0, 255).tolist())


def _random_color(rng: np.random.Generator, max_sat: float = 0.75) -> tuple:
    """Clothing and props: any hue, so colour alone never identifies a person."""
    r, g, b = colorsys.hsv_to_rgb(rng.random(), rng.uniform(0, max_sat), rng.uniform(0.1, 0.92))
    return (r * 255, g * 255, b * 255)


# --------------------------------------------------------------------------- layout statistics


class Kind(IntEnum):
    """What occupies a stretch of street side; decides its zone ground and its objects."""

    BUILDING = 0
    PARK = 1
    WALL = 2
    FENCE = 3
    CROSS = 4


@dataclass(frozen=True)
class LayoutStats:
    """Per-domain scene statistics; their differences are part of the domain shift."""

    horizon: tuple[float, float]  # fraction of image height
    eye: tuple[float, float]  # camera height, metres
    focal: tuple[float, float]  # fraction of image width
    yaw: float  # max vanishing-point shift, fraction of width
    lanes: tuple[int, int]
    lane_width: tuple[float, float]
    sidewalk: tuple[float, float]
    kinds: tuple[float, float, float, float]  # building, park, wall, fence
    building_height: tuple[float, float]
    block_len: tuple[float, float]
    cross_streets: float
    moving_cars: float
    parked_cars: float
    persons: float
    cyclists: float
    parked_bikes: float
    motorbikes: float
    trucks: float
    buses: float
    train: float
    verge: float  # probability of a grass strip between curb and sidewalk, per side
    tree_rows: float
    lamps: float
    signs: float
    hood: float


SOURCE_LAYOUT = LayoutStats(
    horizon=(0.34, 0.44),
    eye=(1.7, 2.3),
    focal=(0.8, 0.95),
    yaw=0.12,
    lanes=(2, 4),
    lane_width=(3.3, 4.0),
    sidewalk=(2.0, 4.5),
    kinds=(0.45, 0.3, 0.1, 0.15),
    building_height=(6.0, 22.0),
    block_len=(10.0, 35.0),
    cross_streets=0.8,
    moving_cars=4.0,
    parked_cars=2.0,
    persons=2.5,
    cyclists=0.6,
    parked_bikes=0.5,
    motorbikes=0.8,
    trucks=0.5,
    buses=0.25,
    train=0.15,
    verge=0.2,
    tree_rows=0.35,
    lamps=0.6,
    signs=1.4,
    hood=0.0,
)

TARGET_LAYOUT = LayoutStats(
    horizon=(0.42, 0.5),
    eye=(1.2, 1.45),
    focal=(0.95, 1.15),
    yaw=0.06,
    lanes=(2, 3),
    lane_width=(3.0, 3.5),
    sidewalk=(2.5, 5.0),
    kinds=(0.62, 0.12, 0.14, 0.12),
    building_height=(10.0, 32.0),
    block_len=(8.0, 25.0),
    cross_streets=1.0,
    moving_cars=2.5,
    parked_cars=6.0,
    persons=5.0,
    cyclists=1.2,
    parked_bikes=1.5,
    motorbikes=0.6,
    trucks=0.35,
    buses=0.3,
    train=0.18,
    verge=0.35,
    tree_rows=0.55,
    lamps=0.7,
    signs=2.0,
    hood=0.7,
)


# --------------------------------------------------------------------------- stuff objects


def building(
    cam: Camera,
    rng: np.random.Generator,
    line: float,
    side: int,
    z0: float,
    z1: float,
    height: float,
    layer: int = 1,
) -> Obj:
    """A block with a window grid on every visible face; windows are building pixels."""
    depth = float(rng.uniform(12, 30))
    x0, x1 = sorted((line, line + side * depth))
    obj = Obj(layer, float(np.hypot(min(abs(x0), abs(x1)), max(z0, 0.0))))
    variant, floor, col = (
        float(rng.random()),
        float(rng.uniform(2.9, 3.6)),
        float(rng.uniform(2.2, 4.0)),
    )
    for name, quad in box_faces(cam, x0, x1, 0.0, height, z0, z1):
        zmid = max((z0 + z1) / 2 if name == "side" else z0, Z_CLIP)
        obj.add(
            Lab.BUILDING,
            Mat.BUILDING,
            [poly(quad)],
            zmid,
            shade=0.8 if name == "side" else 1.0,
            variant=variant,
        )
        plane = line if name == "side" else z0
        wins = facade_windows(cam, name, plane, (x0, x1), (z0, z1), height, floor, col)
        if wins:
            obj.add(Lab.BUILDING, Mat.WINDOW, [("poly", wins)], zmid, variant=float(rng.random()))
    return obj


def wall(
    cam: Camera, rng: np.random.Generator, edge: float, side: int, z0: float, z1: float
) -> Obj:
    x0, x1 = sorted((edge, edge + side * 0.3))
    height = float(rng.uniform(0.8, 2.6))
    obj = Obj(1, float(np.hypot(min(abs(x0), abs(x1)), max(z0, 0.0))))
    variant = float(rng.random())
    for name, quad in box_faces(cam, x0, x1, 0.0, height, z0, z1):
        shade = {"side": 0.85, "top": 1.1}.get(name, 1.0)
        obj.add(
            Lab.WALL,
            Mat.WALL,
            [poly(quad)],
            max((z0 + z1) / 2, Z_CLIP),
            shade=shade,
            variant=variant,
        )
    return obj


def fence(
    cam: Camera, rng: np.random.Generator, edge: float, side: int, z0: float, z1: float
) -> Obj:
    """Thin slats with gaps: the background stays visible, as in real fences."""
    height = float(rng.uniform(0.9, 2.0))
    gap = float(rng.uniform(0.12, 0.35))
    slat = gap * float(rng.uniform(0.25, 0.6))
    za = max(z0, Z_CLIP)
    zs = np.arange(za, z1, gap)[:, None]
    slats = cam.project(edge, [0, height, height, 0], zs + np.array([0, 0, slat, slat])).reshape(
        -1, 4, 2
    )
    rails = [
        cam.project(edge, [y - 0.04, y + 0.04, y + 0.04, y - 0.04], [za, za, z1, z1])
        for y in (height * 0.15, height * 0.92)
    ]
    obj = Obj(1, float(np.hypot(edge, max(z0, 0.0))))
    obj.add(
        Lab.FENCE, Mat.FENCE, [poly(*slats, *rails)], (za + z1) / 2, variant=float(rng.random())
    )
    return obj


def tree(cam: Camera, rng: np.random.Generator, x: float, z: float, layer: int) -> Obj:
    """Trunk plus a clump of discs; trunks are vegetation in Cityscapes too."""
    s = cam.scale(z)
    trunk_h, radius = float(rng.uniform(1.5, 3.5)), float(rng.uniform(1.2, 3.2))
    obj = Obj(layer, float(np.hypot(x, z)))
    obj.add(
        Lab.VEGETATION,
        Mat.TRUNK,
        [poly(vquad(cam, x, z, 0, trunk_h + radius * 0.5, float(rng.uniform(0.12, 0.22))))],
        z,
    )
    discs = []
    for _ in range(int(rng.integers(3, 7))):
        cx = x + float(rng.uniform(-0.6, 0.6)) * radius
        cy = trunk_h + radius * float(rng.uniform(0.5, 1.2))
        r = radius * float(rng.uniform(0.45, 0.8)) * s
        discs.append(ellipse(cam.project(cx, cy, z), r, r * float(rng.uniform(0.8, 1.1))))
    obj.add(Lab.VEGETATION, Mat.VEGETATION, discs, z, variant=float(rng.random()))
    return obj


def bush(cam: Camera, rng: np.random.Generator, x: float, z: float, layer: int) -> Obj:
    s = cam.scale(z)
    obj = Obj(layer, float(np.hypot(x, z)))
    w, h = float(rng.uniform(0.8, 2.5)), float(rng.uniform(0.5, 1.3))
    obj.add(
        Lab.VEGETATION,
        Mat.VEGETATION,
        [ellipse(cam.project(x, h * 0.5, z), w * s, h * 0.55 * s)],
        z,
        variant=float(rng.random()),
    )
    return obj


# --------------------------------------------------------------------------- street furniture


def street_lamp(cam: Camera, rng: np.random.Generator, x: float, z: float, side: int) -> Obj:
    height = float(rng.uniform(6, 9))
    reach = float(rng.uniform(1.0, 2.2))
    s = cam.scale(z)
    top, tip = cam.project([x, x - side * reach], [height, height + 0.3], z)
    obj = Obj(2, float(np.hypot(x, z)))
    head = vquad(cam, x - side * reach, z, height + 0.05, height + 0.25, 0.3)
    obj.add(
        Lab.POLE,
        Mat.POLE,
        [poly(vquad(cam, x, z, 0, height, 0.09), limb(top, tip, 0.12 * s), head)],
        z,
    )
    obj.lights.append(Light(float(tip[0]), float(tip[1]) + 0.3 * s, 4.0 * s, (255, 205, 140)))
    return obj


def _plate(cam: Camera, rng: np.random.Generator, x: float, y: float, z: float):
    """A sign face (disc, triangle, diamond, rectangle) as a function of its relative size."""
    s = cam.scale(z)
    c = cam.project(x, y, z)[0]
    r = float(rng.uniform(0.28, 0.42)) * s
    kind = int(rng.integers(4))
    if kind == 0:
        return lambda k: ellipse(c, r * k, r * k)
    if kind == 1:
        tri = np.array([[0, -1], [0.95, 0.7], [-0.95, 0.7]])
        return lambda k: poly(c + tri * r * k)
    if kind == 2:
        dia = np.array([[0, -1.1], [1.1, 0], [0, 1.1], [-1.1, 0]])
        return lambda k: poly(c + dia * r * k)
    rect = np.array([[-1.2, -0.8], [1.2, -0.8], [1.2, 0.8], [-1.2, 0.8]])
    return lambda k: poly(c + rect * r * k)


def sign(
    cam: Camera, rng: np.random.Generator, x: float, z: float, pole_height: float | None = None
) -> Obj:
    height = pole_height or float(rng.uniform(2.0, 3.0))
    obj = Obj(2, float(np.hypot(x, z)))
    obj.add(Lab.POLE, Mat.POLE, [poly(vquad(cam, x, z, 0, height, 0.04))], z)
    _add_plate(obj, cam, rng, x, height, z)
    return obj


def _add_plate(
    obj: Obj, cam: Camera, rng: np.random.Generator, x: float, y: float, z: float
) -> None:
    shape = _plate(cam, rng, x, y, z)
    if rng.random() < 0.65:
        outer, inner = _pick(rng, SIGN_COLORS, 8), _pick(rng, SIGN_COLORS, 8)
        obj.add(Lab.SIGN, Mat.SIGN, [shape(1.0)], z, color=outer)
        obj.add(Lab.SIGN, Mat.SIGN, [shape(0.72)], z, color=inner)
    else:
        obj.add(Lab.SIGN, Mat.METAL, [shape(1.0)], z, color=_pick(rng, ((140, 142, 145),), 10))


_SIGNALS = ((255, 45, 35), (255, 175, 25), (45, 255, 130))


def traffic_light(cam: Camera, rng: np.random.Generator, x: float, z: float, side: int) -> Obj:
    """Pole with a signal head, sometimes on an arm over the road (thin, high, small)."""
    s = cam.scale(z)
    arm = rng.random() < 0.45
    height = 5.6 if arm else float(rng.uniform(3.0, 4.0))
    obj = Obj(2, float(np.hypot(x, z)))
    shapes = [poly(vquad(cam, x, z, 0, height, 0.08))]
    xb = x
    if arm:
        xb = x - side * float(rng.uniform(3, 6))
        a, b = cam.project([x, xb], height, z)
        shapes.append(poly(limb(a, b, 0.14 * s)))
    obj.add(Lab.POLE, Mat.POLE, shapes, z)
    top = height - (0.1 if arm else 0.0)
    box = vquad(cam, xb, z, top - 0.95, top, 0.17)
    obj.add(Lab.LIGHT, Mat.BOX, [poly(box)], z)
    if rng.random() < 0.7:
        lit = int(rng.integers(3))
        for k in range(3):
            c = cam.project(xb, top - 0.17 - k * 0.3, z)[0]
            color = _SIGNALS[k] if k == lit else (45, 45, 40)
            obj.add(
                Lab.LIGHT,
                Mat.LAMP if k == lit else Mat.BOX,
                [ellipse(c, 0.1 * s, 0.1 * s)],
                z,
                color=color,
            )
            if k == lit:
                obj.lights.append(Light(float(c[0]), float(c[1]), 1.2 * s, color))
    if rng.random() < 0.3 and not arm:
        _add_plate(obj, cam, rng, x, top - 1.4, z)
    return obj


def prop(cam: Camera, rng: np.random.Generator, x: float, z: float, label: int = Lab.STATIC) -> Obj:
    """Bins, boxes, kiosks: ignored classes that still occlude, as in real labels."""
    w, h = float(rng.uniform(0.4, 1.8)), float(rng.uniform(0.6, 2.2))
    obj = Obj(2, float(np.hypot(x, z)))
    obj.add(
        label, Mat.PROP, [poly(vquad(cam, x, z, 0, h, w / 2))], z, color=_random_color(rng, 0.5)
    )
    return obj


def hood(cam: Camera, rng: np.random.Generator) -> Obj:
    """The ego car's bonnet at the bottom of Cityscapes frames (label 'ego vehicle')."""
    w, h = cam.width, cam.height
    obj = Obj(3, 0.0)
    centre = np.array([w / 2 + rng.uniform(-0.05, 0.05) * w, h * rng.uniform(1.02, 1.1)])
    obj.add(
        Lab.EGO,
        Mat.EGO,
        [ellipse(centre, w * rng.uniform(0.6, 0.85), h * rng.uniform(0.12, 0.19))],
        1.5,
    )
    return obj


# --------------------------------------------------------------------------- vehicles

VEHICLE_LENGTH = {"car": (3.8, 4.9), "truck": (6.0, 9.5), "bus": (10.5, 13.0)}
_VEHICLE_LABEL = {"car": Lab.CAR, "truck": Lab.TRUCK, "bus": Lab.BUS, "train": Lab.TRAIN}
_FACE_SHADE = {"side": 0.78, "top": 1.12, "front": 0.95}


def _box(obj: Obj, cam: Camera, label: int, bounds: tuple, paint: tuple) -> list[str]:
    names = []
    for name, quad in box_faces(cam, *bounds):
        obj.add(
            label,
            Mat.PAINT,
            [poly(quad)],
            max(bounds[4], Z_CLIP),
            color=paint,
            shade=_FACE_SHADE[name],
        )
        names.append(name)
    return names


def _glass(
    obj: Obj, cam: Camera, label: int, bounds: tuple, y0: float, y1: float, band: bool
) -> None:
    """Windscreen on the facing side and a window band on the visible flank."""
    x0, x1, _, _, z0, z1 = bounds
    shapes = []
    if z0 >= Z_CLIP:
        shapes.append(
            poly(cam.project([x0 + 0.15, x0 + 0.15, x1 - 0.15, x1 - 0.15], [y0, y1, y1, y0], z0))
        )
    flank = x0 if x0 > 0 else (x1 if x1 < 0 else None)
    if flank is not None and band:
        za = max(z0 + 0.2, Z_CLIP)
        if z1 - 0.2 > za:
            shapes.append(poly(cam.project(flank, [y0, y1, y1, y0], [za, za, z1 - 0.2, z1 - 0.2])))
    if shapes:
        obj.add(label, Mat.GLASS, shapes, max(z0, Z_CLIP), color=(40, 48, 58))


def _wheels(
    obj: Obj, cam: Camera, label: int, x0: float, x1: float, axles: list[float], radius: float
) -> None:
    flank = x0 if x0 > 0 else (x1 if x1 < 0 else None)
    shapes = []
    for za in axles:
        if za - radius < Z_CLIP:
            continue
        if flank is not None:
            (u0, _), (u1, _) = cam.project(flank, radius, [za - radius, za + radius])
            c = cam.project(flank, radius, za)[0]
            shapes.append(ellipse(c, abs(u1 - u0) / 2, radius * cam.scale(za)))
    if shapes:
        obj.add(label, Mat.TYRE, shapes, axles[0], color=(25, 25, 27))


def _lamps(
    obj: Obj, cam: Camera, label: int, xc: float, w: float, y: float, z0: float, front: bool
) -> None:
    if z0 < Z_CLIP:
        return
    color = (255, 245, 205) if front else (215, 25, 20)
    s = cam.scale(z0)
    shapes = []
    for xl in (xc - w / 2 + 0.22, xc + w / 2 - 0.22):
        c = cam.project(xl, y, z0)[0]
        shapes.append(poly(c + np.array([[-1, -0.5], [1, -0.5], [1, 0.5], [-1, 0.5]]) * 0.15 * s))
        obj.lights.append(Light(float(c[0]), float(c[1]), (1.6 if front else 0.8) * s, color))
    obj.add(label, Mat.LAMP, shapes, z0, color=color)


def vehicle(
    cam: Camera,
    rng: np.random.Generator,
    kind: str,
    xc: float,
    z0: float,
    length: float,
    oncoming: bool,
) -> Obj:
    """Cars, trucks and buses as boxes in perspective: we see the flank only off-axis."""
    label = _VEHICLE_LABEL[kind]
    obj = Obj(2, float(np.hypot(xc, z0)))
    w = {"car": float(rng.uniform(1.7, 1.95)), "truck": 2.4, "bus": 2.55}[kind]
    x0, x1, z1 = xc - w / 2, xc + w / 2, z0 + length
    paint = _pick(rng, BUS_PAINTS if kind == "bus" else CAR_PAINTS)
    radius = 0.33 if kind == "car" else 0.5
    obj.shadows.append(
        fx(cam.project([x0 - 0.1, x0 - 0.1, x1 + 0.1, x1 + 0.1], 0, [z0 - 0.2, z1, z1, z0 - 0.2]))
    )
    axle = z0 + 0.9
    if axle > Z_CLIP:
        under = [poly(vquad(cam, xw, axle, 0, radius * 1.2, 0.14)) for xw in (x0 + 0.28, x1 - 0.28)]
        obj.add(label, Mat.TYRE, under, axle, color=(25, 25, 27))
    if kind == "car":
        top = float(rng.uniform(0.9, 1.15))
        roof = top + float(rng.uniform(0.42, 0.62))
        body = (x0, x1, 0.28, top, z0, z1)
        start = z0 + length * float(rng.uniform(0.2, 0.3))
        cabin = (x0 + 0.1, x1 - 0.1, top, roof, start, start + length * 0.48)
        _box(obj, cam, label, body, paint)
        _box(obj, cam, label, cabin, paint)
        _glass(obj, cam, label, cabin, top + 0.05, roof - 0.06, True)
        lamp_y = top - 0.2
    elif kind == "truck":
        cab_len = 2.3
        cab = (x0, x1, 0.5, 3.0, z0 if oncoming else z1 - cab_len, z0 + cab_len if oncoming else z1)
        cargo = (
            x0,
            x1,
            0.9,
            3.7,
            z0 + cab_len + 0.2 if oncoming else z0,
            z1 if oncoming else z1 - cab_len - 0.2,
        )
        cargo_paint = _pick(rng, CAR_PAINTS)
        far_first = (
            [(cargo, cargo_paint), (cab, paint)]
            if oncoming
            else [(cab, paint), (cargo, cargo_paint)]
        )
        for box, col in far_first:
            _box(obj, cam, label, box, col)
        if oncoming:
            _glass(obj, cam, label, cab, 1.8, 2.8, True)
        lamp_y = 1.0
    else:
        body = (x0, x1, 0.35, 3.1, z0, z1)
        _box(obj, cam, label, body, paint)
        _glass(obj, cam, label, body, 1.25 if oncoming else 1.6, 2.7, True)
        lamp_y = 0.9
    axles = [z0 + 0.9, z1 - 0.9] + ([z1 - 2.2] if kind != "car" else [])
    _wheels(obj, cam, label, x0, x1, axles, radius)
    _lamps(obj, cam, label, xc, w, lamp_y, z0, oncoming)
    return obj


def tram(cam: Camera, rng: np.random.Generator, xc: float, z0: float, length: float) -> Obj:
    """Cityscapes 'train' is mostly trams: a long box with windows and a pantograph."""
    obj = Obj(2, float(np.hypot(xc, z0)))
    x0, x1, z1 = xc - 1.3, xc + 1.3, z0 + length
    paint = _pick(rng, TRAIN_PAINTS)
    bounds = (x0, x1, 0.35, 3.4, z0, z1)
    _box(obj, cam, Lab.TRAIN, bounds, paint)
    _glass(obj, cam, Lab.TRAIN, bounds, 1.2, 2.6, True)
    s = cam.scale(z0 + 4)
    a, b, c = cam.project([xc, xc, xc], [3.4, 4.4, 4.6], [z0 + 4, z0 + 4.5, z0 + 6])
    obj.add(
        Lab.TRAIN,
        Mat.METAL,
        [poly(limb(a, b, 0.08 * s), limb(b, c, 0.08 * s))],
        z0 + 4,
        color=(60, 60, 62),
    )
    _lamps(obj, cam, Lab.TRAIN, xc, 2.6, 0.9, z0, bool(rng.random() < 0.5))
    return obj


# --------------------------------------------------------------------------- people & bikes


def _frame(cam: Camera, x: float, z: float, facing: float):
    """Map (along, up) metres of a figure standing at (x, z) to pixels; |facing| < 1 is
    foreshortening of anything seen at an angle."""
    s = cam.scale(z)
    base = cam.project(x, 0, z)[0]
    return lambda a, b: base + np.array([facing * a * s, -b * s]), s


def person(cam: Camera, rng: np.random.Generator, x: float, z: float) -> Obj:
    """A walking figure: legs, torso, arms, head; every colour is per instance."""
    p, s = _frame(cam, x, z, 1.0)
    hp = float(rng.uniform(1.1, 1.4) if rng.random() < 0.1 else rng.uniform(1.55, 1.95))
    wf = float(rng.uniform(0.55, 1.0))
    stride, swing = float(rng.uniform(-0.22, 0.22)), float(rng.uniform(-0.12, 0.12))
    skin, hair = _pick(rng, SKINS), _pick(rng, HAIRS)
    obj = Obj(2, float(np.hypot(x, z)))
    legs = [
        poly(limb(p(k * 0.08 * wf, 0.5 * hp), p(k * 0.07 + k * stride, 0), 0.14 * s, 0.1 * s))
        for k in (-1, 1)
    ]
    obj.add(Lab.PERSON, Mat.CLOTH, legs, z, color=_random_color(rng, 0.5))
    torso = np.stack(
        [
            p(-0.16 * wf, 0.49 * hp),
            p(-0.21 * wf, 0.81 * hp),
            p(0.21 * wf, 0.81 * hp),
            p(0.16 * wf, 0.49 * hp),
        ]
    )
    top = _random_color(rng)
    arms = [
        poly(limb(p(k * 0.2 * wf, 0.8 * hp), p(k * (0.24 * wf) + k * swing, 0.46 * hp), 0.08 * s))
        for k in (-1, 1)
    ]
    obj.add(Lab.PERSON, Mat.CLOTH, [poly(torso), *arms], z, color=top)
    r = 0.062 * hp * s
    head = p(0, 0.925 * hp)
    obj.add(Lab.PERSON, Mat.SKIN, [ellipse(head, r * 0.85, r)], z, color=skin)
    obj.add(Lab.PERSON, Mat.HAIR, [ellipse(head - [0, r * 0.35], r * 0.88, r * 0.7)], z, color=hair)
    return obj


_BIKE_FRAME = (
    (-0.52, 0.34, 0.0, 0.3),
    (0.0, 0.3, 0.42, 0.92),
    (0.42, 0.92, 0.52, 0.34),
    (-0.52, 0.34, -0.16, 0.88),
    (-0.16, 0.88, 0.0, 0.3),
    (-0.16, 0.88, 0.42, 0.92),
    (0.42, 0.92, 0.38, 1.05),
)
_RIDER_POSE = {  # hip, shoulder, head, hand, knee, foot in (along, up) metres
    "bicycle": ((-0.12, 0.98), (0.16, 1.5), (0.25, 1.68), (0.38, 1.04), (0.18, 0.66), (0.02, 0.28)),
    "motorcycle": (
        (-0.2, 0.92),
        (0.08, 1.42),
        (0.2, 1.62),
        (0.48, 1.05),
        (0.22, 0.72),
        (0.1, 0.38),
    ),
}


def two_wheeler(
    cam: Camera, rng: np.random.Generator, kind: str, x: float, z: float, ridden: bool
) -> Obj:
    """Bicycles and motorcycles at any angle, optionally with a rider sitting on them."""
    facing = float(rng.uniform(0.12, 1.0)) * (1 if rng.random() < 0.5 else -1)
    p, s = _frame(cam, x, z, facing)
    obj = Obj(2, float(np.hypot(x, z)))
    label = Lab.BICYCLE if kind == "bicycle" else Lab.MOTORCYCLE
    paint = _pick(rng, BIKE_PAINTS if kind == "bicycle" else CAR_PAINTS)
    if kind == "bicycle":
        ring = max(1, int(round(0.05 * s)))
        wheels = [
            ellipse(p(a, 0.34), 0.34 * abs(facing) * s, 0.34 * s, ring) for a in (-0.52, 0.52)
        ]
        obj.add(label, Mat.TYRE, wheels, z, color=(30, 30, 30))
        tubes = [poly(limb(p(a0, b0), p(a1, b1), 0.045 * s)) for a0, b0, a1, b1 in _BIKE_FRAME]
        obj.add(label, Mat.METAL, tubes, z, color=paint)
    else:
        wheels = [ellipse(p(a, 0.31), 0.31 * abs(facing) * s, 0.31 * s) for a in (-0.68, 0.68)]
        obj.add(label, Mat.TYRE, wheels, z, color=(28, 28, 28))
        body = np.stack(
            [
                p(a, b)
                for a, b in (
                    (-0.78, 0.55),
                    (-0.3, 0.82),
                    (0.3, 0.9),
                    (0.62, 0.98),
                    (0.74, 0.6),
                    (0.2, 0.32),
                    (-0.5, 0.4),
                )
            ]
        )
        obj.add(
            label,
            Mat.PAINT,
            [poly(body), poly(limb(p(0.55, 0.95), p(0.5, 1.12), 0.06 * s))],
            z,
            color=paint,
        )
    if ridden:
        _rider(obj, rng, p, s, kind, z)
    return obj


def _rider(obj: Obj, rng: np.random.Generator, p, s: float, kind: str, z: float) -> None:
    hip, shoulder, head, hand, knee, foot = (p(*q) for q in _RIDER_POSE[kind])
    cloth = _random_color(rng)
    legs = [poly(limb(hip, knee, 0.15 * s, 0.12 * s)), poly(limb(knee, foot, 0.11 * s))]
    obj.add(Lab.RIDER, Mat.CLOTH, legs, z, color=_random_color(rng, 0.5))
    body = [poly(limb(hip, shoulder, 0.3 * s, 0.36 * s)), poly(limb(shoulder, hand, 0.08 * s))]
    obj.add(Lab.RIDER, Mat.CLOTH, body, z, color=cloth)
    if kind == "motorcycle":
        obj.add(
            Lab.RIDER,
            Mat.PAINT,
            [ellipse(head, 0.14 * s, 0.15 * s)],
            z,
            color=_pick(rng, CAR_PAINTS),
        )
    else:
        obj.add(
            Lab.RIDER, Mat.SKIN, [ellipse(head, 0.1 * s, 0.115 * s)], z, color=_pick(rng, SKINS)
        )


# --------------------------------------------------------------------------- layout


@dataclass
class Segment:
    """One stretch of one street side between two depths."""

    z0: float
    z1: float
    kind: Kind
    zone_label: int
    zone_material: int
    line: float = 0.0  # signed lateral position of the (possibly set-back) building line
    height: float = 0.0


@dataclass
class Road:
    """The main street cross-section and its crossings, in metres (camera at x = 0)."""

    lane_width: float
    lanes: int
    left: float
    right: float
    walk_left: float
    walk_right: float
    crosses: list[tuple[float, float]]
    verges: tuple[float, float] = (0.0, 0.0)  # grass strip widths (left, right)
    tram: float | None = None

    def curb(self, side: int) -> float:
        return self.right if side > 0 else self.left

    def walk(self, side: int) -> float:
        return self.walk_right if side > 0 else self.walk_left

    def verge(self, side: int) -> float:
        return self.verges[side > 0]

    def edge(self, side: int) -> float:
        """Outer sidewalk edge, where buildings, walls and fences start."""
        return self.curb(side) + side * (self.verge(side) + self.walk(side))

    def footway(self, side: int, rng: np.random.Generator, extra: float = 0.0) -> float:
        """A random lateral position on the paved part of the sidewalk."""
        start = self.verge(side) + 0.3
        return self.curb(side) + side * float(rng.uniform(start, start + self.walk(side) + extra))


@dataclass
class Scene:
    """Everything the renderers need; `parts` is already in painter's order."""

    cam: Camera
    ground_label: np.ndarray
    ground_material: np.ndarray
    ground_x: np.ndarray
    ground_z: np.ndarray
    shadow: np.ndarray
    parts: list[Part]
    lights: list[Light]


def _u(rng: np.random.Generator, lo_hi: tuple[float, float]) -> float:
    return float(rng.uniform(*lo_hi))


def _near_biased(rng: np.random.Generator, lo: float, hi: float) -> float:
    """More objects near than far, like traffic seen from a car."""
    return lo + (hi - lo) * float(rng.random()) ** 1.4


def _camera(rng: np.random.Generator, size: tuple[int, int], st: LayoutStats) -> Camera:
    w, h = size
    return Camera(
        width=w,
        height=h,
        focal=_u(rng, st.focal) * w,
        cx=w / 2 + float(rng.uniform(-st.yaw, st.yaw)) * w,
        horizon=_u(rng, st.horizon) * h,
        eye=_u(rng, st.eye),
    )


def _road(rng: np.random.Generator, st: LayoutStats) -> Road:
    lw = _u(rng, st.lane_width)
    lanes = int(rng.integers(st.lanes[0], st.lanes[1] + 1))
    park_r = 2.2 if rng.random() < 0.6 else 0.4
    park_l = 2.2 if rng.random() < 0.5 else 0.4
    crosses: list[tuple[float, float]] = []
    for _ in range(int(rng.poisson(st.cross_streets))):
        z0 = float(rng.uniform(14, 80))
        if all(abs(z0 - c) > 30 for c, _ in crosses):
            crosses.append((z0, z0 + float(rng.uniform(8, 14))))
    verges = tuple(
        float(rng.uniform(0.8, 2.2)) if rng.random() < st.verge else 0.0 for _ in range(2)
    )
    road = Road(
        lw,
        lanes,
        -(lanes - 0.5) * lw - park_l,
        0.5 * lw + park_r,
        _u(rng, st.sidewalk),
        _u(rng, st.sidewalk),
        sorted(crosses),
        verges,
    )
    if rng.random() < st.train:
        road.tram = -lw * float(rng.integers(1, lanes)) if lanes > 1 else 0.0
    return road


def _block(
    rng: np.random.Generator,
    st: LayoutStats,
    road: Road,
    side: int,
    z0: float,
    z1: float,
    kind: Kind,
) -> Segment:
    edge = road.edge(side)
    height = _u(rng, st.building_height) * float(rng.uniform(0.7, 1.3))
    if kind == Kind.BUILDING:
        setback = 0.0 if rng.random() < 0.7 else float(rng.uniform(1, 4))
        zl, zm = (Lab.GROUND, Mat.GROUND) if rng.random() < 0.25 else (Lab.SIDEWALK, Mat.SIDEWALK)
        return Segment(z0, z1, kind, zl, zm, edge + side * setback, height)
    zl, zm = (Lab.GROUND, Mat.GROUND) if rng.random() < 0.15 else (Lab.TERRAIN, Mat.TERRAIN)
    back = edge + side * float(rng.uniform(6, 25)) if rng.random() < 0.65 else 0.0
    return Segment(z0, z1, kind, zl, zm, back, height if back else 0.0)


def _segments(
    rng: np.random.Generator, st: LayoutStats, road: Road, side: int, far: float
) -> list[Segment]:
    """Street-side blocks between crossings, from just behind the camera to the backdrop."""
    probs = np.asarray(st.kinds) / sum(st.kinds)
    segs: list[Segment] = []
    z = -float(rng.uniform(0, 10))
    for c0, c1 in [*road.crosses, (far, far)]:
        while z < c0 - 1:
            z1 = min(z + _u(rng, st.block_len), c0)
            z1 = c0 if c0 - z1 < 5 else z1
            segs.append(_block(rng, st, road, side, z, z1, Kind(int(rng.choice(4, p=probs)))))
            z = z1
        if c1 > c0:
            segs.append(Segment(c0, c1, Kind.CROSS, Lab.ROAD, Mat.ROAD))
            z = c1
    return segs


def _ground(
    cam: Camera, road: Road, sides: dict[int, list[Segment]], sun: int, shadow_len: float
) -> tuple[np.ndarray, ...]:
    """Classify every ground pixel from its exact (x, z) on the ground plane."""
    h, w = cam.height, cam.width
    v = np.arange(h, dtype=np.float64)[:, None] + 0.5
    u = np.arange(w, dtype=np.float64)[None, :] + 0.5
    below = np.broadcast_to((v - cam.horizon) > 0.3, (h, w))
    z = np.broadcast_to(
        np.where(below[:, :1], cam.focal * cam.eye / np.maximum(v - cam.horizon, 0.3), 1e4), (h, w)
    )
    x = np.where(below, (u - cam.cx) * z / cam.focal, 0.0)
    label = np.full((h, w), Lab.SKY, np.uint8)
    mat = np.full((h, w), Mat.SKY, np.uint8)
    shadow = np.zeros((h, w), np.uint8)
    for side, segs in sides.items():
        idx = np.clip(
            np.searchsorted([sg.z0 for sg in segs], z, side="right") - 1, 0, len(segs) - 1
        )
        out = (x - road.curb(side)) * side
        on = below & (out > 0)
        walk = road.walk(side) + road.verge(side)
        grass = (out >= 0.2) & (out < 0.2 + road.verge(side))
        zone_l = np.array([sg.zone_label for sg in segs], np.uint8)[idx]
        zone_m = np.array([sg.zone_material for sg in segs], np.uint8)[idx]
        cross = np.array([sg.kind == Kind.CROSS for sg in segs])[idx]
        label[on] = np.where(
            cross | (out >= walk), zone_l, np.where(grass, Lab.TERRAIN, Lab.SIDEWALK)
        )[on]
        mat[on] = np.where(
            cross | (out >= walk),
            zone_m,
            np.where(grass, Mat.TERRAIN, np.where(out < 0.2, Mat.CURB, Mat.SIDEWALK)),
        )[on]
        if side == sun:
            lines = np.array(
                [sg.line * side if sg.kind == Kind.BUILDING else np.inf for sg in segs]
            )[idx]
            reach = np.array([sg.height * shadow_len for sg in segs])[idx]
            shadow |= (below & (x * side < lines) & (x * side > lines - reach)).astype(np.uint8)
    on_road = below & (x >= road.left) & (x <= road.right)
    label[on_road] = Lab.ROAD
    mat[on_road] = _road_markings(x, z, road)[on_road]
    return label, mat, x.astype(np.float32), z.astype(np.float32), shadow


def _road_markings(x: np.ndarray, z: np.ndarray, road: Road) -> np.ndarray:
    """Lane lines, edge lines, crosswalks, tram rails: road label, own material."""
    lw = road.lane_width
    mark = (np.abs(x - 0.5 * lw) < 0.06) | (np.abs(x + (road.lanes - 0.5) * lw) < 0.06)
    for k in range(road.lanes - 1):
        mark |= (np.abs(x + (k + 0.5) * lw) < 0.07) & (np.mod(z, 9.0) < 4.0)
    for c0, _ in road.crosses:
        mark |= (z > c0 - 4.0) & (z < c0 - 0.8) & (np.mod(x, 1.0) < 0.5)
    mat = np.where(mark, Mat.MARKING, Mat.ROAD).astype(np.uint8)
    if road.tram is not None:
        mat[(np.abs(np.abs(x - road.tram) - 0.72) < 0.05)] = Mat.METAL
    return mat


# --------------------------------------------------------------------------- populating


def _side_objects(
    cam: Camera, rng: np.random.Generator, road: Road, side: int, seg: Segment
) -> list[Obj]:
    """Buildings, walls, fences and park trees of one block (behind street furniture)."""
    if seg.kind == Kind.CROSS:
        return []
    objs: list[Obj] = []
    edge = road.edge(side)
    if seg.line:
        objs.append(building(cam, rng, seg.line, side, seg.z0, seg.z1, seg.height))
    if seg.kind == Kind.WALL:
        objs.append(wall(cam, rng, edge, side, seg.z0, seg.z1))
    elif seg.kind == Kind.FENCE:
        objs.append(fence(cam, rng, edge, side, seg.z0, seg.z1))
    if seg.kind != Kind.BUILDING:
        depth = abs(seg.line - edge) - 2 if seg.line else 14.0
        for _ in range(int(rng.poisson(max(seg.z1 - max(seg.z0, 0), 0) / 6))):
            x = edge + side * float(rng.uniform(1.0, max(depth, 1.5)))
            z = float(rng.uniform(max(seg.z0, 2), max(seg.z1, 3)))
            maker = tree if rng.random() < 0.6 else bush
            objs.append(maker(cam, rng, x, z, 1))
    return objs


def _backdrop(cam: Camera, rng: np.random.Generator, far: float, st: LayoutStats) -> list[Obj]:
    """Buildings and tree lines across the end of the street, so nothing ends in a void."""
    objs = []
    half = far * max(cam.cx, cam.width - cam.cx) / cam.focal + 10
    x = -half
    while x < half:
        width = float(rng.uniform(8, 30))
        pick = rng.random()
        if pick < 0.6:
            height = _u(rng, st.building_height) * float(rng.uniform(0.6, 1.6))
            obj = Obj(0, far)
            quad = cam.project([x, x, x + width, x + width], [0, height, height, 0], far)
            obj.add(Lab.BUILDING, Mat.BUILDING, [poly(quad)], far, variant=float(rng.random()))
            objs.append(obj)
        elif pick < 0.85:
            objs += [
                tree(cam, rng, x + float(rng.uniform(0, width)), far - 1, 0)
                for _ in range(int(width // 3) + 1)
            ]
        x += width
    return objs


def _furniture(
    cam: Camera, rng: np.random.Generator, st: LayoutStats, road: Road, far: float
) -> list[Obj]:
    """Poles, lamps, traffic lights, signs, sidewalk trees and props."""
    objs: list[Obj] = []
    for side in (-1, 1):
        curb = road.curb(side) + side * 0.45
        if rng.random() < st.lamps:
            z = float(rng.uniform(2, 20))
            while z < far * 0.6:
                objs.append(street_lamp(cam, rng, curb, z, side))
                z += float(rng.uniform(18, 35))
        if rng.random() < st.tree_rows:
            z = float(rng.uniform(2, 10))
            xt = road.edge(side) - side * float(rng.uniform(0.6, 1.2))
            if road.verge(side):
                xt = road.curb(side) + side * (0.2 + road.verge(side) / 2)
            while z < far * 0.6:
                if not any(c0 - 1 < z < c1 + 1 for c0, c1 in road.crosses):
                    objs.append(tree(cam, rng, xt, z, 2))
                z += float(rng.uniform(7, 14))
        for c0, _ in road.crosses:
            objs.append(traffic_light(cam, rng, curb, c0 - 1.0, side))
        for _ in range(int(rng.poisson(st.signs / 2))):
            x = curb + side * float(rng.uniform(0, 0.6))
            objs.append(sign(cam, rng, x, _near_biased(rng, 3, far * 0.5)))
        for _ in range(int(rng.poisson(0.5))):
            x = road.footway(side, rng, -0.6)
            objs.append(prop(cam, rng, x, float(rng.uniform(3, 50))))
    if rng.random() < 0.5:  # a few unlabeled pixels, as in real annotations
        side = 1 if rng.random() < 0.5 else -1
        x = road.edge(side) - side * 0.5
        objs.append(prop(cam, rng, x, float(rng.uniform(5, 60)), Lab.UNLABELED))
    return objs


class _Lanes:
    """Free-space bookkeeping so vehicles in one lane never intersect."""

    def __init__(self) -> None:
        self.taken: dict[float, list[tuple[float, float]]] = {}

    def claim(self, x: float, z0: float, z1: float) -> bool:
        spans = self.taken.setdefault(round(x, 1), [])
        if any(z0 < b + 1.5 and z1 > a - 1.5 for a, b in spans):
            return False
        spans.append((z0, z1))
        return True


def _traffic(
    cam: Camera, rng: np.random.Generator, st: LayoutStats, road: Road, far: float
) -> list[Obj]:
    """Vehicles and two-wheelers, placed without lane collisions."""
    objs: list[Obj] = []
    lanes = _Lanes()
    lw = road.lane_width
    centres = [-k * lw for k in range(road.lanes)]
    if road.tram is not None:
        z0, length = float(rng.uniform(6, 45)), float(rng.uniform(25, 40))
        lanes.claim(road.tram, z0, z0 + length)
        objs.append(tram(cam, rng, road.tram, z0, length))
    for kind, rate in (("car", st.moving_cars), ("truck", st.trucks), ("bus", st.buses)):
        for _ in range(int(rng.poisson(rate))):
            lane = centres[int(rng.integers(len(centres)))]
            z0 = _near_biased(rng, 6.0 if lane == 0 else 2.0, far * 0.7)
            length = _u(rng, VEHICLE_LENGTH[kind])
            if lanes.claim(lane, z0, z0 + length):
                objs.append(
                    vehicle(
                        cam,
                        rng,
                        kind,
                        lane + float(rng.uniform(-0.3, 0.3)),
                        z0,
                        length,
                        lane < -(road.lanes / 2 - 0.5) * lw,
                    )
                )
    for side in (-1, 1):
        park_x = road.curb(side) - side * 1.1
        for _ in range(int(rng.poisson(st.parked_cars / 2))):
            z0 = _near_biased(rng, 1.0, far * 0.6)
            length = _u(rng, VEHICLE_LENGTH["car"])
            if lanes.claim(park_x, z0, z0 + length):
                objs.append(vehicle(cam, rng, "car", park_x, z0, length, rng.random() < 0.3))
    for _ in range(int(rng.poisson(st.motorbikes))):
        x = centres[int(rng.integers(len(centres)))] + float(rng.uniform(-0.8, 0.8))
        objs.append(
            two_wheeler(
                cam,
                rng,
                "motorcycle",
                x,
                _near_biased(rng, 4, far * 0.5),
                ridden=rng.random() < 0.75,
            )
        )
    for _ in range(int(rng.poisson(st.cyclists))):
        x = (
            road.right - float(rng.uniform(0.5, 1.5))
            if rng.random() < 0.7
            else float(rng.uniform(road.left, road.right))
        )
        objs.append(two_wheeler(cam, rng, "bicycle", x, _near_biased(rng, 4, far * 0.5), True))
    for _ in range(int(rng.poisson(st.parked_bikes))):
        side = 1 if rng.random() < 0.5 else -1
        x = road.footway(side, rng, 1.0 - road.walk(side))
        objs.append(two_wheeler(cam, rng, "bicycle", x, _near_biased(rng, 3, far * 0.4), False))
    return objs


def _pedestrians(
    cam: Camera, rng: np.random.Generator, st: LayoutStats, road: Road, far: float
) -> list[Obj]:
    objs = []
    for _ in range(int(rng.poisson(st.persons))):
        side = 1 if rng.random() < 0.5 else -1
        x = road.footway(side, rng, 0.5)
        z = _near_biased(rng, 2.5, far * 0.5)
        for k in range(1 + int(rng.poisson(0.4))):
            objs.append(
                person(
                    cam,
                    rng,
                    x + k * float(rng.uniform(-0.7, 0.7)),
                    z + k * float(rng.uniform(-1, 1)),
                )
            )
    for c0, _ in road.crosses:
        for _ in range(int(rng.poisson(1.2))):
            x = float(rng.uniform(road.left, road.right))
            objs.append(person(cam, rng, x, c0 - float(rng.uniform(1, 3.5))))
    return objs


def build_scene(rng: np.random.Generator, size: tuple[int, int], st: LayoutStats) -> Scene:
    """Sample one street scene; all randomness comes from `rng`, so a seed fixes the scene."""
    cam = _camera(rng, size, st)
    road = _road(rng, st)
    far = float(rng.uniform(90, 160))
    sides = {side: _segments(rng, st, road, side, far) for side in (-1, 1)}
    sun = 1 if rng.random() < 0.5 else -1
    g_label, g_mat, g_x, g_z, shadow = _ground(cam, road, sides, sun, float(rng.uniform(0.3, 1.0)))
    objs = _backdrop(cam, rng, far, st)
    for side, segs in sides.items():
        for seg in segs:
            objs += _side_objects(cam, rng, road, side, seg)
    objs += _furniture(cam, rng, st, road, far)
    objs += _traffic(cam, rng, st, road, far)
    objs += _pedestrians(cam, rng, st, road, far)
    if rng.random() < st.hood:
        objs.append(hood(cam, rng))
    objs.sort(key=lambda o: (o.layer, -o.dist))
    for obj in objs:
        if obj.shadows:
            cv2.fillPoly(shadow, obj.shadows, 1, cv2.LINE_8, SHIFT)
    parts = [p for o in objs for p in o.parts]
    lights = [lt for o in objs for lt in o.lights]
    return Scene(cam, g_label, g_mat, g_x, g_z, shadow, parts, lights)


# --------------------------------------------------------------------------- rasterising


def part_ids(scene: Scene) -> np.ndarray:
    """Painter's-order raster of part indices (0 = ground/sky); labels derive from it."""
    pid = np.zeros((scene.cam.height, scene.cam.width), np.uint16)
    for i, part in enumerate(scene.parts, 1):
        for shape in part.shapes:
            draw_shape(pid, shape, i, cv2.LINE_8)
    return pid


def label_map(scene: Scene, pid: np.ndarray) -> np.ndarray:
    """Cityscapes label IDs per pixel, exactly aligned with the image geometry."""
    lut = np.array([0] + [p.label for p in scene.parts], np.uint8)
    return np.where(pid == 0, scene.ground_label, lut[pid])


def material_map(scene: Scene, pid: np.ndarray) -> np.ndarray:
    lut = np.array([0] + [p.material for p in scene.parts], np.uint8)
    return np.where(pid == 0, scene.ground_material, lut[pid])


def depth_map(scene: Scene, pid: np.ndarray) -> np.ndarray:
    """Metres to the camera (sky = 1e4); only fog needs it."""
    lut = np.array([0.0] + [p.depth for p in scene.parts], np.float32)
    return np.where(pid == 0, scene.ground_z, lut[pid])
