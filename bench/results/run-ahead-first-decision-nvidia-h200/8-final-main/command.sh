python3 -m pip install -q --no-index --no-deps --no-compile --target $SITE .whl/*.whl 2>/dev/null; export PYTHONPATH=$SITE:$PWD
{ date -u; nvidia-smi; echo "cores: $(nproc)"; cat .trees/after/COMMIT; } > $OUT/card.txt
timeout 120 python3 -m s3dnn_ros.tools.bench --sections capacity --cameras 640,704 --policies s3dnn --seconds 3 --warmup-s 1 --overload 0 --out $OUT/cap > $OUT/cap.txt 2>&1
tail -5 $OUT/cap.txt
timeout 60 python3 -m s3dnn_ros.tools.bench --sections table1,four_cameras --inputs pinned --out $OUT/t1 > $OUT/t1.txt 2>&1
cd $OUT && tar czf $TMPDIR/all.tgz . && mv $TMPDIR/all.tgz $OUT/all.tgz
