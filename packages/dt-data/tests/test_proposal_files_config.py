"""``data.datasets.proposal_files_*``: aligned with the datasets, and what the mapper keeps."""

import pytest

from dt_config import ConfigError, structure
from dt_data.build import build_mapper
from dt_data.config import DataConfig, DatasetsConfig


def test_one_proposal_file_per_dataset_or_none():
    datasets = DatasetsConfig(
        train=("a", "b"), test=("c",), proposal_files_train=("a.pkl", "b.pkl"), proposal_files_test="c.pkl"
    )
    assert datasets.proposal_file("b", is_train=True) == "b.pkl"
    assert datasets.proposal_file("c", is_train=False) == "c.pkl"
    assert datasets.proposal_file("c", is_train=True) is None
    assert DatasetsConfig(train=("a",)).proposal_file("a", is_train=True) is None
    with pytest.raises(
        ConfigError, match=r"\$.datasets.proposal_files_train: expected one proposal file per "
    ):
        structure(DataConfig, {"datasets": {"train": ["a", "b"], "proposal_files_train": ["a.pkl"]}})
    with pytest.raises(ConfigError, match=r"precomputed_proposal_topk_test"):
        structure(DataConfig, {"datasets": {"precomputed_proposal_topk_test": 0}})


def test_mapper_keeps_the_configured_top_proposals_only_with_proposal_files():
    datasets = DatasetsConfig(
        train=("a",), test=("c",), proposal_files_test=("c.pkl",), precomputed_proposal_topk_test=7
    )
    config = DataConfig(datasets=datasets)
    assert build_mapper(config, False).proposal_topk == 7
    assert build_mapper(config, True).proposal_topk is None  # no training proposal files
    assert build_mapper(config, True, precomputed_proposal_topk=3).proposal_topk == 3
