python3 -m pip install -q --no-index --no-deps --no-compile --target $SITE .whl/*.whl 2>/dev/null; export PYTHONPATH=$SITE:$PWD
{ date -u; nvidia-smi; echo "cores: $(nproc)"; cat .trees/main/COMMIT .trees/after/COMMIT; } > $OUT/card.txt
timeout 200 python3 bench/alternate.py --before .trees/main --after .trees/after --rounds 1 --out $OUT/cap -- python3 -m s3dnn_ros.tools.bench --sections capacity --cameras 640 --policies s3dnn --seconds 3 --warmup-s 1 --overload 0 --out {out} > $OUT/cap.txt 2>&1
grep -h "cameras: miss" $OUT/cap/*.txt
cd $OUT && tar czf $TMPDIR/all.tgz . && mv $TMPDIR/all.tgz $OUT/all.tgz
