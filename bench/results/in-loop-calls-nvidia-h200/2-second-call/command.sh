# the same calls after the fix of the graph counts read (bc1a3f1): CUDA at 640 twice, then timed at 384
python3 -m pip install -q --no-index --no-deps --no-compile --target $SITE .whl/*.whl 2>/dev/null; export PYTHONPATH=$SITE:$PWD
{ date -u; nvidia-smi -L; echo "cores: $(nproc)"; lscpu | grep -E "Model name|MHz"; } > $OUT/card.txt
for r in 1 2; do
  timeout 150 python3 bench/worker_profile.py --engine cuda --cameras 640 --seconds 3 --call-times --out $OUT/cuda-$r > $OUT/cuda-$r.txt 2>&1; cut -c1-700 $OUT/cuda-$r.txt | head -12
done
timeout 60 python3 bench/worker_profile.py --engine timed --cameras 384 --seconds 3 --call-times --out $OUT/timed > $OUT/timed.txt 2>&1; cut -c1-300 $OUT/timed.txt
cd $OUT && tar czf $TMPDIR/all.tgz . && mv $TMPDIR/all.tgz $OUT/all.tgz
