python3 -m pip install -q --no-index --no-deps --no-compile --target $SITE .whl/*.whl 2>/dev/null; export PYTHONPATH=$SITE:$PWD
{ date -u; nvidia-smi; echo "cores: $(nproc)"; cat .trees/main/COMMIT .trees/after/COMMIT; } > $OUT/card.txt
timeout 150 python3 -m pytest -q -p no:cacheprovider -m gpu test/test_cuda_engine.py test/test_cuda_launches.py test/test_launch_calls.py > $OUT/pytest.txt 2>&1
tail -2 $OUT/pytest.txt
for n in 48 640; do timeout 90 python3 bench/alternate.py --before .trees/main --after .trees/after --rounds 2 --out $OUT/wp$n -- python3 bench/worker_profile.py --engine cuda --cameras $n --seconds 3 --out {out} > $OUT/wp$n.txt 2>&1; done
timeout 100 python3 bench/alternate.py --before .trees/main --after .trees/after --rounds 1 --out $OUT/lc -- python3 bench/launch_calls.py --frames 1,2,32 --repeats 100 --out {out} > $OUT/lc.txt 2>&1
cd $OUT && tar czf $TMPDIR/all.tgz . && mv $TMPDIR/all.tgz $OUT/all.tgz
