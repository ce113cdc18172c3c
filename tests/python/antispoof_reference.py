#!/usr/bin/env python3
"""The anti-spoofing model (fr_liveness.onnx) run by ONNX Runtime, the model's own runtime family,
with FaceReko's pre-processing written again in NumPy (src/engine/local/antispoof.rs).

In a venv with `pip install onnxruntime numpy pillow`; FACEDATA is ../shared/facedata.

    antispoof_reference.py fixture MODEL FACEDATA > tests/fixtures/antispoof_reference.json
        Expected logits for a synthetic pattern and a few real faces with fixed boxes, for the
        test `antispoof::matches_the_reference_runtime` (tests/it/antispoof.rs).

    antispoof_reference.py attacks MODEL FACEDATA BOXES.tsv [bgr|rgb]
        Live scores of the real photos and of SYNTHETIC attacks made from each (re-displayed on a
        screen, shown on a phone, printed), with the detector's boxes written by
        `FACEREKO_ANTISPOOF_BOXES=BOXES.tsv cargo test --test it antispoof::live_scores`.
        Not real attacks: they only show what the model reacts to. `rgb` feeds the colours in the
        order the package's JavaScript does, for comparison; FaceReko feeds blue, green, red.
"""
import csv
import hashlib
import json
import sys

import numpy as np
import onnxruntime as ort
from PIL import Image

SIDE = 128
CROP_SCALE = 2.7

# (picture under FACEDATA, face box left, top, width, height): the detector's boxes rounded, and
# one against a corner. PNG pictures decode to the same pixels everywhere; a JPEG decodes a level
# or two apart in Pillow (libjpeg-turbo) and in the image crate, which moves the scores a little.
FIXTURE_FACES = [
    ("diverse/gfriend_yuju/1.png", 18.1, 2.1, 127.8, 143.8),
    ("diverse/virat_kohli/1.png", 101.4, 16.0, 250.7, 358.0),
    ("diverse/virat_kohli/4.png", 40.8, 51.0, 319.7, 342.2),
    ("diverse/virat_kohli/4.png", 380.0, 390.0, 30.0, 40.0),
    ("lfw10/Colin_Powell/Colin_Powell_0001.jpg", 70.5, 65.3, 87.2, 121.4),
    ("diverse/kofi_annan/1.jpg", 77.5, 58.7, 95.9, 134.7),
]


def pattern():
    """The synthetic picture the Rust test makes too: 320x240, no decoder involved."""
    y, x, c = np.mgrid[0:240, 0:320, 0:3]
    return ((x * 7 + y * 13 + c * 61 + (x * y) // 5) % 256).astype(np.uint8)


PATTERN_BOX = (100.0, 60.0, 70.0, 90.0)


def crop_square(box, width, height):
    left, top, box_w, box_h = box
    side = min(box_h * CROP_SCALE, width, height)
    centre_x, centre_y = left + max(box_w, 0.0) / 2, top + box_h / 2
    return (
        min(max(centre_x - side / 2, 0.0), width - side),
        min(max(centre_y - side / 2, 0.0), height - side),
        side,
    )


def model_input(rgb, box, order="bgr"):
    """NCHW float32, BGR 0..255, bilinear samples at the centres of 128x128 cells of the crop."""
    height, width = rgb.shape[:2]
    left, top, side = crop_square(box, width, height)
    step = side / SIDE

    def axis(start, size):
        at = np.clip(start + (np.arange(SIDE) + 0.5) * step - 0.5, 0, size - 1)
        first = np.floor(at)
        return first.astype(int), np.minimum(first.astype(int) + 1, size - 1), (at - first).astype(np.float32)

    x0, x1, wx = axis(left, width)
    y0, y1, wy = axis(top, height)
    image = rgb.astype(np.float32)
    wx = wx[None, :, None]
    upper = image[y0][:, x0] + (image[y0][:, x1] - image[y0][:, x0]) * wx
    lower = image[y1][:, x0] + (image[y1][:, x1] - image[y1][:, x0]) * wx
    values = upper + (lower - upper) * wy[:, None, None]
    if order == "bgr":
        values = values[:, :, ::-1]
    return values.transpose(2, 0, 1)[None].astype(np.float32)


class Model:
    def __init__(self, path, order="bgr"):
        self.order = order
        self.session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        with open(path, "rb") as f:
            self.sha256 = hashlib.sha256(f.read()).hexdigest()

    def logits(self, rgb, box):
        return self.session.run(["output"], {"input": model_input(rgb, box, self.order)})[0][0]

    def live_score(self, rgb, box):
        logits = self.logits(rgb, box).astype(np.float64)
        exp = np.exp(logits - logits.max())
        return float(exp[0] / exp.sum())


def read_rgb(path):
    # A grey picture gives its channel three times, as FaceReko's decoding does.
    return np.asarray(Image.open(path).convert("RGB"))


def fixture(model_path, facedata):
    model = Model(model_path)
    faces = [{"picture": None, "box": list(PATTERN_BOX), "rgb": pattern()}]
    faces += [{"picture": p, "box": list(b), "rgb": read_rgb(f"{facedata}/{p}")} for p, *b in FIXTURE_FACES]
    out = []
    for face in faces:
        logits = model.logits(face["rgb"], tuple(face["box"]))
        out.append({
            "picture": face["picture"],
            "box": face["box"],
            "logits": [round(float(v), 5) for v in logits],
            "live_score": round(model.live_score(face["rgb"], tuple(face["box"])), 6),
        })
    json.dump({"model_sha256": model.sha256, "runtime": f"onnxruntime {ort.__version__}", "faces": out}, sys.stdout, indent=1)
    print()


# --- Synthetic attacks: each returns the attack picture and the face box in it. ---

def moire(shape, rng, strength):
    """Interference of the screen's pixel grid with the camera's: a fine, slightly turned grating."""
    height, width = shape[:2]
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(0.1, 0.5)
    period = rng.uniform(2.5, 4.0)
    wave = np.sin(2 * np.pi * (x * np.cos(angle) + y * np.sin(angle)) / period)
    beat = 0.5 + 0.5 * np.sin(2 * np.pi * (x * np.sin(angle) - y * np.cos(angle)) / rng.uniform(20, 40))
    return 1 + strength * wave * beat


def blur(image):
    padded = np.pad(image, ((1, 1), (1, 1), (0, 0)), mode="edge")
    kernel = [(0, 0, 1), (0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 1, 4), (1, 2, 2), (2, 0, 1), (2, 1, 2), (2, 2, 1)]
    h, w = image.shape[:2]
    return sum(k * padded[dy:dy + h, dx:dx + w] for dy, dx, k in kernel) / 16


def screen(rgb, box, rng):
    """The photo filling the frame as re-displayed on a screen: gamma, a warm or cool cast, moiré, blur."""
    image = (rgb.astype(np.float32) / 255) ** 0.8 * 255
    cast = rng.uniform(-0.08, 0.08)
    image = image * np.array([1 - cast, 1.0, 1 + cast], np.float32)
    image = blur(image) * moire(image.shape, rng, 0.12)[:, :, None]
    image += rng.normal(0, 3, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8), box


def held(canvas_shape, shape, scale, rng):
    """Where a picture of `shape` scaled by `scale` lands on the canvas: anywhere it fits."""
    free_x = canvas_shape[1] - round(shape[1] * scale)
    free_y = canvas_shape[0] - round(shape[0] * scale)
    return int(rng.integers(0, free_x + 1)), int(rng.integers(0, free_y + 1))


def place(picture, box, scale, at, background):
    """`picture` scaled by `scale` pasted at `at` on `background`; the box follows."""
    h, w = picture.shape[:2]
    small = np.asarray(Image.fromarray(picture).resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.BILINEAR))
    canvas = background.copy()
    x, y = at
    sh, sw = small.shape[:2]
    canvas[y:y + sh, x:x + sw] = small
    left, top, bw, bh = box
    return canvas, (x + left * scale, y + top * scale, bw * scale, bh * scale)


def room(shape, rng):
    """A plain wall behind the held-up picture."""
    colour = rng.uniform(90, 200, 3)
    wall = np.ones(shape, np.float32) * colour + rng.normal(0, 4, shape)
    return np.clip(wall, 0, 255).astype(np.uint8)


def phone(rgb, box, rng):
    """The photo on a phone held up to the camera: the screen look inside a black bezel."""
    shown, _ = screen(rgb, box, rng)
    h, w = rgb.shape[:2]
    bezel = max(4, w // 20)
    device = np.full((h + 2 * bezel, w + 2 * bezel, 3), 12, np.uint8)
    device[bezel:bezel + h, bezel:bezel + w] = shown
    device_box = (box[0] + bezel, box[1] + bezel, box[2], box[3])
    canvas_shape = (int(h * 1.5), int(w * 1.5), 3)
    scale = 0.85
    return place(device, device_box, scale, held(canvas_shape, device.shape, scale, rng), room(canvas_shape, rng))


def printed(rgb, box, rng):
    """The photo printed and held up: lower contrast, warm paper, grain, a white paper margin."""
    image = rgb.astype(np.float32)
    grey = image.mean(axis=2, keepdims=True)
    image = grey + (image - grey) * 0.8
    image = 30 + image * (200 - 30) / 255
    image = image * np.array([1.03, 1.0, 0.93], np.float32) + rng.normal(0, 5, image.shape)
    image = np.clip(blur(image), 0, 255)
    h, w = rgb.shape[:2]
    margin = max(4, w // 12)
    paper = np.full((h + 2 * margin, w + 2 * margin, 3), 235, np.float32) + rng.normal(0, 3, (h + 2 * margin, w + 2 * margin, 3))
    paper[margin:margin + h, margin:margin + w] = image
    paper_box = (box[0] + margin, box[1] + margin, box[2], box[3])
    canvas_shape = (int(h * 1.5), int(w * 1.5), 3)
    scale = 0.85
    paper = np.clip(paper, 0, 255).astype(np.uint8)
    return place(paper, paper_box, scale, held(canvas_shape, paper.shape, scale, rng), room(canvas_shape, rng))


ATTACKS = [("screen (moire, gamma)", screen), ("phone (bezel, screen look)", phone), ("print (paper edge, low contrast)", printed)]
THRESHOLDS = [0.05, 0.1, 0.2, 0.3, 0.5]


def summary(scores, real=None):
    """n, median, quartiles, the share rejected (score below) at each threshold, and for an attack
    the chance that it scores below a random real photo of its set (1 = always told apart)."""
    s = np.array(scores)
    q1, median, q3 = np.percentile(s, [25, 50, 75])
    rejected = " ".join(f"{(s < t).mean():5.2f}" for t in THRESHOLDS)
    separation = ""
    if real is not None:
        r = np.array(real)
        separation = f"   {(s[:, None] < r[None, :]).mean() + 0.5 * (s[:, None] == r[None, :]).mean():.3f}"
    return f"{len(s):4d} {median:7.3f} {q1:7.3f} {q3:7.3f}   {rejected}{separation}"


def attacks(model_path, facedata, boxes_path, order="bgr"):
    model = Model(model_path, order)
    rng = np.random.default_rng(20)
    by_group = {}
    with open(boxes_path) as f:
        for row in csv.DictReader(f, delimiter="\t"):
            by_group.setdefault(row["group"], []).append(row)
    print(f"channel order {order}; shares rejected (live score below the threshold); AUC against the set's real photos")
    thresholds = " ".join(f"{t:5}" for t in THRESHOLDS)
    print(f"{'set':<54} {'n':>4} {'median':>7} {'q1':>7} {'q3':>7}   {thresholds}   AUC")
    worst = 0.0
    for group, rows in by_group.items():
        real, attacked = [], {name: [] for name, _ in ATTACKS}
        for row in rows:
            rgb = read_rgb(f"{facedata}/{row['picture']}")
            box = tuple(float(row[k]) for k in ("left", "top", "width", "height"))
            score = model.live_score(rgb, box)
            worst = max(worst, abs(score - float(row["score"])))
            real.append(score)
            for name, make in ATTACKS:
                picture, moved = make(rgb, box, rng)
                attacked[name].append(model.live_score(picture, moved))
        print(f"{group + ', real photos':<54} {summary(real)}")
        for name, scores in attacked.items():
            print(f"{group + ', SYNTHETIC ' + name:<54} {summary(scores, real)}")
    if order == "bgr":
        print(f"largest difference from FaceReko's own score of the real photos: {worst:.4f}")


def main():
    command, *args = sys.argv[1:]
    {"fixture": fixture, "attacks": attacks}[command](*args)


if __name__ == "__main__":
    main()
