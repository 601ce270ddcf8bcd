"""Binary masks from the files teams write: DICOM, PNG, NIfTI and NumPy.

A mask is read as its raw stored values (never through NIfTI's scl_slope, and through a DICOM
modality LUT only when the stored values hold no 0 and the LUT maps them to 0 and one other
value, as GDCM writes a mask carrying the CT's Rescale Intercept), checked to hold at most two
values with 0 as background, and binarised with `!= 0`. Its shape is checked against the
exam's before the pixels are decoded. A NIfTI mask is placed on the exam's grid by its affine
(see `orientation`). What was read in a way the team may not expect is told as a warning in
`notes`.
"""

from __future__ import annotations

import io
import warnings
import zlib
from typing import Any

import numpy as np
import numpy.typing as npt

from server.evaluators.exam import ExamGrid
from server.evaluators.orientation import orienting_affine, place
from server.evaluators.result import Invalid, Problem, notice
from server.evaluators.table import suffix_of

Shape = tuple[int, int]  # rows, columns
Notes = list[Problem]
BoolMask = npt.NDArray[np.bool_]

MASK_SUFFIXES = (".dcm", ".dicom", ".png", ".nii", ".nii.gz", ".npy")

NOT_MASKS = {
    ".jpg": "JPEG is lossy and blurs a mask's edges; save it as PNG",
    ".jpeg": "JPEG is lossy and blurs a mask's edges; save it as PNG",
    ".tif": "TIFF masks are not read; save it as PNG",
    ".tiff": "TIFF masks are not read; save it as PNG",
    ".bmp": "BMP masks are not read; save it as PNG",
    ".gif": "GIF masks are not read; save it as PNG",
    ".npz": "an .npz archive is not read; save the array with numpy.save as .npy",
    ".mha": "MetaImage is not read; save it as .nii.gz",
    ".mhd": "MetaImage is not read; save it as .nii.gz",
    ".nrrd": "NRRD is not read; save it as .nii.gz",
    ".pt": "a PyTorch file is not read; save the mask with numpy.save (.npy, from "
           "tensor.cpu().numpy()) or as a PNG",
    ".pth": "a PyTorch file is not read; save the mask with numpy.save (.npy, from "
            "tensor.cpu().numpy()) or as a PNG",
    ".pkl": "pickles are refused; save the mask with numpy.save (.npy) or as a PNG",
    ".pickle": "pickles are refused; save the mask with numpy.save (.npy) or as a PNG",
    ".h5": "HDF5 is not read; save the mask with numpy.save (.npy) or as a PNG",
    ".hdf5": "HDF5 is not read; save the mask with numpy.save (.npy) or as a PNG",
}

# Room for headers beyond the pixels of a 2-D slice; stops a bomb before it is inflated.
_HEADER_ROOM = 1024**2


def mask_stem(name: str) -> str | None:
    """The id a member name stands for ('a/0042.nii.gz' → '0042'), if it is a mask file."""
    base = name.rsplit("/", 1)[-1]
    suffix = suffix_of(base)
    if suffix not in MASK_SUFFIXES:
        return None
    return base[: len(base) - len(suffix)]


def read_mask(data: bytes, name: str, grid: ExamGrid | Shape, mask_id: str | None = None,
              notes: Notes | None = None) -> BoolMask:
    """The mask in `data` as a boolean rows × columns array; raises Invalid otherwise.

    Warnings about how it was read (orientation assumed, alpha channel used) go to `notes`.
    """
    if not isinstance(grid, ExamGrid):
        grid = ExamGrid(grid)
    shape = grid.shape
    found: Notes = []
    suffix = suffix_of(name)
    try:
        if suffix in (".dcm", ".dicom"):
            raw = _dicom(data, name, shape, mask_id)
        elif suffix == ".png":
            raw = _png(data, name, shape, mask_id, found)
        elif suffix in (".nii", ".nii.gz"):
            raw = _nifti(data, name, grid, mask_id, found, gz=suffix == ".nii.gz")
        elif suffix == ".npy":
            raw = _npy(data, name, shape, mask_id)
        else:
            reason = NOT_MASKS.get(suffix, "masks are .dcm, .png, .nii, .nii.gz or .npy")
            raise Invalid(Problem("unsupported_format", f"mask {name}: {reason}", mask_id))
        mask = binarise(raw, name, mask_id)
    except Invalid:
        raise
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - any decoder failure is the file's, not ours
        raise Invalid(Problem(
            "unreadable",
            f"mask {name} cannot be read ({type(exc).__name__}: {str(exc)[:120]})",
            mask_id,
        )) from exc
    if notes is not None:
        notes.extend(found)
    return mask


def binarise(raw: np.ndarray, name: str, mask_id: str | None = None) -> BoolMask:
    """`raw != 0`, once raw is known to hold 0 and at most one other value."""
    if raw.dtype == np.bool_:
        return raw
    kind = raw.dtype.kind
    if kind not in "iuf":
        raise Invalid(Problem(
            "unsupported_format",
            f"mask {name} holds {raw.dtype} values; save 0/1 integers (uint8)",
            mask_id,
        ))
    values = raw.astype(np.float64, copy=False) if kind == "f" else raw
    if kind == "f" and np.isnan(values).any():
        raise Invalid(Problem("not_binary", f"mask {name} contains NaN values", mask_id))
    foreground = values != 0
    first = int(np.argmax(foreground))
    if foreground.flat[first]:
        count = np.count_nonzero(foreground)
        if np.count_nonzero(values == values.flat[first]) != count:
            raise Invalid(_not_binary(values, name, mask_id))
    return foreground


def _not_binary(values: np.ndarray, name: str, mask_id: str | None) -> Problem:
    distinct = np.unique(values)
    shown = ", ".join(_num(v) for v in distinct[:4]) + (", …" if len(distinct) > 4 else "")
    if len(distinct) == 2:
        return Problem(
            "not_binary",
            f"mask {name} has values {shown} but no 0; the background must be 0",
            mask_id, group=f"masks have values {shown} but no 0; the background must be 0",
        )
    hint = _many_values_hint(values, distinct)
    return Problem(
        "not_binary",
        f"mask {name} has {len(distinct)} distinct values ({shown}); a mask has two, "
        f"0 and one other{hint}",
        mask_id, group=f"masks have more than two distinct values; a mask has two, 0 and one "
        f"other{hint}" if hint else None,
    )


def _many_values_hint(values: np.ndarray, distinct: np.ndarray) -> str:
    """What a file with many values most likely is, and what to do about it."""
    if len(distinct) <= 16:
        return ""
    low, high = float(distinct[0]), float(distinct[-1])
    if values.dtype.kind == "f" and 0.0 <= low and high <= 1.0:
        return (" — this looks like a probability map: threshold it before saving "
                "(mask = probabilities > 0.5)")
    extremes = np.count_nonzero((values == low) | (values == high)) / values.size
    if low >= 0 and extremes >= 0.8:
        middle = (low + high) / 2
        return (" — this looks like a soft (anti-aliased or probability) mask: threshold it "
                f"before saving (mask = image > {_num(middle)})")
    return " — this looks like the CT image itself, not a mask"


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{float(v):g}"


def _dims(shape: tuple[int, ...]) -> str:
    return "×".join(str(n) for n in shape)


def _shape_problem(name: str, got: tuple[int, ...], shape: Shape, mask_id: str | None) -> Invalid:
    return Invalid(_shape(name, got, shape, mask_id))


def _shape(name: str, got: tuple[int, ...], shape: Shape, mask_id: str | None) -> Problem:
    return Problem(
        "wrong_shape", f"mask {name} is {_dims(got)}, the exam is {_dims(shape)}", mask_id,
        group=f"masks are {_dims(got)}, the exams are {_dims(shape)}",
    )


def _dicom(data: bytes, name: str, shape: Shape, mask_id: str | None) -> np.ndarray:
    import pydicom  # noqa: PLC0415 - heavy import, only when a DICOM mask arrives
    from pydicom.errors import InvalidDicomError  # noqa: PLC0415

    _check_deflated_size(data, name, shape, mask_id)
    try:
        with warnings.catch_warnings():
            # force=True makes pydicom guess at odd files, and it warns as it guesses.
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(io.BytesIO(data), force=True)
    except (InvalidDicomError, EOFError, ValueError, KeyError, OSError) as exc:
        raise Invalid(Problem("unreadable", f"mask {name} is not a readable DICOM file",
                              mask_id)) from exc
    if "PixelData" not in ds:
        raise Invalid(Problem(
            "unreadable", f"mask {name} is not a DICOM image (no pixel data)", mask_id
        ))
    got = (int(ds.get("Rows", 0)), int(ds.get("Columns", 0)))
    found: list[Problem] = []
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames != 1:
        found.append(_frames_problem(ds, frames, name, mask_id))
    if int(ds.get("SamplesPerPixel", 1)) != 1:
        found.append(Problem(
            "not_binary", f"mask {name} is a color image; save a single-channel (MONOCHROME2) mask",
            mask_id, group="masks are color images; save single-channel (MONOCHROME2) masks",
        ))
    if got != shape:
        found.append(_shape(name, got, shape, mask_id))
    if found:
        raise Invalid(found)
    meta = getattr(ds, "file_meta", None)
    syntax = meta.get("TransferSyntaxUID") if meta is not None else None
    if syntax is None:
        _guess_syntax(ds)
    if syntax is not None and syntax.is_compressed:
        from pydicom.pixels import get_decoder  # noqa: PLC0415

        try:
            available = get_decoder(syntax).is_available
        except NotImplementedError:
            available = False
        if not available:
            raise Invalid(Problem(
                "unsupported_compression",
                f"mask {name} is compressed as {syntax.name} ({syntax}), which cannot be "
                "decoded here; save it uncompressed (Explicit VR Little Endian) or RLE Lossless",
                mask_id,
            ))
    # pixel_array gives stored values; the modality LUT (Rescale*) is not applied to a mask
    # whose stored values hold a 0 (a mask written into a copy of the CT keeps its -1024).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stored = np.asarray(ds.pixel_array)
    return _rescaled_if_meant(stored, ds)


def _rescaled_if_meant(stored: np.ndarray, ds: Any) -> np.ndarray:
    """The stored values, or the rescaled ones when only they hold the 0 background.

    GDCM (SimpleITK, ITK) writes a mask carrying a CT's RescaleIntercept -1024 as stored
    1024/1025, which every viewer shows as 0/1.
    """
    if "RescaleIntercept" not in ds and "RescaleSlope" not in ds:
        return stored
    if not stored.size or np.count_nonzero(stored) != stored.size:
        return stored  # a 0 is stored: the raw values are the mask
    try:
        slope = float(ds.get("RescaleSlope", 1) or 1)
        intercept = float(ds.get("RescaleIntercept", 0) or 0)
    except (TypeError, ValueError):
        return stored
    distinct = np.unique(stored)
    if len(distinct) > 2:
        return stored
    mapped = distinct.astype(np.float64) * slope + intercept
    if not np.any(mapped == 0.0):
        return stored
    return stored.astype(np.float64) * slope + intercept


def _frames_problem(ds: Any, frames: int, name: str, mask_id: str | None) -> Problem:
    segments = ds.get("SegmentSequence")
    if segments is not None and len(segments) > 1:
        labels = ", ".join(
            f"{int(s.get('SegmentNumber', n))} {str(s.get('SegmentLabel', '')).strip()!r}"
            for n, s in enumerate(segments, start=1)
        )
        return Problem(
            "extra_frames",
            f"mask {name} is a DICOM SEG with {len(segments)} segments ({labels}) in "
            f"{frames} frames; send one segment, the muscle, as a single frame",
            mask_id, group="masks are DICOM SEGs with several segments; send one segment, the "
            "muscle, as a single frame",
        )
    return Problem(
        "extra_frames",
        f"mask {name} holds {frames} frames; the exam is one slice: send one 2-D frame per exam",
        mask_id, group="masks hold several frames; the exams are one slice each: send one 2-D "
        "frame per exam",
    )


_DEFLATED = b"1.2.840.10008.1.2.1.99"


def _check_deflated_size(data: bytes, name: str, shape: Shape, mask_id: str | None) -> None:
    """pydicom inflates a Deflated dataset whole; bound it first, as for any archive."""
    if data[128:132] != b"DICM" or _DEFLATED not in data[132:4096]:
        return
    # (0002,0000) UL, explicit VR little endian: the meta group's length follows the DICM.
    group_length = int.from_bytes(data[140:144], "little")
    payload = data[144 + group_length :]
    limit = _HEADER_ROOM + shape[0] * shape[1] * 16
    try:
        inflated = zlib.decompressobj(-zlib.MAX_WBITS).decompress(payload, limit + 1)
    except zlib.error as exc:
        raise Invalid(Problem("unreadable", f"mask {name}: damaged deflated DICOM",
                              mask_id)) from exc
    if len(inflated) > limit:
        raise Invalid(Problem(
            "too_large", f"mask {name} inflates past {limit} bytes, far more than the exam needs",
            mask_id,
        ))


def _guess_syntax(ds: Any) -> None:
    """A dataset written without file meta (older tools do): its encoding tells the syntax."""
    from pydicom.dataset import FileMetaDataset  # noqa: PLC0415
    from pydicom.uid import (  # noqa: PLC0415
        ExplicitVRBigEndian,
        ExplicitVRLittleEndian,
        ImplicitVRLittleEndian,
    )

    implicit, little = getattr(ds, "original_encoding", (True, True))
    if getattr(ds, "file_meta", None) is None:
        ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = (
        ImplicitVRLittleEndian if implicit else
        ExplicitVRLittleEndian if little else ExplicitVRBigEndian
    )


def _png(data: bytes, name: str, shape: Shape, mask_id: str | None, notes: Notes
         ) -> np.ndarray:
    from PIL import Image  # noqa: PLC0415

    with warnings.catch_warnings():
        # The shape check below refuses oversized images before they are decoded.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data))
        except Image.DecompressionBombError as exc:
            raise Invalid(Problem("wrong_shape", f"mask {name} is far larger than the exam",
                                  mask_id)) from exc
        except OSError as exc:
            raise Invalid(Problem("unreadable", f"mask {name} is not a readable PNG image",
                                  mask_id)) from exc
        with image:
            if image.format != "PNG":
                lossy = " (lossy: it blurs a mask's edges)" if image.format == "JPEG" else ""
                raise Invalid(Problem(
                    "unsupported_format",
                    f"mask {name} is a {image.format} image{lossy} named .png; save it as PNG",
                    mask_id,
                ))
            columns, rows = image.size
            if (rows, columns) != shape:
                raise _shape_problem(name, (rows, columns), shape, mask_id)
            if getattr(image, "n_frames", 1) > 1:
                raise Invalid(Problem("wrong_shape", f"mask {name} is an animated PNG", mask_id))
            mode = image.mode
            pixels = np.asarray(image)
    if mode in ("LA", "RGBA") and _only_alpha_varies(pixels):
        # An overlay export: black (or any one colour) everywhere, the mask in the alpha.
        notes.append(notice(
            "read_from_alpha",
            f"mask {name} has one colour everywhere and the mask in its alpha (transparency) "
            "channel; it was read from the alpha. Save a single-channel PNG to be sure",
            mask_id, group="masks have one colour everywhere and the mask in their alpha "
            "(transparency) channel; they were read from the alpha",
        ))
        return pixels[..., -1]
    if mode in ("LA", "PA"):
        return pixels[..., 0]
    if mode in ("RGB", "RGBA"):
        color = pixels[..., :3]
        if not ((color[..., 0] == color[..., 1]).all() and (color[..., 1] == color[..., 2]).all()):
            raise Invalid(Problem(
                "not_binary",
                f"mask {name} is a color image; save a single-channel (grayscale or 0/1) PNG",
                mask_id, group="masks are color images; save single-channel (grayscale or 0/1) "
                "PNGs",
            ))
        return color[..., 0]
    return pixels


def _only_alpha_varies(pixels: np.ndarray) -> bool:
    color, alpha = pixels[..., :-1], pixels[..., -1]
    first = color.reshape(-1, color.shape[-1])[:1]
    return bool((color.reshape(-1, color.shape[-1]) == first).all()) and bool(
        (alpha != alpha.flat[0]).any()
    )


def _squeeze_to_2d(got: tuple[int, ...]) -> tuple[int, ...]:
    dims = list(got)
    while len(dims) > 2 and dims[-1] == 1:
        dims.pop()
    return tuple(dims)


def _inflate(data: bytes, name: str, limit: int, mask_id: str | None) -> bytes:
    inflater = zlib.decompressobj(wbits=31)
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error as exc:
        raise Invalid(Problem("unreadable", f"mask {name} is not a valid .nii.gz (gzip) file",
                              mask_id)) from exc
    if len(out) > limit:
        raise Invalid(Problem(
            "too_large", f"mask {name} expands past {limit} bytes, far more than the exam needs",
            mask_id,
        ))
    return out


def _nifti(data: bytes, name: str, grid: ExamGrid, mask_id: str | None, notes: Notes, *,
           gz: bool) -> np.ndarray:
    import nibabel as nib  # noqa: PLC0415

    rows, columns = grid.shape
    if gz:
        # Eight bytes per voxel is the widest NIfTI type a mask could use.
        data = _inflate(data, name, _HEADER_ROOM + rows * columns * 16, mask_id)
    if len(data) < 348:
        raise Invalid(Problem("unreadable", f"mask {name} is not a NIfTI file (too short)",
                              mask_id))
    image_class = nib.Nifti2Image if data[:4] in (b"\x1c\x02\x00\x00", b"\x00\x00\x02\x1c") \
        else nib.Nifti1Image
    try:
        image = image_class.from_bytes(data)
    except Exception as exc:  # noqa: BLE001 - nibabel raises many types on bad headers
        raise Invalid(Problem("unreadable", f"mask {name} is not a readable NIfTI file",
                              mask_id)) from exc
    got = tuple(int(n) for n in image.header.get_data_shape())
    # The slice's two axes are those longer than 1: (C, R), (C, R, 1) and (C, 1, R) all hold
    # a slice, and the affine's matching columns say where it lies.
    axes = [a for a, n in enumerate(got) if n != 1]
    if len(axes) != 2 or axes[1] > 2 or sorted(got[a] for a in axes) != sorted((rows, columns)):
        raise Invalid(Problem(
            "wrong_shape",
            f"mask {name} has shape {_dims(got)}; the exam is {rows} rows × {columns} columns, "
            f"so a NIfTI mask is {columns}×{rows} (x = columns, y = rows, the way nibabel and "
            "ITK save a 2-D slice)",
            mask_id, group=f"masks have shape {_dims(got)}; the exams are {rows} rows × "
            f"{columns} columns, so a NIfTI mask is {columns}×{rows}",
        ))
    dims = (got[axes[0]], got[axes[1]])
    affine, why_none = orienting_affine(image.header)
    placement = place(affine, why_none, (axes[0], axes[1]), dims, grid, name, mask_id)
    notes.extend(placement.notes)
    proxy: Any = image.dataobj
    # get_unscaled: the stored values, before scl_slope/scl_inter.
    stored = proxy.get_unscaled() if hasattr(proxy, "get_unscaled") else proxy
    raw = np.asanyarray(stored).reshape(dims)
    return np.ascontiguousarray(placement.apply(raw))


def _npy(data: bytes, name: str, shape: Shape, mask_id: str | None) -> np.ndarray:
    stream = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            got, fortran, dtype = np.lib.format.read_array_header_1_0(stream)
        elif version == (2, 0):
            got, fortran, dtype = np.lib.format.read_array_header_2_0(stream)
        else:
            raise ValueError(f"format version {version}")
    except ValueError as exc:
        raise Invalid(Problem("unreadable", f"mask {name} is not a NumPy .npy file",
                              mask_id)) from exc
    if dtype.hasobject:
        raise Invalid(Problem(
            "unsupported_format",
            f"mask {name} holds Python objects (pickles are refused); save a numeric array",
            mask_id,
        ))
    flat = _squeeze_to_2d(tuple(int(n) for n in got))
    while len(flat) > 2 and flat[0] == 1:
        flat = flat[1:]
    if flat != shape:
        raise _shape_problem(name, tuple(got), shape, mask_id)
    offset = stream.tell()
    count = shape[0] * shape[1]
    if len(data) - offset < count * dtype.itemsize:
        raise Invalid(Problem("unreadable", f"mask {name} is truncated", mask_id))
    flat_values = np.frombuffer(data, dtype=dtype, count=count, offset=offset)
    return flat_values.reshape(shape, order="F" if fortran else "C")
