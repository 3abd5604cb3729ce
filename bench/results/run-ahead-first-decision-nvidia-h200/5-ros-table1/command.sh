. .whl/setup.sh
cat .trees/after/COMMIT >> $OUT/card.txt
CT=$PWD/bench/results/costs-nvidia-h200.json
timeout 200 python3 bench/multiprocess_node.py --seconds 6 --policy s3dnn --engine cuda --cost-table $CT --cameras 64 --width 320 --height 240 --warmup-s 3 --out $OUT/ros-64-320 > $OUT/ros-64-320.txt 2>&1
tail -2 $OUT/ros-64-320.txt
timeout 90 python3 bench/alternate.py --before .trees/main --after .trees/after --rounds 1 --out $OUT/t1 -- python3 -m s3dnn_ros.tools.bench --sections table1,four_cameras --inputs pinned --out {out} > $OUT/t1.txt 2>&1
timeout 220 python3 bench/multiprocess_node.py --seconds 6 --policy s3dnn --engine cuda --cost-table $CT --cameras 32 --width 640 --height 480 --warmup-s 3 --out $OUT/ros-32-640 > $OUT/ros-32-640.txt 2>&1
tail -2 $OUT/ros-32-640.txt
cd $OUT && tar czf $TMPDIR/all.tgz . && mv $TMPDIR/all.tgz $OUT/all.tgz
