python3 -m pip install -q --no-index --no-deps --no-compile --target $SITE .whl/*.whl 2>/dev/null; export PYTHONPATH=$SITE:$PWD
{ date -u; nvidia-smi; echo "cores: $(nproc)"; echo "code: 5485978"; } > $OUT/card.txt
timeout 170 python3 -m pytest -q -p no:cacheprovider -m gpu test/test_cuda_engine.py test/test_burst_benches.py test/test_cuda_launches.py test/test_launch_calls.py > $OUT/pytest.txt 2>&1
tail -1 $OUT/pytest.txt
timeout 400 python3 -m s3dnn_ros.tools.bench --sections capacity --cameras 48,64,192,384,640,704 --policies s3dnn,streams --seconds 3 --warmup-s 1 --overload 1.5 --out $OUT/cap > $OUT/cap.txt 2>&1
tail -22 $OUT/cap.txt
cd $OUT && tar czf $TMPDIR/all.tgz . && mv $TMPDIR/all.tgz $OUT/all.tgz
