"""pixelplexus.io.images: every archive oddity in the corpus decodes right or is refused with ImageDecodeError."""

from __future__ import annotations

import io
import os
import pickle
import stat
import time
import warnings

import imagecodecs
import numpy as np
import pytest
import tifffile
from PIL import Image, ImageFile, ImageOps, TiffImagePlugin
from skimage import data as photos

from pixelplexus.io.formats import IMAGE_EXTENSIONS, format_for_path
from pixelplexus.io.images import (
    DEFAULT_MAX_PIXELS,
    ImageDecodeError,
    ImageRecord,
    ImageTooLargeError,
    decode_image,
    encode_image,
    flatten_alpha,
    read_image_file,
    write_image_file,
)
from pixelplexus.transforms import from_float, resize, to_float
from support import corpus

GOOD = corpus.good_images()
BAD = corpus.bad_images()


def pattern(bit_depth: int = 8, height: int = 24, width: int = 32) -> np.ndarray:
    return corpus.pattern(height, width, seed=1, bit_depth=bit_depth)


def make_record(channels: int = 3, bit_depth: int = 8, with_alpha: bool = False, **fields) -> ImageRecord:
    pixels = pattern(bit_depth)
    if channels == 1:
        pixels = pixels[..., 1:2].copy()
    alpha = None
    if with_alpha:
        top = 255 if bit_depth == 8 else 65535
        ramp = np.linspace(0, top, pixels.shape[1])
        alpha = np.rint(np.tile(ramp, (pixels.shape[0], 1))).astype(pixels.dtype)
    return ImageRecord(pixels=pixels, alpha=alpha, **fields)


# ---------------------------------------------------------------------------------------------------------------
# Decoding the corpus


@pytest.mark.parametrize("name", sorted(GOOD))
def test_every_good_image_decodes_as_expected(name):
    expected = GOOD[name]
    record = decode_image(expected.data)

    assert record.pixels.shape == expected.pixels.shape  # orientation applied: (height, width, channels)
    assert record.pixels.dtype == expected.pixels.dtype
    assert (record.channels, record.bit_depth) == (expected.channels, expected.bit_depth)
    assert record.format == expected.format
    assert record.source_mode == expected.source_mode
    assert (record.icc_profile is not None) == expected.has_icc
    error = np.abs(record.pixels.astype(np.float64) - expected.pixels).mean()
    assert error <= expected.tolerance, f"mean abs error {error:.2f} > {expected.tolerance}"
    if expected.alpha is None:
        assert record.alpha is None
    else:
        assert record.alpha is not None
        np.testing.assert_array_equal(record.alpha, expected.alpha)
    # Ready for torch.from_numpy and in-place work.
    assert record.pixels.flags.c_contiguous and record.pixels.flags.writeable


def test_exif_rotation_swaps_width_and_height():
    data = GOOD["jpeg_exif_rotated_6"].data
    stored_width, stored_height = Image.open(io.BytesIO(data)).size
    record = decode_image(data)
    assert (record.width, record.height) == (stored_height, stored_width)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_pillow_exif_transpose(orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    Image.fromarray(pattern(height=5, width=7)).save(buffer, "PNG", exif=exif.tobytes())
    reference = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(buffer.getvalue()))))
    np.testing.assert_array_equal(decode_image(buffer.getvalue()).pixels, reference)


@pytest.mark.parametrize("name", sorted(BAD))
def test_every_bad_image_is_refused_with_a_reason(name):
    bad = BAD[name]
    with pytest.raises(ImageDecodeError) as caught:
        decode_image(bad.data)
    assert isinstance(caught.value, ImageTooLargeError) == bad.too_large
    assert isinstance(caught.value, ValueError)
    assert caught.value.reason and caught.value.reason in str(caught.value)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("empty", "empty file"),
        ("truncated_jpeg", "truncated image data"),
        ("truncated_png", "truncated image data"),
        ("truncated_png_rgb16", "truncated image data"),
        ("text_named_jpg", "not a recognised image format"),
        ("random_bytes", "not a recognised image format"),
        ("header_only_png", "truncated or corrupt image header"),
        ("corrupt_png_data", "corrupt image data"),
        ("bomb_png", "image too large"),
        ("bomb_png_81_megapixels", "image too large"),
    ],
)
def test_bad_images_get_stable_reasons(name, reason):
    with pytest.raises(ImageDecodeError) as caught:
        decode_image(BAD[name].data)
    assert caught.value.reason == reason


def test_formats_outside_the_list_are_not_opened():
    buffer = io.BytesIO()
    Image.fromarray(pattern()).save(buffer, "PPM")  # Pillow reads it, but it is not an archive photo format
    with pytest.raises(ImageDecodeError, match="not a recognised image format"):
        decode_image(buffer.getvalue())


def test_too_large_is_refused_from_the_header_before_any_pixels_are_decoded(monkeypatch):
    def no_decoding(self):
        raise AssertionError("pixel data was decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    started = time.perf_counter()
    with pytest.raises(ImageTooLargeError, match="max_pixels"):
        decode_image(BAD["bomb_png_81_megapixels"].data)  # 9000×9000 claimed, 16 bytes of pixel data
    with pytest.raises(ImageTooLargeError):
        decode_image(GOOD["png_rgb"].data, max_pixels=100)
    assert time.perf_counter() - started < 1.0
    assert DEFAULT_MAX_PIXELS < 9000 * 9000


def test_max_pixels_none_lifts_our_limit_and_pillows_warning_does_not_leak():
    # 90 MP: above Pillow's bomb warning (~89 MP) but below its hard limit. The file has no real pixel data,
    # so with the limit lifted, decoding gets as far as the (missing) pixels.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ImageDecodeError) as caught:
            decode_image(corpus.bomb_png(10_000, 9_000), max_pixels=None)
    assert caught.value.reason == "truncated image data"


def test_read_image_names_the_file_in_errors(tmp_path):
    path = tmp_path / "scan_0001.jpg"
    path.write_bytes(BAD["truncated_jpeg"].data)
    with pytest.raises(ImageDecodeError) as caught:
        read_image_file(path)
    assert caught.value.source == str(path)
    assert str(path) in str(caught.value)
    with pytest.raises(FileNotFoundError):
        read_image_file(tmp_path / "missing.png")


def test_read_image_passes_max_pixels(tmp_path):
    path = tmp_path / "a.png"
    path.write_bytes(GOOD["png_rgb"].data)
    assert read_image_file(path).width == 48
    with pytest.raises(ImageTooLargeError):
        read_image_file(path, max_pixels=10)


def test_errors_survive_pickling_for_ray():
    error = ImageTooLargeError("image too large", "s3://bucket/a.png", "pass a larger max_pixels")
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is ImageTooLargeError
    assert (copy.reason, copy.source, copy.detail) == (error.reason, error.source, error.detail)
    assert str(copy) == str(error)


def test_decode_image_wants_bytes_not_a_path():
    with pytest.raises(TypeError, match="read_image"):
        decode_image("photo.jpg")


def test_cmyk_profile_is_dropped_rgb_profile_kept():
    cmyk_profile = bytearray(corpus.srgb_profile())
    cmyk_profile[16:20] = b"CMYK"  # only the header's colour space matters here
    buffer = io.BytesIO()
    Image.fromarray(pattern()).convert("CMYK").save(buffer, "JPEG", icc_profile=bytes(cmyk_profile))
    record = decode_image(buffer.getvalue())
    assert record.channels == 3 and record.icc_profile is None
    assert decode_image(GOOD["jpeg_icc"].data).icc_profile == corpus.srgb_profile()


def tifffile_bytes(array: np.ndarray, **options) -> bytes:
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, array, **options)
    return buffer.getvalue()


def test_16_bit_tiff_written_by_tifffile_keeps_16_bits():
    pixels = pattern(16)
    gray = pixels[..., 1:2].copy()
    alpha = pixels[..., 0].copy()
    rgba = np.dstack([pixels, alpha])
    gray_alpha = np.dstack([gray, alpha])
    layouts = [  # (array, options, expected pixels, expected alpha)
        (pixels, {}, pixels, None),
        (pixels, {"rowsperstrip": 5}, pixels, None),  # several strips
        (pixels, {"tile": (16, 16)}, pixels, None),  # tiles
        (pixels, {"compression": "zlib"}, pixels, None),
        (pixels, {"compression": "zlib", "byteorder": ">"}, pixels, None),
        (pixels, {"compression": "lzw", "predictor": True}, pixels, None),
        (np.moveaxis(pixels, -1, 0), {"planarconfig": "separate"}, pixels, None),
        (rgba, {"compression": "zlib", "extrasamples": ["unassalpha"]}, pixels, alpha),
        (
            np.moveaxis(rgba, -1, 0),
            {"planarconfig": "separate", "extrasamples": ["unassalpha"]},
            pixels,
            alpha,
        ),
        (rgba, {"extrasamples": ["unspecified"]}, pixels, None),  # like Pillow's RGBX: not alpha
    ]
    for array, options, expected, expected_alpha in layouts:
        record = decode_image(tifffile_bytes(array, photometric="rgb", **options))
        assert record.bit_depth == 16, options
        np.testing.assert_array_equal(record.pixels, expected)
        if expected_alpha is None:
            assert record.alpha is None
        else:
            np.testing.assert_array_equal(record.alpha, expected_alpha)

    # 16-bit gray+alpha, which Pillow cannot open: chunky, planar, compressed, big-endian.
    for array, options in [
        (gray_alpha, {"planarconfig": "contig"}),
        (np.moveaxis(gray_alpha, -1, 0), {"planarconfig": "separate"}),
        (gray_alpha, {"planarconfig": "contig", "compression": "zlib", "predictor": True, "byteorder": ">"}),
    ]:
        data = tifffile_bytes(array, photometric="minisblack", extrasamples=["unassalpha"], **options)
        record = decode_image(data)
        assert (record.format, record.source_mode, record.bit_depth) == ("TIFF", "LA", 16)
        np.testing.assert_array_equal(record.pixels, gray)
        np.testing.assert_array_equal(record.alpha, alpha)


def test_16_bit_tiff_orientation_and_icc_come_from_its_tags():
    pixels = pattern(16)
    gray_profile = bytearray(corpus.srgb_profile())
    gray_profile[16:20] = b"GRAY"
    rotated_6 = [(274, "H", 1, 6, True)]  # EXIF orientation 6: displayed = stored rotated 90° clockwise
    stored = np.ascontiguousarray(np.rot90(pixels, 1))
    rgb = tifffile_bytes(stored, photometric="rgb", iccprofile=corpus.srgb_profile(), extratags=rotated_6)
    gray_alpha = tifffile_bytes(
        np.dstack([stored[..., :1], stored[..., 2]]),
        photometric="minisblack",
        planarconfig="contig",
        extrasamples=["unassalpha"],
        iccprofile=bytes(gray_profile),
        extratags=rotated_6,
    )

    record = decode_image(rgb)
    np.testing.assert_array_equal(record.pixels, pixels)
    assert record.icc_profile == corpus.srgb_profile()
    record = decode_image(gray_alpha)
    np.testing.assert_array_equal(record.pixels, pixels[..., :1])
    np.testing.assert_array_equal(record.alpha, pixels[..., 2])
    assert record.icc_profile == bytes(gray_profile)


def test_16_bit_tiff_with_premultiplied_alpha_falls_back_to_pillows_8_bits():
    pixels = pattern(16)
    alpha = np.full(pixels.shape[:2], 65535, np.uint16)
    data = tifffile_bytes(np.dstack([pixels, alpha]), photometric="rgb", extrasamples=["assocalpha"])
    record = decode_image(data)
    assert record.bit_depth == 8 and record.alpha is not None
    np.testing.assert_array_equal(record.pixels, pixels >> 8)


@pytest.mark.parametrize(
    "data",
    [
        corpus.png16_bytes(pattern(16)),
        tifffile_bytes(pattern(16), photometric="rgb"),
        tifffile_bytes(
            pattern(16)[..., :2], photometric="minisblack", planarconfig="contig", extrasamples=["unassalpha"]
        ),
    ],
    ids=["png_rgb16", "tiff_rgb16", "tiff_gray_alpha16"],
)
def test_16_bit_files_are_refused_from_the_header_before_any_pixels_are_decoded(monkeypatch, data):
    decoded = []

    def no_decoding(*args, **kwargs):
        decoded.append(True)
        raise AssertionError("pixel data was decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    monkeypatch.setattr(imagecodecs, "png_decode", no_decoding)
    monkeypatch.setattr(tifffile.TiffPage, "asarray", no_decoding)
    with pytest.raises(ImageTooLargeError, match="max_pixels"):
        decode_image(data, max_pixels=100)
    assert not decoded
    with pytest.raises(ImageDecodeError, match="pixel data was decoded"):  # the patches catch the decoder
        decode_image(data)
    assert decoded


def test_16_bit_decoder_errors_become_image_decode_errors():
    pixels = pattern(16, height=64, width=64)
    rgb = tifffile_bytes(pixels, photometric="rgb")  # tifffile puts the tags first, then the pixels
    gray_alpha = tifffile_bytes(
        pixels[..., :2], photometric="minisblack", planarconfig="contig", extrasamples=["unassalpha"]
    )
    compressed = bytearray(tifffile_bytes(pixels, photometric="rgb", compression="zlib"))
    compressed[-200:] = bytes(200)  # zeros in the deflate stream
    png = bytearray(corpus.png16_bytes(pixels))
    idat = png.index(b"IDAT") + 4
    png[idat : idat + 2] = b"\xff\xff"  # invalid zlib header in the pixel data
    cases = [
        (rgb[: len(rgb) * 2 // 3], "truncated image data"),
        (gray_alpha[: len(gray_alpha) * 2 // 3], "truncated image data"),
        (bytes(compressed), "corrupt image data"),
        (bytes(png), "corrupt image data"),
        (b"II*\x00" + bytes(60), "truncated or corrupt image header"),  # neither Pillow nor tifffile
    ]
    for data, reason in cases:
        with pytest.raises(ImageDecodeError) as caught:
            decode_image(data)
        assert caught.value.reason == reason


# ---------------------------------------------------------------------------------------------------------------
# Encoding


LOSSLESS_CASES = [
    (channels, bit_depth, with_alpha)
    for channels in (1, 3)
    for bit_depth in (8, 16)
    for with_alpha in (False, True)
]


@pytest.mark.parametrize("fmt", ["png", "tiff"])
@pytest.mark.parametrize(("channels", "bit_depth", "with_alpha"), LOSSLESS_CASES)
def test_png_and_tiff_round_trip_exactly(fmt, channels, bit_depth, with_alpha):
    record = make_record(
        channels, bit_depth, with_alpha, icc_profile=corpus.srgb_profile() if channels == 3 else None
    )
    decoded = decode_image(encode_image(record, fmt))
    assert decoded.format == fmt.upper()
    assert decoded.bit_depth == bit_depth
    np.testing.assert_array_equal(decoded.pixels, record.pixels)
    if with_alpha:
        np.testing.assert_array_equal(decoded.alpha, record.alpha)
    else:
        assert decoded.alpha is None
    assert decoded.icc_profile == record.icc_profile


@pytest.mark.parametrize("fmt", ["png", "tiff"])
def test_16_bit_files_we_write_read_the_same_in_pillow(fmt):
    # Pillow alone keeps the high byte of 16-bit colour: an independent check of our writers.
    record = make_record(3, 16, with_alpha=True)
    image = Image.open(io.BytesIO(encode_image(record, fmt)))
    high = np.asarray(image.convert("RGBA"))
    np.testing.assert_array_equal(high[..., :3], record.pixels >> 8)
    np.testing.assert_array_equal(high[..., 3], record.alpha >> 8)


@pytest.mark.parametrize("channels", [1, 3])
def test_16_bit_tiff_we_write_reads_the_same_in_tifffile(channels):
    record = make_record(channels, 16, with_alpha=True)
    with tifffile.TiffFile(io.BytesIO(encode_image(record, "tiff"))) as tiff:
        page = tiff.pages.first
        assert page.extrasamples == (tifffile.EXTRASAMPLE.UNASSALPHA,)  # a true alpha sample
        np.testing.assert_array_equal(page.asarray(), np.dstack([record.pixels, record.alpha]))


def test_16_bit_png_we_write_reads_the_same_in_imagecodecs():
    record = make_record(1, 16, with_alpha=True)
    read = imagecodecs.png_decode(encode_image(record, "png"))
    np.testing.assert_array_equal(read, np.dstack([record.pixels, record.alpha]))


@pytest.mark.parametrize("channels", [1, 3])
def test_bmp_round_trips_exactly(channels):
    record = make_record(channels)
    decoded = decode_image(encode_image(record, "bmp"))
    np.testing.assert_array_equal(decoded.pixels, record.pixels)


@pytest.mark.parametrize("fmt", ["jpeg", "webp"])
@pytest.mark.parametrize("channels", [1, 3])
def test_lossy_formats_round_trip_closely(fmt, channels):
    record = make_record(channels, icc_profile=corpus.srgb_profile() if channels == 3 else None)
    decoded = decode_image(encode_image(record, fmt, quality=95))
    expected = record.pixels if decoded.channels == channels else np.repeat(record.pixels, 3, axis=2)
    assert np.abs(decoded.pixels.astype(float) - expected).mean() < 6
    assert decoded.icc_profile == record.icc_profile
    if fmt == "jpeg":
        assert decoded.channels == channels  # gray stays gray
    else:
        assert decoded.channels == 3  # WebP has no gray


def test_quality_changes_the_jpeg():
    record = make_record()
    assert len(encode_image(record, "jpeg", quality=30)) < len(encode_image(record, "jpeg", quality=95))


@pytest.mark.parametrize("fmt", ["jpeg", "bmp"])
@pytest.mark.parametrize("bit_depth", [8, 16])
def test_alpha_is_flattened_over_white_for_jpeg_and_bmp(fmt, bit_depth):
    record = make_record(3, bit_depth, with_alpha=True)
    decoded = decode_image(encode_image(record, fmt))
    assert decoded.alpha is None and decoded.bit_depth == 8
    top = 255.0 if bit_depth == 8 else 65535.0
    a = record.alpha.astype(float)[..., None] / top
    expected = (record.pixels / top * a + (1 - a)) * 255
    tolerance = 0.51 if fmt == "bmp" else 6
    assert np.abs(decoded.pixels - expected).mean() < tolerance
    assert decoded.pixels[:, 0].min() >= (240 if fmt == "jpeg" else 255)  # alpha 0 on the left: white


@pytest.mark.parametrize("bit_depth", [8, 16])
def test_alpha_flattens_over_any_colour_exactly(bit_depth):
    top = 255 if bit_depth == 8 else 65535
    for channels, background in ((3, (255, 128, 0)), (1, (255, 128, 0)), (1, (40, 40, 40)), (3, (0, 0, 0))):
        record = make_record(channels, bit_depth, with_alpha=True)
        flat = flatten_alpha(record.pixels, record.alpha, background)
        assert flat.dtype == record.pixels.dtype
        assert flat.shape[2] == (channels if len(set(background)) == 1 else 3)  # gray stays gray on gray
        a = record.alpha.astype(float)[..., None] / top
        b = np.array(background[: flat.shape[2]], dtype=float) * (top // 255)
        expected = record.pixels.astype(float) * a + b * (1 - a)
        assert np.abs(flat - expected).max() <= 0.5 + 1e-9  # exactly rounded
        opaque, clear = record.alpha == top, record.alpha == 0
        assert clear.any() and opaque.any()
        np.testing.assert_array_equal(flat[clear], np.broadcast_to(b.astype(flat.dtype), flat[clear].shape))
        np.testing.assert_array_equal(flat[opaque], np.broadcast_to(record.pixels, flat.shape)[opaque])
    with pytest.raises(ValueError, match="1 or 3 values"):
        flatten_alpha(record.pixels, record.alpha, (1, 2))


@pytest.mark.parametrize(("fmt", "tolerance"), [("jpeg", 6), ("webp", 6), ("bmp", 0)])
def test_16_bits_become_8_for_jpeg_webp_bmp(fmt, tolerance):
    record = make_record(3, 16)
    decoded = decode_image(encode_image(record, fmt))
    assert decoded.bit_depth == 8
    expected = np.rint(record.pixels / 257.0)
    assert np.abs(decoded.pixels - expected).mean() <= tolerance


def test_webp_keeps_alpha():
    decoded = decode_image(encode_image(make_record(3, 8, with_alpha=True), "webp"))
    assert decoded.alpha is not None


def test_format_defaults_to_the_source_format_then_png():
    jpeg = decode_image(GOOD["jpeg_rgb"].data)
    assert Image.open(io.BytesIO(encode_image(jpeg))).format == "JPEG"
    gif = decode_image(GOOD["gif_palette"].data)
    assert Image.open(io.BytesIO(encode_image(gif))).format == "PNG"
    assert Image.open(io.BytesIO(encode_image(make_record()))).format == "PNG"


@pytest.mark.parametrize(
    ("name", "pil_format"),
    [("png", "PNG"), ("PNG", "PNG"), ("jpg", "JPEG"), ("JPEG", "JPEG"), ("Jpeg", "JPEG"), ("webp", "WEBP"),
     ("tif", "TIFF"), ("TIFF", "TIFF"), ("bmp", "BMP")],
)  # fmt: skip
def test_format_names_in_any_case(name, pil_format):
    assert Image.open(io.BytesIO(encode_image(make_record(), name))).format == pil_format


def test_unknown_format_or_quality_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="png, jpeg, webp, tiff, bmp"):
        encode_image(make_record(), "gif")
    with pytest.raises(ValueError, match="quality"):
        encode_image(make_record(), "jpeg", quality=0)


def test_gray_icc_is_not_written_into_rgb_output():
    gray_profile = bytearray(corpus.srgb_profile())
    gray_profile[16:20] = b"GRAY"
    record = make_record(1, icc_profile=bytes(gray_profile))
    assert decode_image(encode_image(record, "png")).icc_profile == bytes(gray_profile)
    colourised = record.replace(pixels=pattern())
    assert decode_image(encode_image(colourised, "png")).icc_profile is None


# ---------------------------------------------------------------------------------------------------------------
# Files


def test_write_image_replaces_the_target_and_leaves_no_temporary_files(tmp_path):
    target = tmp_path / "out.png"
    target.write_bytes(b"old")
    record = make_record(3, 16, with_alpha=True)
    write_image_file(target, record)
    assert os.listdir(tmp_path) == ["out.png"]
    np.testing.assert_array_equal(read_image_file(target).pixels, record.pixels)

    write_image_file(str(tmp_path / "out.jpg"), record, quality=80)  # format from the extension
    assert Image.open(tmp_path / "out.jpg").format == "JPEG"
    write_image_file(tmp_path / "out.bin", record, "tiff")  # or given explicitly
    assert Image.open(tmp_path / "out.bin").format == "TIFF"
    assert sorted(os.listdir(tmp_path)) == ["out.bin", "out.jpg", "out.png"]


def test_write_image_never_shows_a_partial_file(tmp_path, monkeypatch):
    target = tmp_path / "out.png"
    target.write_bytes(b"old")
    seen = {}
    real_replace = os.replace

    def replace(source, destination, **dir_fds):
        seen["target"] = target.read_bytes()
        seen["temporary"] = open(source, "rb").read()
        seen["temporary_name"] = os.path.basename(source)
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError, match="disk full"):
        write_image_file(target, make_record())
    monkeypatch.setattr(os, "replace", real_replace)

    assert seen["target"] == b"old"  # the old file until the rename
    assert decode_image(seen["temporary"]).width == 32  # the new file is complete before the rename
    assert seen["temporary_name"].startswith(".out.png.")  # hidden from "*.png" listings
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["out.png"]  # the temporary file is cleaned up


def test_write_image_refuses_before_touching_the_disk(tmp_path):
    with pytest.raises(ValueError, match="extension"):
        write_image_file(tmp_path / "out.xyz", make_record())
    with pytest.raises(ValueError, match="png, jpeg"):
        write_image_file(tmp_path / "out.gif", make_record())
    assert os.listdir(tmp_path) == []


def test_written_files_get_normal_permissions(tmp_path):
    reference = tmp_path / "reference"
    reference.write_bytes(b"")  # created like any file: 0o666 minus the umask
    write_image_file(tmp_path / "out.png", make_record())
    assert stat.S_IMODE(os.stat(tmp_path / "out.png").st_mode) == stat.S_IMODE(os.stat(reference).st_mode)


@pytest.mark.parametrize(
    ("path", "pil_format"),
    [("a.jpg", "JPEG"), ("a.JPEG", "JPEG"), ("dir.v2/a.png", "PNG"), ("s3://bucket/x/a.WebP", "WEBP"),
     ("a.tif", "TIFF"), ("a.tiff", "TIFF"), ("a.bmp", "BMP"), ("a.gif", "GIF")],
)  # fmt: skip
def test_format_for_path(path, pil_format):
    assert format_for_path(path) == pil_format


def test_every_image_extension_has_a_format_and_others_are_refused(tmp_path):
    assert IMAGE_EXTENSIONS == {".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp", ".gif"}
    for extension in IMAGE_EXTENSIONS:
        assert format_for_path(tmp_path / f"x{extension}")
    for bad in ["a.txt", "a", "a.png.tmp"]:
        with pytest.raises(ValueError, match=r"\.jpeg"):
            format_for_path(bad)


def test_corpus_extensions_are_image_extensions():
    assert {image.extension for image in GOOD.values()} <= IMAGE_EXTENSIONS
    for image in GOOD.values():
        assert format_for_path(f"x{image.extension}") == image.format


# ---------------------------------------------------------------------------------------------------------------
# Arrays


@pytest.mark.parametrize("bit_depth", [8, 16])
def test_to_float_and_back_is_exact(bit_depth):
    record = make_record(3, bit_depth)
    x = to_float(record)
    assert x.dtype == np.float32 and x.shape == record.pixels.shape
    assert 0.0 <= x.min() and x.max() <= 1.0
    np.testing.assert_array_equal(from_float(x, bit_depth), record.pixels)
    np.testing.assert_array_equal(to_float(record.pixels), x)


def test_from_float_clips_rounds_and_refuses_nan():
    np.testing.assert_array_equal(from_float(np.array([-0.5, 0.0, 0.5, 1.0, 7.0])), [0, 0, 128, 255, 255])
    assert from_float(np.array([1.0]), 16).dtype == np.uint16
    np.testing.assert_array_equal(from_float(np.array([0.0, 1.0], np.float16), 16), [0, 65535])
    with pytest.raises(ValueError, match="NaN"):
        from_float(np.array([0.5, np.nan]))
    with pytest.raises(ValueError, match="bit_depth"):
        from_float(np.zeros(3), 12)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
@pytest.mark.parametrize("shape", [(24, 32), (24, 32, 1), (24, 32, 3)])
def test_resize_keeps_dtype_and_layout(dtype, shape):
    array = pattern(16 if dtype == np.uint16 else 8)[..., : shape[2] if len(shape) == 3 else 1]
    array = array.reshape(shape)
    if dtype == np.float32:
        array = array.astype(np.float32) / 255
    out = resize(array, (16, 12))
    assert out.dtype == dtype
    assert out.shape == (12, 16, *shape[2:])


def test_resize_matches_pillow_bicubic():
    rgb = pattern()
    np.testing.assert_array_equal(resize(rgb, (13, 9)), np.asarray(Image.fromarray(rgb).resize((13, 9), 3)))
    gray = rgb[..., 0]
    np.testing.assert_array_equal(resize(gray, (13, 9)), np.asarray(Image.fromarray(gray).resize((13, 9), 3)))
    x = rgb[..., 1].astype(np.float32) / 255
    np.testing.assert_array_equal(resize(x, (40, 30)), np.asarray(Image.fromarray(x).resize((40, 30), 3)))
    deep = pattern(16)
    reference = np.stack(
        [np.asarray(Image.fromarray(deep[..., c].astype(np.float32)).resize((13, 9), 3)) for c in range(3)],
        axis=-1,
    )
    np.testing.assert_array_equal(resize(deep, (13, 9)), np.clip(np.rint(reference), 0, 65535))


def test_resize_is_antialiased_when_shrinking():
    stripes = np.tile(np.array([0, 255], np.uint8), (8, 32))  # one-pixel stripes, 8×64
    inside = resize(stripes, (16, 2))[:, 2:-2].astype(int)  # (the borders see only one side)
    assert np.abs(inside - 128).max() <= 2  # averaged, not aliased
    assert set(np.unique(resize(stripes, (16, 2), "nearest"))) <= {0, 255}


def test_resize_refuses_what_it_cannot_do():
    with pytest.raises(ValueError, match="bicubic"):
        resize(pattern(), (4, 4), "cubic-ish")
    with pytest.raises(ValueError, match="width, height"):
        resize(pattern(), (0, 4))
    with pytest.raises(ValueError, match="float32"):
        resize(pattern().astype(np.float64), (4, 4))


# ---------------------------------------------------------------------------------------------------------------
# The record, and no hidden state


def test_record_properties_and_replace():
    record = make_record(1, 16, with_alpha=True, format="PNG", source_mode="I;16")
    assert (record.height, record.width, record.channels, record.bit_depth) == (24, 32, 1, 16)
    assert record.is_gray and record.num_pixels == 24 * 32
    smaller = record.replace(pixels=record.pixels[:4, :4], alpha=None)
    assert (smaller.height, smaller.format, record.height) == (4, "PNG", 24)


@pytest.mark.parametrize(
    "fields",
    [
        {"pixels": np.zeros((4, 4), np.uint8)},
        {"pixels": np.zeros((4, 4, 4), np.uint8)},
        {"pixels": np.zeros((4, 4, 3), np.float32)},
        {"pixels": np.zeros((0, 4, 3), np.uint8)},
        {"pixels": np.zeros((4, 4, 3), np.uint8), "alpha": np.zeros((4, 5), np.uint8)},
        {"pixels": np.zeros((4, 4, 3), np.uint8), "alpha": np.zeros((4, 4), np.uint16)},
    ],
)
def test_record_refuses_malformed_arrays(fields):
    with pytest.raises(ValueError, match="ImageRecord"):
        ImageRecord(**fields)


def test_no_pillow_or_warnings_settings_are_changed():
    settings = (
        Image.MAX_IMAGE_PIXELS,
        ImageFile.LOAD_TRUNCATED_IMAGES,
        TiffImagePlugin.READ_LIBTIFF,
        TiffImagePlugin.WRITE_LIBTIFF,
        list(warnings.filters),
    )
    for image in GOOD.values():
        encode_image(decode_image(image.data), "tiff")
    for bad in BAD.values():
        with pytest.raises(ImageDecodeError):
            decode_image(bad.data)
    decode_image(GOOD["png_rgb"].data, max_pixels=None)
    assert settings == (
        Image.MAX_IMAGE_PIXELS,
        ImageFile.LOAD_TRUNCATED_IMAGES,
        TiffImagePlugin.READ_LIBTIFF,
        TiffImagePlugin.WRITE_LIBTIFF,
        list(warnings.filters),
    )


def test_corpus_is_deterministic_and_small():
    again = corpus.good_images()
    assert all(GOOD[name].data == again[name].data for name in GOOD)
    assert all(image.width <= 64 and image.height <= 64 for image in GOOD.values())
    assert corpus.good_images(seed=1)["png_rgb"].data != GOOD["png_rgb"].data
    assert all(len(bad.data) < 64 * 1024 for bad in BAD.values())


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_our_png_writer_reads_back_exactly_in_libpng_and_pillow(channels, dtype, monkeypatch):
    """pixelplexus.io.png: every colour type at 8 and 16 bits, odd sizes, the image data split over several
    IDAT chunks and filtered in bands of a few rows (the same bytes as at once); read back by libpng
    (imagecodecs) and, at 8 bits, by Pillow, with the ICC profile."""
    from pixelplexus.io import png

    monkeypatch.setattr(png, "IDAT_BYTES", 1000)
    at_once = {}
    for band_bytes in (1 << 30, 300):
        monkeypatch.setattr(png, "BAND_BYTES", band_bytes)
        pixels = np.random.default_rng(9).integers(0, 255, (40, 30, channels)).astype(dtype)
        at_once.setdefault("bytes", png.encode_png(pixels))
        assert png.encode_png(pixels) == at_once["bytes"]
    rng = np.random.default_rng(channels)
    top = np.iinfo(dtype).max
    for height, width in ((1, 1), (1, 37), (29, 1), (61, 47)):
        pixels = rng.integers(0, top, (height, width, channels), endpoint=True).astype(dtype)
        pixels[: height // 2] //= 3  # some structure for the filter, some noise
        data = png.encode_png(pixels, icc_profile=corpus.srgb_profile())
        want = pixels[..., 0] if channels == 1 else pixels
        np.testing.assert_array_equal(imagecodecs.png_decode(data), want)
        if dtype == np.uint8:
            with Image.open(io.BytesIO(data)) as image:
                np.testing.assert_array_equal(np.asarray(image), want)
                assert image.info["icc_profile"] == corpus.srgb_profile()
    with pytest.raises(ValueError, match="uint8 or uint16"):
        png.encode_png(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ValueError, match="needs pixels"):
        png.encode_png(np.zeros((0, 4, 3), np.uint8))


def test_our_png_files_are_about_as_small_as_pillows():
    """Smooth ×4 enlargements of photos (what enhance writes) come out as small as Pillow's files at its
    default level; noisy photos within 3 % (Pillow's zlib uses the Z_FILTERED strategy, libdeflate has none)."""
    from pixelplexus.io import png

    sizes = {"photos": [0, 0], "enlargements": [0, 0]}
    for photo in (photos.astronaut(), photos.coffee(), photos.chelsea()):
        enlarged = np.asarray(Image.fromarray(photo[:128, :128]).resize((512, 512), Image.BICUBIC))
        for kind, pixels in (("photos", photo), ("enlargements", enlarged)):
            buffer = io.BytesIO()
            Image.fromarray(pixels).save(buffer, "PNG")
            sizes[kind][0] += len(png.encode_png(pixels))
            sizes[kind][1] += len(buffer.getvalue())
    (ours, pillows), (ours_smooth, pillows_smooth) = sizes["photos"], sizes["enlargements"]
    assert ours <= 1.03 * pillows and ours_smooth <= 1.005 * pillows_smooth, sizes
