from ..errors import UserError


class DatasetError(UserError, ValueError):
    """A dataset root, label file or image is missing or malformed, or a dataset option is wrong.

    The message always names the offending file (and line, where there is one) or option.
    """
