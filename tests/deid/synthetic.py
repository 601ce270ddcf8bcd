"""A dataset carrying one value for every attribute of Table E.1-1 that pydicom can build,
at the top level and again inside an item of a sequence the profile keeps."""

from __future__ import annotations

from typing import Any

import numpy as np
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

from server.deid.table import ATTRIBUTES, Attribute

# Values that look like what hospitals write, valid for their VR.
SAMPLES: dict[str, Any] = {
    "AE": "CTROOM3", "AS": "071Y", "CS": "HOPITALNORD", "DA": "20190412", "DS": "71.5",
    "DT": "20190412101502.25", "FL": 1.5, "FD": 2.5, "IS": "42", "LO": "Hopital Nord 12",
    "LT": "Seen by Dr Martin on 12/04/2019", "OB": b"\x01\x02", "OW": b"\x01\x02",
    "PN": "DUPONT^JEANNE", "SH": "A19-55321", "SL": 7, "SS": 7, "ST": "3 rue des Lilas",
    "TM": "101502.250", "UC": "Jeanne Dupont", "UL": 7, "UN": b"\x01\x02",
    "UR": "http://hopital-nord.example/patient/42", "US": 7, "UT": "Jeanne Dupont, IPP 42137",
    "SV": 7, "UV": 7, "OD": b"\x00" * 8, "OF": b"\x00" * 4, "OL": b"\x01\x00\x00\x00",
    "OV": b"\x01" + b"\x00" * 7, "AT": 0x00100010,
}
NESTING = "SharedFunctionalGroupsSequence"  # not in the table: kept and walked


def sample(attribute: Attribute, index: int) -> Any:
    if attribute.vr == "UI":
        return f"1.2.826.0.1.3680043.8.498.{index + 1}"
    if attribute.vr == "SQ":
        item = Dataset()
        item.CodeValue = "T-32000"  # not in the table: kept inside a kept sequence
        item.ReferencedSOPInstanceUID = f"1.2.826.0.1.3680043.8.499.{index + 1}"
        return Sequence([item])
    vr = attribute.vr.split(" or ")[0]
    return SAMPLES[vr]


def buildable() -> list[Attribute]:
    """The table's attributes that a dataset (not file meta, not a command) can carry."""
    return [a for a in ATTRIBUTES.values() if a.tag.group not in (0x0000, 0x0002)]


def fill(ds: Dataset) -> None:
    for index, attribute in enumerate(buildable()):
        vr = attribute.vr.split(" or ")[0]
        ds.add(DataElement(attribute.tag, vr, sample(attribute, index)))


def every_attribute_dataset() -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = "1.2.826.0.1.3680043.8.498.90000"
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    fill(ds)
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "CT"
    inner = Dataset()
    fill(inner)
    ds.add(DataElement(0x52009229, "SQ", Sequence([inner])))
    ds.Rows = ds.Columns = 4
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = np.arange(16, dtype=np.uint16).tobytes()
    return ds
