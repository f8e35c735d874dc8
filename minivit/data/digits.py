"""scikit-learn's 8x8 handwritten digits: 1,797 images that ship with scikit-learn, so the first
run needs no download. A fixed stratified split gives 1,437 training and 360 test images."""
import numpy as np

from minivit.data.dataset import Dataset

TEST_SIZE = 360


def load_digits():
    """The digits as (N 1 8 8) uint8 images: scikit-learn's 0..16 grey levels scaled to 0..255."""
    # imported here: scikit-learn takes most of a second to import, which every command-line
    # tool would pay before it could even report a mistyped flag
    from sklearn.datasets import load_digits as sklearn_digits
    from sklearn.model_selection import train_test_split
    digits = sklearn_digits()
    images = np.round(digits.images * (255 / 16)).astype(np.uint8)[:, None]
    labels = digits.target.astype(np.int64)
    train_images, test_images, train_labels, test_labels = train_test_split(
        images, labels, test_size=TEST_SIZE, stratify=labels, random_state=0)
    return Dataset("digits", train_images, train_labels, test_images, test_labels,
                   [str(digit) for digit in range(10)])
