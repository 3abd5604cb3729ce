# the compiled scheduler on a GPU, every target table in one command: capacity (s3dnn 48..704 + 1.5x; streams
# 48..128 + 1.5x), ROS 64x320x240 and 32x640x480, Table 1 + four cameras, GPU tests, and the same code
# interpreted against compiled (capacity 192/384/640, alternated twice)
START=$(date +%s); END=$((START + ${BUDGET:-560}))
left() { local l=$((END - $(date +%s) - 5)); [ $l -gt $1 ] && l=$1; [ $l -lt 1 ] && l=1; echo $l; }
finish() { cd $OUT && tar czf $TMPDIR/all.tgz . && mv $TMPDIR/all.tgz $OUT/all.tgz; }
trap finish EXIT
. .gpuk/setup.sh
timeout $(left 80) python3 -m s3dnn_ros.tools.bench --sections capacity --cameras 48,64,192,384,640,704 --policies s3dnn --seconds 3 --warmup-s 1 --overload 1.5 --out $OUT/cap > $OUT/cap.txt 2>&1
grep -A20 "^capacity:" $OUT/cap.txt | grep -v " sim " | cut -c1-170; echo "t=$(( $(date +%s) - START ))"
CT=$OUT/cap/costs.json; [ -f $CT ] || CT=$PWD/bench/results/costs-nvidia-h200.json
timeout $(left 70) python3 -m s3dnn_ros.tools.bench --sections capacity --cost-table $CT --cameras 48,64,96,128 --policies streams --seconds 3 --warmup-s 1 --overload 1.5 --out $OUT/cap-streams > $OUT/cap-streams.txt 2>&1
grep -A20 "^capacity:" $OUT/cap-streams.txt | cut -c1-170; echo "t=$(( $(date +%s) - START ))"
for pt in "64 320 240" "32 640 480"; do set -- $pt
timeout $(left 75) python3 bench/multiprocess_node.py --seconds 6 --policy s3dnn --engine cuda --cost-table $CT --cameras $1 --width $2 --height $3 --warmup-s 3 --out $OUT/ros-$1-$2 > $OUT/ros-$1-$2.txt 2>&1
tail -2 $OUT/ros-$1-$2.txt | cut -c1-200; done; echo "t=$(( $(date +%s) - START ))"
timeout $(left 60) python3 -m s3dnn_ros.tools.bench --sections table1,four_cameras --inputs pinned --out $OUT/t1 > $OUT/t1.txt 2>&1
grep -A14 "^table 1" $OUT/t1.txt; grep -A3 "^four cameras" $OUT/t1.txt; echo "t=$(( $(date +%s) - START ))"
timeout $(left 150) python3 -m pytest -q -p no:cacheprovider -m gpu test/test_cuda_engine.py test/test_burst_benches.py test/test_cuda_launches.py test/test_launch_calls.py test/test_driver_calls.py test/test_engine_select.py test/test_host_profile.py test/test_gpu_node.py > $OUT/gpu-tests.txt 2>&1; tail -4 $OUT/gpu-tests.txt
echo "t=$(( $(date +%s) - START ))"
C="python3 -m s3dnn_ros.tools.bench --sections capacity --cost-table $CT --cameras 192,384,640 --policies s3dnn --seconds 3 --warmup-s 1 --overload 0 --out {out}"
timeout $(left 150) python3 bench/alternate.py --before .gpuk/trees/interp --after .gpuk/trees/comp --rounds 2 --out $OUT/alt -- $C > $OUT/alt.log 2>&1
for f in $OUT/alt/*.txt; do echo "$(basename $f): $(grep -o 'scheduler modules [a-z]*' $f | head -1)"; grep "cameras:" $f | cut -c1-150; done; rm -rf $OUT/alt/trees
echo "t=$(( $(date +%s) - START ))"
