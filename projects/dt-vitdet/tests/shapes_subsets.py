"""Tiny subsets of dt-data's built-in shapes dataset, registered for the tests."""

from dt_data import DatasetCatalog, MetadataCatalog

SUBSETS = {"vitdet_shapes_train4": ("shapes_train", 4), "vitdet_shapes_val2": ("shapes_val", 2)}


def register_tiny_shapes() -> None:
    for name, (source, count) in SUBSETS.items():
        if name in DatasetCatalog:
            continue
        DatasetCatalog.register(name, lambda source=source, count=count: DatasetCatalog.get(source)[:count])
        keep = ("thing_classes", "thing_colors", "thing_dataset_id_to_contiguous_id", "evaluator_type")
        MetadataCatalog.get(name).set(**{k: MetadataCatalog.get(source).get(k) for k in keep})
