# the compiled HEAD on a GPU: the host breakdown at 384/640, the streams knee, the two bench-tool GPU tests
START=$(date +%s); END=$((START + ${BUDGET:-300}))
left() { local l=$((END - $(date +%s) - 5)); [ $l -gt $1 ] && l=$1; [ $l -lt 1 ] && l=1; echo $l; }
finish() { cd $OUT && tar czf $TMPDIR/all.tgz . && mv $TMPDIR/all.tgz $OUT/all.tgz; }
trap finish EXIT
. .gpuk/setup.sh
timeout $(left 80) python3 -m pytest -q -p no:cacheprovider -m gpu test/test_host_profile.py test/test_burst_benches.py > $OUT/gpu-tests.txt 2>&1; tail -3 $OUT/gpu-tests.txt
echo "t=$(( $(date +%s) - START ))"
timeout $(left 70) python3 -m s3dnn_ros.tools.bench --sections capacity --cameras 384,640 --policies s3dnn --seconds 3 --warmup-s 1 --overload 0 --out $OUT/cap > $OUT/cap.txt 2>&1
grep "cameras:" $OUT/cap.txt | cut -c1-200; echo "t=$(( $(date +%s) - START ))"
CT=$OUT/cap/costs.json; [ -f $CT ] || CT=$PWD/bench/results/costs-nvidia-h200.json
timeout $(left 80) python3 -m s3dnn_ros.tools.bench --sections capacity --cost-table $CT --cameras 96,128,160,192,256 --policies streams --seconds 3 --warmup-s 1 --overload 0 --out $OUT/cap-streams > $OUT/cap-streams.txt 2>&1
grep "cameras:\|knees" $OUT/cap-streams.txt | cut -c1-160; echo "t=$(( $(date +%s) - START ))"
for n in 640 384; do
timeout $(left 40) python3 bench/worker_profile.py --engine cuda --cost-table $CT --cameras $n --seconds 3 --call-times --out $OUT/wp-$n > $OUT/wp-$n.txt 2>&1
tail -25 $OUT/wp-$n.txt | cut -c1-200; done; echo "t=$(( $(date +%s) - START ))"
