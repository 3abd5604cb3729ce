python3 -m pip install -q --no-index --no-deps --no-compile --target $SITE .whl/*.whl 2>/dev/null; export PYTHONPATH=$SITE:$PWD
{ date -u; nvidia-smi; echo "cores: $(nproc)"; git log -1 --format=%H 2>/dev/null; } > $OUT/card.txt
for n in 48 640; do timeout 60 python3 -m cProfile -o $OUT/prof$n.out bench/worker_profile.py --engine cuda --cameras $n --seconds 3 --out $OUT/wp$n > $OUT/wp$n.txt 2>&1; done
timeout 60 python3 bench/driver_calls.py --out $OUT/dc > $OUT/dc.txt 2>&1
cd $OUT && tar czf $TMPDIR/all.tgz . && mv $TMPDIR/all.tgz $OUT/all.tgz
