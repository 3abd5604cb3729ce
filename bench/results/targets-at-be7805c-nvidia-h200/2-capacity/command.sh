# the capacity targets at HEAD (be7805c): s3dnn and streams, 1.5x overload, the simulator beside each point
python3 -m pip install -q --no-index --no-deps --no-compile --target $SITE .whl/*.whl 2>/dev/null; export PYTHONPATH=$SITE:$PWD
{ date -u; nvidia-smi; echo "cores: $(nproc)"; echo "code: be7805c"; } > $OUT/card.txt
timeout 520 python3 -m s3dnn_ros.tools.bench --sections capacity --cameras 48,64,192,384,640,704 --policies s3dnn,streams --seconds 3 --warmup-s 1 --overload 1.5 --out $OUT/cap > $OUT/cap.txt 2>&1
tail -32 $OUT/cap.txt
cd $OUT && tar czf $TMPDIR/all.tgz . && mv $TMPDIR/all.tgz $OUT/all.tgz
