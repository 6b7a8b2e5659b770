"""Readers of annotation files: each yields ``(file, locator, object)`` items, part by part.

``json`` (a list, streamed; or the list under ``field``), ``jsonl``, ``json_dict``, ``csv``,
``tsv``, ``parquet`` (by row group), ``lines``, ``xml`` (one item per file), ``zip_members`` /
``tar_members`` (annotation files inside archives). :class:`ArchiveSet` reads media members of
zips and tars in place; :mod:`.safe_pickle` reads plain-data pickles and refuses any other.
"""

from . import archive, jsonfmt, table, xmlfmt  # noqa: F401  (registers the readers)
from .archive import ArchiveSet, TarStream, iter_tar_members, normalize_member
from .base import READERS, AnnotationFileError, Item, Part, Reader, get_reader
from .jsonfmt import iter_json_array, load_json
from .safe_pickle import UnsafePickleError, load_data, loads_data
from .table import ParquetBlobs, is_blob
from .xmlfmt import as_list

__all__ = [
    "READERS", "AnnotationFileError", "ArchiveSet", "Item", "ParquetBlobs", "Part", "Reader", "TarStream",
    "UnsafePickleError", "as_list", "get_reader", "is_blob", "iter_json_array", "iter_tar_members", "load_data",
    "load_json", "loads_data", "normalize_member",
]  # fmt: skip
