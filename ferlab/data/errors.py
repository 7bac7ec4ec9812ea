class DatasetError(ValueError):
    """A dataset root, label file or image is missing or malformed.

    The message always names the offending file (and line, where there is one).
    """
