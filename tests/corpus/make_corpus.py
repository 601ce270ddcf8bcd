"""Generate the malformed-submission corpus and its small truths, deterministically.

Run from the repository root:  .venv/bin/python tests/corpus/make_corpus.py
It rewrites truth/, submissions/ and expected.csv; running it twice gives the same bytes.
tests/evaluators/test_corpus.py scores every file with CORPUS_OPTIONS below.
"""

from __future__ import annotations

import csv
import io
import re
import shutil
import struct
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from tests.evaluators.factory import (  # noqa: E402
    FIXED_DATE,
    dicom_mask,
    nifti_mask,
    npy_mask,
    png_mask,
    synthetic_slice,
    table_csv,
    write_exam,
)

SEG = "segmentation-surface"
PROB = "binary-probability"
REG = "regression"
TRUTHS = {SEG: "truth/sarcopenia", PROB: "truth/nodules.csv", REG: "truth/edss.csv"}
# Small limits so the limit cases stay a few kilobytes on disk.
CORPUS_MAX_MEMBERS = 20
CORPUS_MAX_EXPANDED_BYTES = 1_000_000
EXAMS = {"0042": (64, 64), "0107": (64, 64), "0311": (48, 64)}  # rows, columns
SPACING = (0.78125, 0.78125)
OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"

Entry = tuple[str, str, str, str]  # file, kind, expected status, expected codes
entries: list[Entry] = []
warned: dict[str, str] = {}  # file → the warning codes its result carries


def add(name: str, kind: str, data: bytes, codes: str, status: str = "invalid") -> None:
    path = HERE / "submissions" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    entries.append((name, kind, status, codes))


def warns(codes: str) -> None:
    """The warning codes the last file added must carry."""
    warned[entries[-1][0]] = codes


def zipped(members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in members.items():
            info = zipfile.ZipInfo(name, FIXED_DATE)
            info.compress_type = compression
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)
    return buffer.getvalue()


def rezip(data: bytes, edit: Callable[[zipfile.ZipInfo], None] | None = None) -> bytes:
    """Copy a zip (an xlsx) with fixed timestamps and a fixed 'modified' property."""
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            info = zipfile.ZipInfo(item.filename, FIXED_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            if edit:
                edit(info)
            body = source.read(item)
            if item.filename == "docProps/core.xml":
                body = re.sub(rb"(<dcterms:modified[^>]*>)[^<]*", rb"\g<1>2019-10-04T11:58:00Z",
                              body)
            target.writestr(info, body)
    return out.getvalue()


def workbook(rows: list[tuple[object, ...]]) -> bytes:
    import datetime

    import openpyxl

    book = openpyxl.Workbook()
    book.properties.created = datetime.datetime(2019, 10, 4, 11, 58)
    sheet = book.active
    assert sheet is not None
    for row in rows:
        sheet.append(list(row))
    buffer = io.BytesIO()
    book.save(buffer)
    return rezip(buffer.getvalue())


def make_truths() -> dict[str, np.ndarray]:
    shutil.rmtree(HERE / "truth", ignore_errors=True)
    folder = HERE / TRUTHS[SEG]
    masks = {}
    for n, (exam_id, shape) in enumerate(EXAMS.items()):
        hu, mask = synthetic_slice(shape, seed=n)
        write_exam(folder / "images" / f"{exam_id}.dcm", hu, SPACING, seed=n)
        (folder / "masks").mkdir(parents=True, exist_ok=True)
        (folder / "masks" / f"{exam_id}.png").write_bytes(png_mask(mask))
        masks[exam_id] = mask
    labels = {f"{i:04d}": float(i % 3 == 0) for i in range(1, 11)}
    (HERE / TRUTHS[PROB]).write_bytes(table_csv(labels, header=("id", "label")))
    edss = {f"P{i:02d}": (i % 13) / 2 for i in range(1, 9)}
    (HERE / TRUTHS[REG]).write_bytes(table_csv(edss, header=("id", "edss")))
    return masks


def surfaces(masks: dict[str, np.ndarray], drop: str | None = None) -> bytes:
    values = {k: float(np.count_nonzero(m)) * SPACING[0] * SPACING[1]
              for k, m in masks.items() if k != drop}
    return table_csv(values, header=("id", "surface_mm2"))


def patch_method(data: bytes, method: int) -> bytes:
    """Rewrite the compression method in every header: an archiver's exotic codec."""
    out = bytearray(data)
    for signature, offset in ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)):
        start = 0
        while (at := out.find(signature, start)) >= 0:
            out[at + offset : at + offset + 2] = struct.pack("<H", method)
            start = at + 4
    return bytes(out)


def patch_flags(data: bytes, flags: int) -> bytes:
    """Set general-purpose flag bits in every header (0x1: the entry is encrypted)."""
    out = bytearray(data)
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        start = 0
        while (at := out.find(signature, start)) >= 0:
            (old,) = struct.unpack("<H", out[at + offset : at + offset + 2])
            out[at + offset : at + offset + 2] = struct.pack("<H", old | flags)
            start = at + 4
    return bytes(out)


def segmentation_cases(masks: dict[str, np.ndarray]) -> None:
    exam = HERE / TRUTHS[SEG] / "images"
    good = {f"{k}.png": png_mask(m) for k, m in masks.items()}
    ok_surfaces = surfaces(masks)

    def seg(name: str, members: dict[str, bytes], codes: str, with_surfaces: bool = True) -> None:
        body = dict(members)
        if with_surfaces:
            body["surfaces.csv"] = ok_surfaces
        add(name, SEG, zipped(body), codes)

    def without(*ids: str) -> dict[str, bytes]:
        return {k: v for k, v in good.items() if k.split(".")[0] not in ids}

    # Valid submissions, one per mask writer, to prove the corpus truth scores.
    mixed = {
        "masks/0042.dcm": dicom_mask(exam / "0042.dcm", masks["0042"], bits=1),
        "masks/0107.nii.gz": nifti_mask(masks["0107"], gz=True),
        "masks/0311.npy": npy_mask(masks["0311"]),
        "__MACOSX/masks/._0042.dcm": b"\x00\x05\x16\x07junk",
        "masks/.DS_Store": b"\x00\x00\x00\x01Bud1",
    }
    seg("seg_valid_mixed_formats.zip", mixed, "", with_surfaces=True)
    entries[-1] = (*entries[-1][:2], "scored", "")
    warns("orientation_assumed")  # the 0107 NIfTI has nibabel's identity affine, on a square exam

    add("seg_not_a_zip.png", SEG, png_mask(masks["0042"]), "unsupported_format")
    add("seg_rar_named_zip.zip", SEG, b"Rar!\x1a\x07\x00" + bytes(64), "unsupported_format")
    add("seg_garbage.zip", SEG, bytes(range(256)) * 4, "unreadable")
    add("seg_truncated.zip", SEG, zipped({**good, "surfaces.csv": ok_surfaces})[:300],
        "unreadable")
    add("seg_empty.zip", SEG, zipped({}), "empty missing_id missing_surfaces")
    seg("seg_missing_mask.zip", {k: v for k, v in good.items() if k != "0311.png"}, "missing_id")
    seg("seg_unknown_id.zip", {**good, "9999.png": good["0042.png"]}, "unknown_id")
    seg("seg_valid_numeric_id.zip", {**without("0042"), "42.png": good["0042.png"]},
        "")
    entries[-1] = (*entries[-1][:2], "scored", "")
    seg("seg_duplicate_id.zip", {**good, "other/0042.npy": npy_mask(masks["0042"])},
        "duplicate_id")
    seg("seg_wrong_shape.zip", {**good, "0042.png": png_mask(np.zeros((32, 32), bool))},
        "wrong_shape")
    three = masks["0042"].astype(np.uint8)
    three[:4, :4] = 2
    seg("seg_three_values.zip", {**good, "0042.png": _png_raw(three)}, "not_binary")
    seg("seg_ct_image_instead_of_mask.zip",
        {**without("0042"), "0042.dcm": (exam / "0042.dcm").read_bytes()}, "not_binary")
    seg("seg_no_zero_background.zip",
        {**without("0042"), "0042.npy": npy_mask(masks["0042"].astype(np.uint8) + 1)},
        "not_binary")
    with_nan = masks["0042"].astype(np.float32)
    with_nan[0, 0] = np.nan
    seg("seg_nan_in_mask.zip", {**without("0042"), "0042.npy": npy_mask(with_nan, "float32")},
        "not_binary")
    import nibabel as nib

    rows_first = nib.Nifti1Image(masks["0311"].astype(np.uint8), np.eye(4)).to_bytes()
    seg("seg_nifti_rows_by_columns.zip", {**without("0311"), "0311.nii": rows_first}, "")
    entries[-1] = (*entries[-1][:2], "scored", "")
    warns("orientation_from_shape")  # no orientation, but 48×64 can only be rows × columns
    jpeg = io.BytesIO()
    Image.fromarray(masks["0042"].astype(np.uint8) * 255).save(jpeg, "JPEG")
    seg("seg_jpeg_mask.zip", {**without("0042"), "0042.jpg": jpeg.getvalue()},
        "unsupported_format missing_id")
    seg("seg_jpeg_named_png.zip", {**good, "0042.png": jpeg.getvalue()}, "unsupported_format")
    seg("seg_truncated_png.zip", {**good, "0042.png": good["0042.png"][:60]}, "unreadable")
    seg("seg_garbage_dicom.zip", {**without("0042"), "0042.dcm": b"DICM" * 50},
        "unreadable")
    mpeg = pydicom.dcmread(io.BytesIO(dicom_mask(exam / "0042.dcm", masks["0042"])))
    from pydicom.encaps import encapsulate

    mpeg.PixelData = encapsulate([b"\x00" * 64])
    mpeg["PixelData"].VR = "OB"
    mpeg.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.100"
    buffer = io.BytesIO()
    mpeg.save_as(buffer)
    seg("seg_dicom_mpeg2.zip", {**without("0042"), "0042.dcm": buffer.getvalue()},
        "unsupported_compression")
    frames = pydicom.dcmread(io.BytesIO(dicom_mask(exam / "0042.dcm", masks["0042"])))
    frames.NumberOfFrames = 2
    frames.PixelData = frames.PixelData * 2
    buffer = io.BytesIO()
    frames.save_as(buffer)
    seg("seg_dicom_two_frames.zip", {**without("0042"), "0042.dcm": buffer.getvalue()},
        "extra_frames")
    pickled = io.BytesIO()
    np.save(pickled, np.array([[None]], dtype=object), allow_pickle=True)
    seg("seg_pickled_npy.zip", {**without("0042"), "0042.npy": pickled.getvalue()},
        "unsupported_format")
    npz = io.BytesIO()
    np.savez(npz, mask=masks["0042"])
    seg("seg_npz.zip", {**without("0042"), "0042.npz": npz.getvalue()},
        "unsupported_format missing_id")
    rgb = np.zeros((64, 64, 3), np.uint8)
    rgb[masks["0042"]] = (255, 0, 0)
    color = io.BytesIO()
    Image.fromarray(rgb).save(color, "PNG")
    seg("seg_color_png.zip", {**good, "0042.png": color.getvalue()}, "not_binary")
    seg("seg_corrupt_nifti_gz.zip", {**without("0107"), "0107.nii.gz": b"\x1f\x8bnotgzip"},
        "unreadable")
    seg("seg_path_escape.zip", {**good, "../0042.png": good["0042.png"]}, "unsafe_path")
    seg("seg_absolute_path.zip", {**good, "/tmp/0042.png": good["0042.png"]}, "unsafe_path")
    seg("seg_windows_drive_path.zip", {**good, "C:\\masks\\0042.png": good["0042.png"]},
        "unsafe_path")

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in {**good, "surfaces.csv": ok_surfaces}.items():
            archive.writestr(zipfile.ZipInfo(name, FIXED_DATE), data)
        link = zipfile.ZipInfo("link.png", FIXED_DATE)
        link.create_system = 3
        link.external_attr = (0o120777 << 16)
        archive.writestr(link, "/etc/passwd")
    add("seg_symlink.zip", SEG, buffer.getvalue(), "symlink")
    seg("seg_duplicate_path.zip", {"m/0042.png": good["0042.png"], "m//0042.png": good["0042.png"],
                                   "0107.png": good["0107.png"], "0311.png": good["0311.png"]},
        "duplicate_path")
    seg("seg_too_many_members.zip",
        {**good, **{f"extra/{i}.txt": b"x" for i in range(CORPUS_MAX_MEMBERS)}},
        "too_many_members")
    seg("seg_zip_bomb.zip", {**good, "0042.npy": bytes(3 * CORPUS_MAX_EXPANDED_BYTES)},
        "too_large")
    add("seg_encrypted.zip", SEG, patch_flags(zipped({**good, "surfaces.csv": ok_surfaces}), 0x1),
        "encrypted")
    add("seg_deflate64.zip", SEG,
        patch_method(zipped({**good, "surfaces.csv": ok_surfaces}, zipfile.ZIP_STORED), 9),
        "unsupported_compression")
    seg("seg_missing_surfaces.zip", good, "missing_surfaces", with_surfaces=False)
    add("seg_two_surface_tables.zip", SEG,
        zipped({**good, "surfaces.csv": ok_surfaces, "surfaces.xlsx": workbook([("0042", 1)])}),
        "duplicate_path")
    bad_surfaces = b"id;surface_mm2\n0042;-12,5\n0107;abc\n0311;1200\n"
    seg("seg_bad_surfaces.zip", {**good, "surfaces.csv": bad_surfaces}, "out_of_range not_a_number",
        with_surfaces=False)
    seg("seg_surfaces_missing_id.zip", {**good, "surfaces.csv": surfaces(masks, drop="0107")},
        "missing_id", with_surfaces=False)
    seg("seg_surfaces_xls.zip", {**good, "surfaces.xls": OLE + bytes(200)},
        "unsupported_format", with_surfaces=False)
    seg("seg_nested_zip.zip", {"masks.zip": zipped(good)}, "unexpected_file missing_id")
    seg("seg_stray_file.zip", {**good, "README.txt": b"our model"}, "unexpected_file")
    seg("seg_pytorch_mask.zip", {**without("0042"), "0042.pt": b"PK\x03\x04torch"},
        "unsupported_format missing_id")
    add("seg_ppmd.zip", SEG,
        patch_method(zipped({**good, "surfaces.csv": ok_surfaces}, zipfile.ZIP_STORED), 98),
        "unsupported_compression")
    # Surfaces as a spreadsheet shows whole numbers ("12,827"): the masks' areas settle them.
    area = SPACING[0] * SPACING[1]
    grouped = "id,surface_mm2\n" + "".join(
        f'{k},"{round(m.size * area):,}"\n' for k, m in masks.items())
    full = {f"{k}.png": png_mask(np.ones_like(m)) for k, m in masks.items()}
    add("seg_surfaces_grouped.zip", SEG, zipped({**full, "surfaces.csv": grouped.encode()}), "",
        "scored")
    warns("number_read_from_masks")
    # "1.234" beside empty masks: nothing says whether it is 1234 or 1.234.
    empty = {f"{k}.png": png_mask(np.zeros_like(m)) for k, m in masks.items()}
    ambiguous = b"id;surface_mm2\n0042;1.234\n0107;2.345\n0311;3.456\n"
    seg("seg_surfaces_ambiguous.zip", {**empty, "surfaces.csv": ambiguous}, "ambiguous_number",
        with_surfaces=False)


def _png_raw(values: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(values.astype(np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def two_sheets(rows: dict[str, float]) -> bytes:
    """A workbook whose first sheet holds notes and the second the predictions."""
    import datetime

    import openpyxl

    book = openpyxl.Workbook()
    book.properties.created = datetime.datetime(2019, 10, 4, 11, 58)
    notes = book.active
    assert notes is not None
    notes.title = "Notes"
    notes.append(["Model: ResNet-50, fold 3"])
    data = book.create_sheet("Predictions")
    for row in rows.items():
        data.append(list(row))
    buffer = io.BytesIO()
    book.save(buffer)
    return rezip(buffer.getvalue())


def table_cases() -> None:
    ids = [f"{i:04d}" for i in range(1, 11)]
    good = {i: 0.1 * n for n, i in enumerate(ids)}

    def prob(name: str, text: str, codes: str) -> None:
        add(name, PROB, text.encode("cp1252"), codes)

    french = "id;probabilité;\r\n" + "".join(
        f"{i};{str(v).replace('.', ',')};\r\n" for i, v in good.items()) + ";;\r\n"
    prob("prob_valid_french_excel.csv", french, "")
    entries[-1] = (*entries[-1][:2], "scored", "")
    add("prob_legacy.xls", PROB, OLE + bytes(504), "unsupported_format")
    add("prob_opendocument.ods", PROB, zipped({"mimetype": b"application/vnd.oasis"}),
        "unsupported_format")
    add("prob_macros.xlsm", PROB, workbook([("0001", 0.5)]), "unsupported_format")
    add("prob_password.xlsx", PROB, OLE + bytes(1016), "encrypted")
    add("prob_corrupt.xlsx", PROB, workbook([("0001", 0.5)])[:400], "unreadable")
    add("prob_zip_not_table.zip", PROB, zipped({"p.csv": b"0001,0.5"}), "unsupported_format")
    add("prob_png_named_csv.csv", PROB, _png_raw(np.zeros((4, 4))), "unreadable")
    prob("prob_empty.csv", "", "empty")
    prob("prob_header_only.csv", "id,probability\n", "empty")
    rows = dict(good)
    prob("prob_out_of_range.csv", "".join(f"{i},{1.3 if i == '0004' else v}\n"
                                          for i, v in rows.items()), "out_of_range")
    prob("prob_not_a_number.csv", "".join(f"{i},{'high' if i == '0004' else v}\n"
                                          for i, v in rows.items()), "not_a_number")
    prob("prob_nan.csv", "".join(f"{i},{'NaN' if i == '0004' else v}\n"
                                 for i, v in rows.items()), "not_finite")
    prob("prob_missing_ids.csv", "".join(f"{i},{v}\n" for i, v in list(rows.items())[:7]),
         "missing_id")
    prob("prob_duplicate_id.csv", "".join(f"{i},{v}\n" for i, v in rows.items()) + "0004,0.9\n",
         "duplicate_id")
    prob("prob_unknown_id.csv", "".join(f"{i},{v}\n" for i, v in rows.items()) + "0099,0.9\n",
         "unknown_id")
    prob("prob_pandas_index.csv", ",id,probability\n" + "".join(
        f"{n},{i},{v}\n" for n, (i, v) in enumerate(rows.items())), "too_many_columns")
    prob("prob_no_value.csv", "".join(f"{i},{'' if i == '0004' else v}\n"
                                      for i, v in rows.items()), "missing_value")
    prob("prob_empty_id.csv", "".join(f"{i},{v}\n" for i, v in rows.items()) + ",0.5\n",
         "empty_id")
    prob("prob_one_column.csv", "".join(f"{i}\n" for i in rows), "missing_value")
    prob("prob_percent.csv", "".join(f"{i},{int(v * 100)}%\n" for i, v in rows.items()),
         "not_a_number")
    prob("prob_r_write_csv.csv", '"","id","probability"\n' + "".join(
        f'"{n}","{i}",{v}\n' for n, (i, v) in enumerate(rows.items(), start=1)),
        "too_many_columns")
    prob("prob_space_separated.csv", "id probability\n" + "".join(
        f"{i} {v}\n" for i, v in rows.items()), "unsupported_separator")
    prob("prob_constant.csv", "".join(f"{i},0.5\n" for i in rows), "")
    entries[-1] = (*entries[-1][:2], "scored", "")
    warns("constant_predictions")
    add("prob_html_named_xls.xls", PROB, ("<html><body><table>" + "".join(
        f"<tr><td>{i}</td><td>{v}</td></tr>" for i, v in rows.items())
        + "</table></body></html>").encode(), "unsupported_format")
    add("prob_first_sheet_notes.xlsx", PROB, two_sheets(rows), "wrong_sheet")

    edss = {f"P{i:02d}": (i % 13) / 2 for i in range(1, 9)}
    add("edss_valid.xlsx", REG, workbook([("id", "edss"), *edss.items()]), "", "scored")
    add("edss_out_of_range.csv", REG, "".join(
        f"{i},{11 if i == 'P01' else -1 if i == 'P02' else v}\n" for i, v in edss.items()
    ).encode(), "out_of_range")
    add("edss_json.json", REG, b'{"P01": 2.5}', "unsupported_format")
    import datetime

    add("edss_date_cell.xlsx", REG, workbook(
        [(i, datetime.datetime(2019, 1, 1) if i == "P03" else v) for i, v in edss.items()]
    ), "not_a_number")
    add("edss_utf16_tab.txt", REG, ("id\tedss\r\n" + "".join(
        f"{i}\t{str(v).replace('.', ',')}\r\n" for i, v in edss.items())).encode("utf-16"),
        "", "scored")


def main() -> None:
    shutil.rmtree(HERE / "submissions", ignore_errors=True)
    masks = make_truths()
    segmentation_cases(masks)
    table_cases()
    with (HERE / "expected.csv").open("w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["file", "kind", "status", "codes", "warnings"])
        writer.writerows(sorted((*e, warned.get(e[0], "")) for e in entries))
    print(f"{len(entries)} corpus files written under {HERE}")


if __name__ == "__main__":
    main()
