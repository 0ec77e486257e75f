"""The paper's networks have the paper's shapes; dropout is a setting; the WRN reads CIFAR-format data."""

import numpy as np
import pytest
import torch
from test_datasets import write_cifar10

from lib import datasets
from lib.robustness import defenses
from lib.robustness.models import build_model, count_parameters
from lib.profiles import Optimizer, TrainSettings
from lib.robustness.training import accuracy, build_for, train


def conv(c_in: int, c_out: int, k: int = 3) -> int:
    return c_in * c_out * k * k + c_out


def dense(n_in: int, n_out: int) -> int:
    return n_in * n_out + n_out


def test_cnn002_parameter_count_from_its_layer_shapes():
    # 28 -conv3-> 26 -conv3-> 24 -pool-> 12 -conv3-> 10 -conv3-> 8 -pool-> 4: 64 * 4 * 4 = 1024 features
    expected = conv(1, 32) + conv(32, 32) + conv(32, 64) + conv(64, 64) + dense(1024, 200) + dense(200, 200) \
        + dense(200, 10)
    assert expected == 312_202
    assert count_parameters(build_model("cnn002")) == expected


def test_cnn001_parameter_count_from_its_layer_shapes():
    # 28 -conv3-> 26 -conv3-> 24 -pool-> 12: 64 * 12 * 12 = 9216 features
    expected = conv(1, 32) + conv(32, 64) + dense(9216, 128) + dense(128, 10)
    assert expected == 1_199_882
    assert count_parameters(build_model("cnn001")) == expected


def test_the_strided_cnn_has_the_described_layers_and_half_the_multiply_adds_of_small():
    from lib.robustness.defenses import forward_macs

    model = build_model("strided")
    convs = [m for m in model if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.stride, c.padding) for c in convs] == \
        [(1, 16, (4, 4), (2, 2), (1, 1)), (16, 32, (4, 4), (2, 2), (1, 1))]
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in model)
    assert [m.in_features for m in model if isinstance(m, torch.nn.Linear)] == [1568, 100]
    ratio = forward_macs(model, (1, 28, 28)) / forward_macs(build_model("small"), (1, 28, 28))
    assert 0.4 < ratio < 0.6
    assert build_model("strided", in_channels=3, image_size=32)(torch.rand(2, 3, 32, 32)).shape == (2, 10)


def test_wrn_40_10_has_the_published_size():
    # Zagoruyko and Komodakis (2016) report 55.8M parameters for WRN-40-10 on CIFAR-10
    model = build_model("wrn", in_channels=3, image_size=32, depth=40, width=10)
    assert round(count_parameters(model) / 1e6, 1) == 55.8


@pytest.mark.parametrize("name", ["cnn001", "cnn002", "small", "strided", "wrn"])
def test_dropout_is_a_setting_of_every_network(name):
    shape = (3, 32, 32) if name == "wrn" else (1, 28, 28)
    x = torch.rand(4, *shape)
    without = build_model(name, in_channels=shape[0], image_size=shape[1], dropout=0.0, depth=10, width=1).train()
    assert torch.equal(without(x), without(x))  # no dropout: train mode is deterministic
    with_dropout = build_model(name, in_channels=shape[0], image_size=shape[1], dropout=0.5, depth=10, width=1)
    with_dropout.train()
    assert not torch.equal(with_dropout(x), with_dropout(x))


def test_bad_model_names_and_shapes_are_refused():
    with pytest.raises(ValueError, match="valid models: cnn001, cnn002, small, strided, wrn, linear"):
        build_model("resnet")
    with pytest.raises(ValueError, match="28x28"):
        build_model("cnn002", image_size=32)
    with pytest.raises(ValueError, match="6n \\+ 4"):
        build_model("wrn", depth=12)
    with pytest.raises(ValueError, match="dropout"):
        build_model("small", dropout=1.0)


def test_wrn_trains_on_tiny_cifar_format_files(tmp_path, monkeypatch):
    write_cifar10(tmp_path, monkeypatch, n_per_batch=8)  # torchvision's layout, MD5s registered
    train_split = datasets.load("cifar10", "train", root=tmp_path)
    assert len(train_split) == 40 and train_split.images.shape[1:] == (3, 32, 32)
    x, y = train_split.tensors()
    settings = TrainSettings(model="wrn", train_size=None, epochs=2, batch_size=20, optimizer=Optimizer.SGD,
                             lr=0.1, depth=10, width=1, dropout=0.2)
    model = build_for(settings, x, num_classes=10)
    history = train(model, x, y, settings)
    assert len(history.loss) == 2 and all(np.isfinite(history.loss))
    assert model(x[:2]).shape == (2, 10) and not model.training
    assert 0 <= accuracy(model, *datasets.load("cifar10", "test", root=tmp_path).tensors()) <= 1
