import copy
import pickle

import pytest
import torch

from dt_structures import Boxes, Instances


def make(n: int = 4) -> Instances:
    inst = Instances((480, 640))
    inst.pred_boxes = Boxes(torch.arange(n * 4, dtype=torch.float32).reshape(n, 4))
    inst.scores = torch.linspace(0, 1, n)
    inst.pred_classes = torch.arange(n)
    inst.names = [f"obj{i}" for i in range(n)]
    return inst


def test_fields_attribute_and_method_access():
    inst = make()
    assert inst.image_size == (480, 640)
    assert len(inst) == 4
    assert inst.has("scores") and "scores" in inst and "masks" not in inst
    assert inst.get("scores") is inst.scores
    inst.set("labels", torch.zeros(4))
    assert list(inst.get_fields()) == ["pred_boxes", "scores", "pred_classes", "names", "labels"]
    inst.remove("labels")
    assert not inst.has("labels")
    with pytest.raises(AttributeError, match="gt_boxes"):
        _ = inst.gt_boxes
    with pytest.raises(KeyError, match="gt_boxes"):
        inst.get("gt_boxes")
    with pytest.raises(KeyError, match="gt_boxes"):
        inst.remove("gt_boxes")


def test_constructor_kwargs_and_image_size_validation():
    inst = Instances((2, 3), scores=torch.ones(5), classes=torch.zeros(5))
    assert len(inst) == 5
    with pytest.raises(ValueError, match="image_size"):
        Instances((2, 3, 4))


def test_length_invariant_names_the_field():
    inst = make(4)
    with pytest.raises(ValueError, match="'bad'.*length 3.*length 4"):
        inst.bad = torch.zeros(3)
    with pytest.raises(ValueError, match="'scores'"):
        inst.set("scores", torch.zeros(5))
    with pytest.raises(TypeError, match="'flag'"):
        inst.flag = 3
    with pytest.raises(ValueError, match="field name"):
        inst.set("_hidden", torch.zeros(4))
    with pytest.raises(ValueError, match="'image_size' is an attribute"):
        inst.image_size = torch.zeros(4)
    with pytest.raises(ValueError, match="'to' is an attribute"):
        inst.set("to", torch.zeros(4))
    single = Instances((1, 1), a=torch.zeros(2))
    single.a = torch.zeros(7)  # replacing the only field may change the length
    assert len(single) == 7


def test_get_fields_is_the_live_dict_as_in_detectron2():
    inst = make()
    fields = inst.get_fields()
    assert fields is inst.get_fields()
    del fields["names"]
    assert not inst.has("names")
    fields["other"] = torch.zeros(4)
    assert inst.other is fields["other"]


@pytest.mark.parametrize(
    "item, expected",
    [
        (1, [1]),
        (-1, [3]),
        (slice(1, 3), [1, 2]),
        (torch.tensor([True, False, True, False]), [0, 2]),
        (torch.tensor([3, 0]), [3, 0]),
        (torch.tensor(2), [2]),
    ],
)
def test_indexing_all_fields(item, expected):
    inst = make()
    sub = inst[item]
    assert isinstance(sub, Instances) and len(sub) == len(expected)
    assert sub.pred_classes.tolist() == expected
    assert isinstance(sub.pred_boxes, Boxes)
    assert torch.equal(sub.pred_boxes.tensor, inst.pred_boxes.tensor[expected])
    assert sub.image_size == inst.image_size


def test_indexing_list_field_with_slice_and_int():
    inst = make()
    assert inst[1].names == ["obj1"]
    assert inst[1:3].names == ["obj1", "obj2"]


def test_index_out_of_range_and_not_iterable():
    inst = make()
    with pytest.raises(IndexError):
        inst[4]
    with pytest.raises(IndexError):
        inst[-5]
    with pytest.raises(TypeError, match="not iterable"):
        iter(inst)


def test_empty_instances():
    inst = make(0)
    assert len(inst) == 0
    assert len(inst[torch.zeros(0, dtype=torch.bool)]) == 0
    with pytest.raises(NotImplementedError):
        len(Instances((1, 1)))


def test_cat():
    a, b = make(2), make(3)
    c = Instances.cat([a, b])
    assert len(c) == 5
    assert c.pred_classes.tolist() == [0, 1, 0, 1, 2]
    assert c.names == ["obj0", "obj1", "obj0", "obj1", "obj2"]
    assert isinstance(c.pred_boxes, Boxes) and len(c.pred_boxes) == 5
    assert Instances.cat([a]) is a  # as detectron2: one Instances is returned itself
    with pytest.raises(ValueError, match="image_size"):
        Instances.cat([a, Instances((1, 1), **a.get_fields())])
    b.remove("names")
    with pytest.raises(ValueError, match="names"):
        Instances.cat([a, b])
    with pytest.raises(ValueError, match="non-empty"):
        Instances.cat([])
    with pytest.raises(TypeError, match=r"instance_lists\[1\]"):
        Instances.cat([a, "b"])


def test_cat_unsupported_field_type():
    class Opaque:
        def __len__(self):
            return 1

    a = Instances((1, 1), thing=Opaque())
    with pytest.raises(TypeError, match="'thing'"):
        Instances.cat([a, a])


def test_to_moves_fields_and_keeps_others():
    inst = make()
    moved = inst.to("meta")
    assert moved.scores.device.type == "meta"
    assert moved.pred_boxes.device.type == "meta"
    assert moved.names == inst.names
    assert inst.scores.device.type == "cpu"


def test_repr_is_short_and_readable():
    text = repr(make())
    assert text == (
        "Instances(num_instances=4, image_height=480, image_width=640, fields=[pred_boxes: Boxes[4, 4], "
        "scores: Tensor[4] float32, pred_classes: Tensor[4] int64, names: list[4]])"
    )
    assert str(Instances((1, 2))) == "Instances(num_instances=0, image_height=1, image_width=2, fields=[])"


def test_pickle_and_deepcopy():
    inst = make()
    for clone in (pickle.loads(pickle.dumps(inst)), copy.deepcopy(inst)):
        assert clone.get_fields().keys() == inst.get_fields().keys()
        assert torch.equal(clone.scores, inst.scores)
        assert clone.image_size == inst.image_size
