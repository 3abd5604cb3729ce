"""Seeded initialisation, .npz save/load, torchvision state-dict import, error messages."""
import importlib.util
from math import sqrt
import re
import sys

import numpy as np
from process_helpers import repo_env, REPO_ROOT, run
import pytest
from s3dnn_ros.model import (alexnet, init_weights, load_torch_state_dict, load_weights,
                             save_weights, WeightsError)
from s3dnn_ros.model.alexnet import Network
from s3dnn_ros.model.layers import Conv2d, Flatten, Linear
from s3dnn_ros.model.weights import check_weights
from s3dnn_ros.tools import convert_weights

TORCH_AVAILABLE = importlib.util.find_spec('torch') is not None
needs_torch = pytest.mark.skipif(not TORCH_AVAILABLE,
                                 reason='torch is not installed (the optional "torch" extra)')


def tiny_network() -> Network:
    """
    Return a conv + linear chain with the same parameter naming scheme as AlexNet.

    It is small enough to init often.
    """
    layers = (Conv2d('conv', (2, 5, 5), (3, 3, 3), kernel=3),
              Flatten('flatten', (3, 3, 3), (27,)),
              Linear('fc', (27,), (4,)))
    return Network('tiny', layers, {'conv': 'features.0', 'fc': 'classifier.1'})


@pytest.fixture(scope='module')
def network():
    return alexnet()


@pytest.fixture(scope='module')
def seeded_weights(network):
    return init_weights(network, seed=0)


@pytest.fixture
def weights(seeded_weights):
    """
    Return a fresh dict over the shared seeded arrays.

    For tests that add, drop or replace entries.
    """
    return dict(seeded_weights)


# ---- init_weights -------------------------------------------------------------------------------

def test_init_is_deterministic_per_seed():
    first, second = init_weights(tiny_network(), seed=7), init_weights(tiny_network(), seed=7)
    assert list(first) == list(second)
    for name in first:
        assert np.array_equal(first[name], second[name]), name


def test_init_differs_across_seeds():
    first, second = init_weights(tiny_network(), seed=0), init_weights(tiny_network(), seed=1)
    for name in first:
        assert not np.array_equal(first[name], second[name]), name


def test_init_gives_every_parameter_as_float32_in_state_dict_order(network, seeded_weights):
    assert list(seeded_weights) == list(network.param_shapes())
    for name, shape in network.param_shapes().items():
        assert seeded_weights[name].dtype == np.float32, name
        assert seeded_weights[name].shape == shape, name


def test_init_weights_stay_within_one_over_sqrt_fan_in(network, seeded_weights):
    for name, shape in network.param_shapes().items():
        if name.endswith('.weight'):
            bound = 1 / sqrt(np.prod(shape[1:]))
            values = np.abs(seeded_weights[name])
            assert values.max() <= bound, name
            assert values.max() > 0.9 * bound, name


def test_init_biases_use_the_fan_in_of_their_weight(network, seeded_weights):
    shapes = network.param_shapes()
    for name in shapes:
        if name.endswith('.bias'):
            weight_shape = shapes[name.replace('.bias', '.weight')]
            bound = 1 / sqrt(np.prod(weight_shape[1:]))
            values = np.abs(seeded_weights[name])
            assert values.max() <= bound, name
            assert values.max() > 0.5 * bound, name


# ---- save / load --------------------------------------------------------------------------------

def test_save_load_round_trip_is_exact(tmp_path, network, seeded_weights):
    path = tmp_path / 'alexnet.npz'
    save_weights(path, seeded_weights)
    loaded = load_weights(path, network)
    assert list(loaded) == list(seeded_weights)
    for name, array in seeded_weights.items():
        assert loaded[name].dtype == np.float32, name
        assert np.array_equal(loaded[name], array), name


def test_load_accepts_a_string_path(tmp_path):
    network = tiny_network()
    path = tmp_path / 'tiny.npz'
    save_weights(path, init_weights(network, seed=3))
    loaded = load_weights(str(path), network)
    assert np.array_equal(loaded['classifier.1.bias'],
                          init_weights(network, seed=3)['classifier.1.bias'])


def test_check_converts_float64_and_non_contiguous_arrays_to_contiguous_float32():
    network = tiny_network()
    weights = {name: np.asfortranarray(array.astype(np.float64))
               for name, array in init_weights(network).items()}
    checked = check_weights(network, weights, 'test')
    for name, array in checked.items():
        assert array.dtype == np.float32, name
        assert array.flags['C_CONTIGUOUS'], name
        assert np.allclose(array, weights[name]), name


# ---- error messages -----------------------------------------------------------------------------

def test_missing_tensor_names_it_and_its_expected_shape(network, weights):
    del weights['classifier.6.bias']
    with pytest.raises(WeightsError) as error:
        check_weights(network, weights, 'source.npz')
    assert str(error.value) == \
        "source.npz: missing tensor 'classifier.6.bias' (expected shape (1000,))"


def test_several_missing_tensors_name_the_first_and_count_the_rest(network, weights):
    for name in ('features.0.weight', 'features.0.bias', 'classifier.6.bias'):
        del weights[name]
    with pytest.raises(WeightsError) as error:
        check_weights(network, weights, 'source.npz')
    assert str(error.value) == ("source.npz: missing tensor 'features.0.weight' (expected shape "
                                '(64, 3, 11, 11)) and 2 more')


def test_unexpected_tensor_is_named_with_its_shape(network, weights):
    weights['features.1.weight'] = np.zeros((3, 2), np.float32)
    with pytest.raises(WeightsError) as error:
        check_weights(network, weights, 'source.npz')
    message = str(error.value)
    assert message.startswith("source.npz: unexpected tensor 'features.1.weight' (shape (3, 2))")
    assert "alexnet has only 16 tensors named like 'features.0.weight'" in message


def test_wrong_shape_names_tensor_found_and_expected_shape(network, weights):
    weights['features.3.weight'] = np.zeros((64, 192, 5, 5), np.float32)
    with pytest.raises(WeightsError) as error:
        check_weights(network, weights, 'source.npz')
    assert str(error.value) == ("source.npz: tensor 'features.3.weight' has shape "
                                '(64, 192, 5, 5), expected (192, 64, 5, 5)')


def test_integer_tensor_is_rejected_naming_its_dtype(network, weights):
    weights['features.0.bias'] = np.zeros(64, np.int32)
    with pytest.raises(WeightsError) as error:
        check_weights(network, weights, 'source.npz')
    assert str(error.value) == \
        "source.npz: tensor 'features.0.bias' has dtype int32, expected a float type"


@pytest.mark.parametrize('bad_value', [np.nan, np.inf, -np.inf])
def test_non_finite_values_are_rejected(network, weights, bad_value):
    bias = weights['features.0.bias'].copy()
    bias[5] = bad_value
    weights['features.0.bias'] = bias
    with pytest.raises(WeightsError) as error:
        check_weights(network, weights, 'source.npz')
    assert str(error.value) == "source.npz: tensor 'features.0.bias' holds NaN or infinite values"


def test_load_of_a_missing_file_names_the_path(tmp_path, network):
    path = tmp_path / 'absent.npz'
    with pytest.raises(WeightsError,
                       match=rf"^weights file '{re.escape(str(path))}' does not exist"):
        load_weights(path, network)


def test_load_of_a_file_that_is_not_an_npz_names_the_path(tmp_path, network):
    path = tmp_path / 'garbage.npz'
    path.write_bytes(b'these bytes are not a zip archive\x00\x01\x02' * 4)
    with pytest.raises(
            WeightsError,
            match=rf"^weights file '{re.escape(str(path))}' is not a .npz \(zip\) archive"):
        load_weights(path, network)


def test_load_of_a_text_file_says_it_is_not_an_npz_without_numpys_pickle_advice(tmp_path, network):
    path = tmp_path / 'notes.txt'
    path.write_text('features.0.weight: 1 2 3\n')
    with pytest.raises(WeightsError) as error:
        load_weights(path, network)
    assert 'is not a .npz (zip) archive' in str(error.value) and 'pickle' not in str(error.value)


def test_load_of_an_empty_file_raises_weights_error(tmp_path, network):
    path = tmp_path / 'empty.npz'
    path.write_bytes(b'')
    with pytest.raises(WeightsError, match='is empty'):
        load_weights(path, network)


def test_load_of_a_single_array_npy_file_raises_weights_error(tmp_path, network):
    path = tmp_path / 'array.npz'
    with open(path, 'wb') as file:
        np.save(file, np.zeros(3, np.float32))
    with pytest.raises(WeightsError, match='is a single .npy array, not named tensors'):
        load_weights(path, network)


def test_load_of_a_directory_says_it_is_a_directory(tmp_path, network):
    with pytest.raises(WeightsError,
                       match=rf"^weights file '{re.escape(str(tmp_path))}' is a directory"):
        load_weights(tmp_path, network)


@pytest.mark.parametrize('damage', ['half copied', 'overwritten'])
def test_load_of_a_damaged_archive_is_a_weights_error_naming_the_file(tmp_path, network,
                                                                      seeded_weights, damage):
    good = tmp_path / 'good.npz'
    save_weights(good, seeded_weights)
    data = good.read_bytes()
    bad = tmp_path / 'bad.npz'
    bad.write_bytes(data[:len(data) // 2] if damage == 'half copied'
                    else data[:1000] + bytes(1000) + data[2000:])
    with pytest.raises(WeightsError,
                       match=rf"^weights file '{re.escape(str(bad))}' is a damaged .npz archive"):
        load_weights(bad, network)


def test_load_of_an_incomplete_archive_names_the_file_and_the_missing_tensor(tmp_path, network):
    path = tmp_path / 'partial.npz'
    save_weights(path, {'features.0.weight': np.zeros((64, 3, 11, 11), np.float32)})
    with pytest.raises(WeightsError) as error:
        load_weights(path, network)
    assert str(error.value) == \
        f"{path}: missing tensor 'features.0.bias' (expected shape (64,)) and 14 more"


# ---- torch state dicts --------------------------------------------------------------------------

def test_torch_import_without_torch_says_how_to_install_it(tmp_path, monkeypatch, network):
    monkeypatch.setitem(sys.modules, 'torch', None)
    with pytest.raises(WeightsError, match='pip install'):
        load_torch_state_dict(tmp_path / 'alexnet.pth', network)


def test_convert_cli_without_torch_exits_2_saying_how_to_install_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, 'torch', None)
    target = tmp_path / 'out.npz'
    assert convert_weights.main([str(tmp_path / 'alexnet.pth'), str(target)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ''
    assert captured.err.startswith('s3dnn-convert-weights: error: ')
    assert 'pip install' in captured.err
    assert captured.err.count('\n') == 1
    assert not target.exists()


def test_convert_cli_missing_input_exits_2_with_one_error_line(tmp_path):
    target = tmp_path / 'out.npz'
    env = repo_env()
    result = run([sys.executable, '-m', 's3dnn_ros.tools.convert_weights',
                  str(tmp_path / 'absent.pth'), str(target)], timeout=60, cwd=REPO_ROOT, env=env)
    assert result.returncode == 2
    assert result.stdout == ''
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith('s3dnn-convert-weights: error: ')
    assert not target.exists()


def test_convert_cli_without_arguments_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        convert_weights.main([])
    assert exit_info.value.code == 2
    error_lines = capsys.readouterr().err.splitlines()
    assert error_lines[-1].startswith('s3dnn-convert-weights: error: ')
    assert 'IN.pth' in error_lines[-1]


@needs_torch
def test_torch_state_dict_round_trip_is_exact(tmp_path, network, seeded_weights):
    import torch
    path = tmp_path / 'alexnet.pth'
    torch.save({name: torch.from_numpy(array) for name, array in seeded_weights.items()}, path)
    loaded = load_torch_state_dict(path, network)
    assert list(loaded) == list(seeded_weights)
    for name, array in seeded_weights.items():
        assert loaded[name].dtype == np.float32, name
        assert np.array_equal(loaded[name], array), name


@needs_torch
def test_torch_state_dict_with_a_non_tensor_entry_names_it(tmp_path, network, seeded_weights):
    import torch
    state = {name: torch.from_numpy(array) for name, array in seeded_weights.items()}
    state['features.0.bias'] = [0.0] * 64
    path = tmp_path / 'alexnet.pth'
    torch.save(state, path)
    with pytest.raises(WeightsError,
                       match=r"entry 'features.0.bias' is a list, expected a tensor"):
        load_torch_state_dict(path, network)


@needs_torch
def test_torch_file_holding_no_dict_is_rejected(tmp_path, network):
    import torch
    path = tmp_path / 'list.pth'
    torch.save([torch.zeros(3)], path)
    with pytest.raises(WeightsError, match='holds a list, expected a state dict'):
        load_torch_state_dict(path, network)


@needs_torch
def test_torch_missing_and_unreadable_files_name_the_path(tmp_path, network):
    missing = tmp_path / 'absent.pth'
    with pytest.raises(WeightsError,
                       match=rf"^state dict file '{re.escape(str(missing))}' does not exist"):
        load_torch_state_dict(missing, network)
    garbage = tmp_path / 'garbage.pth'
    garbage.write_bytes(b'not a torch file' * 8)
    with pytest.raises(WeightsError,
                       match=rf"^'{re.escape(str(garbage))}' is not a readable torch state dict"):
        load_torch_state_dict(garbage, network)


@needs_torch
def test_torch_state_dict_is_checked_against_the_network(tmp_path, network):
    import torch
    path = tmp_path / 'partial.pth'
    torch.save({'features.0.weight': torch.zeros(64, 3, 11, 11)}, path)
    with pytest.raises(WeightsError,
                       match=r"missing tensor 'features.0.bias' "
                             r'\(expected shape \(64,\)\) and 14 more'):
        load_torch_state_dict(path, network)


@needs_torch
def test_convert_cli_writes_an_npz_that_loads_back(tmp_path, capsys, network, seeded_weights):
    import torch
    source, target = tmp_path / 'alexnet.pth', tmp_path / 'alexnet.npz'
    torch.save({name: torch.from_numpy(array) for name, array in seeded_weights.items()}, source)
    assert convert_weights.main([str(source), str(target)]) == 0
    assert capsys.readouterr().out == f'wrote 16 tensors (61,100,840 parameters) to {target}\n'
    loaded = load_weights(target, network)
    for name, array in seeded_weights.items():
        assert np.array_equal(loaded[name], array), name


@needs_torch
def test_convert_cli_missing_input_names_the_file(tmp_path, capsys):
    missing = tmp_path / 'absent.pth'
    assert convert_weights.main([str(missing), str(tmp_path / 'out.npz')]) == 2
    assert capsys.readouterr().err == ('s3dnn-convert-weights: error: '
                                       f"state dict file '{missing}' does not exist\n")
