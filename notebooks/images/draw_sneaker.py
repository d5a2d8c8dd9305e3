"""Draws ``sneaker.png``: a sneaker drawn for jaxdl, the image from outside the dataset that
notebook 07 predicts on (the course's chapter 04 uses a photo of its own for this).

It is drawn here rather than downloaded so that it can ship with the project under its
licence (Apache 2.0). Run ``python notebooks/images/draw_sneaker.py`` to draw it again.
"""
import pathlib

from PIL import Image, ImageDraw, ImageFilter

SIZE = 280  # ten times Fashion-MNIST's 28: read_image resizes it as it does any photo


def draw_sneaker(size: int = SIZE) -> Image.Image:
    """A low sneaker seen from the side, toe to the right, light on a black background as
    Fashion-MNIST's products are."""
    s = size / 280
    image = Image.new("RGB", (size, size), (0, 0, 0))
    pen = ImageDraw.Draw(image)
    scale = lambda points: [(x * s, y * s) for x, y in points]
    upper = [(30, 180), (34, 120), (60, 98), (92, 104), (112, 118), (150, 126), (196, 140),
             (236, 156), (258, 172), (262, 190), (30, 196)]
    pen.polygon(scale(upper), fill=(205, 205, 200))
    pen.rounded_rectangle(scale([(24, 188), (266, 212)]), radius=10 * s, fill=(240, 240, 236))
    pen.line(scale([(26, 206), (264, 206)]), fill=(70, 70, 70), width=max(1, round(4 * s)))
    pen.polygon(scale([(196, 140), (236, 156), (258, 172), (262, 190), (214, 190), (206, 160)]),
                fill=(165, 165, 160))                                                # toe cap
    pen.line(scale([(70, 168), (130, 150), (200, 176)]), fill=(110, 110, 110), width=max(1, round(9 * s)))
    for x in range(104, 170, 16):                                                    # laces
        pen.line(scale([(x, 116 + (x - 104) * 0.22), (x + 12, 132 + (x - 104) * 0.22)]),
                 fill=(90, 90, 90), width=max(1, round(4 * s)))
    pen.ellipse(scale([(40, 104), (70, 124)]), fill=(60, 60, 60))                    # collar opening
    return image.filter(ImageFilter.GaussianBlur(1.5 * s))


if __name__ == "__main__":
    draw_sneaker().save(pathlib.Path(__file__).with_name("sneaker.png"))
