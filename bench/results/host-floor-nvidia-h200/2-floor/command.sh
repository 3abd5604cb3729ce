# the floor of the worker's host time a frame on this host: the engine's calls for a 32-frame round, and the scheduler's Python with an engine that costs nothing
python3 -m pip install -q --no-index --no-deps --no-compile --target $SITE .whl/*.whl 2>/dev/null; export PYTHONPATH=$SITE:$PWD
{ date -u; nvidia-smi -L; echo "cores: $(nproc)"; echo "code: $(git rev-parse --short HEAD 2>/dev/null)"; lscpu | grep -E "Model name|Thread|MHz"; } > $OUT/card.txt
for r in 1 2; do
  timeout 150 python3 bench/launch_calls.py --frames 16,32 --cameras 640 --blocks per-camera --repeats 300 --out $OUT/lc-$r > $OUT/lc-$r.txt 2>&1; tail -8 $OUT/lc-$r.txt
  timeout 60 python3 bench/worker_profile.py --engine timed --cameras 384 --seconds 3 --out $OUT/timed-$r > $OUT/timed-$r.txt 2>&1; head -1 $OUT/timed-$r.txt
done
timeout 100 python3 bench/worker_profile.py --engine cuda --cameras 640 --seconds 3 --out $OUT/cuda > $OUT/cuda.txt 2>&1; head -1 $OUT/cuda.txt
cd $OUT && tar czf $TMPDIR/all.tgz . && mv $TMPDIR/all.tgz $OUT/all.tgz
