# in-loop per-call host times (worker_profile --call-times): CUDA at 640 twice, timed at 384, and the engine calls alone
python3 -m pip install -q --no-index --no-deps --no-compile --target $SITE .whl/*.whl 2>/dev/null; export PYTHONPATH=$SITE:$PWD
{ date -u; nvidia-smi -L; echo "cores: $(nproc)"; lscpu | grep -E "Model name|MHz"; } > $OUT/card.txt
timeout 60 python3 bench/worker_profile.py --engine timed --cameras 384 --seconds 3 --call-times --out $OUT/timed > $OUT/timed.txt 2>&1; cat $OUT/timed.txt | cut -c1-400
for r in 1 2; do
  timeout 150 python3 bench/worker_profile.py --engine cuda --cameras 640 --seconds 3 --call-times --out $OUT/cuda-$r > $OUT/cuda-$r.txt 2>&1; cut -c1-600 $OUT/cuda-$r.txt
done
timeout 150 python3 bench/launch_calls.py --frames 32 --cameras 640 --blocks per-camera --repeats 300 --out $OUT/lc > $OUT/lc.txt 2>&1; tail -6 $OUT/lc.txt
cd $OUT && tar czf $TMPDIR/all.tgz . && mv $TMPDIR/all.tgz $OUT/all.tgz
