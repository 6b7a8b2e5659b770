"""Error types that turn bad input into quarantine reasons."""


class SourceError(ValueError):
    """A record that cannot become a sample. ``reason`` is a short code counted in the stats
    (parse_error, invalid_annotation, missing_media, bad_media, filtered, ...)."""

    def __init__(self, reason: str, message: str):
        self.reason = reason
        super().__init__(message)


class MediaError(SourceError):
    """Media that is missing, unreadable, corrupt or unsupported."""

    def __init__(self, message: str, reason: str = "bad_media"):
        super().__init__(reason, message)
