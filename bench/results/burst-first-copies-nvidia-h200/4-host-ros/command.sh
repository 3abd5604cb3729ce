. .whl/setup.sh
cat .trees/old/COMMIT .trees/head/COMMIT >> $OUT/card.txt
timeout 200 python3 bench/alternate.py --before .trees/old --after .trees/head --rounds 2 --out $OUT/cap-ab -- python3 -m s3dnn_ros.tools.bench --sections capacity --cameras 48,64 --policies s3dnn --seconds 3 --warmup-s 1 --overload 0 --out {out} > $OUT/cap-ab.log 2>&1
grep -h "cameras: miss" $OUT/cap-ab/*.txt
CT=$PWD/bench/results/costs-nvidia-h200.json
timeout 190 python3 bench/multiprocess_node.py --seconds 6 --policy s3dnn --engine cuda --cost-table $CT --cameras 64 --width 320 --height 240 --warmup-s 3 --out $OUT/ros-64-320 > $OUT/ros-64-320.txt 2>&1
tail -2 $OUT/ros-64-320.txt
timeout 190 python3 bench/multiprocess_node.py --seconds 6 --policy s3dnn --engine cuda --cost-table $CT --cameras 32 --width 640 --height 480 --warmup-s 3 --out $OUT/ros-32-640 > $OUT/ros-32-640.txt 2>&1
tail -2 $OUT/ros-32-640.txt
cd $OUT && tar czf $TMPDIR/all.tgz . && mv $TMPDIR/all.tgz $OUT/all.tgz
