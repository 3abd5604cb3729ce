"""
Estimated and loaded cost tables.

Shape of the estimates, interpolation, JSON round trip and errors.
"""
import copy
import json
from pathlib import Path

import pytest
from s3dnn_ros.engine.costs import CostTable, CostTableError, estimate, GPUS, HostCosts, MAX_BATCH
from s3dnn_ros.model import alexnet

NETWORK = alexnet()
KERNEL_NAMES = [layer.name for layer in NETWORK.kernel_layers]
LAYER_INDEX = {name: index for index, name in enumerate(KERNEL_NAMES)}
GPU_NAMES = ['h100', 't4']


@pytest.fixture(scope='module', params=GPU_NAMES)
def estimated(request):
    return estimate(NETWORK, request.param)


@pytest.fixture(scope='module')
def estimates():
    return {gpu: estimate(NETWORK, gpu) for gpu in GPU_NAMES}


def two_point_table(low=(10.0, 0.2), high=(25.0, 0.8)) -> CostTable:
    """
    Return a table of every kernel layer measured at batches 1 and 4 only.

    Every layer has the same (cost_us, tb_ratio) points.
    """
    return CostTable(NETWORK, {name: {1: low, 4: high} for name in KERNEL_NAMES}, 'test gpu',
                     'test')


def valid_table_json() -> dict:
    return {'gpu': 'test gpu', 'source': 'measured', 'date': '2026-01-01',
            'layers': {name: {'1': {'cost_us': 10.0, 'tb_ratio': 0.2},
                              '4': {'cost_us': 25.0, 'tb_ratio': 0.8}} for name in KERNEL_NAMES}}


# ---- estimate -----------------------------------------------------------------------------------

def test_estimate_covers_every_kernel_layer_at_every_batch(estimated):
    assert list(estimated.entries) == KERNEL_NAMES
    for name, points in estimated.entries.items():
        assert sorted(points) == list(range(1, MAX_BATCH + 1)), name


def test_estimated_costs_and_tb_ratios_are_positive(estimated):
    for index, name in enumerate(KERNEL_NAMES):
        for batch in range(1, MAX_BATCH + 1):
            assert estimated.cost_ns(index, batch) > 0, (name, batch)
            assert estimated.tb_ratio(index, batch) > 0, (name, batch)


def test_estimate_records_gpu_name_and_source(estimates):
    assert estimates['h100'].gpu == GPUS['h100'].name
    assert estimates['t4'].gpu == GPUS['t4'].name
    assert estimates['h100'].source == 'estimated'


def test_t4_is_slower_than_h100_per_frame(estimates):
    assert estimates['t4'].frame_cost_ns > estimates['h100'].frame_cost_ns


@pytest.mark.parametrize('gpu, layer', [(gpu, name) for gpu in GPU_NAMES for name in KERNEL_NAMES])
def test_estimated_cost_never_decreases_with_batch(estimates, gpu, layer):
    table, index = estimates[gpu], LAYER_INDEX[layer]
    costs = [table.cost_ns(index, batch) for batch in range(1, MAX_BATCH + 1)]
    drops = [(batch, costs[batch - 1], costs[batch]) for batch in range(1, MAX_BATCH)
             if costs[batch] < costs[batch - 1]]
    assert drops == []


def test_tb_ratio_grows_with_batch_for_conv_and_pool_layers(estimated):
    for index, layer in enumerate(NETWORK.kernel_layers):
        if layer.kind in ('conv', 'maxpool', 'avgpool'):
            ratios = [estimated.tb_ratio(index, batch) for batch in range(1, MAX_BATCH + 1)]
            assert all(a < b for a, b in zip(ratios, ratios[1:])), layer.name


def test_fused_linear_launch_is_cheaper_than_one_launch_per_frame(estimated):
    for index, layer in enumerate(NETWORK.kernel_layers):
        if layer.kind == 'linear':
            single = estimated.cost_ns(index, 1)
            for batch in range(2, MAX_BATCH + 1):
                assert estimated.cost_ns(index, batch) < batch * single, (layer.name, batch)


def test_remaining_is_the_suffix_sum_of_batch_one_costs(estimated):
    count = len(KERNEL_NAMES)
    assert len(estimated.remaining_ns) == count + 1
    assert estimated.remaining_ns[-1] == 0
    for index in range(count):
        assert estimated.remaining_ns[index] == sum(estimated.cost_ns(j, 1)
                                                    for j in range(index, count))
    assert estimated.frame_cost_ns == estimated.remaining_ns[0]


def test_estimate_of_an_unknown_gpu_names_the_allowed_ones():
    with pytest.raises(CostTableError, match=r"^gpu='a100': allowed h100, t4$"):
        estimate(NETWORK, 'a100')


def test_estimate_accepts_a_gpu_spec(estimates):
    table = estimate(NETWORK, GPUS['t4'], batches=[1, 2])
    assert table.cost_ns(0, 1) == estimates['t4'].cost_ns(0, 1)
    assert table.cost_ns(3, 2) == estimates['t4'].cost_ns(3, 2)


# ---- JSON round trip ----------------------------------------------------------------------------

def test_json_save_load_round_trip_keeps_the_table(tmp_path, estimated):
    path = tmp_path / 'costs.json'
    estimated.save(path)
    loaded = CostTable.load(path, NETWORK)
    assert loaded.to_json() == estimated.to_json()
    assert (loaded.gpu, loaded.source, loaded.date) == (estimated.gpu, estimated.source,
                                                        estimated.date)
    for index in range(len(KERNEL_NAMES)):
        for batch in (1, 2, 17, MAX_BATCH):
            assert abs(loaded.cost_ns(index, batch) - estimated.cost_ns(index, batch)) <= 1
            assert loaded.tb_ratio(index, batch) == \
                pytest.approx(estimated.tb_ratio(index, batch), abs=1e-5)


def test_a_loaded_table_saves_back_to_the_same_entries(tmp_path, estimated):
    first, second = tmp_path / 'first.json', tmp_path / 'second.json'
    estimated.save(first)
    loaded = CostTable.load(first, NETWORK)
    loaded.save(second)
    assert CostTable.load(second, NETWORK).entries == loaded.entries
    assert json.loads(second.read_text()) == json.loads(first.read_text())


def test_a_saved_table_records_its_network(estimated):
    assert estimated.to_json()['network'] == NETWORK.signature()


def test_a_table_loads_for_a_network_that_differs_only_in_top_k_and_camera_shape(estimated):
    other = alexnet(top_k=2, camera_shape=(240, 320, 3))
    assert CostTable.from_json(estimated.to_json(), other).to_json() == estimated.to_json()


def test_a_table_for_another_network_name_is_refused(estimated):
    data = estimated.to_json()
    data['network']['name'] = 'resnet18'
    with pytest.raises(CostTableError) as error:
        CostTable.from_json(data, NETWORK, 'costs.json')
    assert str(error.value) == ("costs.json: network.name='resnet18': the table is for another "
                                "network; allowed 'alexnet'")


def test_a_table_for_other_layer_shapes_is_refused_naming_the_layer():
    ten_classes = estimate(alexnet(num_classes=10), 'h100', batches=[1, 4])
    with pytest.raises(CostTableError) as error:
        CostTable.from_json(ten_classes.to_json(), NETWORK, 'costs.json')
    assert str(error.value) == ("costs.json: network.layers.fc8='linear 4096 -> 10': the table "
                                "is for another layer; allowed 'linear 4096 -> 1000'")


def test_a_recorded_network_with_an_extra_layer_is_refused(estimated):
    data = estimated.to_json()
    data['network']['layers']['conv6'] = 'conv 3x3/1 pad 1 256x13x13 -> 256x13x13'
    with pytest.raises(CostTableError) as error:
        CostTable.from_json(data, NETWORK, 'costs.json')
    assert str(error.value).startswith(
        'costs.json: network.layers.conv6: unknown layer; allowed: ')


@pytest.mark.parametrize('recorded', ['alexnet', {'name': 'alexnet'}, {'layers': []}])
def test_a_malformed_network_object_is_refused(estimated, recorded):
    data = estimated.to_json()
    data['network'] = recorded
    with pytest.raises(CostTableError) as error:
        CostTable.from_json(data, NETWORK, 'costs.json')
    assert str(error.value) == \
        'costs.json: network: expected {"name": ..., "layers": {layer name: signature}}'


def test_a_table_written_before_tables_recorded_their_network_loads_by_layer_names():
    path = Path(__file__).resolve().parents[1] / 'bench' / 'results' / 'costs-nvidia-h200.json'
    data = json.loads(path.read_text())
    assert 'network' not in data
    table = CostTable.load(path, NETWORK)
    assert list(table.entries) == KERNEL_NAMES
    assert table.to_json()['network'] == NETWORK.signature()


# ---- interpolation and extrapolation ------------------------------------------------------------

def test_batches_between_measured_sizes_are_interpolated_linearly():
    table = two_point_table()
    for index in range(len(KERNEL_NAMES)):
        assert table.cost_ns(index, 1) == 10_000
        assert table.cost_ns(index, 2) == 15_000
        assert table.cost_ns(index, 3) == 20_000
        assert table.cost_ns(index, 4) == 25_000
        assert table.tb_ratio(index, 2) == pytest.approx(0.4)
        assert table.tb_ratio(index, 3) == pytest.approx(0.6)


def test_batches_beyond_the_largest_are_whole_copies_plus_remainder():
    table = two_point_table()
    assert table.cost_ns(0, 8) == 50_000
    assert table.cost_ns(0, 9) == 60_000
    assert table.cost_ns(0, 10) == 65_000
    assert table.tb_ratio(0, 9) == pytest.approx(1.8)
    assert table.cost_ns(0, MAX_BATCH) == 16 * 25_000
    assert table.cost_ns(0, 101) == 25 * 25_000 + 10_000
    assert table.tb_ratio(0, 101) == pytest.approx(25 * 0.8 + 0.2)


def test_batches_below_the_smallest_scale_down_proportionally():
    table = CostTable(NETWORK, {name: {4: (20.0, 0.8)} for name in KERNEL_NAMES}, 'test gpu',
                      'test')
    assert table.cost_ns(0, 1) == 5_000
    assert table.cost_ns(0, 2) == 10_000
    assert table.tb_ratio(0, 1) == pytest.approx(0.2)
    assert table.cost_ns(0, 7) == 20_000 + 15_000
    assert table.remaining_ns[0] == len(KERNEL_NAMES) * 5_000


def test_loaded_table_interpolates_like_the_constructed_one():
    loaded = CostTable.from_json(valid_table_json(), NETWORK)
    constructed = two_point_table()
    for batch in range(1, MAX_BATCH + 1):
        assert loaded.cost_ns(5, batch) == constructed.cost_ns(5, batch)
    assert (loaded.gpu, loaded.source, loaded.date) == ('test gpu', 'measured', '2026-01-01')


# ---- CostTableError -----------------------------------------------------------------------------

def test_load_of_a_missing_file_names_it(tmp_path):
    path = tmp_path / 'absent.json'
    with pytest.raises(CostTableError) as error:
        CostTable.load(path, NETWORK)
    assert str(error.value) == f'cost table {str(path)!r} does not exist'


def test_load_of_bad_json_names_the_file(tmp_path):
    path = tmp_path / 'bad.json'
    path.write_text('{"layers": {"conv1": ')
    with pytest.raises(CostTableError) as error:
        CostTable.load(path, NETWORK)
    assert str(error.value).startswith(f'cost table {str(path)!r} is not readable JSON: ')


def test_load_of_a_file_that_is_not_utf8_names_the_file(tmp_path):
    path = tmp_path / 'binary.json'
    path.write_bytes(b'\x00\xff\xfe not text')
    with pytest.raises(CostTableError, match='is not readable JSON'):
        CostTable.load(path, NETWORK)


@pytest.mark.parametrize('data', [{}, {'gpu': 'x'}, {'layers': []}, [], 'layers'])
def test_json_without_a_layers_object_is_rejected(data):
    with pytest.raises(CostTableError) as error:
        CostTable.from_json(data, NETWORK, 'costs.json')
    assert str(error.value) == 'costs.json: expected an object with a "layers" object'


def test_unknown_layer_is_named_and_the_allowed_ones_listed():
    data = valid_table_json()
    data['layers']['conv6'] = data['layers']['conv5']
    with pytest.raises(CostTableError) as error:
        CostTable.from_json(data, NETWORK, 'costs.json')
    message = str(error.value)
    assert message.startswith('costs.json: layers.conv6: unknown layer; allowed: ')
    assert message.split('allowed: ')[1].split(', ') == sorted(KERNEL_NAMES)


def test_layer_missing_from_the_table_is_named():
    data = valid_table_json()
    del data['layers']['fc7']
    with pytest.raises(CostTableError) as error:
        CostTable.from_json(data, NETWORK, 'costs.json')
    assert "no entry for layer 'fc7'" in str(error.value)
    assert ', '.join(KERNEL_NAMES) in str(error.value)


@pytest.mark.parametrize('points', [{}, [], 'fast'])
def test_layer_without_batch_entries_is_rejected(points):
    data = valid_table_json()
    data['layers']['conv2'] = points
    with pytest.raises(CostTableError) as error:
        CostTable.from_json(data, NETWORK, 'costs.json')
    assert str(error.value) == \
        'costs.json: layers.conv2: expected an object of batch size -> entry'


@pytest.mark.parametrize('batch', ['x', '1.5', '-2', '0', '4097', ''])
def test_batch_size_must_be_an_integer_in_range(batch):
    data = valid_table_json()
    data['layers']['pool1'][batch] = {'cost_us': 1.0, 'tb_ratio': 0.1}
    with pytest.raises(CostTableError) as error:
        CostTable.from_json(data, NETWORK, 'costs.json')
    assert str(error.value) == \
        f'costs.json: layers.pool1.{batch}: batch size must be an integer 1..4096'


def test_batch_entry_must_be_an_object():
    data = valid_table_json()
    data['layers']['fc6']['4'] = [25.0, 0.8]
    with pytest.raises(CostTableError) as error:
        CostTable.from_json(data, NETWORK, 'costs.json')
    assert str(error.value) == \
        'costs.json: layers.fc6.4: expected {"cost_us": ..., "tb_ratio": ...}'


@pytest.mark.parametrize('field', ['cost_us', 'tb_ratio'])
@pytest.mark.parametrize('value', [0, -1.5, True, float('nan'), float('inf'), '3', None])
def test_cost_and_tb_ratio_must_be_positive_finite_numbers(field, value):
    data = valid_table_json()
    if value is None:
        del data['layers']['conv1']['4'][field]
    else:
        data['layers']['conv1']['4'][field] = value
    with pytest.raises(CostTableError) as error:
        CostTable.from_json(data, NETWORK, 'costs.json')
    assert str(error.value) == \
        f'costs.json: layers.conv1.4.{field}={value!r}: must be a positive number'


def test_nan_cost_in_a_file_names_the_key_path(tmp_path):
    path = tmp_path / 'nan.json'
    path.write_text(json.dumps(valid_table_json()).replace('"cost_us": 25.0', '"cost_us": NaN', 1))
    with pytest.raises(CostTableError) as error:
        CostTable.load(path, NETWORK)
    assert str(error.value) == \
        f'{path}: layers.preprocess.4.cost_us=nan: must be a positive number'


@pytest.mark.parametrize('batch, cost', [('²', 1.0), ('2', 10 ** 400)],
                         ids=['superscript-batch', 'huge-integer-cost'])
def test_unparseable_numbers_raise_cost_table_error(batch, cost):
    data = valid_table_json()
    data['layers']['conv1'][batch] = {'cost_us': cost, 'tb_ratio': 0.1}
    with pytest.raises(CostTableError, match=rf'layers\.conv1\.{batch}'):
        CostTable.from_json(data, NETWORK, 'costs.json')


def test_json_cost_table_is_not_mutated_by_loading():
    data = valid_table_json()
    original = copy.deepcopy(data)
    CostTable.from_json(data, NETWORK)
    assert data == original


def copies_table(copies: dict[int, float]) -> dict:
    """Return a JSON table of 300 µs a frame a layer (no fusion gain) with ``copies`` (µs)."""
    data = {'gpu': 'test', 'source': 'measured',
            'layers': {layer.name: {'1': {'cost_us': 300.0, 'tb_ratio': 0.1},
                                    '32': {'cost_us': 9600.0, 'tb_ratio': 3.2}}
                       for layer in alexnet().kernel_layers}}
    data['copies'] = {str(b): {'cost_us': cost} for b, cost in copies.items()}
    return data


def test_copies_are_layer_zeros_share_interpolated_like_the_layers_and_saved_back():
    network = alexnet()
    table = CostTable.from_json(copies_table({1: 20.0, 32: 640.0}), network)
    assert table.copy_ns(1) == 20_000 and table.copy_ns(32) == 640_000
    assert table.copy_ns(16) == 320_000  # linear between 1 and 32
    assert table.copy_ns(64) == 2 * 640_000  # beyond the largest: whole copies
    assert table.copy_ns(70) == 2 * 640_000 + 120_000  # and the remainder of 6 frames
    # layer 0's cost still includes them: the policies see the same table
    assert table.cost_ns(0, 32) == 9_600_000
    assert CostTable.from_json(table.to_json(), network).copies == {1: 20.0, 32: 640.0}
    assert CostTable.from_json(table.to_json(), network).with_host(None).copy_ns(8) \
        == table.copy_ns(8)


def test_a_table_without_copies_has_none_and_keeps_them_in_layer_zero(estimated):
    assert estimated.copies is None
    assert estimated.copy_ns(1) == estimated.copy_ns(32) == estimated.copy_ns(100) == 0
    assert 'copies' not in estimated.to_json()


def test_copies_that_reach_layer_zeros_cost_are_named():
    with pytest.raises(CostTableError, match=r'copies at batch 1 \(300 µs\): must be below the '
                                             r"cost of layer 'preprocess' \(300 µs\)"):
        CostTable.from_json(copies_table({1: 300.0, 32: 640.0}), alexnet())


@pytest.mark.parametrize('copies, message', [
    ([], r'copies: expected an object of batch size -> entry'),
    ({'x': {'cost_us': 1.0}}, r'copies\.x: batch size must be an integer 1\.\.4096'),
    ({'1': 20.0}, r'copies\.1: expected \{"cost_us": \.\.\.\}'),
    ({'1': {'cost_us': -1}}, r'copies\.1\.cost_us=-1: must be a positive number'),
])
def test_malformed_copies_name_the_key_and_what_is_allowed(copies, message):
    data = copies_table({})
    data['copies'] = copies
    with pytest.raises(CostTableError, match=message):
        CostTable.from_json(data, alexnet(), 'costs.json')


def test_host_frame_cost_shares_a_decision_and_a_completion_among_the_layers_a_launch_spans():
    """
    frame_ns(b, L) = frame + upload + L (launch + (completion + decision) / launch_layers) / b.

    A launch of 7 layers is decided and retired once: over 14 layers at batch 2 the frame pays
    14 launches, 2 decisions and 2 completions, halved; launch_layers 1 charges 14 of each.
    """
    spans = HostCosts(frame_us=2.0, upload_us=1.0, decision_us=10.0, launch_us=1.0,
                      completion_us=4.0, launch_layers=7.0)
    assert spans.frame_ns(2, 14) == pytest.approx(1000 * (2 + 1 + (14 * 1 + 2 * 14) / 2))
    per_layer = HostCosts(frame_us=2.0, upload_us=1.0, decision_us=10.0, launch_us=1.0,
                          completion_us=4.0)
    assert per_layer.frame_ns(2, 14) == pytest.approx(1000 * (2 + 1 + 14 * 15 / 2))
    assert HostCosts.from_json(spans.to_json(), 'costs.json') == spans


@pytest.mark.parametrize('value', [0.5, 0])
def test_host_launch_layers_below_one_is_named_with_what_is_allowed(value):
    with pytest.raises(CostTableError, match=rf'costs\.json: host\.launch_layers={value!r}: '
                                             r'must be a number >= 1'):
        HostCosts.from_json({'launch_us': 8.0, 'launch_layers': value}, 'costs.json')
