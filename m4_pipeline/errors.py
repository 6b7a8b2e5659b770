"""Error types: per-record faults that become quarantine reasons, and build faults that stop a build.

A :class:`SourceError` (and its :class:`MediaError`) is about one record: it is caught by the
per-record step, and the record is quarantined with ``reason`` and the message. A
:class:`BuildError` is about the configuration or the environment (a missing or unreadable
annotation file, a bad parameter, a missing native dependency): it stops the build before more
records are processed, with one line that names the cause.
"""


class SourceError(ValueError):
    """A record that cannot become a sample. ``reason`` is a short code counted in the stats
    (parse_error, invalid_annotation, empty_text, unsafe_path, missing_media, bad_media, filtered, ...)."""

    default_reason = "invalid_annotation"

    def __init__(self, message: str, *, reason: str | None = None):
        self.reason = reason or self.default_reason
        super().__init__(message)


class MediaError(SourceError):
    """Media that is missing, unreadable, corrupt or unsupported."""

    default_reason = "bad_media"


class BuildError(RuntimeError):
    """A configuration or environment fault: the build stops with this one-line message."""
