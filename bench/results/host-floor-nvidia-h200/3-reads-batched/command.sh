# the floor with reads batched: the scheduler's Python (timed engine, 384 cameras) and the loop with the CUDA engine (640), frames handed over every turn, or at most every 250 / 1000 µs
python3 -m pip install -q --no-index --no-deps --no-compile --target $SITE .whl/*.whl 2>/dev/null; export PYTHONPATH=$SITE:$PWD
{ date -u; nvidia-smi -L; echo "cores: $(nproc)"; echo "code: $(git rev-parse --short HEAD 2>/dev/null)"; lscpu | grep -E "Model name|Thread|MHz"; } > $OUT/card.txt
for r in 0 250 1000; do
  timeout 60 python3 bench/worker_profile.py --engine timed --cameras 384 --seconds 3 --read-every-us $r --out $OUT/timed-$r > $OUT/timed-$r.txt 2>&1; echo "timed $r: $(head -1 $OUT/timed-$r.txt)"
done
for r in 0 1000; do
  timeout 100 python3 bench/worker_profile.py --engine cuda --cameras 640 --seconds 3 --read-every-us $r --out $OUT/cuda-$r > $OUT/cuda-$r.txt 2>&1; echo "cuda $r: $(head -1 $OUT/cuda-$r.txt)"
done
cd $OUT && tar czf $TMPDIR/all.tgz . && mv $TMPDIR/all.tgz $OUT/all.tgz
