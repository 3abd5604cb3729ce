python3 -m pip install -q --no-index --no-deps --no-compile --target $SITE .whl/*.whl 2>/dev/null; export PYTHONPATH=$SITE:$PWD
{ date -u; nvidia-smi; echo "cores: $(nproc)"; cat .trees/before/COMMIT .trees/after/COMMIT; } > $OUT/card.txt
A="python3 bench/alternate.py --before .trees/before --after .trees/after"
timeout 150 $A --rounds 2 --out $OUT/rt -- python3 bench/round_timeline.py --frames 16,32,64 --repeats 10 --out {out} > $OUT/rt.log 2>&1
timeout 300 $A --rounds 2 --out $OUT/t1 -- python3 -m s3dnn_ros.tools.bench --sections table1,four_cameras --inputs pinned --out {out} > $OUT/t1.log 2>&1
timeout 120 $A --rounds 1 --out $OUT/wp -- python3 bench/worker_profile.py --engine cuda --cameras 48 --seconds 3 --out {out} > $OUT/wp.log 2>&1
for d in rt t1 wp; do grep -h "" $OUT/$d/*.txt | grep -E "frames:|streams baseline|^ *[0-9]+ +[0-9]+ +|ratio|idle|µs/frame" > $OUT/$d-summary.txt; done
cd $OUT && tar czf $TMPDIR/all.tgz . && mv $TMPDIR/all.tgz $OUT/all.tgz
