import pytest

from dt_data.datasets import load_shapes


@pytest.fixture(scope="session")
def shapes_root(tmp_path_factory):
    return tmp_path_factory.mktemp("dt-datasets")


@pytest.fixture(scope="session")
def tiny_shapes(shapes_root):
    """8 images of 64 px, with panoptic/semantic keys."""
    return load_shapes("train", num_images=8, image_size=64, seed=3, root=shapes_root, kind="panoptic")
