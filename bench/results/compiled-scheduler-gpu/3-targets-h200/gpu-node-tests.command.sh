# on the same machine, right after command.sh (whose GPU tests were stopped by their time limit in test_gpu_node.py)
. .gpuk/setup.sh >/dev/null 2>&1; timeout 220 python3 -m pytest -q -p no:cacheprovider -m gpu test/test_gpu_node.py -v 2>&1 | tail -6
