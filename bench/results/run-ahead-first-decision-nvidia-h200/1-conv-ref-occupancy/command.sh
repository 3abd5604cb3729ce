python3 -m pip install -q --no-index --no-deps --no-compile --target $SITE .whl/*.whl 2>/dev/null
{ date -u; nvidia-smi; echo "cores: $(nproc)"; cat .trees/main/COMMIT .trees/after/COMMIT; } > $OUT/card.txt
(cd .trees/after && PYTHONPATH=$SITE:$PWD timeout 150 python3 -m pytest -q -p no:cacheprovider -m gpu test/test_cuda_engine.py test/test_burst_benches.py > $OUT/pytest-after.txt 2>&1; tail -2 $OUT/pytest-after.txt)
for t in main after; do (cd .trees/$t && PYTHONPATH=$SITE:$PWD timeout 100 python3 bench/burst_chains.py --frames 16,64 --chains 1,4 --graphs on,off --repeats 20 --out $OUT/burst-$t > $OUT/burst-$t.txt 2>&1; cat $OUT/burst-$t.txt); done
export PYTHONPATH=$SITE:$PWD
timeout 240 python3 bench/alternate.py --before .trees/main --after .trees/after --rounds 3 --out $OUT/t1 -- python3 -m s3dnn_ros.tools.bench --sections table1,four_cameras --inputs pinned --out {out} > $OUT/t1.txt 2>&1
timeout 40 python3 bench/worker_profile.py --engine cuda --cameras 48 --seconds 3 --profile --out $OUT/wp48prof > $OUT/wp48prof.txt 2>&1
cd $OUT && tar czf $TMPDIR/all.tgz . && mv $TMPDIR/all.tgz $OUT/all.tgz
