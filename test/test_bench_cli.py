"""s3dnn-bench --json: one JSON object with every section (on the CPU with the reference engine)."""
import json

import pytest

from s3dnn_ros.model import alexnet
from s3dnn_ros.tools import bench


def test_json_report_holds_every_section(capsys, tmp_path):
    argv = ['--engine', 'reference', '--batches', '1', '--table1-batches', '2', '--repeats', '1', '--json',
            '--out', str(tmp_path)]
    assert bench.main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report['engine'] == 'reference' and report['card'] == 'cpu' and report['date']
    assert json.loads((tmp_path / 'bench-cpu.json').read_text()) == report
    layer_names = [layer.name for layer in alexnet().kernel_layers]
    rows = report['layers']['rows']
    assert [row['layer'] for row in rows] == layer_names + ['network', 'upload+network']
    for row in rows:
        assert row['batch'] == 1 and row['ours_us'] > 0 and row['floor_us'] > 0
        assert row['bound'] in ('compute', 'memory') and row['torch_us'] is None
    assert {(row['batch'], row['streams']) for row in report['table1']['rows']} == {(2, 1), (2, 4)}
    for row in report['table1']['rows']:
        assert row['sequential_ms'] > 0 and row['streams_ms'] > 0 and row['s3dnn_ms'] > 0
    four = report['four_cameras']
    assert four['s3dnn_round_ms'] >= four['gpu_busy_ms'] > 0
    assert 0 <= four['idle_fraction'] < 1 and 'no GPU baseline' in four['torch']


def test_bad_section_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        bench.main(['--sections', 'everything'])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("s3dnn-bench: error: argument --sections: 'everything' is not known")
