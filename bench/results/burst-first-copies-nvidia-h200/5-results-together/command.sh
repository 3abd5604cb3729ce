python3 -m pip install -q --no-index --no-deps --no-compile --target $SITE .whl/*.whl 2>/dev/null; export PYTHONPATH=$SITE:$PWD
{ date -u; nvidia-smi; echo "cores: $(nproc)"; cat .trees/before/COMMIT .trees/after/COMMIT; } > $OUT/card.txt
timeout 120 python3 -m pytest -q -p no:cacheprovider -m gpu test/test_cuda_engine.py test/test_burst_benches.py > $OUT/pytest.txt 2>&1
tail -1 $OUT/pytest.txt
A="python3 bench/alternate.py --before .trees/before --after .trees/after"
timeout 100 $A --rounds 2 --out $OUT/rt -- python3 bench/round_timeline.py --frames 16,32,64 --repeats 10 --out {out} > $OUT/rt.log 2>&1
timeout 80 $A --rounds 1 --out $OUT/t1 -- python3 -m s3dnn_ros.tools.bench --sections table1,four_cameras --inputs pinned --out {out} > $OUT/t1.log 2>&1
timeout 50 $A --rounds 1 --out $OUT/wp -- python3 bench/worker_profile.py --engine cuda --cameras 640 --seconds 3 --out {out} > $OUT/wp.log 2>&1
for f in $OUT/rt/before-1.txt $OUT/rt/after-1.txt $OUT/rt/before-2.txt $OUT/rt/after-2.txt; do echo "== $f"; grep -E "frames:|baseline" $f; done
for f in $OUT/t1/before-1.txt $OUT/t1/after-1.txt; do echo "== $f"; grep -E "^pinned +(2|4|8|16) +4 " $f; done
grep -h "µs/frame" $OUT/wp/before-1.txt $OUT/wp/after-1.txt | cut -c1-230
cd $OUT && tar czf $TMPDIR/all.tgz . && mv $TMPDIR/all.tgz $OUT/all.tgz
