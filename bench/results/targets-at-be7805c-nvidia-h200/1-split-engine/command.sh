# one call, about 400 s: GPU tests (first on a GPU for the plans/calibration split of ce077ba), completion visibility,
# this day's host changes (.trees/start = 3f3d36d against .trees/now = main, exported with bench/alternate.py --export) on the GPU, a profile at 640
python3 -m pip install -q --no-index --no-deps --no-compile --target $SITE .whl/*.whl 2>/dev/null; export PYTHONPATH=$SITE:$PWD
{ date -u; nvidia-smi; echo "cores: $(nproc)"; for t in start now; do echo "$t $(cat .trees/$t/COMMIT)"; done; } > $OUT/card.txt
timeout 200 python3 -m pytest -q -p no:cacheprovider -m gpu test/test_cuda_engine.py test/test_burst_benches.py test/test_cuda_launches.py test/test_launch_calls.py > $OUT/gpu-tests.txt 2>&1; tail -3 $OUT/gpu-tests.txt
for d in 200 1000; do timeout 60 python3 bench/completion_visibility.py --delay-us $d --out $OUT/vis-$d > $OUT/vis-$d.txt 2>&1; tail -5 $OUT/vis-$d.txt; done
W="python3 bench/worker_profile.py --engine cuda --cameras 640 --seconds 3 --out {out}"
timeout 90 python3 bench/alternate.py --before .trees/start --after .trees/now --rounds 2 --out $OUT/wp -- $W > $OUT/wp.log 2>&1
C="python3 -m s3dnn_ros.tools.bench --sections capacity --cameras 48,192,384,640,704 --policies s3dnn --seconds 3 --warmup-s 1 --overload 0 --out {out}"
timeout 220 python3 bench/alternate.py --before .trees/start --after .trees/now --rounds 1 --out $OUT/cap -- $C > $OUT/cap.log 2>&1
timeout 40 python3 bench/worker_profile.py --engine cuda --cameras 640 --seconds 3 --profile --out $OUT/profile > $OUT/profile-640.txt 2>&1
rm -rf $OUT/*/trees
for f in $OUT/wp/*/worker_profile-*.json $OUT/cap/*/capacity-*.json; do python3 .whl/summarize.py $f 2>&1; done > $OUT/summary.txt 2>&1; cat $OUT/summary.txt | cut -c1-400
cd $OUT && tar czf $TMPDIR/all.tgz . && mv $TMPDIR/all.tgz $OUT/all.tgz
