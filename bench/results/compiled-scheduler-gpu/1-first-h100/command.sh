# the compiled HEAD on a GPU: GPU tests, capacity (s3dnn 48..704 + 1.5x), ROS 64x320x240 and 32x640x480, streams knee, Table 1
START=$(date +%s); END=$((START + ${BUDGET:-575}))
left() { local l=$((END - $(date +%s) - 5)); [ $l -gt $1 ] && l=$1; [ $l -lt 1 ] && l=1; echo $l; }
. .gpuk/setup.sh
timeout $(left 170) python3 -m pytest -q -p no:cacheprovider -m gpu test/test_cuda_engine.py test/test_burst_benches.py test/test_cuda_launches.py test/test_launch_calls.py test/test_driver_calls.py test/test_engine_select.py test/test_host_profile.py > $OUT/gpu-tests.txt 2>&1; tail -3 $OUT/gpu-tests.txt
echo "t=$(( $(date +%s) - START ))"
timeout $(left 200) python3 -m s3dnn_ros.tools.bench --sections capacity --cameras 48,64,192,384,640,704 --policies s3dnn --seconds 3 --warmup-s 1 --overload 1.5 --out $OUT/cap > $OUT/cap.txt 2>&1
tail -14 $OUT/cap.txt; echo "t=$(( $(date +%s) - START ))"
CT=$OUT/cap/costs.json; [ -f $CT ] || CT=$PWD/bench/results/costs-nvidia-h200.json
for pt in "64 320 240" "32 640 480"; do set -- $pt
timeout $(left 100) python3 bench/multiprocess_node.py --seconds 6 --policy s3dnn --engine cuda --cost-table $CT --cameras $1 --width $2 --height $3 --warmup-s 3 --out $OUT/ros-$1-$2 > $OUT/ros-$1-$2.txt 2>&1
tail -2 $OUT/ros-$1-$2.txt; done; echo "t=$(( $(date +%s) - START ))"
timeout $(left 80) python3 -m s3dnn_ros.tools.bench --sections capacity --cost-table $CT --cameras 48,64 --policies streams --seconds 3 --warmup-s 1 --overload 1.5 --out $OUT/cap-streams > $OUT/cap-streams.txt 2>&1
tail -6 $OUT/cap-streams.txt; echo "t=$(( $(date +%s) - START ))"
timeout $(left 120) python3 -m s3dnn_ros.tools.bench --sections table1,four_cameras --inputs pinned --out $OUT/t1 > $OUT/t1.txt 2>&1
grep -E "frames:|streams|ratio|idle|^ *[0-9]+ " $OUT/t1.txt | head -30; echo "t=$(( $(date +%s) - START ))"
