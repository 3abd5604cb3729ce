python3 -m pip install -q --no-index --no-deps --no-compile --target $SITE .whl/*.whl 2>/dev/null; export PYTHONPATH=$SITE:$PWD
# run from the repository root at 5485978 (the script lay in .whl/ then; the copy here is the same
# measurement with its layout tidied)
timeout 170 python3 bench/results/burst-first-copies-nvidia-h200/6-end-edge/end_edge.py
