"""The reference classifier is trained once per data set and settings, then read from the cache."""

import pytest
import torch

from flowmatch.data import get_dataset
from flowmatch.evaluation import classifier as reference


def test_reference_classifier_is_trained_once_and_loaded_from_the_cache(tmp_path, monkeypatch):
    quick = {"epochs": 0.1, "width": 2, "feature_dim": 4}
    monkeypatch.setitem(reference.CLASSIFIER_SETTINGS, "digits-images", quick)
    ds = get_dataset("digits-images")
    first = reference.reference_classifier(ds, cache=tmp_path)
    (path,) = tmp_path.glob("classifier-digits-images-*.safetensors")

    def refuse(*args, **kwargs):
        raise AssertionError("the cached classifier was retrained")

    monkeypatch.setattr(reference, "fit_classifier", refuse)
    again = reference.reference_classifier(ds, cache=tmp_path)  # loaded, not trained
    for key, value in first.state_dict().items():
        assert torch.equal(value, again.state_dict()[key]), key
    # other training settings are another classifier: a new cache key, so it is trained
    monkeypatch.setitem(reference.CLASSIFIER_SETTINGS, "digits-images", {**quick, "epochs": 0.2})
    with pytest.raises(AssertionError, match="retrained"):
        reference.reference_classifier(ds, cache=tmp_path)
    assert [p.name for p in tmp_path.glob("*.safetensors")] == [path.name]
