"""The reference classifier is trained once per data set and settings, then read from the cache."""

import pytest
import torch
from safetensors.torch import load_file, save_file

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


@pytest.mark.parametrize("damage", ["truncated", "not safetensors", "other shapes"])
def test_a_damaged_cached_classifier_is_retrained_and_replaced(damage, tmp_path, monkeypatch):
    quick = {"epochs": 0.1, "width": 2, "feature_dim": 4}
    monkeypatch.setitem(reference.CLASSIFIER_SETTINGS, "digits-images", quick)
    ds = get_dataset("digits-images")
    reference.reference_classifier(ds, cache=tmp_path)
    (path,) = tmp_path.glob("*.safetensors")
    good = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(good[: len(good) // 2])
    elif damage == "not safetensors":
        path.write_bytes(b"\x00" * 64)
    else:  # the same names, one tensor one row longer
        tensors = load_file(str(path))
        name = next(iter(tensors))
        tensors[name] = torch.zeros(tensors[name].shape[0] + 1, *tensors[name].shape[1:])
        save_file(tensors, str(path))
    with pytest.warns(RuntimeWarning, match="unreadable.*retraining"):
        net = reference.reference_classifier(ds, cache=tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # replaced, no temporary left

    def refuse(*args, **kwargs):
        raise AssertionError("the rebuilt classifier was retrained again")

    monkeypatch.setattr(reference, "fit_classifier", refuse)
    again = reference.reference_classifier(ds, cache=tmp_path)  # the rebuilt one loads
    for key, value in net.state_dict().items():
        assert torch.equal(value, again.state_dict()[key]), key
