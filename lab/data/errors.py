"""DatasetError: the one exception every bad dataset input raises."""


class DatasetError(ValueError):
    """A dataset could not be loaded; the message says what was wrong and what to do."""
