python3 -m pip install -q --no-index --no-deps --no-compile --target $SITE .whl/*.whl 2>/dev/null; export PYTHONPATH=$SITE:$PWD
{ date -u; nvidia-smi; echo "cores: $(nproc)"; cat .trees/main/COMMIT .trees/after/COMMIT; } > $OUT/card.txt
for n in 48 64 192; do timeout 120 python3 bench/alternate.py --before .trees/main --after .trees/after --rounds 2 --out $OUT/wp$n -- python3 bench/worker_profile.py --engine cuda --cameras $n --seconds 3 --out {out} > $OUT/wp$n.txt 2>&1; done
timeout 200 python3 bench/alternate.py --before .trees/main --after .trees/after --rounds 1 --out $OUT/cap -- python3 -m s3dnn_ros.tools.bench --sections capacity --cameras 48,64,192,640 --policies s3dnn --seconds 3 --warmup-s 1 --overload 0 --out {out} > $OUT/cap.txt 2>&1
cd $OUT && tar czf $TMPDIR/all.tgz . && mv $TMPDIR/all.tgz $OUT/all.tgz
