# the call-by-call breakdown again, on whichever machine this is: CUDA at 640 twice, the engine's calls alone
python3 -m pip install -q --no-index --no-deps --no-compile --target $SITE .whl/*.whl 2>/dev/null; export PYTHONPATH=$SITE:$PWD
{ date -u; nvidia-smi -L; echo "cores: $(nproc)"; lscpu | grep -E "Model name|MHz"; } > $OUT/card.txt
timeout 150 python3 bench/launch_calls.py --frames 32 --cameras 640 --blocks per-camera --repeats 300 --out $OUT/lc > $OUT/lc.txt 2>&1; tail -5 $OUT/lc.txt
for r in 1 2; do
  timeout 150 python3 bench/worker_profile.py --engine cuda --cameras 640 --seconds 3 --call-times --out $OUT/cuda-$r > $OUT/cuda-$r.txt 2>&1; cut -c1-400 $OUT/cuda-$r.txt | head -9
done
cd $OUT && tar czf $TMPDIR/all.tgz . && mv $TMPDIR/all.tgz $OUT/all.tgz
