import pytest

from dt_data import DatasetCatalog, MetadataCatalog


def test_register_get_and_close_name_suggestions():
    DatasetCatalog.register("unit_cat_ds", lambda: [{"file_name": "a.jpg"}])
    try:
        assert DatasetCatalog.get("unit_cat_ds") == [{"file_name": "a.jpg"}]
        with pytest.raises(KeyError, match="unit_cat_ds"):
            DatasetCatalog.get("unit_cat_dz")
        with pytest.raises(ValueError, match="already registered"):
            DatasetCatalog.register("unit_cat_ds", list)
    finally:
        DatasetCatalog.remove("unit_cat_ds")
    assert "unit_cat_ds" not in DatasetCatalog.list()


def test_register_rejects_non_callable_and_non_list_results():
    with pytest.raises(TypeError, match="callable"):
        DatasetCatalog.register("unit_bad", [1, 2])
    DatasetCatalog.register("unit_tuple", lambda: ({"a": 1},))
    try:
        with pytest.raises(TypeError, match="not list"):
            DatasetCatalog.get("unit_tuple")
    finally:
        DatasetCatalog.remove("unit_tuple")


def test_builtin_shapes_registered_with_metadata():
    for name in ("shapes_train", "shapes_val", "shapes_val_panoptic", "shapes_val_sem_seg"):
        assert name in DatasetCatalog.list()
    meta = MetadataCatalog.get("shapes_train")
    assert meta.thing_classes == ["circle", "square", "triangle", "star", "hexagon"]
    assert meta.thing_dataset_id_to_contiguous_id == {1: 0, 2: 1, 3: 2, 4: 3, 5: 4}
    assert meta.stuff_classes[-2:] == ["sky", "ground"]
    assert meta.evaluator_type == "coco"
    assert MetadataCatalog.get("shapes_val_panoptic").evaluator_type == "coco_panoptic_seg"
    assert MetadataCatalog.get("shapes_val_sem_seg").evaluator_type == "sem_seg"


def test_metadata_write_once_and_suggestions():
    meta = MetadataCatalog.get("unit_meta")
    try:
        meta.set(thing_classes=["a", "b"])
        meta.thing_classes = ["a", "b"]  # same value is fine
        with pytest.raises(ValueError, match="different value"):
            meta.thing_classes = ["b"]
        with pytest.raises(AttributeError, match="thing_classes"):
            _ = meta.thing_clases
        assert meta.get("missing", 3) == 3
        assert MetadataCatalog.get("unit_meta") is meta
    finally:
        MetadataCatalog.remove("unit_meta")
