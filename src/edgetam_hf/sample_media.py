"""The project's own sample media: shapes rendered with PIL, deterministic, no files to ship."""

from PIL import Image, ImageDraw

SAMPLE_IMAGE_SIZE = (640, 480)  # (width, height)
# Boxes around the disc and the rectangle, (x0, y0, x1, y1) in sample-image pixels.
SAMPLE_BOXES = ((110, 80, 290, 260), (380, 250, 560, 420))


def render_sample_image() -> Image.Image:
    """A 640x480 RGB scene: a shaded background, a red disc, a blue rectangle and a green triangle."""
    width, height = SAMPLE_IMAGE_SIZE
    image = Image.new("RGB", SAMPLE_IMAGE_SIZE)
    pixels = image.load()
    for y in range(height):
        for x in range(width):
            pixels[x, y] = (40 + x * 60 // width, 60 + y * 60 // height, 90)
    draw = ImageDraw.Draw(image)
    draw.ellipse((120, 90, 280, 250), fill=(220, 60, 50))
    draw.rectangle((390, 260, 550, 410), fill=(50, 90, 220))
    draw.polygon([(420, 60), (560, 200), (300, 200)], fill=(70, 190, 90))
    return image
