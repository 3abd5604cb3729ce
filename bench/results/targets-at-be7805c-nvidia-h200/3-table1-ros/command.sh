# Table 1 and four cameras (pinned inputs), then the node through ROS at 64 x 320x240 and 32 x 640x480, at HEAD (be7805c)
. .whl/setupxz.sh
echo "code: be7805c" >> $OUT/card.txt
timeout 150 python3 -m s3dnn_ros.tools.bench --sections table1,four_cameras --inputs pinned --out $OUT/t1 > $OUT/t1.txt 2>&1
grep -E "frames:|streams|ratio|idle|^ *[0-9]+ " $OUT/t1.txt | head -30
CT=$PWD/bench/results/costs-nvidia-h200.json
timeout 170 python3 bench/multiprocess_node.py --seconds 6 --policy s3dnn --engine cuda --cost-table $CT --cameras 64 --width 320 --height 240 --warmup-s 3 --out $OUT/ros-64-320 > $OUT/ros-64-320.txt 2>&1
tail -2 $OUT/ros-64-320.txt
timeout 170 python3 bench/multiprocess_node.py --seconds 6 --policy s3dnn --engine cuda --cost-table $CT --cameras 32 --width 640 --height 480 --warmup-s 3 --out $OUT/ros-32-640 > $OUT/ros-32-640.txt 2>&1
tail -2 $OUT/ros-32-640.txt
cd $OUT && tar czf $TMPDIR/all.tgz . && mv $TMPDIR/all.tgz $OUT/all.tgz
