"""Digits drawn with a pen, stroke by stroke, the way people write them (for predict tests).

Coordinates are in a unit box (x right, y down); `pen_digit_png` scales them to the canvas.
"""
import io
import math

from PIL import Image, ImageDraw


def _arc(cx, cy, rx, ry, start_deg, end_deg, n=24):
    return [(cx + rx * math.cos(math.radians(a)), cy + ry * math.sin(math.radians(a)))
            for a in [start_deg + (end_deg - start_deg) * i / n for i in range(n + 1)]]


STROKES = {
    0: [_arc(0.5, 0.5, 0.28, 0.42, 0, 360)],
    1: [[(0.45, 0.2), (0.55, 0.08), (0.55, 0.92)]],
    2: [_arc(0.5, 0.3, 0.27, 0.22, 200, 380) + [(0.22, 0.9), (0.8, 0.9)]],
    3: [_arc(0.48, 0.3, 0.25, 0.2, 210, 450) + _arc(0.48, 0.7, 0.28, 0.22, 270, 520)],
    4: [[(0.6, 0.08), (0.2, 0.65), (0.85, 0.65)], [(0.65, 0.35), (0.65, 0.95)]],
    5: [[(0.78, 0.1), (0.3, 0.1), (0.27, 0.45)] + _arc(0.5, 0.66, 0.28, 0.26, 230, 500)],
    6: [_arc(0.62, 0.45, 0.35, 0.4, 250, 180) + _arc(0.5, 0.7, 0.23, 0.22, 180, 540)],
    7: [[(0.2, 0.1), (0.8, 0.1), (0.4, 0.92)]],
    8: [_arc(0.5, 0.28, 0.2, 0.19, 0, 360), _arc(0.5, 0.7, 0.25, 0.22, 0, 360)],
    9: [_arc(0.5, 0.3, 0.24, 0.21, 0, 360), [(0.74, 0.3), (0.7, 0.92)]],
}


def pen_digit_png(digit: int, size=(200, 240), ink="black", paper="white", pen=0.09) -> bytes:
    """PNG bytes of `digit` written with a pen `pen` x height thick, black on white by default."""
    width, height = size
    side = min(width, height) * 0.8
    ox, oy = (width - side) / 2, (height - side) / 2
    img = Image.new("RGB", size, paper)
    draw = ImageDraw.Draw(img)
    w = max(2, round(pen * side))
    for stroke in STROKES[digit]:
        pts = [(ox + x * side, oy + y * side) for x, y in stroke]
        draw.line(pts, fill=ink, width=w, joint="curve")
        for x, y in (pts[0], pts[-1]):  # round pen ends
            draw.ellipse((x - w / 2, y - w / 2, x + w / 2, y + w / 2), fill=ink)
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()
