"""Every limit the app enforces on outside input, in one place.

A classroom server takes uploads, archives and URLs from 30 students at once; each limit below
is what keeps one bad input from taking the server down. Change them here, nowhere else.
"""

MAX_UPLOAD_BYTES = 20 * 1024 * 1024  # one uploaded photo
MAX_IMAGE_PIXELS = 40_000_000  # decoded width x height (a decompression bomb is refused)
MAX_ARCHIVE_BYTES = 200 * 1024 * 1024  # a dataset or run zip, compressed
MAX_ARCHIVE_EXPANDED_BYTES = 1024 * 1024 * 1024  # the same, once expanded
MAX_ARCHIVE_MEMBERS = 100_000
MAX_EPOCHS = 500
MAX_IDENTITIES = 10_000
MIN_IDENTITIES = 2
MAX_IMAGES_PER_IDENTITY = 50
MAX_IMAGE_SIZE = 128  # side of the square network input
MAX_EMBEDDING_DIM = 512
MAX_WIDTH = 512  # channels of a network's first layer (hidden units of the mlp)
MAX_RUN_NAME_CHARS = 80
MIN_FACE_PIXELS = 24  # a detected face smaller than this on its short side is too small to trust
GALLERY_MAX_PHOTOS = 60  # one classroom of known faces in the verify gallery; more is slow on a CPU
