python3 -m pip install -q --no-index --no-deps --no-compile --target $SITE .whl/*.whl 2>/dev/null; export PYTHONPATH=$SITE:$PWD
{ date -u; nvidia-smi; echo "cores: $(nproc)"; git log -1 --format=%H 2>/dev/null; } > $OUT/card.txt
mkdir -p $OUT/prof
# cold capacity at 640 first (the stall seen once), then the tests
timeout 100 python3 -m s3dnn_ros.tools.bench --sections capacity --cameras 640 --policies s3dnn --seconds 3 --warmup-s 1 --overload 0 --out $OUT/cap-cold > $OUT/cap-cold.txt 2>&1
timeout 200 python3 -m pytest -q -p no:cacheprovider -m gpu test/test_cuda_engine.py test/test_burst_benches.py test/test_cuda_launches.py test/test_launch_calls.py > $OUT/pytest.txt 2>&1
tail -3 $OUT/pytest.txt
for n in 640 64; do
timeout 90 python3 -m cProfile -o $OUT/prof/wp$n.out bench/worker_profile.py --engine cuda --cameras $n --seconds 3 --out $OUT/prof > $OUT/prof/wp$n.txt 2>&1
python3 - $OUT/prof/wp$n.out > $OUT/prof/wp$n-stats.txt <<'PY'
import pstats, sys
s = pstats.Stats(sys.argv[1]); s.sort_stats('tottime').print_stats(45); s.sort_stats('cumulative').print_stats(60)
PY
done
timeout 100 python3 bench/round_timeline.py --frames 16,32,64 --repeats 10 --out $OUT/rt > $OUT/rt.txt 2>&1
rm -f $OUT/prof/*.out
cd $OUT && tar czf $TMPDIR/all.tgz . && mv $TMPDIR/all.tgz $OUT/all.tgz
