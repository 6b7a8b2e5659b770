"""A pickle loader that refuses every class and global: only dicts, lists, tuples, sets,
strings, bytes, numbers, booleans and None come out of it.

Some sources publish their annotations only as pickles (RefCOCO's ``refs(<splitBy>).p``,
QuerYD's captions and times, LocalizingMoments' frame rates). Unpickling runs code through the
classes and functions a pickle names; this loader names none, so a pickle that needs one is
refused with :class:`UnsafePickleError` instead of being run. Python 2 pickles (``cPickle``)
carry byte strings: they are read as ASCII and, when that fails, as latin-1.
"""

from __future__ import annotations

import io
import pickle

from ..paths import AnnotationFileError, SourceRoot


class UnsafePickleError(AnnotationFileError):
    """The pickle names a class or a global: it is not plain data, and it is not loaded."""


class _DataOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        raise pickle.UnpicklingError(f"refused: the pickle names {module}.{name} (only plain data is loaded)")

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("refused: the pickle uses persistent ids (only plain data is loaded)")


def loads_data(data: bytes, what: str = "pickle"):
    """Plain data from pickle bytes; a pickle that names any class or global is refused."""
    last: Exception | None = None
    for encoding in ("ASCII", "latin1"):
        try:
            return _DataOnlyUnpickler(io.BytesIO(data), encoding=encoding).load()
        except UnicodeDecodeError as err:
            last = err
            continue
        except pickle.UnpicklingError as err:
            if str(err).startswith("refused"):
                raise UnsafePickleError(what, str(err)) from None
            raise AnnotationFileError(what, f"not a readable pickle: {err}") from None
        except (EOFError, ValueError, TypeError, IndexError, KeyError, AttributeError, MemoryError) as err:
            raise AnnotationFileError(what, f"not a readable pickle: {type(err).__name__}: {err}") from None
    raise AnnotationFileError(what, f"undecodable strings in the pickle: {last}")


def load_data(src: SourceRoot, rel: str):
    """A pickle annotation file of the source, as plain data (see :func:`loads_data`)."""
    return loads_data(src.annotation(rel).read_bytes(), rel)
